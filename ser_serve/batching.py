"""Length-aware grouping of clips into forward passes.

A TorchServe batch is a list of requests; it is not yet a good forward pass.
Clips are sorted by length and cut into groups whose padded size
(longest clip x clips) stays within a budget of audio samples, and whose
longest clip is at most ``max_padding_ratio`` times the shortest, so padding
waste stays bounded whatever mix of lengths arrives.
"""

from __future__ import annotations

from typing import Sequence

from ser_serve.settings import BatchBudget

__all__ = ["BatchBudget", "plan_groups"]


def plan_groups(lengths: Sequence[int], budget: BatchBudget = BatchBudget()) -> list[list[int]]:
    """Indices of ``lengths`` grouped into forward passes, shortest clips first.

    Every index appears in exactly one group. A clip longer than the whole
    sample budget still gets a group of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for index in order:
        if groups:
            group = groups[-1]
            shortest, longest = lengths[group[0]], lengths[index]  # sorted: index is the longest
            fits_budget = longest * (len(group) + 1) <= budget.max_batch_samples
            fits_ratio = longest <= budget.max_padding_ratio * max(shortest, 1)
            if fits_budget and fits_ratio:
                group.append(index)
                continue
        groups.append([index])
    return groups
