"""The GPU check's code path, run small on this machine (tiny model, CPU), so the script a GPU session runs cannot rot.

It asserts what the check reports, not how fast anything is.
"""

import json

import torch

from ser_tools import gpu_check


def test_smoke_run_reports_exactness_throughput_and_decoding_per_profile(tmp_path):
    threads = torch.get_num_threads()
    try:
        report = gpu_check.run(tmp_path / "gpu.json", smoke=True, budget_seconds=300,
                               checkpoint_dir=tmp_path / "tiny")
    finally:
        torch.set_num_threads(threads)
    assert json.loads((tmp_path / "gpu.json").read_text()) == report
    assert report["skipped"] == [] and report["device"] == "cpu"
    assert set(report["profiles"]) == {"float32", "bfloat16"}  # float16 weights: CUDA only
    float32 = report["profiles"]["float32"]
    # The reference profile: exact batches within float32 rounding, identical to itself.
    assert float32["batch_vs_alone_max_abs"] < 1e-5 and float32["vs_float32_max_change"] < 1e-5
    assert float32["vs_float32_argmax_agreement"] == 1.0
    for name, row in report["profiles"].items():
        assert row["finite"], name
        assert set(row["audio_s_per_s"]) == {"4", "8"} and all(rate > 0 for rate in row["audio_s_per_s"].values())
        # The tiny preset's conv stack is group-norm: both variants measured.
        assert row["variants_audio_s_per_s"]["batch"] == 4
        assert row["variants_audio_s_per_s"]["padding_ratio_1.5"] > 0 and row["variants_audio_s_per_s"]["per_clip_conv"] > 0
    assert report["group_norm_conv"] == "per clip"  # on a CPU
    assert set(report["decode_audio_s_per_s"]) == {"1", "2"}
    assert all(rate > 0 for rate in report["decode_audio_s_per_s"].values())
    # The served path: both variants started as a worker does and answered like a float32 CPU worker.
    served = report["served_path"]
    assert set(served) == {"auto", "float16"}
    assert served["auto"]["precision"]["requested"] == "auto" and served["float16"]["precision"]["requested"] == "float16"
    # float16 is for GPU workers only: on a CPU its guard refuses it, loudly, and float32 runs.
    assert served["float16"]["dtype"] == "torch.float32" and served["float16"]["precision"]["fell_back_to_float32"]
    assert "GPU only" in served["float16"]["precision"]["guard"]["float16"]["error"]
    for row in served.values():
        assert row["uploads"] == 6 and row["same_top_label"] == 1.0 and row["max_change_vs_cpu_float32"] < 0.02
