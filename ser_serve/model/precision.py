"""Precision profiles of the forward pass, the guard that keeps one only if it agrees with float32, and ``auto``.

- ``float32``: the reference every other profile is measured against.
- ``bfloat16``: ``torch.autocast`` around the forward (CPU and CUDA): matmuls
  and convolutions in bfloat16, reductions and norms in float32. The Linear
  and Conv1d weights are cast to bfloat16 once, up front: autocast would cast
  them on every forward pass (about 180 MB of weights read and written per
  pass at base size) to the very same values, so the scores are identical
  and the pass is faster (1.79x -> 1.97x and 1.88x -> 1.92x float32 in two
  side-by-side runs on this project's 2-core AMD EPYC host). The float32
  weights are kept aside until the guard has decided.
- ``int8``: torchao's dynamic int8 in every ``nn.Linear`` (per-token
  activation scales, per-channel weight scales, int32 accumulation). Per
  token, so a clip's scales never depend on the other clips of its batch;
  ``torch.ao.quantization.quantize_dynamic`` (deprecated in this torch) uses
  one activation scale per tensor, which would make a clip's answer depend on
  its neighbours. The float32 weights are kept until the guard has decided.
- ``float16``: half-precision weights, on a GPU only (a CPU runs half
  matmuls slower than float32). The float32 weights are kept aside until
  the guard has decided: casting back would keep the rounding.
- ``openvino``: the exact padded forward exported once to OpenVINO and run by
  its CPU plugin, in bfloat16 where the CPU has it (CPU only;
  :mod:`ser_serve.model.openvino_runtime`). The PyTorch weights stay as they are.

Every profile keeps batching exact up to its own rounding
(:attr:`Profile.batch_tolerance`): reduced precision rounds a padded pass
and a lone pass differently, so "equal" means equal within that bound.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ser_serve.settings import PrecisionGuard

FLOAT32, BFLOAT16, INT8, FLOAT16, OPENVINO, AUTO = "float32", "bfloat16", "int8", "float16", "openvino", "auto"


@dataclass(frozen=True)
class Profile:
    name: str
    # How far a clip's scores in a padded batch may be from its scores alone.
    # float32 measures 1e-7. The reduced profiles measured up to 3.4e-3
    # (bfloat16) and 7e-4 (int8) on the tiny test model (large random
    # weights), 1.6e-4 and 3.9e-4 on base size: stated with room, and well
    # inside the guard's default 0.02 against float32.
    batch_tolerance: float


PROFILES = {
    FLOAT32: Profile(FLOAT32, 1e-5),
    BFLOAT16: Profile(BFLOAT16, 1e-2),
    INT8: Profile(INT8, 1e-2),
    # Measured 2.1e-5 on base size on an H200.
    FLOAT16: Profile(FLOAT16, 1e-3),
    # bfloat16 inside the plugin: measured 1.9e-4 on base size.
    OPENVINO: Profile(OPENVINO, 1e-2),
}


def auto_candidates(device: torch.device) -> tuple[str, ...]:
    """What ``auto`` tries besides float32 on ``device``; on a tie the earlier wins."""
    return (BFLOAT16, FLOAT16, INT8) if device.type == "cuda" else (BFLOAT16, OPENVINO, INT8)


def compute_context(profile: str, device: torch.device):
    """The context the forward of ``profile`` runs in (autocast for bfloat16, nothing otherwise)."""
    if profile == BFLOAT16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def apply(model, profile: str) -> Callable[[], None]:
    """Switch ``model`` (an EmotionModel in float32) to ``profile``; returns the function that switches it back."""
    if profile == INT8:
        restore = quantize_linear_int8(model.model)
    elif profile == BFLOAT16:
        restore = bfloat16_weights(model.model)
    elif profile == FLOAT16:
        restore = half_weights(model)
    elif profile == OPENVINO:
        restore = openvino_forward(model)
    else:
        restore = lambda: None  # noqa: E731
    model.profile = profile

    def back_to_float32() -> None:
        restore()
        model.profile = FLOAT32

    return back_to_float32


def quantize_linear_int8(module: nn.Module) -> Callable[[], None]:
    """Dynamic int8 in every Linear of ``module``, in place; returns the function that puts the float32 weights back."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    originals = {name: linear.weight for name, linear in module.named_modules() if isinstance(linear, nn.Linear)}

    def restore() -> None:
        for name, weight in originals.items():
            module.get_submodule(name).weight = weight

    try:
        # set_inductor_config: we run eagerly; do not change torch.compile's global settings.
        quantize_(module, Int8DynamicActivationInt8WeightConfig(set_inductor_config=False))
    except Exception:
        restore()  # never leave some layers quantized
        raise
    return restore


def bfloat16_weights(module: nn.Module) -> Callable[[], None]:
    """The weights autocast would cast on every pass, cast once: each Linear and Conv1d in bfloat16.

    Weight-normed convolutions (the positional embedding) are left alone: their
    weight is computed from two parameters on every pass anyway. Returns the
    function that puts the float32 parameters back.
    """
    layers = [layer for layer in module.modules()
              if isinstance(layer, (nn.Linear, nn.Conv1d)) and not hasattr(layer, "parametrizations")]
    originals = [(layer, layer.weight, layer.bias) for layer in layers]
    for layer in layers:  # new parameters (Module.to would convert the kept float32 ones in place)
        layer.weight = nn.Parameter(layer.weight.detach().to(torch.bfloat16), requires_grad=False)
        if layer.bias is not None:
            layer.bias = nn.Parameter(layer.bias.detach().to(torch.bfloat16), requires_grad=False)

    def restore() -> None:
        for layer, weight, bias in originals:
            layer.weight, layer.bias = weight, bias

    return restore


