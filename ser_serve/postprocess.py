"""Probabilities -> the response schema."""

from __future__ import annotations

from typing import Mapping, Sequence


def to_response(probabilities: Sequence[float], id2label: Mapping[int, str]) -> dict:
    """Build ``{"results": [...], "dominant": {...}}`` from one row of softmax output.

    Every label of the checkpoint appears once, sorted by score descending (ties
    keep label-id order so the answer is deterministic); ``dominant`` is the
    first result.
    """
    if len(probabilities) != len(id2label):
        raise ValueError(
            f"model returned {len(probabilities)} scores for {len(id2label)} labels"
        )
    results = [
        {"label": id2label[i], "score": float(score)}
        for i, score in enumerate(probabilities)
    ]
    results.sort(key=lambda item: -item["score"])  # stable: ties stay in id order
    return {"results": results, "dominant": dict(results[0])}
