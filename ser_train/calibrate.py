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


def nll(logits, labels, temperature: float = 1.0) -> float:
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)
    return float(-logp[np.arange(len(labels)), np.asarray(labels)].mean())


def fit_temperature(logits, labels, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The T > 0 minimising the mean negative log-likelihood of softmax(logits / T) (searched over log T)."""
    result = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
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
