"""Copy a training split with some engines' clips spoken by other vocal tracts (formants warped, pitch kept).

    python warp_engines.py build/data-ab/train.parquet build/data-abw/train.parquet \
        --generators espeak-ng flite hts --p 0.5 --warp 0.8 1.25

Each clip of ``--generators`` is, with probability ``--p``, resynthesised by WORLD with its spectral envelope
warped by a factor drawn log-uniformly from ``--warp`` (``ser_train.augment.warp_formants``); the other rows are
copied byte for byte, in order, with the same schema. Seeded per row: the same command writes the same file.
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
from ser_train.augment import SAMPLE_RATE, warp_formants


def warp_row(job: tuple[bytes, float]) -> bytes:
    data, warp = job
    x, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == SAMPLE_RATE, rate
    return encode(warp_formants(x, warp), SAMPLE_RATE, "wav")  # as ser-serve synth writes its clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--generators", nargs="+", required=True)
    parser.add_argument("--p", type=float, default=0.5)
    parser.add_argument("--warp", type=float, nargs=2, default=(0.8, 1.25))
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
            draws = rng.random(len(rows)), np.exp(rng.uniform(*np.log(args.warp), len(rows)))
            chosen = [i for i, row in enumerate(rows) if row["generator"] in args.generators and draws[0][i] < args.p]
            for i, data in zip(chosen, pool.map(warp_row, [(rows[i]["audio"]["bytes"], draws[1][i]) for i in chosen],
                                                chunksize=8)):
                rows[i]["audio"]["bytes"] = data
                warps.append({"row": first + i, "generator": rows[i]["generator"],
                              "warp": round(float(draws[1][i]), 4)})
            out.write_table(pa.Table.from_pylist(rows, schema=schema))
            first += len(rows)
            print(f"{first} of {source.metadata.num_rows} rows, {len(warps)} warped", flush=True)
    (args.out.parent / f"{args.out.stem}.warps.json").write_text(json.dumps(warps))


if __name__ == "__main__":
    main()
