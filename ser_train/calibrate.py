"""Confidence calibration: expected calibration error, temperature scaling, and folding T into the checkpoint.

Temperature scaling (Guo et al. 2017) divides every logit by one scalar T
fitted on held-out validation data to minimise the negative log-likelihood;
the arg-max (so accuracy) does not change, only how sure the answers are.
Softmax(z / T) with z = W h + b equals softmax((W / T) h + b / T), so dividing
the final classifier layer's weight and bias by T bakes the calibration into
the checkpoint: the server, the card's reference code
(``AutoModelForAudioClassification``) and any other loader get the
calibrated probabilities with no extra code or config field.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

ECE_BINS = 15
POOLED_RULE = "NLL of all their clips pooled"
WORST_GROUP_RULE = "the largest of the generators' NLLs minimised"


def expected_calibration_error(confidence, correct, bins: int = ECE_BINS) -> float:
    """ECE of top-1 answers: sum over ``bins`` equal-width confidence bins (0, 1/B], ..., ((B-1)/B, 1] of
    (share of answers in the bin) x |accuracy in the bin - mean confidence in the bin|."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        return 0.0
    # Bin i holds confidences in (i/B, (i+1)/B]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def reliability_bins(confidence, correct, bins: int = ECE_BINS) -> list[dict]:
    """Per bin: its edges, how many answers, their accuracy and mean confidence (None where empty)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        rows.append({"low": b / bins, "high": (b + 1) / bins, "count": int(members.sum()),
                     "accuracy": float(correct[members].mean()) if members.any() else None,
                     "confidence": float(confidence[members].mean()) if members.any() else None})
    return rows


def ece_of_logits(logits, labels, temperature: float = 1.0, bins: int = ECE_BINS) -> float:
    probabilities = softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)
    return expected_calibration_error(probabilities.max(-1), probabilities.argmax(-1) == np.asarray(labels), bins)


def ece_bootstrap_interval(logits, labels, temperature: float = 1.0, draws: int = 2000,
                           seed: int = 0) -> tuple[float, float]:
    """The 5th and 95th percentiles of the ECE over the clips drawn with replacement: how far this many clips pin the
    ECE down. (The ECE of a finite set leans high, so the range sits mostly above the figure itself.)"""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    rng = np.random.default_rng(seed)
    eces = [ece_of_logits(logits[i], labels[i], temperature)
            for i in (rng.integers(0, len(labels), len(labels)) for _ in range(draws))]
    return float(np.percentile(eces, 5)), float(np.percentile(eces, 95))


def nll(logits, labels, temperature: float = 1.0) -> float:
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)
    return float(-logp[np.arange(len(labels)), np.asarray(labels)].mean())


def fit_temperature(logits, labels, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The T > 0 minimising the mean negative log-likelihood of softmax(logits / T) (searched over log T)."""
    result = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
                             bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                             options={"xatol": 1e-5})
    return float(np.exp(result.x))


def pooled(groups) -> tuple[np.ndarray, np.ndarray]:
    """The (logits, labels) groups as one set."""
    return np.concatenate([z for z, _ in groups]), np.concatenate([y for _, y in groups])


def fit_worst_group_temperature(groups, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The T > 0 minimising the largest of the groups' mean negative log-likelihoods (``groups``: (logits, labels)
    pairs, e.g. one per voice generator): a temperature for the group it fits worst, not for their pool.

    Each group's NLL is convex in 1 / T, so their maximum is too and has one minimum: the search over log T is
    well posed. With one group it is :func:`fit_temperature`.
    """
    groups = [(np.asarray(z, dtype=np.float64), np.asarray(y)) for z, y in groups]
    result = minimize_scalar(lambda log_t: max(nll(z, y, float(np.exp(log_t))) for z, y in groups),
                             bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                             options={"xatol": 1e-5})
    return float(np.exp(result.x))


def fold_temperature(model, temperature: float) -> None:
    """Divide the sequence classifier's final layer (``classifier.weight``, ``classifier.bias``) by T in place."""
    import torch

    layer = model.classifier
    if not isinstance(layer, torch.nn.Linear):
        raise TypeError(f"expected the final classifier to be a Linear layer, got {type(layer).__name__}")
    with torch.no_grad():
        layer.weight.div_(temperature)
        if layer.bias is not None:
            layer.bias.div_(temperature)


def folded_temperature(log: dict) -> float:
    """The T a checkpoint's classifier carries, from its training log: ``calibration.folded_temperature``, else
    ``calibration.temperature`` (what training folds), else 1 (never calibrated)."""
    calibration = log.get("calibration", {})
    return float(calibration.get("folded_temperature", calibration.get("temperature", 1.0)))


def refold(model_dir, temperature: float, source: str) -> dict:
    """Make the checkpoint in ``model_dir`` answer softmax(z / ``temperature``) of its raw logits z.

    The temperature already folded in is read from its ``training_log.json``
    (:func:`folded_temperature`), so this can be run again with another T. The log records the new T and ``source``.
    """
    import json
    from pathlib import Path

    from transformers import AutoModelForAudioClassification

    model_dir = Path(model_dir)
    log_path = model_dir / "training_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    folded = folded_temperature(log)
    calibration = log.setdefault("calibration", {})
    model = AutoModelForAudioClassification.from_pretrained(model_dir)
    fold_temperature(model, temperature / folded)
    model.save_pretrained(model_dir, safe_serialization=True)
    calibration.update(folded_temperature=temperature, folded_temperature_source=source)
    log_path.write_text(json.dumps(log, indent=2))
    return calibration


def main(argv=None) -> int:
    """Fold the leave-one-generator-out runs' cross-generator temperature into a trained checkpoint."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m ser_train.calibrate", description=main.__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--logo-summary", type=Path, required=True, help="summary.json of python -m ser_train.logo")
    args = parser.parse_args(argv)
    summary = json.loads(args.logo_summary.read_text())
    if "cross_generator_temperature" not in summary:
        raise SystemExit(f"{args.logo_summary} has no cross_generator_temperature (it needs two or more folds)")
    temperature = summary["cross_generator_temperature"]
    source = (f"fitted on the held-out test clips of the leave-one-generator-out folds {summary['cross_generator_folds']}"
              f" ({summary.get('cross_generator_rule', POOLED_RULE)})")
    refold(args.model_dir, temperature, source)
    print(f"folded T = {temperature:.4f} into {args.model_dir} ({source})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
