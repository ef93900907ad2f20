"""Start, probe and stop the Triton Inference Server bundled in the ``nvidia-pytriton`` wheel.

The wheel carries ``tritonserver`` 2.51, its shared libraries and the Python
backend with a stub per Python version. Run as it comes, the Python backend
needs three things this module arranges (found by trying, see the README):

- a backend directory holding ``libtriton_python.so``,
  ``triton_python_backend_utils.py`` and the stub built for this Python;
- ``LD_LIBRARY_PATH`` with the wheel's libraries and the directory of this
  Python's ``libpython3.x.so``, which the stub links;
- this environment's ``python3`` first on ``PATH``: the stub finds the
  environment it imports from (torch, transformers, ser_serve's pins) through
  the ``pyvenv.cfg`` next to it; ``PYTHONPATH`` is not used. The stub was
  built against numpy 1.x, hence the numpy pin.

Listeners bind to 127.0.0.1 and the model-control API is off
(``--model-control-mode=none``): nothing can load or unload models.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import requests

from ser_serve.engines.process import free_port, group_members, stop_group

BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
STUB = "triton_python_backend_stub"
DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}


def bundled_server() -> Path:
    """The folder of the Triton server inside the installed nvidia-pytriton wheel (read as files, not imported)."""
    try:
        root = Path(metadata.distribution("nvidia-pytriton").locate_file("pytriton/tritonserver"))
    except metadata.PackageNotFoundError:
        raise RuntimeError("Triton is not installed: pip install -e '.[triton]' (make setup does)") from None
    if not (root / "bin" / "tritonserver").exists():
        raise RuntimeError(f"no tritonserver binary under {root}")
    return root


def python_backend(root: Path, destination: Path) -> Path:
    """A backend directory whose ``python/`` holds the Python backend and the stub for this Python."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / STUB
    if not stub.exists():
        raise RuntimeError(f"the bundled Triton has no Python-backend stub for Python {version}")
    python = destination / "python"
    python.mkdir(parents=True, exist_ok=True)
    for source in [root / "backends" / "python" / name for name in BACKEND_FILES] + [stub]:
        if not (python / source.name).exists():
            shutil.copy2(source, python / source.name)
    return destination


def library_path(root: Path) -> str:
    """LD_LIBRARY_PATH for the server and its stubs: this Python's libpython, then the wheel's own libraries.

    Raises with what to install when no shared libpython for this Python is
    found (a Python built without --enable-shared and no system libpython):
    otherwise Triton fails later, with the stub's loader error in its log.
    """
    libs = root.parent.parent / "nvidia_pytriton.libs"
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    soname = f"libpython{version}.so.1.0"
    system = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
    if not any(Path(folder, soname).exists() for folder in (libdir, *system) if folder):
        raise RuntimeError(f"Triton's Python backend needs {soname} (a shared libpython for this Python): "
                           f"install it (Debian: apt-get install libpython{version}) or use a Python built "
                           "with --enable-shared")
    return ":".join(path for path in (libdir, str(libs)) if path)


