"""Clients of a running server: token resolution and gRPC."""
