"""`ser-serve train`: fine-tune a wav2vec2-family classifier (or a pretrained backbone) on CREMA-D-style parquet data.

Preprocessing is the serving code itself (``ser_serve.audio`` decoding and the
checkpoint's feature extractor), so the model sees in training exactly what it
sees in production. Cross-entropy, AdamW with warm-up and linear decay,
validation each epoch, the best checkpoint (by validation accuracy) saved with
its preprocessor config and id2label. GPU when there is one, else CPU.

Optionally: on-the-fly augmentation of the training clips (``--augment``,
``ser_train.augment``: noise, reverberation, band-limiting, gain, lossy
codecs; ``--voice-augment``: first a pitch-and-formant shift and a spectral
colouring, so that a clip sounds like another voice), label smoothing, an
auxiliary frame-level prosody loss (``--prosody-weight``, ``ser_train.prosody``),
a voice-generator adversary whose gradient is reversed into the network
(``--adversary-weight``, ``ser_train.adversary``), mixup of each batch's clips (``--mixup``,
``ser_train.mixup``), training without some
generators (``--exclude-generator``, for
leave-one-generator-out evaluation), and, by default, temperature
calibration on the validation clips folded into the saved classifier
(``ser_train.calibrate``), with T and the validation ECE before and after in
``training_log.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ser_serve.audio import load_waveform
from ser_serve.allocator import keep_freed_memory
from ser_train.augment import VOICE_SEMITONES
from ser_train.mixup import BatchMix
from ser_train.presets import DEFAULT_LABELS, PRESETS, make_preset_checkpoint
from ser_serve.errors import InvalidCheckpoint
from ser_serve.model.checkpoint import SUPPORTED_MODEL_TYPES, validate_checkpoint
from ser_train.dataset import add_label_names_option, read_examples


def generator_repeat(text: str) -> tuple[str, int]:
    """``NAME=N`` of ``--repeat-generator``."""
    name, _, count = text.partition("=")
    if not name or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=N with N a whole number >= 1 (e.g. synth=2)")
    return name, int(count)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ser-serve train", description=__doc__)
    parser.add_argument("--train", required=True, type=Path, help="parquet file (or one with a split column)")
    parser.add_argument("--validation", type=Path, help="parquet file; default: --train's 'validation' split")
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--init-from", type=Path,
                       help="checkpoint directory to fine-tune: a classifier, or a pretrained backbone of the wav2vec2 "
                            "family (Wav2Vec2Model, ...ForPreTraining, ...ForCTC; with its preprocessor_config.json), "
                            "which gets a new head for the data's labels (then a --lr near 5e-5 suits)")
    start.add_argument("--preset", choices=sorted(PRESETS), help="start from a random-init preset")
    parser.add_argument("--out", type=Path, required=True, help="where the best checkpoint is saved")
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument("--label-column", default="label")
    add_label_names_option(parser)
    parser.add_argument("--split-column", default="split")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--crop-seconds", type=float, default=3.0, help="longest training crop (speed)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default). On a shared host use 1: a thread that is "
                             "descheduled stalls every parallel op of the others (measured here: 2 threads 4x slower than 1)")
    parser.add_argument("--freeze-feature-encoder", action="store_true",
                        help="keep the convolutional feature encoder as it is (the usual choice when fine-tuning a "
                             "pretrained backbone on little data)")
    parser.add_argument("--bf16", action="store_true",
                        help="bfloat16 autocast for the training forward pass (about 2.5x faster on CPUs with "
                             "AVX512-BF16 or AMX; emulated, about 5x slower, on AVX2-only CPUs, and warned of); "
                             "weights, validation and the saved checkpoint stay float32")
    parser.add_argument("--augment", type=float, default=0.0,
                        help="probability that a training clip is degraded on the fly (ser_train.augment; 0: never)")
    parser.add_argument("--voice-augment", type=float, default=0.0,
                        help="probability that a training clip is made to sound like another voice first "
                             "(ser_train.augment.other_voice: pitch-and-formant shift, spectral colouring; 0: never)")
    parser.add_argument("--voice-semitones", type=float, default=VOICE_SEMITONES,
                        help="largest pitch-and-formant shift of --voice-augment, in semitones either way "
                             "(speakers of one sex differ by about 4; men and women by about 12)")
    parser.add_argument("--voice-generator", action="append", default=[], metavar="NAME",
                        help="shift only the voices of this generator's clips (repeatable; default: every clip's). "
                             "The synthetic voice's labels lean on its pitch level more than the engines' do")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--pitch-smoothing", type=float, default=0.0, metavar="PER_OCTAVE",
                        help="more label smoothing for a clip the farther its speaker's pitch sits from its voice's own: "
                             "label_smoothing + PER_OCTAVE x |octaves| (the data's speaker_pitch column, which "
                             "ser-serve synth writes for the engines' clips, plus any --voice-augment shift), at most 0.9. "
                             "A voice far from the ones it knows is where a label read from pitch is least certain")
    parser.add_argument("--prosody-weight", type=float, default=0.0,
                        help="weight of the auxiliary frame-level prosody loss (ser_train.prosody: pitch, voicing and "
                             "energy read out of the last hidden state; 0: off). The saved checkpoint is unchanged in shape")
    parser.add_argument("--prosody-pitch", choices=("absolute", "relative"), default="absolute",
                        help="pitch target of the prosody loss: semitones re 100 Hz, or re the clip's own median "
                             "(the contour only; a voice shift leaves it unchanged)")
    parser.add_argument("--measure-weight", type=float, default=0.0,
                        help="weight of an auxiliary clip-level loss: the prosody probe's eleven measures (pitch level, "
                             "range and final movement, voiced share, rate, duration, ...; standardised) read out of the "
                             "mean-pooled last hidden state (ser_train.prosody.ClipMeasureHead; 0: off; not saved)")
    parser.add_argument("--measure-pitch-level-weight", type=float, default=1.0,
                        help="weight, within the clip-measure loss, of its three absolute pitch-level measures "
                             "(ser_train.prosody_probe.PITCH_LEVEL: median, 10th and 90th percentile, in semitones); "
                             "the others weigh 1. Below 1 the network is asked less to carry how high the voice is, "
                             "which differs between voices more than between emotions")
    parser.add_argument("--probe-weight", type=float, default=0.0,
                        help="weight of a training-only distillation loss: cross-entropy against the prosody probe's "
                             "label probabilities for each clip (ser_train.prosody_probe's boosted trees on the eleven "
                             "measures, out-of-fold: each clip's from trees that did not see it; 0: off)")
    parser.add_argument("--adversary-weight", type=float, default=0.0,
                        help="weight of a voice-generator adversary (ser_train.adversary: a classifier of which "
                             "generator made the clip, on the mean-pooled last hidden state, its gradient reversed "
                             "into the network, which so learns a clip summary that says less about the voice; "
                             "0: off; not saved)")
    parser.add_argument("--generator-column", default="generator", help="column naming each clip's voice generator")
    parser.add_argument("--exclude-generator", action="append", default=[], metavar="NAME",
                        help="leave this generator's clips out of training and validation (repeatable)")
    parser.add_argument("--repeat-generator", action="append", default=[], metavar="NAME=N", type=generator_repeat,
                        help="draw each training clip of this generator N times an epoch, each draw augmented afresh "
                             "(weights a voice up against the others; repeatable; validation is unchanged)")
    parser.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                        help="do not fold a validation-fitted temperature into the saved classifier")
    parser.add_argument("--calibration-copies", type=int, default=0,
                        help="also calibrate on this many augmented copies of each validation clip")
    parser.add_argument("--average-epochs", type=int, default=0, metavar="N",
                        help="over the last N epochs, keep the equal-weight average of the weights after every update "
                             "(stochastic weight averaging: torch.optim.swa_utils.AveragedModel) and save that average "
                             "instead of the best epoch, which is kept in <out>/best-epoch to compare with (0: off)")
    parser.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                        help="mix each training clip with another of its batch, the loss mixed alike "
                             "(ser_train.mixup: the row's own share from Beta(ALPHA, ALPHA), at least half; 0: off)")
    args = parser.parse_args(argv)
    if args.mixup and (args.prosody_weight or args.adversary_weight):
        parser.error("--mixup: a mixture has no one frame-level prosody or one generator; "
                     "not with --prosody-weight or --adversary-weight")
    if not 0 <= args.average_epochs <= args.epochs:
        parser.error(f"--average-epochs {args.average_epochs}: a run of {args.epochs} epochs has not that many (0: off)")
    return args


def speaker_octaves_of(examples) -> np.ndarray:
    """Each clip's speaker pitch in octaves from its voice's own (0 where the data name none)."""
    pitch = [e.speaker_pitch for e in examples]
    if all(p is None for p in pitch):
        raise ValueError("--pitch-smoothing: the training data have no speaker_pitch column (ser-serve synth writes "
                         "one for the text-to-speech engines' clips)")
    return np.log2([p if p is not None else 1.0 for p in pitch])


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: torch.Tensor,
                           reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy with a label smoothing of its own for each row: what cross_entropy's label_smoothing does
    for one value (the target keeps 1 - s, and s is spread evenly over every label). ``reduction="none"``: per row."""
    log_p = logits.log_softmax(1)
    target = -log_p.gather(1, labels[:, None])[:, 0]
    rows = (1 - smoothing) * target + smoothing * -log_p.mean(1)
    return rows if reduction == "none" else rows.mean()


