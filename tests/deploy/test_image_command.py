"""The image's command, run on this machine the way the container runs it: a read-only model, the
token from a file, HOME and the working directory in a scratch folder, the image's environment."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
import requests
import soundfile

from deployfiles import DEPLOY, REPO, arg_defaults, dockerfile_stages, env, image_command, option

pytestmark = pytest.mark.integration
SERVE_HELP = subprocess.run([sys.executable, "-m", "ser_serve.cli", "serve", "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=120).stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.skipif("--profile" not in SERVE_HELP,
                    reason="`ser-serve serve` has no --profile yet: the production profile (issue 12) is not merged")
def test_image_command_serves_probes_and_stops_cleanly_on_sigterm(tmp_path):
    from ser_serve.model.calibration import voice

    command = image_command(DEPLOY / "Dockerfile")
    model_dir, token_file, workdir = tmp_path / "models" / "ser", tmp_path / "secrets" / "token", tmp_path / "work"
    stages = dockerfile_stages(DEPLOY / "Dockerfile")
    shutil.copytree(REPO / arg_defaults(stages)["MODEL_DIR"], model_dir)  # what the image bakes in at /models/ser
    for path in [model_dir, *model_dir.rglob("*")]:  # read-only, as in the image
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    token_file.parent.mkdir()
    token_file.write_text("s3cret-token")  # as `kubectl create secret --from-literal` stores it
    workdir.mkdir()
    port = free_port()
    replace = {option(command, "--model-dir"): str(model_dir), option(command, "--token-file"): str(token_file),
               option(command, "--port"): str(port), option(command, "--host"): "127.0.0.1"}
    args = [replace.get(word, word) for word in command]
    assert args[0] == "ser-serve"  # the console script of this interpreter's package, run as a module here
    image_env = env(stages["runtime"])
    environment = {**os.environ, **{k: v for k, v in image_env.items() if k not in ("PATH", "VIRTUAL_ENV", "JAVA_HOME")},
                   "HOME": str(workdir)}
    log = open(tmp_path / "serve.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "ser_serve.cli", *args[1:]], cwd=workdir, env=environment,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "not ready in 300 s:\n" + (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        clip = io.BytesIO()
        soundfile.write(clip, voice(1.0), 16_000, format="WAV")
        answer = requests.put(f"{base}/predictions/ser", data=clip.getvalue(), timeout=60,
                              headers={"Authorization": "Bearer s3cret-token"})
        assert answer.status_code == 200, answer.text
        refused = requests.put(f"{base}/predictions/ser", data=clip.getvalue(), timeout=60)
        assert 400 <= refused.status_code < 500
        assert "ts_inference_requests_total" in requests.get(f"{base}/metrics", timeout=10).text
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - started < 25, "the drain must fit the pod's grace period after preStop"
        assert port_is_free(port)
        assert "s3cret-token" not in (tmp_path / "serve.log").read_text(), "the token must never be logged"
    finally:
        if process.poll() is None:  # a failed check above: stop it the clean way first (TorchServe is its child)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
