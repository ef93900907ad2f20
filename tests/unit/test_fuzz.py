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


def test_a_stream_that_changes_its_channel_count_midway_is_refused_as_invalid_audio():
    # Found by the mutation test above: ADTS frames are self-describing, so a damaged (or spliced) AAC stream can
    # switch from mono to stereo; the header's checks and the decoder's buffer hold for the first layout only.
    import pytest

    from ser_serve.errors import InvalidAudio

    mono = encode(voice(0.5, 16_000, seed=2), 16_000, "aac")
    stereo = encode(np.stack([voice(0.5, 16_000, seed=3)] * 2, axis=1), 16_000, "aac")
    assert decode(mono, LIMITS).samples.shape[1] == 1 and decode(stereo, LIMITS).samples.shape[1] == 2
    for mix in (False, True):
        with pytest.raises(InvalidAudio, match="changes from 1 to 2 channels"):
            decode(mono + stereo, LIMITS, mix=mix)
