"""Where the commands read and write by default: folders of the working directory.

``make`` runs the commands from the checkout's root, so these are the
checkout's ``models/``, ``model_store/``, ``.serve/`` and ``build/``. An
installed package writes next to its user, never into site-packages.
And what ``serve`` does in them before either engine starts (:func:`start_serving`).
"""

from __future__ import annotations

from pathlib import Path

from ser_serve.logs import configure_logging
from ser_serve.sample import write_serve_sample

DEMO_MODEL_DIR = Path("models/demo")    # committed: trained on synthetic speech
TINY_MODEL_DIR = Path("models/tiny")    # generated on demand: random init, untrained
WORKDIR = Path(".serve")                # key file, logs and the sample clip of `ser-serve serve`
MODEL_STORE = Path("model_store")       # archives `ser-serve archive/serve` write
BUILD_DIR = Path("build")               # datasets, clip caches, benchmark and load-test output


def default_model_dir() -> Path:
    """The demo model when the working directory has it, else the untrained tiny checkpoint."""
    return DEMO_MODEL_DIR if (DEMO_MODEL_DIR / "config.json").exists() else TINY_MODEL_DIR


def say_which_model(model_dir: Path) -> None:
    """What ``serve`` says before it starts when the model is one of the project's own, not the user's."""
    if model_dir == TINY_MODEL_DIR.resolve():
        print("NOTE: serving the built-in 'tiny' checkpoint. It is UNTRAINED (random weights):\n"
              "      its answers are meaningless. Serve your own with MODEL_DIR=/path/to/checkpoint.")
    elif model_dir == DEMO_MODEL_DIR.resolve():
        print("NOTE: serving the demo model. It was trained on SYNTHETIC speech made by this project\n"
              "      (ser_train/synth.py and text-to-speech engines, emotions acted by rule), not on real\n"
              "      recordings: it is not a real emotion model.\n"
              "      Serve your own with MODEL_DIR=/path/to/checkpoint.")


def start_serving(args, model_dir: Path) -> tuple[Path, Path, str]:
    """What ``serve`` does on either engine before it launches one: logging (JSON in production), the model note,
    the work folder and the clip it suggests trying. Returns the work folder, the clip and how the clip was made."""
    configure_logging(args.log_format or ("json" if args.profile == "production" else "text"))
    say_which_model(model_dir)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sample = workdir / "sample.wav"
    return workdir, sample, write_serve_sample(sample)