def load_split(path: Path, split: str | None, args) -> list:
    examples = read_examples(path, args.audio_column, args.label_column, split=split, split_column=args.split_column,
                             id2label=args.label_names,
                             extra_column=args.generator_column
                             if args.exclude_generator or args.voice_generator or args.adversary_weight
                             or args.repeat_generator else None)
    if args.exclude_generator:
        examples = [e for e in examples if e.extra not in args.exclude_generator]
    return examples


def prepare(examples, extractor, label2id, desc) -> list[tuple[np.ndarray, int]]:
    """Decode and normalise every clip once, exactly as the server does."""
    return [(features(waveform, extractor), label) for waveform, label in decode_all(examples, label2id, desc)]


def decode_all(examples, label2id, desc) -> "Pcm16Clips":
    """Each clip decoded to 16 kHz mono by the serving decoder, with its label id."""
    decoded = Pcm16Clips()
    for example in tqdm(examples, desc=desc, unit="clip"):
        if example.label not in label2id:
            raise ValueError(f"label {example.label!r} is not among {sorted(label2id)}")
        decoded.append(load_waveform(example.audio), label2id[example.label])
    return decoded


def to_pcm16(waveform: np.ndarray) -> np.ndarray:
    return np.clip(np.round(waveform * 32768.0), -32768, 32767).astype(np.int16)


