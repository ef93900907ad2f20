import numpy as np
import pytest
import soundfile

from ser_serve.model.calibration import voice
from ser_serve.audio import (
    AudioLimits,
    decode,
    load_waveform,
    sniff_format,
    to_mono_16k,
)
from ser_tools.encode import ENCODABLE_FORMATS, encode
from ser_serve.errors import (
    AudioTooLong,
    EmptyInput,
    InvalidAudio,
    PayloadTooLarge,
    UndecodableAudio,
    UnsupportedMediaType,
)

# The container each encoder's output must be recognised as.
EXPECTED_CONTAINER = {"wav": "wav", "wav-ulaw": "wav", "wav-alaw": "wav", "flac": "flac", "ogg": "ogg", "opus": "ogg",
                      "mp3": "mp3", "aiff": "aiff", "caf": "caf", "m4a": "m4a", "aac": "aac", "webm": "webm",
                      "webm-vorbis": "webm", "amr": "amr"}
# Lossy codecs add encoder delay/padding; the decoded length may differ by this many frames (at 48 kHz).
LENGTH_SLACK = {"mp3": 2_400, "m4a": 2_100, "aac": 2_100, "webm": 1_000, "webm-vorbis": 1_000, "amr": 1_200}
# Codecs that fix the rate or the channel count whatever they are given.
FIXED_RATE = {"amr": 8_000}
FIXED_CHANNELS = {"amr": 1, "webm-vorbis": 2}


@pytest.mark.parametrize("fmt", ENCODABLE_FORMATS)
@pytest.mark.parametrize("channels", [1, 2])
def test_every_format_decodes_to_its_rate_channels_and_length(fmt, channels):
    rate = 48_000
    samples = voice(1.2, rate, channels)
    decoded = decode(encode(samples, rate, fmt))
    assert decoded.format == EXPECTED_CONTAINER[fmt]
    assert decoded.sample_rate == FIXED_RATE.get(fmt, rate)
    assert decoded.samples.shape[1] == FIXED_CHANNELS.get(fmt, channels)
    assert decoded.samples.dtype == np.float32
    expected_frames = len(samples) * decoded.sample_rate // rate
    assert abs(decoded.samples.shape[0] - expected_frames) <= LENGTH_SLACK.get(fmt, 0)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_lossless_formats_round_trip_samples(fmt):
    samples = voice(0.5, 22_050, 2)
    decoded = decode(encode(samples, 22_050, fmt))
    np.testing.assert_allclose(decoded.samples, samples, atol=1 / 2**15)


@pytest.mark.parametrize("fmt", ["ogg", "opus", "mp3", "m4a"])
def test_lossy_formats_keep_the_waveform_recognisable(fmt):
    rate = 48_000
    samples = voice(1.0, rate)
    waveform = load_waveform(encode(samples, rate, fmt))
    reference = to_mono_16k(samples[:, None], rate)
    # Lossy codecs shift samples by their delay; compare spectra, not samples.
    n = min(len(waveform), len(reference))
    spectrum = np.abs(np.fft.rfft(waveform[:n]))
    reference_spectrum = np.abs(np.fft.rfft(reference[:n]))
    assert np.corrcoef(spectrum, reference_spectrum)[0, 1] > 0.9


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_wav_sample_widths_decode_to_the_same_signal(subtype):
    samples = voice(0.3, 16_000)
    decoded = decode(encode(samples, 16_000, "wav", subtype=subtype))
    tolerance = 1 / 2**7 if subtype == "PCM_U8" else 1 / 2**15
    np.testing.assert_allclose(decoded.samples[:, 0], samples, atol=tolerance)


def test_downmix_averages_channels():
    left = np.full(16_000, 0.5, dtype=np.float32)
    right = np.full(16_000, -0.1, dtype=np.float32)
    mono = to_mono_16k(np.stack([left, right], axis=1), 16_000)
    np.testing.assert_allclose(mono, 0.2, atol=1e-7)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_resampling_gives_16k_length_and_keeps_a_tone(rate):
    t = np.arange(rate) / rate  # one second
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    mono = to_mono_16k(tone[:, None], rate)
    assert len(mono) == 16_000
    peak_hz = np.argmax(np.abs(np.fft.rfft(mono))) * 16_000 / len(mono)
    assert abs(peak_hz - 440) <= 1


def test_clip_shorter_than_100ms_is_zero_padded_to_one_second():
    short = voice(0.05, 16_000)
    mono = to_mono_16k(short[:, None], 16_000)
    assert len(mono) == 16_000
    np.testing.assert_array_equal(mono[: len(short)], short)
    assert not mono[len(short):].any()


def test_clip_of_100ms_or_more_is_not_padded():
    clip = voice(0.1, 16_000)
    assert len(to_mono_16k(clip[:, None], 16_000)) == 1_600


