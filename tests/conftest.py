"""Fixtures shared by every test folder: unit/ (no server), engines/ (an engine's adapter in-process),
integration/ (a real TorchServe on free loopback ports), tools/ (bench, load test, soak), train/."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random-init tiny checkpoint, made once per session."""
    from ser_train.presets import make_preset_checkpoint

    return make_preset_checkpoint("tiny", tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def classifier(tiny_checkpoint):
    from ser_serve import EmotionClassifier

    return EmotionClassifier.from_pretrained(tiny_checkpoint, device="cpu")


def spy(monkeypatch, module, *names) -> dict:
    """Count calls of ``module``'s functions ``names`` (they still run); returns the live {name: calls}."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        original = getattr(module, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    return calls


def stock_reference(checkpoint, audio_16k) -> dict:
    """The model card's reference answer for one 16 kHz clip, {label: score}: AutoFeatureExtractor ->
    AutoModelForAudioClassification (a batch of one, with the attention mask when the extractor returns one)
    -> softmax, or sigmoid for a multi-label checkpoint."""
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    model = AutoModelForAudioClassification.from_pretrained(checkpoint).eval()
    inputs = extractor(audio_16k, sampling_rate=16_000, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0]
    multi_label = model.config.problem_type == "multi_label_classification"
    scores = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
    return {model.config.id2label[i]: float(s) for i, s in enumerate(scores)}


def two_speaker_call(fmt: str = "wav", rate: int = 8_000) -> bytes:
    """A 10 s stereo call encoded as ``fmt``: left speaks 1-4 s, right 6-8 s, faint noise elsewhere."""
    import numpy as np

    from ser_serve.model.calibration import voice
    from ser_tools.encode import encode

    call = np.random.default_rng(0).normal(0, 1e-3, (10 * rate, 2)).astype(np.float32)
    call[1 * rate:4 * rate, 0] += voice(3.0, rate, seed=1)
    call[6 * rate:8 * rate, 1] += voice(2.0, rate, seed=2)
    return encode(call, rate, fmt)


def start_server(tmp_path, checkpoint, model_config_overrides=None, properties=None):
    """A started TorchServe for ``checkpoint`` on free loopback ports (see start_on_free_ports)."""
    from ser_serve.engines.torchserve.server import start_on_free_ports

    return start_on_free_ports(checkpoint, tmp_path, "ser", model_config_overrides, properties)


@pytest.fixture(scope="session")
def server(tiny_checkpoint, tmp_path_factory):
    """One real TorchServe for the session's integration tests; always stopped at the end."""
    # A long batch delay and batch size 4 so that concurrent requests really share batches.
    ts = start_server(tmp_path_factory.mktemp("ts"), tiny_checkpoint, {"batchSize": 4, "maxBatchDelay": 300})
    try:
        ts.wait_ready(timeout=180)
        yield ts
    finally:
        ts.stop()


def serve_try_and_interrupt(command, cwd=None) -> dict:
    """Run a `ser-serve serve` command, send the clip of the curl line it prints, Ctrl-C it.

    Asserts the answer is a 200, that the command exits 0 on SIGINT and that
    the server is gone with it; returns the JSON answer.
    """
    import re
    import shlex
    import signal
    import subprocess

    import requests

    serve = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = output_until_ready(serve)
        found = re.search(r"^\s*(curl .*)$", output, re.M)
        assert found, output
        curl = shlex.split(found.group(1))
        token = curl[curl.index("-H") + 1].removeprefix("Authorization: Bearer ")
        clip, url = curl[curl.index("-T") + 1], curl[-1]
        answer = requests.put(url, data=open(clip, "rb").read(), headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert answer.status_code == 200, answer.text
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=60) == 0
        try:
            requests.get(url.replace("/predictions/ser", "/ping"), timeout=5)
            raise AssertionError("the server still answers after the serve command exited")
        except requests.ConnectionError:
            pass
        return answer.json()
    finally:
        if serve.poll() is None:
            kill_with_its_server(serve)


def output_until_ready(serve) -> str:
    """What a `ser-serve serve` process printed up to its "Press Ctrl-C" line (text-mode stdout pipe).

    Bounded: the command gives up on an engine not ready in time and exits, which ends the output.
    """
    lines = []
    for line in serve.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    return "".join(lines)


def kill_with_its_server(process) -> None:
    """SIGKILL a `ser-serve serve` process and the TorchServe it started (its own session, so not its group)."""
    import psutil

    try:
        members = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        members = []
    process.kill()
    process.wait()
    for member in members:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="session")
def tts_engines():
    """The text-to-speech engines of ser_train.tts, installed by the project's own script if missing (apt as
    root, as in CI); otherwise the script says what to install and the test fails: these tests never skip."""
    import subprocess

    from ser_train import tts

    if tts.missing_engines():
        script = Path(__file__).resolve().parents[1] / "scripts" / "ensure_test_tools.sh"
        done = subprocess.run(["bash", str(script), "--tts"], capture_output=True, text=True)
        assert done.returncode == 0 and not tts.missing_engines(), done.stderr
    return tts.ENGINES


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """A few synthetic clips per label and split (train 4, validation 1, test 2), written as parquet (training tests)."""
    from ser_train.dataset import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("data"), seed=3, per_label={"train": 4, "validation": 1, "test": 2})


@pytest.fixture
def short_training():
    """A function that trains the tiny preset for a few epochs on a dataset (``{"train": path, "validation": path}``),
    with extra `ser-serve train` options, and returns the training summary."""
    from ser_train import train

    def run(data: dict, out, *options, epochs: int = 5) -> dict:
        return train.train(train.parse_args([
            "--train", str(data["train"]), "--validation", str(data["validation"]), "--preset", "tiny",
            "--out", str(out), "--epochs", str(epochs), "--batch-size", "8", "--lr", "3e-3", "--warmup-steps", "2",
            "--crop-seconds", "1.0", "--no-calibrate", *options]))

    return run
