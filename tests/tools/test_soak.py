"""The soak command, run for a few seconds: it must sample worker memory and report growth."""

import json

import pytest

from ser_tools import soak

pytestmark = pytest.mark.integration


def test_soak_samples_frontend_and_worker_memory_and_reports_growth(tiny_checkpoint, tmp_path):
    code = soak.main(["--model-dir", str(tiny_checkpoint), "--seconds", "6", "--users", "2", "--interval", "0.5",
                      "--clip-cache", str(tmp_path / "clips"), "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "soak.json").read_text())
    workers = [name for name in report["memory_mb"] if name.startswith("worker")]
    assert code == 0
    assert "frontend" in report["memory_mb"] and len(workers) == 2  # one worker per model: ser and ser-timeline
    for worker in workers:
        assert len(report["memory_mb"][worker]) >= 5
        assert all(mb > 50 for _, mb in report["memory_mb"][worker])  # a loaded worker, not a stub
    assert set(report["growth_mb"]) == set(report["memory_mb"])
    assert report["load"]["ok"] > 0 and report["load"]["statuses"] == {"200": report["load"]["ok"]}
    assert (tmp_path / "out" / "soak.png").stat().st_size > 10_000