@pytest.mark.parametrize(
    "data, fmt",
    [(b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"), (b"fLaC\x00", "flac"), (b"OggS\x00", "ogg"),
     (b"ID3\x04", "mp3"), (b"\xff\xfb\x90\x00", "mp3"), (b"\x00\x00\x00\x20ftypM4A ", "m4a"),
     (b"FORM\x00\x00\x10\x00AIFF", "aiff"), (b"FORM\x00\x00\x10\x00AIFC", "aiff"), (b"caff\x00\x01", "caf"),
     (b"\x1a\x45\xdf\xa3\x01", "webm"), (b"#!AMR\n", "amr"), (b"#!AMR-WB\n", "amr"), (b"\xff\xf1\x50\x80", "aac")],
)
def test_format_is_sniffed_from_magic_bytes(data, fmt):
    assert sniff_format(data) == fmt


@pytest.mark.parametrize(
    "data",
    [b"hello, this is text", b"\x89PNG\r\n\x1a\n" + bytes(64), b"PK\x03\x04" + bytes(64), b"FORM\x00\x00\x00\x04ILBM"],
    ids=["text", "png", "zip", "iff-image"],
)
def test_non_audio_is_refused_as_unsupported_media(data):
    with pytest.raises(UnsupportedMediaType, match="wav, flac, ogg, mp3, aiff, caf, m4a, webm, aac, amr"):
        decode(data)


def test_empty_body_is_refused():
    with pytest.raises(EmptyInput, match="empty"):
        decode(b"")


def test_upload_over_byte_limit_is_refused_before_decoding():
    data = encode(voice(1.0), 16_000, "wav")
    with pytest.raises(PayloadTooLarge, match="limit is 1,000 bytes"):
        decode(data, AudioLimits(max_bytes=1_000))


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_audio_over_duration_limit_is_refused(fmt):
    data = encode(voice(3.0, 16_000), 16_000, fmt)
    with pytest.raises(AudioTooLong, match="limit is 2 s|longer than the 2 s limit"):
        decode(data, AudioLimits(max_seconds=2.0))


def test_wav_header_claiming_hours_is_refused_as_truncated_without_allocating():
    import tracemalloc

    data = bytearray(encode(voice(0.2), 16_000, "wav"))
    data[40:44] = (2**31 - 2).to_bytes(4, "little")  # data chunk size: ~19 hours of 16 kHz 16-bit
    tracemalloc.start()
    try:
        with pytest.raises(UndecodableAudio, match="truncated: its header announces 2,147,483,646 bytes"):
            decode(bytes(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # numpy buffers are traced: nothing near the announced 2 GiB was allocated


def test_truncated_wav_is_refused_even_with_a_chunk_that_mentions_data_before_it():
    """The offset of the samples comes from the chunk walk, not from the first bytes 'data' in the file."""
    plain = encode(voice(1.0), 16_000, "wav")
    text = b"metadata and more metadata\x00\x00"
    info = b"LIST" + len(text).to_bytes(4, "little") + text
    with_list = plain[:4] + (int.from_bytes(plain[4:8], "little") + len(info)).to_bytes(4, "little") + plain[8:36] + info + plain[36:]
    assert decode(with_list).samples.shape == (16_000, 1)
    with pytest.raises(UndecodableAudio, match="truncated"):
        decode(with_list[:-600])


def test_streamed_wav_with_unknown_length_is_accepted():
    data = bytearray(encode(voice(0.2), 16_000, "wav"))
    data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # what a writer on a pipe leaves
    assert decode(bytes(data)).samples.shape == (3_200, 1)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "m4a", "aiff", "caf"])
def test_truncated_files_are_refused(fmt):
    data = encode(voice(2.0, 16_000), 16_000, fmt)
    with pytest.raises((UndecodableAudio, InvalidAudio), match="truncated|could not be decoded|no audio"):
        decode(data[: len(data) // 2])


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "m4a", "aiff"])
def test_garbage_after_magic_bytes_is_undecodable(fmt):
    magic = encode(voice(0.5), 16_000, fmt)[:12]
    with pytest.raises(UndecodableAudio, match=f"The {fmt} file could not be decoded") as raised:
        decode(magic + bytes(range(256)) * 4)
    # The decoder's own words, without the repr of our in-memory file ("<_io.BytesIO object at 0x...>"):
    # the same upload gets the same message from every process and engine.
    assert " at 0x" not in str(raised.value) and "BytesIO" not in str(raised.value)


def test_nan_samples_are_refused():
    samples = voice(0.5)
    samples[100] = np.nan
    with pytest.raises(InvalidAudio, match="NaN"):
        decode(encode(samples, 16_000, "wav", subtype="FLOAT"))


def test_too_many_channels_are_refused():
    data = encode(np.zeros((1_600, 9), dtype=np.float32), 16_000, "wav")
    with pytest.raises(InvalidAudio, match="9 channels; at most 8"):
        decode(data)


def test_sample_rate_outside_accepted_range_is_refused():
    import io

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(400, dtype=np.float32), 4_000, format="WAV")
    with pytest.raises(InvalidAudio, match="4000 Hz"):
        decode(buffer.getvalue())


def test_audio_limits_reject_unknown_keys():
    with pytest.raises(ValueError, match="max_second"):
        AudioLimits.from_mapping({"max_second": 3})


def test_worst_upload_the_limits_allow_is_downmixed_while_decoding_within_a_stated_memory_bound():
    """30 s x 8 channels x 192 kHz, all within the limits: the request path never holds all channels at once."""
    import tracemalloc

    samples = np.zeros((30 * 192_000, 8), np.float32)
    samples[::997] = 0.01
    data = encode(samples, 192_000, "flac")
    del samples
    peaks = {}
    for name, run in {"request path": lambda: load_waveform(data),
                      "all channels kept": lambda: decode(data).samples}.items():
        tracemalloc.start()
        try:
            run()
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks["request path"] < 64 * 1024 * 1024          # README: about 46 MB
    assert peaks["all channels kept"] > 3 * peaks["request path"]  # what the block-wise downmix saves


@pytest.mark.parametrize("fmt, rate, channels", [("webm", 48_000, 1), ("aac", 44_100, 2), ("amr", 8_000, 1),
                                                 ("aiff", 22_050, 2), ("caf", 48_000, 1), ("wav-ulaw", 8_000, 2)])
def test_new_containers_reach_the_model_as_16k_mono(fmt, rate, channels):
    waveform = load_waveform(encode(voice(1.5, rate, channels, seed=2), rate, fmt))
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert abs(len(waveform) - 24_000) < 1_000  # 1.5 s at 16 kHz, give or take codec padding
