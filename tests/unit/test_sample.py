"""The clip `ser-serve sample` writes (and `serve` suggests trying), and what `serve` says of the project's own models."""

import argparse

from ser_serve.audio import load_waveform
from ser_serve.cli import main
from ser_serve.workspace import DEMO_MODEL_DIR, TINY_MODEL_DIR, say_which_model, start_serving


def test_sample_writes_a_clip_in_the_format_its_name_asks_for(tmp_path, capsys):
    out = tmp_path / "nested" / "clip.flac"
    assert main(["sample", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"fLaC"
    seconds = len(load_waveform(out.read_bytes())) / 16_000
    assert abs(seconds - 2.5) < 0.05
    assert f"wrote {out} (a synthetic 'happy' utterance)" in capsys.readouterr().out


def test_serve_warns_about_the_untrained_and_the_synthetic_model_and_is_silent_about_yours(tmp_path, capsys):
    say_which_model(TINY_MODEL_DIR.resolve())
    assert "UNTRAINED" in capsys.readouterr().out
    say_which_model(DEMO_MODEL_DIR.resolve())
    assert "SYNTHETIC speech" in capsys.readouterr().out
    say_which_model(tmp_path)
    assert capsys.readouterr().out == ""


def test_start_serving_makes_the_work_folder_and_the_clip_to_try_and_names_the_model(tmp_path, capsys):
    args = argparse.Namespace(log_format=None, profile="dev", workdir=tmp_path / "serve-here")
    workdir, sample, kind = start_serving(args, TINY_MODEL_DIR.resolve())
    assert workdir == (tmp_path / "serve-here").resolve() and workdir.is_dir()
    assert sample == workdir / "sample.wav"
    assert abs(len(load_waveform(sample.read_bytes())) / 16_000 - 2.5) < 0.05
    assert kind == "a synthetic 'happy' utterance"
    assert "UNTRAINED" in capsys.readouterr().out