def openvino_forward(model) -> Callable[[], None]:
    """``model``'s forward passes run by OpenVINO (CPU only); returns the function that hands them back to PyTorch."""
    from ser_serve.model.calibration import voice
    from ser_serve.model.openvino_runtime import OpenVinoForward

    # Mixed lengths, so that the traced graph is the masked, padded one.
    example = [model.features(voice(seconds, seed=i)) for i, seconds in enumerate((1.0, 1.2))]
    model.runtime = OpenVinoForward(model, example, torch.get_num_threads())

    def restore() -> None:
        model.runtime = None

    return restore


def half_weights(model) -> Callable[[], None]:
    """``model``'s weights in float16 (GPU only); returns the function that puts the float32 weights back."""
    if model.device.type != "cuda":
        raise ValueError("float16 runs on a GPU only: a CPU runs half-precision matmuls slower than float32")
    originals = {name: tensor.detach().clone() for name, tensor in model.model.state_dict().items()}
    model.model.half()
    model.dtype = torch.float16

    def restore() -> None:
        model.model.float()
        model.model.load_state_dict(originals)
        model.dtype = torch.float32

    return restore


@dataclass(frozen=True)
class GuardResult:
    """A profile against float32 on the calibration clips."""

    profile: str
    clips: int
    agreement: float  # share of clips with float32's top label
    max_change: float  # largest change of any probability (inf when the profile failed to run or made NaN)
    passed: bool
    error: str | None = None


def check(profile: str, reference: np.ndarray, scores: np.ndarray, bounds: PrecisionGuard) -> GuardResult:
    """Compare ``scores`` of ``profile`` with float32's ``reference`` (both (clips, labels))."""
    agreement = float(np.mean(reference.argmax(axis=1) == scores.argmax(axis=1)))
    max_change = float(np.abs(reference - scores).max()) if np.isfinite(scores).all() else float("inf")
    passed = agreement >= bounds.min_agreement and max_change <= bounds.max_probability_change
    return GuardResult(profile, len(reference), agreement, max_change, passed)


@dataclass
class Choice:
    """What a worker runs, and the figures it chose by."""

    requested: str
    profile: str = FLOAT32
    guards: dict[str, GuardResult] = field(default_factory=dict)
    # auto: median seconds of one pass over the timing clips, per profile measured.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def fell_back(self) -> bool:
        """A reduced profile was asked for (or auto found none) and float32 runs because a guard failed."""
        return self.profile == FLOAT32 and any(not g.passed for g in self.guards.values())

    def speedup(self, profile: str) -> float | None:
        """Measured speed of ``profile`` relative to float32 (auto only)."""
        if profile in self.seconds and FLOAT32 in self.seconds:
            return self.seconds[FLOAT32] / self.seconds[profile]
        return None

    def as_dict(self) -> dict:
        return {
            "requested": self.requested,
            "profile": self.profile,
            "fell_back_to_float32": self.fell_back,
            "guard": {name: asdict(result) for name, result in self.guards.items()},
            "seconds_per_pass": self.seconds,
            "speedup_vs_float32": {name: self.speedup(name) for name in self.seconds if name != FLOAT32},
        }


def choose(model, requested: str, features: Sequence[np.ndarray], bounds: PrecisionGuard,
           timing_features: Sequence[np.ndarray] | None = None, auto_seconds: float = 20.0) -> Choice:
    """Put ``model`` (float32) in the profile to run and return the :class:`Choice`.

    A requested reduced profile is kept only if its guard on ``features``
    passes, else float32 runs. ``auto`` also times float32 and each candidate
    that passes on ``timing_features`` (default: ``features``) for about
    ``auto_seconds`` in all and keeps the fastest.
    """
    choice = Choice(requested)
    if requested == FLOAT32:
        return choice
    candidates = auto_candidates(model.device) if requested == AUTO else (requested,)
    timing_features = features if timing_features is None else timing_features
    budget = auto_seconds / (len(candidates) + 1)
    reference = model.predict_proba(features)  # also float32's warm-up
    if requested == AUTO:
        choice.seconds[FLOAT32] = _median_pass(model, timing_features, budget)
    for name in candidates:
        try:
            back = apply(model, name)
        except Exception as exc:  # e.g. torchao missing or an op without a kernel here: not usable, say why
            choice.guards[name] = GuardResult(name, len(features), 0.0, float("inf"), False, f"{type(exc).__name__}: {exc}")
            continue
        try:
            choice.guards[name] = check(name, reference, model.predict_proba(features), bounds)
        except Exception as exc:
            choice.guards[name] = GuardResult(name, len(features), 0.0, float("inf"), False, f"{type(exc).__name__}: {exc}")
        if choice.guards[name].passed and requested == AUTO:
            choice.seconds[name] = _median_pass(model, timing_features, budget)
        back()
    usable = [name for name in candidates if choice.guards[name].passed]
    if requested == AUTO:
        usable = [name for name in usable if choice.seconds[name] < choice.seconds[FLOAT32]]
        usable.sort(key=lambda name: choice.seconds[name])
    if usable:
        choice.profile = usable[0]
        apply(model, choice.profile)
    return choice


def _median_pass(model, features: Sequence[np.ndarray], budget: float) -> float:
    """Median seconds of passes over ``features`` for about ``budget`` seconds (the caller's pass warmed up)."""
    times, deadline = [], time.perf_counter() + budget
    while not times or (time.perf_counter() < deadline and len(times) < 9):
        started = time.perf_counter()
        model.predict_proba(features)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
