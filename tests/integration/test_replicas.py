"""Two replicas behind a real nginx, driven by locust; one is killed mid-run and no accepted request is lost."""

import shutil

import pytest

from ser_tools.replicas import NGINX, run_failover

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which(NGINX) is None and not NGINX.startswith("/"), reason="nginx is installed by make test-tools")
def test_killing_a_replica_mid_run_loses_no_request_and_throughput_recovers(tiny_checkpoint, tmp_path):
    result = run_failover(tiny_checkpoint, tmp_path, replicas=2, users=4, seconds=16, kill_after=7)
    # Every request locust counted was answered 200 with a valid body, and every request nginx accepted
    # was answered 200 (nginx also logs the few still in flight when locust stopped its users).
    assert result["locust_failures"] == 0, result
    assert result["proxy_statuses"] == [200], result
    assert result["proxy_requests"] >= result["locust_requests"] > 0, result
    # Requests in flight on the killed replica (they wait 200 ms in its batcher) were re-sent to the other one.
    assert result["retried_on_another_replica"] >= 1, result
    assert result["victim_served_before_kill"] > 0 and result["victim_served_after_kill"] == 0, result
    # The survivor carries the load: throughput after the kill is back to at least half of before.
    assert result["requests_per_s_after_kill"] >= 0.5 * result["requests_per_s_before_kill"] > 0, result
