"""Property tests: whatever bytes arrive, the decoder ends in audio or a typed error, quickly."""

import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ser_serve.model.calibration import voice
from ser_serve.audio import AudioLimits, decode
from ser_tools.encode import ENCODABLE_FORMATS, encode
from ser_serve.errors import SerError

VALID = {fmt: encode(voice(0.5, 16_000 if fmt != "opus" else 48_000, seed=2), 16_000 if fmt != "opus" else 48_000, fmt)
         for fmt in ENCODABLE_FORMATS}
LIMITS = AudioLimits(max_seconds=10.0)
TIME_BOUND_S = 5.0


def decodes_or_refuses(data: bytes) -> None:
    started = time.perf_counter()
    try:
        decoded = decode(data, LIMITS)
    except SerError:
        pass
    else:
        assert decoded.samples.ndim == 2 and decoded.samples.dtype == np.float32
        assert np.isfinite(decoded.samples).all()
        assert decoded.samples.shape[0] <= LIMITS.max_seconds * decoded.sample_rate
    assert time.perf_counter() - started < TIME_BOUND_S


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_end_in_audio_or_a_typed_error(data):
    decodes_or_refuses(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(VALID)), st.binary(min_size=1, max_size=64))
def test_arbitrary_bytes_behind_every_magic_number(fmt, tail):
    decodes_or_refuses(VALID[fmt][:12] + tail * 16)


@st.composite
def mutated(draw):
    data = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 512))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            data[at : at + 16] = bytes(min(16, len(data) - at))
        if not data:
            break
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_files_end_in_audio_or_a_typed_error(data):
    decodes_or_refuses(data)
