"""The package layering holds: the import-linter contracts of pyproject.toml pass, and would catch a breach."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first, so the packages under `root` are the ones analysed.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def copy_tree(tmp_path: Path) -> Path:
    for name in ("ser_serve", "ser_tools", "ser_train"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_import_contracts_are_kept():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


def test_an_engine_importing_the_other_breaks_the_contract(tmp_path):
    root = copy_tree(tmp_path)
    model = root / "ser_serve" / "engines" / "triton" / "model.py"
    model.write_text(model.read_text() + "\nfrom ser_serve.engines.torchserve import metrics  # a breach\n")
    result = lint_imports(root)
    assert result.returncode != 0
    assert "the engines never import each other BROKEN" in result.stdout


def test_runtime_core_importing_a_tool_breaks_the_contract(tmp_path):
    root = copy_tree(tmp_path)
    batching = root / "ser_serve" / "batching.py"
    batching.write_text(batching.read_text() + "\nfrom ser_tools import clipmix  # a breach\n")
    result = lint_imports(root)
    assert result.returncode != 0
    assert "The runtime core imports no engine, client, CLI, tool or training code BROKEN" in result.stdout
    assert "ser_serve.batching -> ser_tools.clipmix" in result.stdout


def test_a_client_importing_torchserve_breaks_the_contract(tmp_path):
    root = copy_tree(tmp_path)
    auth = root / "ser_serve" / "clients" / "auth.py"
    auth.write_text(auth.read_text() + "\nimport ts  # a breach\n")
    result = lint_imports(root)
    assert result.returncode != 0
    assert "Only the TorchServe adapter imports TorchServe BROKEN" in result.stdout


def test_importing_the_response_schema_does_not_load_torch():
    """Clients and load-test processes import ser_serve.response; the package must not pull torch for them."""
    probe = "import sys, ser_serve.response, ser_serve.clients.auth; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
