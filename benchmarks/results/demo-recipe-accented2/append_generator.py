"""Copy a dataset made by `ser-serve synth` with one more generator appended, without remaking the others.

    python append_generator.py build/data-acc3w build/data-acc4 accented2 --g-index 6 \
        --tts-per-label 300 20 40 --tts-train-speaker-pitch 0.7071 1.4142

``--g-index`` is the generator's place in the longer generator list, so its clips are the very ones that
`ser-serve synth --generators <the old list> accented2` would have made (``ser_train.dataset.split_seed``).
"""

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ser_train import tts
from ser_train.dataset import examples_table, generator_clips, split_seed

SPLITS = ("train", "validation", "test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("generator", choices=tts.ENGINES)
    parser.add_argument("--g-index", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tts-per-label", type=int, nargs=3, required=True)
    parser.add_argument("--tts-train-speaker-pitch", type=float, nargs=2, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split_index, (split, count) in enumerate(zip(SPLITS, args.tts_per_label)):
        source = pq.ParquetFile(args.source / f"{split}.parquet")
        schema = source.schema_arrow
        if args.generator in set(source.read(columns=["generator"]).column(0).to_pylist()):
            raise SystemExit(f"{args.source / split}.parquet already has {args.generator} clips")
        pitch = tts.SpeakerPitch(*args.tts_train_speaker_pitch) if split == "train" and args.tts_train_speaker_pitch \
            else tts.SPEAKER_PITCH
        clips = list(generator_clips(args.generator, split, split_seed(args.seed, split_index, args.g_index), count, pitch))
        new = examples_table([row for row, *_ in clips], {
            "seconds": [seconds for _, seconds, _, _ in clips],
            "voice": [voice for _, _, voice, _ in clips],
            "generator": [args.generator] * len(clips),
            "speaker_pitch": pa.array([shift for *_, shift in clips], type=pa.float64()),
        }).select(schema.names).cast(schema)
        # Batch by batch: pq.read_table of a file of gigabytes of audio can fail ("Nested data conversions not
        # implemented for chunked array outputs").
        with pq.ParquetWriter(args.out / f"{split}.parquet", schema) as out:
            for batch in source.iter_batches(batch_size=1000):
                out.write_batch(batch)
            out.write_table(new)
        print(f"wrote {args.out / split}.parquet: {source.metadata.num_rows} + {new.num_rows} {args.generator} clips", flush=True)


if __name__ == "__main__":
    main()
