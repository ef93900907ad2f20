"""Held-out accuracy per voice: which of an engine's voices an arm gains or loses on, and how often each voice
is answered "surprise" (the label high unheard voices drift to).

    python benchmarks/results/demo-recipe-speaker-tract/by_voice.py build/data-acc4/test.parquet \
        accented festival -- <arm directories>

Each arm directory holds ``eval/<generator>/report.json`` (``ser-serve evaluate --generator G``, per-clip
answers in the test split's row order); the voices come from the test split's ``voice`` column.
"""

import json
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq


def voices_of(test: Path, generator: str) -> tuple[list[str], list[str]]:
    """The generator's rows' voices and labels, in the split's order (the order ``evaluate`` scores them in)."""
    table = pq.read_table(test, columns=["generator", "voice", "label"]).to_pydict()
    rows = [(v, label) for g, v, label in zip(table["generator"], table["voice"], table["label"]) if g == generator]
    return [v for v, _ in rows], [label for _, label in rows]


def main(test: Path, generators: list[str], arms: list[Path]) -> None:
    print("| arm | held out | voice | clips | right | 'surprise' answers |")
    print("|---|---|---|---|---|---|")
    for generator in generators:
        voices, labels = voices_of(test, generator)
        for arm in arms:
            report = json.loads((arm / "eval" / generator / "report.json").read_text())
            answers = [max(scores, key=scores.get) for scores in report["scores"]]
            assert report["truth"] == labels, f"{arm}: not {test}'s {generator} rows in its order"
            clips, right, surprise = Counter(voices), Counter(), Counter()
            for voice, answer, truth in zip(voices, answers, report["truth"]):
                right[voice] += answer == truth
                surprise[voice] += answer == "surprise"
            for voice in sorted(clips):
                print(f"| {arm.name} | {generator} | {voice} | {clips[voice]} | {right[voice]} | {surprise[voice]} |")


if __name__ == "__main__":
    split = sys.argv.index("--")
    main(Path(sys.argv[1]), sys.argv[2:split], [Path(a) for a in sys.argv[split + 1 :]])
