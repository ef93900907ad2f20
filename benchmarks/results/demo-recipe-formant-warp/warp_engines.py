"""Copy a training split with some engines' clips spoken by other vocal tracts or other speakers (WORLD).

    python warp_engines.py build/data-ab/train.parquet build/data-abw/train.parquet \
        --generators espeak-ng flite hts --p 0.5 --warp 0.8 1.25
    python warp_engines.py build/data-ab/train.parquet build/data-abk/train.parquet \
        --generators espeak-ng flite hts --p 0.5 --semitones -6 12 --formant-share 0.33

Each clip of ``--generators`` is, with probability ``--p``, resynthesised by WORLD
(``ser_train.augment.world_speaker``) either with its spectral envelope warped by a factor drawn log-uniformly
from ``--warp``, pitch kept, or (``--semitones``) as another speaker: F0 moved by a number of semitones drawn
uniformly from the range, and the formants by ``--formant-share`` of it (0: pitch alone; about 0.3 is how far
formants move with pitch between men and women). The other rows are copied byte for byte, in order, with the
same schema. Seeded per row: the same command writes the same file.
"""

import argparse
import io
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from ser_tools.encode import encode
from ser_train.augment import SAMPLE_RATE, world_speaker


def warp_row(job: tuple[bytes, float, float]) -> bytes:
    data, pitch, warp = job
    x, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == SAMPLE_RATE, rate
    return encode(world_speaker(x, pitch, warp), SAMPLE_RATE, "wav")  # as ser-serve synth writes its clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--generators", nargs="+", required=True)
    parser.add_argument("--p", type=float, default=0.5)
    change = parser.add_mutually_exclusive_group(required=True)
    change.add_argument("--warp", type=float, nargs=2, help="formant warp factors, pitch kept")
    change.add_argument("--semitones", type=float, nargs=2, help="speakers' pitch shift range")
    parser.add_argument("--formant-share", type=float, default=0.0, help="with --semitones: formants move this share")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    source = pq.ParquetFile(args.source)
    schema = source.schema_arrow
    rng = np.random.default_rng(args.seed)
    warps, first = [], 0
    with pq.ParquetWriter(args.out, schema) as out, ProcessPoolExecutor(args.workers) as pool:
        for batch in source.iter_batches(batch_size=500):
            rows = batch.to_pylist()
            chance = rng.random(len(rows))
            if args.warp:
                pitches, warps_drawn = np.ones(len(rows)), np.exp(rng.uniform(*np.log(args.warp), len(rows)))
            else:
                semitones = rng.uniform(*args.semitones, len(rows))
                pitches, warps_drawn = 2 ** (semitones / 12), 2 ** (args.formant_share * semitones / 12)
            chosen = [i for i, row in enumerate(rows) if row["generator"] in args.generators and chance[i] < args.p]
            jobs = [(rows[i]["audio"]["bytes"], pitches[i], warps_drawn[i]) for i in chosen]
            for i, data in zip(chosen, pool.map(warp_row, jobs, chunksize=8)):
                rows[i]["audio"]["bytes"] = data
                warps.append({"row": first + i, "generator": rows[i]["generator"],
                              "pitch": round(float(pitches[i]), 4), "warp": round(float(warps_drawn[i]), 4)})
            out.write_table(pa.Table.from_pylist(rows, schema=schema))
            first += len(rows)
            print(f"{first} of {source.metadata.num_rows} rows, {len(warps)} warped", flush=True)
    (args.out.parent / f"{args.out.stem}.warps.json").write_text(json.dumps(warps))


if __name__ == "__main__":
    main()
