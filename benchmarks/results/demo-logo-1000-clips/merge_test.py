"""One test split from two: the make-data split, then the extra seed's clips with their file names prefixed by
the seed's folder (both name their clips test/<generator>/<n>_<label>.wav), so every clip keeps a unique name.

    python merge_test.py build/data-ab/test.parquet build/data-test-s1/test.parquet build/data-big/test.parquet
"""

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def renamed(table: pa.Table, prefix: str) -> pa.Table:
    audio = table.column("audio").combine_chunks()
    paths = pc.binary_join_element_wise(prefix, audio.field("path"), "/")
    return table.set_column(table.schema.get_field_index("audio"), "audio",
                            pa.StructArray.from_arrays([audio.field("bytes"), paths], fields=list(audio.type)))


def main(first: str, extra: str, out: str) -> None:
    base, more = pq.read_table(first), pq.read_table(extra)
    merged = pa.concat_tables([base, renamed(more.cast(base.schema), Path(extra).parent.name)])
    names = merged.column("audio").combine_chunks().field("path")
    assert len(pc.unique(names)) == len(names), "clip names repeat"
    pq.write_table(merged, out)
    counts = pc.value_counts(merged.column("generator")).to_pylist()
    print(f"wrote {out}: {len(merged)} clips,", ", ".join(f"{c['values']} {c['counts']}" for c in counts))


if __name__ == "__main__":
    main(*sys.argv[1:])
