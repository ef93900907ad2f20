"""CREMA-D-style parquet data: an ``audio`` struct {bytes, path} and a label column.

This is the Hugging Face datasets audio layout (e.g. ``confit/cremad-parquet``).
Splits are separate files or one file with a split column; column names are
configurable. ``ser-serve synth`` writes such files from the synthetic voice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ser_tools.encode import encode
from ser_train.synth import EMOTIONS, SAMPLE_RATE, generate
from ser_train import tts


@dataclass(frozen=True)
class Example:
    audio: bytes
    label: str
    extra: object = None  # the value of read_examples' extra_column (e.g. the voice generator), if asked for
    # A text-to-speech speaker's F0 multiplier on top of its voice's own pitch (``ser-serve synth`` writes a
    # speaker_pitch column); None where the file has none or the clip is not from an engine.
    speaker_pitch: float | None = None


def read_examples(path: str | Path, audio_column: str = "audio", label_column: str = "label",
                  split: str | None = None, split_column: str = "split", id2label: dict | None = None,
                  extra_column: str | None = None) -> list[Example]:
    """Examples of one parquet file (rows of ``split`` only, when given).

    ``extra_column`` (e.g. ``generator``) is carried along in ``Example.extra``.

    Integer labels are mapped through ``id2label``, by default the names of
    the label column's ``ClassLabel`` in the file's Hugging Face metadata
    (what ``datasets`` writes when it exports a split to parquet).
    """
    table = pq.read_table(path)
    if id2label is None:
        id2label = class_label_names(table.schema, label_column)
    missing = [c for c in (audio_column, label_column) if c not in table.column_names]
    if split is not None and split_column not in table.column_names:
        missing.append(split_column)
    if extra_column is not None and extra_column not in table.column_names:
        missing.append(extra_column)
    if missing:
        raise ValueError(f"{path} has no column(s) {missing}; it has {table.column_names}")
    rows = table.to_pylist()
    if split is not None:
        rows = [row for row in rows if row[split_column] == split]
    examples = []
    for row in rows:
        audio, label = row[audio_column], row[label_column]
        data = audio["bytes"] if isinstance(audio, dict) else audio
        if isinstance(label, int):
            if id2label is None:
                raise ValueError(f"{path}: integer labels need an id2label mapping (the file's metadata names no "
                                 f"ClassLabel for {label_column!r}; pass the label names the dataset documents)")
            if label not in id2label:
                raise ValueError(f"{path}: label {label} has no name (the names are for {sorted(id2label)})")
            label = id2label[label]
        examples.append(Example(bytes(data), str(label), row[extra_column] if extra_column else None,
                                row.get("speaker_pitch")))
    return examples


def add_label_names_option(parser) -> None:
    """``--label-names A,B,...``: {0: A, 1: B, ...} for integer labels (train and evaluate)."""
    parser.add_argument("--label-names", type=lambda text: dict(enumerate(text.split(","))), metavar="A,B,...",
                        help="names of integer labels 0, 1, ..., comma-separated (default: the file's ClassLabel names)")


def class_label_names(schema, column: str) -> dict[int, str] | None:
    """{id: name} of ``column``'s ClassLabel in a parquet schema's ``huggingface`` metadata, if it has one."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if raw is None:
        return None
    feature = json.loads(raw).get("info", {}).get("features", {}).get(column, {})
    if feature.get("_type") != "ClassLabel" or not feature.get("names"):
        return None
    return dict(enumerate(feature["names"]))


def write_examples(path: str | Path, examples: list[tuple[bytes, str, str]], extra: dict | None = None) -> Path:
    """Write (audio bytes, file name, label) rows in the HF audio layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(examples_table(examples, extra), path)
    return path


def examples_table(examples: list[tuple[bytes, str, str]], extra: dict | None = None) -> pa.Table:
    """(audio bytes, file name, label) rows as a table in the HF audio layout, with ``extra`` columns after them."""
    columns = {
        "audio": pa.array([{"bytes": data, "path": name} for data, name, _ in examples],
                          type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "label": pa.array([label for *_, label in examples], type=pa.string()),
    }
    for key, values in (extra or {}).items():
        columns[key] = values if isinstance(values, pa.Array) else pa.array(values)
    return pa.table(columns)


MERGED_FROM = b"ser_serve.merged_from"  # a merged split's schema metadata: the files it was merged from


def file_identity(path: str | Path) -> str:
    """A file as far as a cache needs to know it: where it is, its size and when it was last written."""
    stat = Path(path).stat()
    return f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def merge_test_splits(first: str | Path, extra: str | Path, out: str | Path) -> Path:
    """One test split from two ``ser-serve synth`` runs' (e.g. a second seed's clips added to ``make data``'s).

    Both runs name their clips ``test/<generator>/<n>_<label>.wav``, so the extra file's names get its folder's
    name in front (``data-logo-test/test/...``): evaluation reports key clips by name, and none may repeat.
    ``out`` records the two files it was merged from; when they are unchanged, it is returned as it is rather than
    written again (half a gigabyte for the 1,000-clip folds). It is written whole or not at all (a temporary file
    renamed), so an interrupted merge never passes for a finished one.
    """
    import pyarrow.compute as pc

    out = Path(out)
    sources = json.dumps([file_identity(first), file_identity(extra)]).encode()
    if out.exists() and (pq.read_schema(out).metadata or {}).get(MERGED_FROM) == sources:
        return out
    base, more = pq.read_table(first), pq.read_table(extra)
    audio = more.column("audio").combine_chunks()
    names = pc.binary_join_element_wise(Path(extra).parent.name, audio.field("path"), "/")
    more = more.set_column(more.schema.get_field_index("audio"), "audio",
                           pa.StructArray.from_arrays([audio.field("bytes"), names], fields=list(audio.type)))
    merged = pa.concat_tables([base, more.cast(base.schema)])
    merged_audio = merged.column("audio").combine_chunks()
    for field, what in (("bytes", "clips (the same seed twice?)"), ("path", "clip names")):
        values = merged_audio.field(field)
        if len(pc.unique(values)) != len(values):
            raise ValueError(f"{first} and {extra} share {what}: a held-out clip would count twice")
    merged = merged.replace_schema_metadata({**(merged.schema.metadata or {}), MERGED_FROM: sources})
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    pq.write_table(merged, partial)
    partial.replace(out)
    return out


def clips_digest(split: str | Path, generator: str) -> str:
    """SHA-256 of one generator's clips in a split (audio bytes and label, in order): what a score on them was of."""
    import hashlib

    table = pq.read_table(split, columns=["audio", "label"], filters=[("generator", "==", generator)])
    digest = hashlib.sha256()
    for clip, label in zip(table.column("audio").combine_chunks().field("bytes").to_pylist(),
                           table.column("label").to_pylist()):
        digest.update(len(clip).to_bytes(8, "little") + clip + label.encode() + b"\0")
    return digest.hexdigest()