@dataclass
class TritonServer:
    """One Triton process serving ``repository``; its backend copy and log live in ``workdir``."""

    repository: Path
    workdir: Path
    http_port: int = DEFAULT_PORTS["http"]
    grpc_port: int = DEFAULT_PORTS["grpc"]
    metrics_port: int = DEFAULT_PORTS["metrics"]
    model: str = "ser"
    host: str = "127.0.0.1"
    # Seconds Triton waits for in-flight requests on SIGTERM before it exits.
    exit_timeout: int = 30
    process: subprocess.Popen | None = field(default=None, repr=False)

    def __post_init__(self):
        self.repository, self.workdir = Path(self.repository).resolve(), Path(self.workdir).resolve()
        # Shared-memory regions of this server's stubs (/dev/shm): a stub that crashed leaves its own behind.
        self.shm_regions: set[str] = set()
        self.expected_stubs = 0

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def log_file(self) -> Path:
        return self.workdir / "tritonserver.log"

    def command(self) -> list[str]:
        root = bundled_server()
        backends = python_backend(root, self.workdir / "backends")
        return [
            str(root / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            "--model-control-mode=none",
            "--disable-auto-complete-config",
            "--strict-readiness=true",
            "--exit-on-error=true",
            f"--exit-timeout-secs={self.exit_timeout}",
            f"--http-address={self.host}", f"--http-port={self.http_port}",
            f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true", "--allow-gpu-metrics=false",
        ]

    def environment(self) -> dict[str, str]:
        root = bundled_server()
        inherited = os.environ.get("LD_LIBRARY_PATH")
        return {
            **os.environ,
            "LD_LIBRARY_PATH": library_path(root) + (f":{inherited}" if inherited else ""),
            # The stub imports from the environment of the python3 it finds first on PATH.
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }

    def start(self) -> "TritonServer":
        """Launch in its own process group, output to ``log_file``."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("this Triton is already running; stop() it first")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as output:
            self.process = subprocess.Popen(self.command(), cwd=self.workdir, env=self.environment(),
                                            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def _get(self, path: str) -> int | None:
        try:
            return requests.get(f"{self.http_url}{path}", timeout=2).status_code
        except requests.RequestException:
            return None

    def is_live(self) -> bool:
        return self._get("/v2/health/live") == 200

    def is_ready(self) -> bool:
        """The server is ready and so is the model."""
        return self._get("/v2/health/ready") == 200 and self._get(f"/v2/models/{self.model}/ready") == 200

    def wait_ready(self, timeout: float = 180.0) -> "TritonServer":
        """Block until the server and the model are ready, or raise with the log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Triton exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.is_ready():
                # How many model processes a healthy server has; also notes their shared-memory regions.
                self.expected_stubs = len(self.stub_processes())
                return self
            time.sleep(0.5)
        raise TimeoutError(f"Triton was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def stub_processes(self) -> list:
        """The Python-backend stub processes serving the model (one per instance while healthy).

        Triton 2.51 does not restart a stub that died: the model stays
        "ready" while every request fails with 500 "Stub process ... is not
        healthy". Fewer stubs than instances is how a supervisor sees it.
        """
        members = []
        for process in group_members(self.process):
            try:
                if process.name().startswith("triton_python"):
                    members.append(process)
                    # The stub's arguments: model.py, its shared-memory region, sizes, ...
                    self.shm_regions.update(arg for arg in process.cmdline() if arg.startswith("triton_python_backend_shm"))
            except Exception:
                continue
        return members

    def broken(self) -> str | None:
        """Why this running server cannot answer, or None: fewer model processes than it started with."""
        if not self.expected_stubs:
            return None
        alive = len(self.stub_processes())
        return None if alive >= self.expected_stubs else (
            f"{self.expected_stubs - alive} of {self.expected_stubs} Python-backend model processes died")

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def running_processes(self) -> list:
        return group_members(self.process)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM (Triton finishes in-flight requests within ``exit_timeout``), then SIGKILL what is left.

        Then remove the shared-memory regions a crashed stub left behind.
        """
        stop_group(self.process, timeout)
        self.expected_stubs = 0
        for region in self.shm_regions:
            Path("/dev/shm", region).unlink(missing_ok=True)

    def __enter__(self) -> "TritonServer":
        return self if self.process is not None else self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_on_free_ports(checkpoint: str | Path, workdir: str | Path, model_config_overrides: dict | None = None,
                        precision: str | None = None, timeline: bool = True) -> TritonServer:
    """Build a repository for ``checkpoint`` in ``workdir`` and start a Triton for it on free loopback ports.

    ``model_config_overrides`` change top-level keys of the default
    model-config.yaml; with ``timeline`` the repository holds ``ser-timeline``
    too, as ``ser-serve serve --engine triton`` builds it. Returns the started
    server (call ``wait_ready``).
    """
    import yaml

    from ser_serve.engines.triton.repository import build_repository
    from ser_serve.packaging import DEFAULT_MODEL_CONFIG

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_config = workdir / "model-config.yaml"
    values = {**yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text()), **(model_config_overrides or {})}
    model_config.write_text(yaml.safe_dump(values))
    repository = build_repository(checkpoint, workdir / "repository", model_config, precision=precision,
                                  timeline=timeline)
    return TritonServer(repository, workdir / "work", http_port=free_port(), grpc_port=free_port(),
                        metrics_port=free_port()).start()
