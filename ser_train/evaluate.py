"""`ser-serve evaluate`: accuracy, macro-F1, per-class F1, a confusion matrix, and calibration (JSON and PNGs).

Calibration: the expected calibration error (ECE) of the top-1 answers over 15
equal-width confidence bins, and a reliability diagram (accuracy against
confidence per bin) next to the confusion matrix.

In-process (``--model-dir``) or against a running server's ``/predictions``
(``--url``); both classify the same bytes with the same code, so they give
the same numbers on the same data.
"""

from __future__ import annotations

import argparse
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from tqdm import tqdm

from ser_train.calibrate import ECE_BINS, ece_of_logits, expected_calibration_error, reliability_bins
from ser_train.dataset import add_label_names_option, read_examples
from ser_serve.clients.auth import inference_token


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ser-serve evaluate", description=__doc__)
    parser.add_argument("--data", required=True, type=Path, help="parquet file")
    parser.add_argument("--split", help="rows of this split only (file with a split column)")
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument("--label-column", default="label")
    add_label_names_option(parser)
    parser.add_argument("--split-column", default="split")
    parser.add_argument("--generator", action="append", default=[], metavar="NAME",
                        help="rows of this voice generator only (repeatable; column --generator-column)")
    parser.add_argument("--generator-column", default="generator")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-dir", type=Path, help="evaluate in-process")
    where.add_argument("--url", help="evaluate against a server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--model", default="ser", help="model name on the server")
    parser.add_argument("--token", help="inference token; write --token=VALUE")
    parser.add_argument("--key-file", type=Path, help="TorchServe key_file.json to read the token from")
    parser.add_argument("--concurrency", type=int, default=4, help="parallel requests with --url")
    parser.add_argument("--out", type=Path, required=True, help="folder for report.json and confusion.png")
    parser.add_argument("--precision", default=None, help="in-process: precision profile (float32, bfloat16, int8, auto), "
                        "guarded against float32 as in a worker")
    parser.add_argument("--threads", type=int, default=0,
                        help="in-process: torch CPU threads (0: torch's default, one per core). Beside another busy "
                             "process use 1: a descheduled thread stalls the others' every op (measured on 2 cores "
                             "beside a training run: 2 threads 2 clips/s, 1 thread 54 clips/s)")
    return parser.parse_args(argv)


def predict_in_process(model_dir: Path, examples, precision: str | None = None) -> list[dict]:
    """The server's answer (``results``, ``dominant``) for each example, computed in-process."""
    from ser_serve import EmotionClassifier

    classifier = EmotionClassifier.from_pretrained(model_dir, precision=precision)
    if precision:
        choice = classifier.model.precision_choice
        print(f"precision: requested {choice.requested}, running {choice.profile}; guard {choice.as_dict()['guard']}")
    return [classifier.predict(e.audio) for e in tqdm(examples, desc="evaluate", unit="clip")]


def predict_over_http(url: str, model: str, token: str, examples, concurrency: int) -> list[dict]:
    """Dominant labels from a server. Each thread has its own pooled session (requests.Session is not
    thread-safe); a 503 (full queue, out of memory) is retried with backoff, any other failure stops the run."""
    local = threading.local()
    headers = {"Authorization": f"Bearer {token}"}

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            retry = Retry(total=5, backoff_factor=0.5, status_forcelist=[503], allowed_methods=["PUT"])
            local.session.mount("http://", HTTPAdapter(max_retries=retry))
            local.session.mount("https://", HTTPAdapter(max_retries=retry))
        return local.session

    def one(example):
        answer = session().put(f"{url.rstrip('/')}/predictions/{model}", data=example.audio, headers=headers, timeout=120)
        answer.raise_for_status()
        return answer.json()

    with ThreadPoolExecutor(concurrency) as pool:
        return list(tqdm(pool.map(one, examples), total=len(examples), desc="evaluate", unit="clip"))


def report(truth: list[str], predicted: list[str], confidence: list[float] | None = None) -> dict:
    """Accuracy, F1s and confusion matrix; with the top-1 ``confidence`` of each answer, also ECE and its bins."""
    labels = sorted(set(truth) | set(predicted))
    per_class = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    calibration = {}
    if confidence is not None:
        correct = [t == p for t, p in zip(truth, predicted)]
        calibration = {
            "ece": expected_calibration_error(confidence, correct),
            "ece_bins": ECE_BINS,
            "mean_confidence": float(np.mean(confidence)) if confidence else 0.0,
            "reliability": reliability_bins(confidence, correct),
        }
    return {
        "examples": len(truth),
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        "per_class_f1": {label: float(score) for label, score in zip(labels, per_class)},
        "labels": labels,
        "confusion_matrix": confusion_matrix(truth, predicted, labels=labels).tolist(),
        **calibration,
    }


