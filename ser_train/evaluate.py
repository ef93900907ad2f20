"""`ser-serve evaluate`: accuracy, macro-F1, per-class F1 and a confusion matrix (JSON and PNG).

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

from ser_train.dataset import read_examples
from ser_serve.clients.auth import inference_token


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ser-serve evaluate", description=__doc__)
    parser.add_argument("--data", required=True, type=Path, help="parquet file")
    parser.add_argument("--split", help="rows of this split only (file with a split column)")
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--split-column", default="split")
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
    return parser.parse_args(argv)


def predict_in_process(model_dir: Path, examples, precision: str | None = None) -> list[str]:
    from ser_serve import EmotionClassifier

    classifier = EmotionClassifier.from_pretrained(model_dir, precision=precision)
    if precision:
        choice = classifier.model.precision_choice
        print(f"precision: requested {choice.requested}, running {choice.profile}; guard {choice.as_dict()['guard']}")
    return [classifier.predict(e.audio)["dominant"]["label"] for e in tqdm(examples, desc="evaluate", unit="clip")]


def predict_over_http(url: str, model: str, token: str, examples, concurrency: int) -> list[str]:
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
        return answer.json()["dominant"]["label"]

    with ThreadPoolExecutor(concurrency) as pool:
        return list(tqdm(pool.map(one, examples), total=len(examples), desc="evaluate", unit="clip"))


def report(truth: list[str], predicted: list[str]) -> dict:
    labels = sorted(set(truth) | set(predicted))
    per_class = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    return {
        "examples": len(truth),
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        "per_class_f1": {label: float(score) for label, score in zip(labels, per_class)},
        "labels": labels,
        "confusion_matrix": confusion_matrix(truth, predicted, labels=labels).tolist(),
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


def evaluate(args) -> dict:
    examples = read_examples(args.data, args.audio_column, args.label_column, split=args.split,
                             split_column=args.split_column)
    if args.precision and args.url:
        raise SystemExit("--precision is for --model-dir; a server runs the profile its archive names")
    if args.url:
        token = inference_token(args.token, args.key_file)
        predicted = predict_over_http(args.url, args.model, token, examples, args.concurrency)
        source = f"{args.url} model {args.model}"
    else:
        predicted = predict_in_process(args.model_dir, examples, args.precision)
        source = str(args.model_dir) + (f" precision {args.precision}" if args.precision else "")
    result = report([e.label for e in examples], predicted)
    result["data"] = str(args.data) + (f" [{args.split}]" if args.split else "")
    result["model"] = source
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(result, indent=2))
    plot_confusion(result, args.out / "confusion.png", Path(args.data).name)
    print(f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} on {len(examples)} clips "
          f"-> {args.out / 'report.json'}, {args.out / 'confusion.png'}")
    return result


def main(argv=None) -> int:
    evaluate(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
