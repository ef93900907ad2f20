"""One validated model of the ``ser:`` section of model-config.yaml.

The same model checks the file when the archive is built (a bad file is
refused and no archive is written) and again when a worker loads it, so a
typo can neither pass silently nor crash-loop a worker. Unknown keys are
refused at every level; every value has a range.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from ser_serve.errors import InvalidSettings


class _Section(BaseModel):
    # Frozen: settings are read once at load; forbid: a misspelt key is an error.
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_mapping(cls, values: dict | None, source: str = "model-config.yaml", prefix: str = ""):
        """Validate ``values`` (None means all defaults); raise :class:`InvalidSettings` naming each bad key."""
        try:
            return cls.model_validate(values or {})
        except ValidationError as exc:
            raise InvalidSettings(_describe(exc, source, prefix)) from None


def _describe(exc: ValidationError, source: str, prefix: str) -> str:
    problems = []
    for error in exc.errors():
        key = ".".join([prefix] * bool(prefix) + [str(part) for part in error["loc"]]) or prefix or "(top level)"
        if error["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown setting")
        else:
            problems.append(f"{key}: {error['msg']} (got {error.get('input')!r})")
    return f"invalid settings in {source}: " + "; ".join(problems)


class AudioLimits(_Section):
    """Per-request limits, checked cheapest first (ser_serve.audio)."""

    # An encoded upload bigger than this is refused before decoding. 30 s of
    # 48 kHz stereo 16-bit WAV is 5.8 MB, so 10 MiB leaves room for 24-bit.
    max_bytes: PositiveInt = 10 * 1024 * 1024
    # Emotion is judged from utterances of a few seconds; minutes of audio
    # would monopolise a worker and its memory grows linearly with length.
    max_seconds: PositiveFloat = 30.0
    # More than 8 channels is not speech from a microphone we know of.
    max_channels: PositiveInt = 8
    # Below 8 kHz speech is unintelligible; above 192 kHz is not a real recording.
    min_sample_rate: PositiveInt = 8_000
    max_sample_rate: PositiveInt = 192_000

    @model_validator(mode="after")
    def _rates_in_order(self):
        if self.min_sample_rate > self.max_sample_rate:
            raise ValueError(f"min_sample_rate {self.min_sample_rate} is above max_sample_rate {self.max_sample_rate}")
        return self


class BatchBudget(_Section):
    """Limits of one forward pass (ser_serve.batching)."""

    # Padded samples per forward pass: 8 clips of 5 s at 16 kHz. Bounds the
    # activation memory of one pass (it grows linearly in this number).
    max_batch_samples: PositiveInt = 8 * 5 * 16_000
    # A group's longest clip may be at most this many times its shortest, so
    # at most 1 - 1/1.25 = 20 % of a group's transformer work is padding.
    # Below 1 no two different lengths could ever share a pass.
    max_padding_ratio: float = Field(1.25, ge=1.0)


class GpuSettings(_Section):
    """Used instead of the CPU settings when the worker has a GPU."""

    batching: BatchBudget = BatchBudget()
    # Processes decoding a batch's uploads, so decoding keeps up with the GPU (ser_serve/decode_pool.py).
    decode_processes: PositiveInt = 8

    @model_validator(mode="before")
    @classmethod
    def _fp16_moved(cls, values):
        if isinstance(values, dict) and ({"fp16", "fp16_tolerance"} & set(values)):
            raise ValueError("gpu.fp16 and gpu.fp16_tolerance are replaced by precision.profile: float16 "
                             "(guarded against float32 like every profile; precision.guard sets the bounds)")
        return values


# float32: the reference. bfloat16: torch.autocast (about 2x on CPUs with AVX512-BF16, slower
# without). int8: dynamic int8 activations and weights in the Linear layers (torchao). float16:
# half-precision weights, GPU only. openvino: the forward exported to OpenVINO's CPU plugin
# (bfloat16 where the CPU has it). auto: the fastest of these on this host that passes the
# guard, measured at worker start.
PrecisionProfile = Literal["float32", "bfloat16", "int8", "float16", "openvino", "auto"]


class PrecisionGuard(_Section):
    """How close to float32 a faster profile must stay on the calibration clips to be used."""

    # Share of calibration clips whose top label must equal float32's: a
    # profile that changes answers is not faster, it is wrong.
    min_agreement: float = Field(0.99, ge=0.0, le=1.0)
    # No probability of any clip may move more than this against float32.
    max_probability_change: float = Field(0.02, gt=0.0, le=1.0)


class PrecisionSettings(_Section):
    """Which arithmetic a worker runs (ser_serve/model/precision.py), and the guard that checks it."""

    profile: PrecisionProfile = "float32"
    guard: PrecisionGuard = PrecisionGuard()
    # Operator calibration clips (audio files of any supported format) compared
    # with float32 besides the built-in synthetic ones: clips like the traffic
    # make the guard meaningful for a real model. Absolute, or relative to the
    # worker's model directory; None: built-in clips only.
    calibration_dir: str | None = None
    # auto: seconds spent timing the candidates at worker start (each also runs
    # once for the guard). Enough for a few passes of base size on 2 cores.
    auto_seconds: float = Field(20.0, gt=0.0, le=600.0)
class VadSettings(_Section):
    """Voice-activity detection (ser_serve/vad.py): which audio counts as speech."""

    # webrtcvad's aggressiveness, 0 (keeps most) to 3 (drops most). At 0,
    # noise at -30 dBFS counted as speech; from 1 up it did not, while every
    # synthetic emotion of ser_train/synth.py still had 33-83 % voiced frames at 2.
    aggressiveness: int = Field(2, ge=0, le=3)
    # Timeline: a speech region with less voiced time than this is a click or a cough, not an utterance.
    min_speech_seconds: float = Field(0.25, gt=0.0, le=10.0)
    # Timeline: pauses up to this long between voiced frames stay inside one region.
    # Slow, sad speech (2 syllables/s) left 360 ms between voiced runs of 180-240 ms:
    # at 0.3 s such a turn fell apart into runs too short to count and was lost.
    max_gap_seconds: float = Field(0.5, ge=0.0, le=5.0)
    # Single clip: refuse (422 no_speech) a clip without one voiced 30 ms frame
    # instead of answering a confident emotion for silence.
    reject_no_speech: bool = True


class TimelineSettings(_Section):
    """Long recordings (ser_serve/timeline.py): the ser-timeline model's limits and windows."""

    # Call recordings run to an hour; two leave headroom. Processing time, not
    # memory, grows with length: windows are classified as they stream.
    max_seconds: PositiveFloat = 7_200.0
    # One hour of 8 kHz stereo 16-bit WAV is 115 MB; an hour of mu-law, 58 MB.
    # TorchServe's max_request_size (config.properties) must be at least this.
    max_bytes: PositiveInt = 128 * 1024 * 1024
    # Bounds the answer (about 0.5 kB per segment): 2 h of stereo speech in
    # 3 s windows with a 1.5 s hop is 9,600 segments.
    max_segments: PositiveInt = 20_000
    # Emotion is judged from utterances of a few seconds (the demo model saw 1-5 s).
    window_seconds: float = Field(3.0, ge=0.5, le=30.0)
    # Windows start this far apart inside a speech region (overlap = window - hop).
    hop_seconds: float = Field(1.5, gt=0.0, le=30.0)
    # A progress line is logged each time this much more audio has been analysed.
    progress_every_seconds: PositiveFloat = 300.0

    @model_validator(mode="after")
    def _hop_within_window(self):
        if self.hop_seconds > self.window_seconds:
            raise ValueError(f"hop_seconds {self.hop_seconds} exceeds window_seconds {self.window_seconds}: "
                             "speech between windows would never be analysed")
        return self

    def audio_limits(self, base: AudioLimits) -> AudioLimits:
        """The single-clip limits with this section's length and size: rates and channels stay as they are."""
        return base.model_copy(update={"max_seconds": self.max_seconds, "max_bytes": self.max_bytes})


