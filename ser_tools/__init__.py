"""Tools around the server: benchmark, load test (locust), soak, clip mix. Never packed into an archive."""