def from_pcm16(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / np.float32(32768.0)


class Pcm16Clips:
    """Decoded (waveform, label) pairs held as 16-bit PCM, read back as float32 waveforms.

    Half the memory of float32, which is what lets two leave-one-generator-out folds of 20,000 clips
    train side by side in 24 GiB. The round trip is exact for 16-bit sources (every clip
    ``ser-serve synth`` writes); for anything else it adds noise 96 dB below full scale.
    """

    def __init__(self):
        self.clips: list[tuple[np.ndarray, int]] = []

    def append(self, waveform: np.ndarray, label: int) -> None:
        self.clips.append((to_pcm16(waveform), label))

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, i):
        samples, label = self.clips[i]
        return from_pcm16(samples), label

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def lengths(self) -> list[int]:
        return [len(samples) for samples, _ in self.clips]


def features(waveform: np.ndarray, extractor) -> np.ndarray:
    """The checkpoint's feature extractor on one clip (the server's preprocessing)."""
    return extractor(waveform, sampling_rate=16_000, return_tensors="np")["input_values"][0].astype(np.float32)


class AugmentedClips:
    """Training clips degraded afresh each epoch (``ser_train.augment``), then normalised as the server does.

    An item is (features, label, semitones): the voice shift applied (0 for none), which pitch targets follow.
    ``voice_clips`` (one bool per clip, default all true) says which clips may have their voice shifted.

    The codec round trip costs tens of milliseconds, too slow to redo every
    epoch on a CPU: a random 40% of the clips get one codec-degraded copy
    (random codec and bit rate) made once, which an epoch uses for half of
    its draws of that clip; everything else is redrawn each time.
    """

    def __init__(self, decoded, extractor, probability: float, seed: int, voice_probability: float = 0.0,
                 voice_semitones: float = VOICE_SEMITONES, voice_clips: list[bool] | None = None):
        from ser_train.augment import random_codec

        self.decoded, self.extractor, self.probability = decoded, extractor, probability
        self.voice_probability, self.voice_semitones = voice_probability, voice_semitones
        self.voice_clips = voice_clips
        rng = np.random.default_rng(seed + 1)
        # Kept as 16-bit PCM like the clips themselves (Pcm16Clips), to halve their memory.
        self.coded = {i: to_pcm16(random_codec(x, rng))
                      for i, (x, _) in enumerate(tqdm(decoded, desc="codec copies", unit="clip"))
                      if rng.random() < 0.4} if probability > 0 else {}
        self.rng = np.random.default_rng(seed + 2)

    def __len__(self):
        return len(self.decoded)

    def __getitem__(self, i):
        from ser_train.augment import augment, other_voice

        waveform, label = self.decoded[i]
        if i in self.coded and self.rng.random() < 0.5:
            waveform = from_pcm16(self.coded[i])
        semitones = 0.0
        if self.voice_probability > 0 and (self.voice_clips is None or self.voice_clips[i]):
            waveform, semitones = other_voice(waveform, self.rng, self.voice_probability, self.voice_semitones)
        if self.probability > 0:
            waveform = augment(waveform, self.rng, self.probability, codec=False)
        return features(waveform, self.extractor), label, semitones

    def lengths(self):
        if isinstance(self.decoded, Pcm16Clips):
            return self.decoded.lengths()  # without converting every clip back to float
        return [len(x) for x, _ in self.decoded]


