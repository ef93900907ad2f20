"""An engine's worker over the runtime core: start a classifier from an archive's settings, answer uploads.

TorchServe's handler and Triton's Python-backend model both call these, so
both engines start the same way (precision guard against float32, the
padded-batch self-check) and answer a batch the same way:
each upload decoded on its own, a bad one failing alone with its typed
error, the valid ones batched exactly. What differs between engines (how a
request's bytes arrive, how an answer or an error is sent back, metrics) is
the adapter's.
"""

from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ser_serve import allocator
from ser_serve.audio import TARGET_SAMPLE_RATE
from ser_serve.classifier import EmotionClassifier
from ser_serve.decode_pool import DecodePool
from ser_serve.model import precision
from ser_serve.model.calibration import calibration_clips, operator_clips
from ser_serve.settings import ServeSettings

logger = logging.getLogger(__name__)

# Called with (milliseconds spent decoding, seconds of audio) for each upload that decoded.
OnDecoded = Callable[[float, float], None]


def start_classifier(checkpoint_dir: str | Path, settings: ServeSettings, gpu_id: int | None = None,
                     model_dir: str | Path | None = None, timeline: bool = False) -> EmotionClassifier:
    """Load the checkpoint as ``settings`` say and run the start-up checks; log what runs and why.

    ``gpu_id``: the engine's device for this worker (None or no CUDA: CPU).
    ``model_dir``: the archive/repository folder that ``settings.precision.calibration_dir``
    and ``requirements.txt`` are relative to.
    """
    on_gpu = torch.cuda.is_available() and gpu_id is not None
    device = f"cuda:{gpu_id}" if on_gpu else "cpu"
    keeps_freed_memory = settings.keep_freed_memory and allocator.keep_freed_memory()
    if not on_gpu and settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    classifier = EmotionClassifier.from_pretrained(
        checkpoint_dir, device=device, limits=settings.limits,
        budget=settings.gpu.batching if on_gpu else settings.batching, vad=settings.vad, timeline=settings.timeline,
    )
    _choose_precision(classifier, settings, model_dir)
    _check_exact_batching(classifier, model_dir)
    logger.info("ser worker ready (%s): labels=%s device=%s dtype=%s precision=%s threads=%d keeps_freed_memory=%s "
                "settings=%s", "timeline" if timeline else "clips", classifier.labels, device, classifier.model.dtype,
                classifier.model.profile, torch.get_num_threads(), keeps_freed_memory, settings)
    return classifier


def decode_pool(classifier: EmotionClassifier, settings: ServeSettings, gpu_id: int | None) -> DecodePool:
    """The worker's decoder: ``ser.gpu.decode_processes`` processes on a GPU, else ``ser.decode_processes``."""
    on_gpu = torch.cuda.is_available() and gpu_id is not None
    processes = settings.gpu.decode_processes if on_gpu else settings.decode_processes
    logger.info("uploads decoded %s", f"in {processes} processes" if processes > 1 else "in the worker's process")
    return DecodePool(classifier.preparer, processes)


def prepare_uploads(classifier: EmotionClassifier, uploads: Sequence[bytes | bytearray | Exception],
                    decoder: DecodePool | None = None, on_decoded: OnDecoded | None = None) -> list[np.ndarray | Exception]:
    """Each upload decoded and validated on its own (by ``decoder``; None: here, one by one): its features, or its error."""
    prepared = (decoder or DecodePool(classifier.preparer)).prepare_all(uploads)
    if on_decoded:
        for features, milliseconds in prepared:
            if milliseconds is not None:
                on_decoded(milliseconds, len(features) / TARGET_SAMPLE_RATE)
    return [features for features, _ in prepared]


def answer_uploads(classifier: EmotionClassifier, uploads: Sequence[bytes | bytearray | Exception],
                   on_decoded: OnDecoded | None = None, decoder: DecodePool | None = None) -> list[dict | Exception]:
    """One answer per upload, in order: the response dict, or the exception that upload alone failed with.

    An upload may already be an exception (the adapter could not find its
    bytes). Uploads are decoded by ``decoder`` (None: one by one, here); the valid clips share
    exact forward passes, and a forward pass that fails (e.g. out of memory)
    fails only its own clips, never with a raise, so the adapter can answer
    each request.
    """
    prepared = prepare_uploads(classifier, uploads, decoder, on_decoded)
    answers: list[dict | Exception] = list(prepared)
    valid = [index for index, features in enumerate(prepared) if not isinstance(features, Exception)]
    if valid:
        try:
            results = classifier.answer_each([prepared[index] for index in valid])
        except Exception as exc:
            logger.exception("inference failed for a batch of %d", len(valid))
            results = [exc] * len(valid)
        for index, result in zip(valid, results):
            answers[index] = result
    logger.info("batch of %d: %d valid; padded forward passes so far: %d",
                len(uploads), len(valid), classifier.model.padded_passes)
    return answers


def _choose_precision(classifier: EmotionClassifier, settings: ServeSettings, model_dir) -> None:
    """Run the configured profile only if it passes the guard against float32; log the figures."""
    wanted = settings.precision
    extra = []
    if wanted.profile != precision.FLOAT32 and wanted.calibration_dir:
        extra = operator_clips(Path(model_dir or ".") / wanted.calibration_dir, settings.limits)
    choice = classifier.model.use_precision(wanted, extra)
    for result in choice.guards.values():
        logger.log(logging.INFO if result.passed else logging.WARNING,
                   "precision guard %s vs float32 on %d calibration clips: argmax agreement %.3f (min %.3f), "
                   "max probability change %.2e (max %.2e): %s%s", result.profile, result.clips, result.agreement,
                   wanted.guard.min_agreement, result.max_change, wanted.guard.max_probability_change,
                   "passed" if result.passed else "FAILED", f" ({result.error})" if result.error else "")
    if choice.seconds:
        logger.info("precision auto timings (median s per pass over the calibration clips): %s",
                    {name: round(seconds, 4) for name, seconds in choice.seconds.items()})
    if choice.fell_back:
        logger.error("precision %r failed its accuracy guard: FALLING BACK TO float32", choice.requested)
    logger.info("precision: requested %s, running %s", choice.requested, choice.profile)


def _check_exact_batching(classifier: EmotionClassifier, model_dir) -> None:
    """Measure a padded pass against clips alone; if it is not exact here, batch identical lengths only.

    The archive pins transformers, but an engine need not install the pins:
    log what runs against them.
    """
    model = classifier.model
    difference = model.batching_difference(calibration_clips()[:2])
    pinned = _pinned_versions(Path(model_dir) / "requirements.txt") if model_dir else {}
    installed = {name: metadata.version(name) for name in ("torch", "transformers")}
    drift = {name: (pinned[name], version) for name, version in installed.items() if pinned.get(name, version) != version}
    logger.info("padded batch vs alone (%s): %.1e; installed %s; differs from the archive's pins: %s",
                model.profile, difference, installed, drift or "nothing")
    # What "a clip's answer does not depend on its neighbours" means in the profile that runs.
    tolerance = precision.PROFILES[model.profile].batch_tolerance
    if difference > tolerance:
        logger.error("a padded forward pass changed scores by %.1e (> %.0e) with these packages: only clips of "
                     "identical length will share a forward pass", difference, tolerance)
        model.budget = model.budget.model_copy(update={"max_padding_ratio": 1.0})


def _pinned_versions(requirements: Path) -> dict[str, str]:
    """``name==version`` lines of an archive's requirements.txt ({} when there is none)."""
    try:
        lines = requirements.read_text().split()
    except OSError:
        return {}
    return dict(line.split("==", 1) for line in lines if "==" in line)
