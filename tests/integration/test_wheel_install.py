"""A wheel of the project, installed with its [serve] extra into a fresh virtualenv outside the checkout,
archives a checkpoint from another directory and serves it."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import serve_try_and_interrupt
from ser_serve.engines.torchserve.server import DEFAULT_SERVER_CONFIG, read_properties, with_free_ports, write_properties

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def run(command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command}\\n{result.stdout[-3000:]}\\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh virtualenv with the wheel and its [serve] extra installed (pinned versions, pip's cache)."""
    root = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(REPO)],
        timeout=300)
    (wheel,) = (root / "dist").glob("ser_serve-*.whl")
    run([sys.executable, "-m", "venv", str(root / "venv")], timeout=120)
    bin_dir = root / "venv" / "bin"
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[serve]"], timeout=900)
    return bin_dir


def test_wheel_carries_the_package_defaults_and_no_tests(installed):
    (wheel,) = installed.parent.parent.glob("dist/ser_serve-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ser_serve/defaults/model-config.yaml" in names
    assert "ser_serve/engines/torchserve/defaults/config.properties" in names
    assert {"ser_serve/gateway/static/index.html", "ser_serve/gateway/static/page.js"} <= set(names)
    assert "ser_tools/locustfile.py" in names and "ser_tools/baselines/reference_handler.py" in names
    assert not [name for name in names if name.startswith("tests/")]


def test_installed_package_archives_and_serves_from_another_directory(installed, tiny_checkpoint, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([str(installed / "python"), "-c", "import ser_serve; print(ser_serve.__file__)"], cwd=elsewhere, timeout=60)
    assert str(installed.parent) in where.stdout  # the installed copy, not the checkout

    archived = run([str(installed / "ser-serve"), "archive", "--model-dir", str(tiny_checkpoint), "--out", "store"],
                   cwd=elsewhere, timeout=300)
    assert "wrote store/ser.mar" in archived.stdout
    with zipfile.ZipFile(elsewhere / "store" / "ser.mar") as mar:
        assert json.loads(mar.read("MAR-INF/MANIFEST.json"))["model"]["handler"] == "ser_handler.py"

    config = write_properties(with_free_ports(read_properties(DEFAULT_SERVER_CONFIG)), tmp_path / "config.properties")
    command = [str(installed / "ser-serve"), "serve", "--model-dir", str(tiny_checkpoint), "--config", str(config)]
    answer = serve_try_and_interrupt(command, cwd=elsewhere)
    assert answer["dominant"] == answer["results"][0]
    assert (elsewhere / ".serve" / "sample.wav").is_file()
