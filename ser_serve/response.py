"""The response schema: built from probabilities here, and checked here (clients, load tests, tests)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from ser_serve.errors import NonFiniteScores


def to_response(probabilities: Sequence[float], id2label: Mapping[int, str]) -> dict:
    """Build ``{"results": [...], "dominant": {...}}`` from one row of scores.

    The scores are softmax probabilities, or independent per-label sigmoids
    for a multi-label checkpoint (they then need not sum to 1).

    Every label of the checkpoint appears once, sorted by score descending (ties
    keep label-id order so the answer is deterministic); ``dominant`` is the
    first result.
    """
    if len(probabilities) != len(id2label):
        raise ValueError(
            f"model returned {len(probabilities)} scores for {len(id2label)} labels"
        )
    if not all(math.isfinite(score) for score in probabilities):
        # Never a bare NaN in the JSON (invalid JSON for most clients): a typed 500 the log explains.
        raise NonFiniteScores("The model produced non-finite scores for this input; see the server log.")
    results = [
        {"label": id2label[i], "score": float(score)}
        for i, score in enumerate(probabilities)
    ]
    results.sort(key=lambda item: -item["score"])  # stable: ties stay in id order
    return {"results": results, "dominant": dict(results[0])}


def schema_problems(body, labels=None, tolerance: float = 1e-3, multi_label: bool = False) -> list[str]:
    """What is wrong with ``body`` as a prediction response; [] when it is valid.

    Valid: ``{"results": [{"label", "score"}...], "dominant": results[0]}``
    with unique labels (all of ``labels`` when given), scores in [0, 1],
    sorted descending, summing to 1 within ``tolerance`` unless
    ``multi_label`` (independent per-label scores have no fixed sum).
    """
    if not isinstance(body, dict):
        return [f"answer is {type(body).__name__}, not a JSON object"]
    if "error" in body:
        return [f"error answer: {body['error']}"]
    results = body.get("results")
    if not isinstance(results, list) or not results:
        return ["'results' is missing or empty"]
    problems = []
    if not all(isinstance(r, dict) and isinstance(r.get("label"), str) and isinstance(r.get("score"), (int, float))
               for r in results):
        return ["every result needs a string 'label' and a numeric 'score'"]
    scores = [r["score"] for r in results]
    found = [r["label"] for r in results]
    if len(set(found)) != len(found):
        problems.append("labels repeat")
    if labels is not None and sorted(found) != sorted(labels):
        problems.append(f"labels {sorted(found)} differ from {sorted(labels)}")
    if any(not 0.0 <= s <= 1.0 for s in scores):
        problems.append("a score lies outside [0, 1]")
    if scores != sorted(scores, reverse=True):
        problems.append("results are not sorted by score, highest first")
    if not multi_label and abs(sum(scores) - 1.0) > tolerance:
        problems.append(f"scores sum to {sum(scores):.6f}, not 1")
    if body.get("dominant") != results[0]:
        problems.append("'dominant' is not the first result")
    return problems