def batches(data, batch_size: int, crop: int, rng: random.Random, targets=None, hop: int = 320,
            shift_targets: bool = True):
    """Length-bucketed batches; each clip cropped (random offset) to the batch's shortest, at most ``crop``.

    Yields (inputs, labels, prosody, members, shifts): with ``targets`` (per clip, ``ser_train.prosody.frame_targets``)
    the crops' target frames (their pitch moved by each clip's voice shift when ``shift_targets``), else None;
    the indices of the batch's clips in ``data``; and each clip's voice shift in semitones (0 for none).
    """
    from ser_train.prosody import crop_targets, shift_pitch

    lengths = data.lengths() if hasattr(data, "lengths") else [len(item[0]) for item in data]
    order = list(range(len(data)))
    rng.shuffle(order)
    chunks = [order[i : i + batch_size * 8] for i in range(0, len(order), batch_size * 8)]
    plan = []
    for chunk in chunks:
        chunk.sort(key=lambda i: lengths[i])
        for j in range(0, len(chunk), batch_size):
            plan.append(chunk[j : j + batch_size])
    rng.shuffle(plan)
    # A generator: augmented clips are made batch by batch, not all at once.
    for members in plan:
        width = min(crop, min(lengths[i] for i in members))
        inputs, labels, prosody, shifts = [], [], [], []
        for i in members:
            clip, label, *voice_shift = data[i]  # AugmentedClips add the semitones of the voice shift
            shift = voice_shift[0] if voice_shift else 0.0
            offset = rng.randint(0, len(clip) - width)
            inputs.append(clip[offset : offset + width])
            labels.append(label)
            shifts.append(shift)
            if targets is not None:
                cropped = crop_targets(targets[i], offset, width // hop + 1, hop)
                prosody.append(shift_pitch(cropped, shift) if shift_targets else cropped)  # unchanged for 0
        yield (torch.from_numpy(np.stack(inputs)), torch.tensor(labels),
               torch.from_numpy(np.stack(prosody)) if targets is not None else None, members, np.array(shifts))


def plan_size(data, batch_size: int) -> int:
    """How many batches :func:`batches` yields for ``data``."""
    chunk = batch_size * 8
    return sum(-(-min(chunk, len(data) - start) // batch_size) for start in range(0, len(data), chunk))


@torch.inference_mode()
def logits_of(model, data, device) -> np.ndarray:
    """Logits of full clips, one at a time (what serving computes)."""
    model.eval()
    return np.stack([model(input_values=torch.from_numpy(x)[None].to(device)).logits[0].float().cpu().numpy()
                     for x, _ in data])


@torch.inference_mode()
def accuracy(model, data, device) -> tuple[float, float]:
    """Accuracy and mean loss over full clips, one at a time (what serving computes)."""
    model.eval()
    correct, loss = 0, 0.0
    for features, label in data:
        logits = model(input_values=torch.from_numpy(features)[None].to(device)).logits
        loss += torch.nn.functional.cross_entropy(logits, torch.tensor([label], device=device)).item()
        correct += int(logits.argmax(-1).item() == label)
    return correct / len(data), loss / len(data)


def keep_last_hidden_state(model) -> dict:
    """A dict whose "state" is, after each forward pass, the backbone's last hidden state: the frames the
    classifier pools. Not ``output_hidden_states``: with layer drop in training, that tuple leaves out the
    dropped layers, and is empty when every layer is dropped (seen with the tiny preset's two layers)."""
    kept = {}

    def keep(module, inputs, output):
        kept["state"] = output[0]

    model.base_model.register_forward_hook(keep)
    return kept


# A run whose steps keep coming out non-finite has diverged: stop rather than save a broken model.
MAX_CONSECUTIVE_SKIPPED = 20


def skip_step(optimizer, skipped: dict, step: int) -> None:
    """Drop an update whose loss or gradient is not finite (the weights stay as they were), and count it in
    ``skipped`` (its "total" and "consecutive" counts).

    Seen here: on an Intel CPU with AMX, bfloat16 autocast, one convolution's weight gradient came out NaN
    at one step (the forward pass and every other gradient finite); one such update makes every weight NaN.
    Mixed-precision trainers skip these steps the same way (torch.amp.GradScaler).
    """
    optimizer.zero_grad()
    skipped["total"] += 1
    skipped["consecutive"] += 1
    print(f"step {step + 1}: loss or gradient not finite, update skipped ({skipped['total']} so far)", flush=True)
    if skipped["consecutive"] > MAX_CONSECUTIVE_SKIPPED:
        raise RuntimeError(f"{skipped['consecutive']} consecutive training steps had a non-finite loss or gradient: "
                           "the run diverged (try a lower --lr, or without --bf16)")


def repeated(examples, copies: dict[str, int], column: str) -> list:
    """Each example of a generator named in ``copies`` that many times, in place (an epoch then draws it as often)."""
    unheard = sorted(set(copies) - {e.extra for e in examples})
    if unheard:
        raise ValueError(f"--repeat-generator {unheard}: no training clip has that {column}")
    return [e for e in examples for _ in range(copies.get(e.extra, 1))]


def data_labels(examples) -> list[str]:
    """The training data's labels: the card's in their usual order first, then any others alphabetically."""
    return sorted({e.label for e in examples}, key=lambda label: (label not in DEFAULT_LABELS, label))


def is_backbone(config: dict) -> bool:
    """A pretrained model of a supported family saved without a classification head (Wav2Vec2Model,
    Wav2Vec2ForPreTraining, Wav2Vec2ForCTC, HubertModel, ...): what fine-tuning usually starts from."""
    architectures = config.get("architectures") or []
    return (config.get("model_type") in SUPPORTED_MODEL_TYPES and bool(architectures)
            and not any(a.endswith(("ForSequenceClassification", "ForAudioClassification")) for a in architectures))


def starting_model(init: Path, train_examples):
    """What ``--init-from`` fine-tunes: a servable classifier checkpoint as it is (its labels must cover the
    data's), or a backbone with a new, randomly initialised head for the training data's labels."""
    from transformers import AutoModelForAudioClassification

    config_path = Path(init) / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if not is_backbone(config):
        validate_checkpoint(init)
        return AutoModelForAudioClassification.from_pretrained(init)
    if not (Path(init) / "preprocessor_config.json").is_file():
        raise InvalidCheckpoint(f"{init} has no preprocessor_config.json: the feature extractor to train and serve "
                                "with is part of the checkpoint")
    labels = data_labels(train_examples)
    print(f"{init} is a {config['architectures'][0]} backbone: a new classification head for {labels}", flush=True)
    return AutoModelForAudioClassification.from_pretrained(
        init, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: without either, oneDNN emulates bfloat16 matrix products."""
    cpu = torch.cpu
    return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def train(args) -> dict:
    from transformers import AutoFeatureExtractor, get_linear_schedule_with_warmup

    kept_freed_memory = keep_freed_memory()
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.bf16 and device.type == "cpu" and not cpu_has_native_bf16():
        # Measured on a 2-core AMD EPYC with AVX2 only (2026-12-02): a demo batch (16 x 4 s) took 8-9 s with
        # --bf16 and 1.4-2.2 s without; on AVX512-BF16 and AMX hosts bf16 was the faster of the two.
        warnings.warn("--bf16 on a CPU without AVX512-BF16 or AMX: bfloat16 is emulated there, about 5x slower than "
                      "float32 on the demo model (drop --bf16, or DEMO_BF16= for the Makefile's demo targets)",
                      stacklevel=2)
    train_examples = load_split(args.train, None if args.validation else "train", args)
    val_examples = load_split(args.validation or args.train, None if args.validation else "validation", args)
    if args.repeat_generator:
        train_examples = repeated(train_examples, dict(args.repeat_generator), args.generator_column)
    if args.preset:
        init = make_preset_checkpoint(args.preset, args.out / "init", labels=data_labels(train_examples), seed=args.seed)
    else:
        init = args.init_from
    extractor = AutoFeatureExtractor.from_pretrained(init)
    model = starting_model(init, train_examples).to(device)
    if args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    label2id = {label: int(i) for i, label in model.config.id2label.items()}
    voice_clips = None  # checked before the long decode, so that a misspelt name fails at once
    if args.voice_generator:
        unheard = sorted(set(args.voice_generator) - {e.extra for e in train_examples})
        if unheard:
            raise ValueError(f"--voice-generator {unheard}: no training clip has that {args.generator_column}")
        voice_clips = [e.extra in args.voice_generator for e in train_examples]
    decoded_train = decode_all(train_examples, label2id, "decode train")
    # Only the generators are needed from here on: the encoded audio (as large as the PCM) is let go.
    train_generators = [e.extra for e in train_examples]
    speaker_octaves = speaker_octaves_of(train_examples) if args.pitch_smoothing else None
    del train_examples
    train_data = AugmentedClips(decoded_train, extractor, args.augment, args.seed, args.voice_augment,
                                args.voice_semitones, voice_clips)
    targets, head, hop = None, None, int(np.prod(model.config.conv_stride))
    if args.prosody_weight:
        from ser_train.prosody import ProsodyHead, frame_targets

        relative = args.prosody_pitch == "relative"
        targets = [frame_targets(x, hop, relative) for x, _ in tqdm(decoded_train, desc="prosody targets", unit="clip")]
        head = ProsodyHead(model.config.hidden_size).to(device)
    measure_head, probe_targets = None, None
    if args.measure_weight or args.probe_weight:
        from ser_train.prosody_probe import PITCH_LEVEL, after_voice_shift, measures_of

        raw = np.array([measures_of(x) for x, _ in tqdm(decoded_train, desc="clip measures", unit="clip")])
    if args.measure_weight:
        from ser_train.prosody import ClipMeasureHead

        measure_centre, measure_scale = raw.mean(0), raw.std(0) + 1e-6
        weights = torch.ones(raw.shape[1])
        weights[PITCH_LEVEL] = args.measure_pitch_level_weight
        measure_head = ClipMeasureHead(model.config.hidden_size, raw.shape[1], weights).to(device)
    if args.probe_weight:
        from threadpoolctl import threadpool_limits

        from ser_train.prosody_probe import out_of_fold_probabilities

        train_labels = np.array([label for _, label in decoded_train])
        with threadpool_limits(args.threads or None):  # the trees' OpenMP threads obey --threads too
            probe_targets = torch.from_numpy(out_of_fold_probabilities(raw, train_labels, len(label2id), args.seed)
                                             .astype(np.float32))
        probe_accuracy = float((probe_targets.argmax(1).numpy() == train_labels).mean())
        print(f"prosody probe, out of fold on the training clips: accuracy {probe_accuracy:.3f}", flush=True)
    adversary, generator_ids = None, None
    if args.adversary_weight:
        from ser_train.adversary import GeneratorAdversary, ramp

        generators = sorted(set(train_generators))
        generator_ids = torch.tensor([generators.index(g) for g in train_generators])
        adversary = GeneratorAdversary(model.config.hidden_size, len(generators)).to(device)
        print(f"generator adversary over {generators}", flush=True)
    decoded_val = decode_all(val_examples, label2id, "decode validation")
    val_data = [(features(x, extractor), label) for x, label in decoded_val]
    crop = int(args.crop_seconds * 16_000)
    steps_per_epoch = plan_size(train_data, args.batch_size)
    total_steps = steps_per_epoch * args.epochs if not args.max_steps else min(args.max_steps, steps_per_epoch * args.epochs)
    heads = [h for h in (head, measure_head, adversary) if h is not None]
    last_hidden = keep_last_hidden_state(model)  # what the heads read: the classifier's input frames
    parameters = list(model.parameters()) + [p for h in heads for p in h.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=args.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, min(args.warmup_steps, total_steps // 5), total_steps)
    average = torch.optim.swa_utils.AveragedModel(model) if args.average_epochs else None
    average_from = args.epochs - args.average_epochs + 1
    # With an average, the best single epoch is saved beside it (to compare with), not as the result.
    best_dir = args.out / "best-epoch" if average is not None else args.out
    history, best, step = [], -1.0, 0
    mix_rng = np.random.default_rng(args.seed + 4)  # its own stream: batches and augmentation draw as without mixup
    skipped = {"total": 0, "consecutive": 0}
    print(f"training on {device}: {len(train_data)} train / {len(val_data)} validation clips, "
          f"{steps_per_epoch} steps per epoch, {total_steps} steps", flush=True)
    for epoch in range(1, args.epochs + 1):
        model.train()
        started, losses, prosody_losses, measure_losses, adversary_stats = time.time(), [], [], [], []
        progress = tqdm(batches(train_data, args.batch_size, crop, rng, targets, hop, args.prosody_pitch == "absolute"),
                        total=steps_per_epoch,
                        desc=f"epoch {epoch}/{args.epochs}", unit="batch")
        for inputs, labels, prosody, members, shifts in progress:
            mix = BatchMix(len(members), mix_rng, args.mixup) if args.mixup else None
            if mix is not None:
                inputs = mix.inputs(inputs, normalise=extractor.do_normalize)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                outputs = model(input_values=inputs.to(device))
            logits = outputs.logits.float()

            def row_loss(rows):
                """Each row's label loss against the labels of the batch's clips ``rows``."""
                if speaker_octaves is None:
                    return torch.nn.functional.cross_entropy(logits, labels[rows].to(device), reduction="none",
                                                             label_smoothing=args.label_smoothing)
                octaves = np.abs(speaker_octaves[np.asarray(members)[rows]] + shifts[rows] / 12)
                smoothing = np.minimum(args.label_smoothing + args.pitch_smoothing * octaves, 0.9)
                return smoothed_cross_entropy(logits, labels[rows].to(device),
                                              torch.from_numpy(smoothing.astype(np.float32)).to(device), "none")

            classification = mix.loss(row_loss) if mix is not None else row_loss(np.arange(len(members))).mean()
            loss = classification
            if head is not None:
                prosody_loss = head.loss(last_hidden["state"], prosody.to(device))
                loss = loss + args.prosody_weight * prosody_loss
            if measure_head is not None:
                # Measured once on the clean clips; a voice shift moves the pitch level and the centroid with it.
                measures = (after_voice_shift(raw[members], shifts) - measure_centre) / measure_scale
                if mix is not None:
                    measures = mix.targets(measures)
                measure_loss = measure_head.loss(last_hidden["state"],
                                                 torch.from_numpy(measures.astype(np.float32)).to(device))
                loss = loss + args.measure_weight * measure_loss
            if adversary is not None:
                strength = ramp(step / total_steps)
                adversary_loss, adversary_accuracy = adversary.loss(last_hidden["state"],
                                                                    generator_ids[members].to(device), strength)
                loss = loss + args.adversary_weight * adversary_loss
            if probe_targets is not None:
                # Cross-entropy against the prosody probe's belief: what the hand-made measures alone say.
                believed = probe_targets[members]
                if mix is not None:
                    believed = torch.from_numpy(mix.targets(believed.numpy()))
                loss = loss + args.probe_weight * torch.nn.functional.cross_entropy(logits, believed.to(device))
            optimizer.zero_grad()
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            if torch.isfinite(loss) and torch.isfinite(norm):
                skipped["consecutive"] = 0
                optimizer.step()
                schedule.step()  # a skipped update does not advance the schedule (as torch.amp's skipped steps)
                if average is not None and epoch >= average_from:
                    average.update_parameters(model)
                losses.append(classification.item())  # train_loss: the label loss alone, comparable with or without prosody
                if head is not None:
                    prosody_losses.append(prosody_loss.item())
                if measure_head is not None:
                    measure_losses.append(measure_loss.item())
                if adversary is not None:
                    adversary_stats.append((adversary_loss.item(), adversary_accuracy, strength))
                progress.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            else:
                skip_step(optimizer, skipped, step)
            step += 1
            if step >= total_steps:
                break
        val_accuracy, val_loss = accuracy(model, val_data, device)
        record = {"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                  "val_accuracy": val_accuracy, "seconds": round(time.time() - started, 1)}
        if prosody_losses:
            record["prosody_loss"] = float(np.mean(prosody_losses))
        if measure_losses:
            record["measure_loss"] = float(np.mean(measure_losses))
        if adversary_stats:
            # How well the voice can still be told from the clip summary (chance: 1 / generators).
            loss_mean, accuracy_mean, _ = np.mean(adversary_stats, axis=0)
            record.update(adversary_loss=float(loss_mean), adversary_accuracy=float(accuracy_mean),
                          adversary_strength=adversary_stats[-1][2])
        record["skipped_steps"] = skipped["total"]
        history.append(record)
        print(json.dumps(record), flush=True)
        if val_accuracy > best:
            best = val_accuracy
            model.save_pretrained(best_dir, safe_serialization=True)
            extractor.save_pretrained(best_dir)
        if step >= total_steps:
            break
    summary = {"best_val_accuracy": best, "history": history, "device": str(device), "args": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "train_clips": len(train_data), "validation_clips": len(val_data), "skipped_steps": skipped["total"],
        "allocator_keeps_freed_memory": kept_freed_memory}
    if probe_targets is not None:
        summary["probe_accuracy"] = probe_accuracy
    if average is not None:
        summary["average"] = save_average(average, average_from, args, val_data, extractor, device)
        print(json.dumps({"average": summary["average"]}), flush=True)
    if args.calibrate:
        calibration = calibration_set(decoded_val, extractor, args)
        summary["calibration"] = calibrate_saved(args.out, calibration, device)
        print(json.dumps({"calibration": summary["calibration"]}), flush=True)
        if average is not None:
            summary["best_epoch_calibration"] = calibrate_saved(best_dir, calibration, device)
    (args.out / "training_log.json").write_text(json.dumps(summary, indent=2))
    return summary


def save_average(average, from_epoch: int, args, val_data, extractor, device) -> dict:
    """Save the weight average as the result, with its validation accuracy and loss."""
    if int(average.n_averaged) == 0:
        raise RuntimeError(f"no update reached epoch {from_epoch} (--max-steps?): nothing was averaged")
    val_accuracy, val_loss = accuracy(average.module, val_data, device)
    average.module.save_pretrained(args.out, safe_serialization=True)
    extractor.save_pretrained(args.out)
    return {"from_epoch": from_epoch, "updates": int(average.n_averaged),
            "val_accuracy": val_accuracy, "val_loss": val_loss}


def calibration_set(decoded_val, extractor, args) -> list[tuple[np.ndarray, int]]:
    """The validation clips, plus ``--calibration-copies`` augmented copies of each (seeded), normalised: the
    confidence is fitted on the kind of degraded input the server will meet too."""
    from ser_train.augment import augment

    rng = np.random.default_rng(args.seed + 3)
    clips = list(decoded_val) + [(augment(x, rng, p=1.0), label)
                                 for _ in range(args.calibration_copies) for x, label in decoded_val]
    return [(features(x, extractor), label) for x, label in clips]


def calibrate_saved(out: Path, data, device) -> dict:
    """Fit T on the saved checkpoint's logits of ``data`` (:func:`calibration_set`) and fold it into its
    classifier, in place."""
    from transformers import AutoModelForAudioClassification

    from ser_train.calibrate import ece_of_logits, fit_temperature, fold_temperature, nll

    labels = np.array([label for _, label in data])
    model = AutoModelForAudioClassification.from_pretrained(out).to(device)
    logits = logits_of(model, data, device)
    temperature = fit_temperature(logits, labels)
    fold_temperature(model, temperature)
    model.save_pretrained(out, safe_serialization=True)
    return {"temperature": temperature, "clips": len(data), "ece_bins": 15,
            "accuracy": float((logits.argmax(-1) == labels).mean()),
            "ece_before": ece_of_logits(logits, labels), "ece_after": ece_of_logits(logits, labels, temperature),
            "nll_before": nll(logits, labels), "nll_after": nll(logits, labels, temperature)}


def main(argv=None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
