"""The benchmark's code path, run small (tiny model, a few clips) so it cannot rot unnoticed.

This asserts what the benchmark reports, not how fast anything is.
"""

import json

import pytest

from ser_tools import bench

pytestmark = pytest.mark.integration


def test_bench_measures_ceiling_ours_and_both_baselines(tiny_checkpoint, tmp_path):
    from ser_train.presets import make_preset_checkpoint

    weighted = make_preset_checkpoint("tiny", tmp_path / "weighted", structure="wav2vec2-base-weighted")
    args = bench.parse_args(["--checkpoint", str(tiny_checkpoint), "--weighted-checkpoint", str(weighted),
                             "--tiny-checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "out"),
                             "--clips", "6", "--concurrency", "3", "--latency-requests", "3",
                             "--stage-seconds", "60", "--cache-dir", str(tmp_path / "clips")])
    import torch

    threads = torch.get_num_threads()
    try:
        report = bench.run(args)
    finally:
        torch.set_num_threads(threads)  # bench.run leaves the cores to the server it starts
    assert set(report["served"]) == {"ser", "ref_b1", "padded", "ser_bfloat16", "ser_int8", "ser_openvino", "ser_auto", "triton"}
    for name, result in report["served"].items():
        assert result["loaded"]["statuses"] == {"200": 6}, name
        assert result["concurrency_1"]["statuses"] == {"200": 3}, name
        assert result["loaded"]["audio_s_per_s"] > 0
        assert result["loaded"]["p50_ms"] <= result["loaded"]["p99_ms"]
    assert report["model_only"]["batched"]["audio_s_per_s"] > 0
    assert set(report["targets"]) == {"served_vs_ceiling", "served_vs_padded", "c1_p50_minus_single_forward_ms",
                                      "weighted_vs_plain_batched", "auto_vs_float32_served", "auto_vs_stock_handler",
                                      "float32_c1_p50_over_auto", "triton_vs_torchserve_served"}
    # What each engine adds per request: served p50 at concurrency 1 minus in-process, measured, not assumed.
    overhead = report["engine_overhead_tiny"]
    assert overhead["in_process_p50_ms"] > 0
    for engine in ("torchserve", "triton"):
        assert overhead[f"{engine}_p50_ms"] > 0
        assert overhead[f"{engine}_overhead_ms"] == overhead[f"{engine}_p50_ms"] - overhead["in_process_p50_ms"]
    # Each profile row says what its worker ran, as the model's description reports it (auto: timed at start).
    for profile in ("bfloat16", "int8", "openvino", "auto"):
        ran = report["served"][f"ser_{profile}"]["precision"]
        assert ran["requested"] == profile and ran["profile"] in ("float32", "bfloat16", "int8", "openvino")
        # Every candidate ran in the worker (an import or kernel failure would show as an error and a fallback;
        # the frontend drops null fields from the description).
        assert ran["guard"] and all(guard.get("error") is None for guard in ran["guard"].values()), ran
    for profile in ("bfloat16", "int8", "openvino"):  # the tiny model stays well inside the default guard
        assert report["served"][f"ser_{profile}"]["precision"]["profile"] == profile
    assert set(report["served"]["ser_auto"]["precision"]["seconds_per_pass"]) >= {"float32"}
    profiles = report["model_only_profiles"]["profiles"]
    assert set(profiles) == {"float32", "bfloat16", "openvino", "int8"} and profiles["float32"]["max_probability_change"] == 0.0
    assert all(p["audio_s_per_s"] > 0 and len(p["round_seconds"]) == 3 for p in profiles.values())
    assert report["model_only_weighted_layer_sum"]["batched"]["audio_s_per_s"] > 0
    assert json.loads((tmp_path / "out" / "bench.json").read_text()) == report
    table = (tmp_path / "out" / "bench.md").read_text()
    assert "| ser: ours" in table and "| padded: baseline" in table and "weighted layer sum |" in table
    assert "| triton: ours on Triton" in table and "per-request overhead at concurrency 1, tiny model" in table
    assert "| ser_auto: ours, precision auto (ran " in table and "| model-only, exact batches, int8 (" in table
    assert (tmp_path / "out" / "bench.png").stat().st_size > 10_000
    # The clip mix is generated once and read back from the cache afterwards.
    assert len(list((tmp_path / "clips").glob("*/*.*"))) == 7  # 6 clips + index.json


def test_a_partial_run_reports_only_the_figures_its_rows_allow():
    def row(rate, p50):
        return {"loaded": {"audio_s_per_s": rate}, "concurrency_1": {"p50_ms": p50}}

    served = {"ser": row(10.0, 200.0), "triton": row(12.0, 190.0)}
    model_only = {"batched": {"audio_s_per_s": 12.5}}
    found = bench.targets(served, served["ser"], 12.5, 180.0, model_only, model_only)
    assert found == {"served_vs_ceiling": 0.8, "c1_p50_minus_single_forward_ms": 20.0, "weighted_vs_plain_batched": 1.0,
                     "triton_vs_torchserve_served": 1.2}