SPLITS = {"train": 400, "validation": 25, "test": 50}  # clips per label (the synthetic voice alone)
GENERATORS = ("synth",) + tts.ENGINES  # the project's own voice, then the text-to-speech engines


def write_synthetic_dataset(out_dir: str | Path, seed: int = 0, per_label: dict | None = None,
                            generators=("synth",), tts_per_label: dict | None = None,
                            tts_train_speaker_pitch: tts.SpeakerPitch = tts.SPEAKER_PITCH) -> dict[str, Path]:
    """train/validation/test parquet files of synthetic emotional speech (16 kHz WAV bytes).

    ``generators``: the project's voice (``synth``, ``per_label`` clips per label
    and split) and text-to-speech engines (``ser_train.tts``, ``tts_per_label``,
    default ``per_label``). A ``generator`` column names each clip's source, a
    ``voice`` column its speaker, and a ``speaker_pitch`` column an engine
    speaker's F0 multiplier on its voice (null for the synthetic voice). Each split and generator uses its own seed,
    so speakers and utterances never repeat across splits; TTS splits also use
    disjoint sentences. ``tts_train_speaker_pitch``: the engines' speakers' F0
    multipliers in the training split alone (validation and test keep the
    engines' own range, so held-out figures stay comparable).
    """
    per_label = per_label or SPLITS
    tts_per_label = tts_per_label or per_label
    unknown = [g for g in generators if g not in GENERATORS]
    if unknown:
        raise ValueError(f"unknown generator(s) {unknown}; choose from {GENERATORS}")
    paths = {}
    for offset, split in enumerate(per_label):
        rows, seconds, voice, source, speaker_pitch = [], [], [], [], []
        for g_index, generator in enumerate(generators):
            count = (per_label if generator == "synth" else tts_per_label)[split]
            pitch = tts_train_speaker_pitch if split == "train" else tts.SPEAKER_PITCH
            clips = generator_clips(generator, split, split_seed(seed, offset, g_index), count, pitch)
            for row, length, speaker, shift in clips:
                rows.append(row)
                seconds.append(length)
                voice.append(speaker)
                source.append(generator)
                speaker_pitch.append(shift)
        paths[split] = write_examples(Path(out_dir) / f"{split}.parquet", rows,
                                      {"seconds": seconds, "voice": voice, "generator": source,
                                       "speaker_pitch": pa.array(speaker_pitch, type=pa.float64())})
    return paths


def split_seed(seed: int, split_index: int, g_index: int) -> int:
    """The seed of one split (its place in the split list) of one generator (its place in the generator list).

    So a generator appended to an existing dataset later, with ``g_index`` its place in the longer list, gets
    the very clips that one run with that list would have made.
    """
    return seed * 1000 + split_index + 100 * g_index


def generator_clips(generator: str, split: str, seed: int, count: int, pitch: tts.SpeakerPitch = tts.SPEAKER_PITCH):
    """Yield one generator's ``count`` clips per label of ``split`` (``seed``: :func:`split_seed`) as
    ((wav bytes, file name, label), seconds, speaker, speaker F0 multiplier or None)."""
    if generator == "synth":
        clips = ((e, x, f"synth f0={s.base_f0:.0f}", None) for e, x, _, s in generate(count, seed=seed))
    else:
        clips = ((e, x, job.voice, round(job.speaker_pitch, 4))
                 for e, x, job in tts.generate(generator, count, seed, split, pitch))
    for i, (emotion, samples, speaker, shift) in enumerate(
            tqdm(clips, total=count * len(EMOTIONS), desc=f"{generator} {split}", unit="clip")):
        yield ((encode(samples, SAMPLE_RATE, "wav"), f"{split}/{generator}/{i:05d}_{emotion}.wav", emotion),
               round(len(samples) / SAMPLE_RATE, 2), speaker, shift)