def plot_confusion(result: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(result["confusion_matrix"])
    labels = result["labels"]
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, matrix[i, j], ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_title(f"{title}\naccuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(result: dict, path: Path, title: str) -> None:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with how many answers each holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = result["reliability"]
    width = 1 / len(bins)
    lows = [b["low"] for b in bins]
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(6, 7), height_ratios=(3, 1), sharex=True)
    ax.bar(lows, [b["accuracy"] or 0 for b in bins], width=width, align="edge", edgecolor="black",
           color="tab:blue", label="accuracy")
    filled = [b for b in bins if b["count"]]
    ax.bar([b["low"] for b in filled], [abs(b["confidence"] - b["accuracy"]) for b in filled],
           bottom=[min(b["confidence"], b["accuracy"]) for b in filled],
           width=width, align="edge", color="tab:red", alpha=0.3, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    ax.set_title(f"{title}\nECE {result['ece']:.3f} ({result['ece_bins']} bins), accuracy {result['accuracy']:.3f}, "
                 f"mean confidence {result['mean_confidence']:.3f}")
    counts.bar(lows, [b["count"] for b in bins], width=width, align="edge", color="gray", edgecolor="black")
    counts.set_xlabel("confidence (top-1 probability)")
    counts.set_ylabel("answers")
    counts.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ece_by_temperature(curves: list[tuple[str, np.ndarray, np.ndarray]], marks: list[tuple[str, float, str]],
                            path: Path, ylabel: str, title: str, target: float = 0.10) -> None:
    """ECE against the temperature T, one line per (label, raw logits, truth) in ``curves``, on a log axis from 0.8
    to 3; a vertical line per (label, T, line style) in ``marks`` (the temperatures a write-up weighs) and the target
    as a horizontal one: where each curve crosses the target is the span of T that would serve that set honestly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.exp(np.linspace(np.log(0.8), np.log(3.0), 60))
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, logits, truth in curves:
        ax.plot(grid, [ece_of_logits(logits, truth, t) for t in grid], label=label)
    for label, temperature, style in marks:
        ax.axvline(temperature, color="black", ls=style, lw=1, label=f"{label} {temperature:.2f}")
    ax.axhline(target, color="red", lw=0.8, label=f"target ECE {target:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("temperature")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(result: dict, out: Path, title: str) -> None:
    """``out``/report.json, confusion.png and reliability.png of a :func:`report`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=1))
    plot_confusion(result, out / "confusion.png", title)
    plot_reliability(result, out / "reliability.png", title)


def evaluate(args) -> dict:
    examples = read_examples(args.data, args.audio_column, args.label_column, split=args.split,
                             split_column=args.split_column, id2label=args.label_names,
                             extra_column=args.generator_column if args.generator else None)
    if args.generator:
        examples = [e for e in examples if e.extra in args.generator]
        if not examples:
            raise SystemExit(f"no rows of generator(s) {args.generator} in {args.data}")
    if args.precision and args.url:
        raise SystemExit("--precision is for --model-dir; a server runs the profile its archive names")
    if args.url:
        token = inference_token(args.token, args.key_file)
        answers = predict_over_http(args.url, args.model, token, examples, args.concurrency)
        source = f"{args.url} model {args.model}"
    else:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        answers = predict_in_process(args.model_dir, examples, args.precision)
        source = str(args.model_dir) + (f" precision {args.precision}" if args.precision else "")
    result = report([e.label for e in examples], [a["dominant"]["label"] for a in answers],
                    [a["dominant"]["score"] for a in answers])
    result["data"] = (str(args.data) + (f" [{args.split}]" if args.split else "")
                      + (f" generator {'+'.join(args.generator)}" if args.generator else ""))
    result["model"] = source
    # Every answer's full scores, for analyses beyond this report (e.g. undoing a folded temperature).
    result["scores"] = [{r["label"]: r["score"] for r in a["results"]} for a in answers]
    result["truth"] = [e.label for e in examples]
    write_report(result, args.out, Path(args.data).name + (f" ({'+'.join(args.generator)})" if args.generator else ""))
    print(f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}, ECE {result['ece']:.4f} "
          f"(15 bins) on {len(examples)} clips -> {args.out / 'report.json'}, confusion.png, reliability.png")
    return result


def main(argv=None) -> int:
    evaluate(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