class ServeSettings(_Section):
    """The whole ``ser:`` section."""

    # Intra-op threads per CPU worker; None leaves torch's default (all cores).
    torch_threads: PositiveInt | None = None
    # Processes decoding a CPU worker's uploads; 1: in the worker's own process (ser_serve/decode_pool.py).
    decode_processes: PositiveInt = 1
    # Keep freed memory in the worker instead of mapping each batch's large buffers anew (ser_serve/allocator.py:
    # glibc only; the worker keeps its peak footprint).
    keep_freed_memory: bool = True
    limits: AudioLimits = AudioLimits()
    batching: BatchBudget = BatchBudget()
    gpu: GpuSettings = GpuSettings()
    vad: VadSettings = VadSettings()
    timeline: TimelineSettings = TimelineSettings()
    precision: PrecisionSettings = PrecisionSettings()

    @classmethod
    def from_mapping(cls, values: dict | None, source: str = "model-config.yaml", prefix: str = "ser"):
        if values is not None and not isinstance(values, dict):
            raise InvalidSettings(f"invalid settings in {source}: {prefix} must be a mapping, got {type(values).__name__}")
        return super().from_mapping(values, source, prefix)


def settings_from_model_yaml(model_yaml: dict[str, Any] | None, source: str = "model-config.yaml") -> ServeSettings:
    """The validated ``ser:`` section of a parsed model-config.yaml (defaults where it has none)."""
    return ServeSettings.from_mapping((model_yaml or {}).get("ser"), source)
