"""Exact batched forward for every supported shape: a clip's logits in a batch equal its logits alone.

Clips of one length run the stock forward unpadded. Mixed lengths run the
stock forward on a zero-padded batch *with* an attention mask, which
transformers already makes exact for every part that works per frame or
masks padded keys: conv layers whose norm is per frame (``feat_extract_norm
== "layer"``; a valid frame never reads a padded sample), the feature
projection and layer norms, attention, the positional convolution of
wav2vec2/HuBERT/WavLM (the encoder zeroes padded frames first, so past a
clip's end it sees the zeros it sees alone), WavLM's relative position bias
(it depends only on the distance between frames), the weighted layer sum
(per frame) and the masked mean pooling. Two parts are not exact on their
own, and :func:`make_exact` adapts them, each the cheapest exact way:

- a conv stack with ``feat_extract_norm == "group"`` (wav2vec2-base,
  HuBERT-base, WavLM-base) normalises its first layer over the whole time
  axis, so padding would change every frame: it runs once per clip on the
  clip's own samples (:func:`per_clip_conv`) and its frames are zero-padded.
- data2vec-audio's positional embedding is a stack of convolutions: after
  the first, padded frames are no longer zero and the next layer would read
  them where alone it reads zero padding: they are zeroed again after every
  layer (:func:`zero_padded_frames`).

Both read the clips' lengths from a context variable that
:func:`padded_logits` sets around the forward, so concurrent threads do not
see each other's batches.
"""

from __future__ import annotations

from contextvars import ContextVar

import torch
from torch import nn

# Samples per clip of the padded batch being run, or None (a plain forward).
_CLIP_LENGTHS: ContextVar[torch.Tensor | None] = ContextVar("ser_clip_lengths", default=None)


def same_length_logits(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """No padding at all: the stock forward is a clip's own forward."""
    return model(input_values=batch).logits


def padded_logits(model: nn.Module, clips: list[torch.Tensor]) -> torch.Tensor:
    """The stock forward on the zero-padded batch with its attention mask (exact once :func:`make_exact` ran)."""
    lengths = torch.tensor([len(clip) for clip in clips], device=clips[0].device)
    batch = nn.utils.rnn.pad_sequence(clips, batch_first=True)
    mask = (torch.arange(batch.shape[1], device=batch.device)[None, :] < lengths[:, None]).long()
    token = _CLIP_LENGTHS.set(lengths)
    try:
        return model(input_values=batch, attention_mask=mask).logits
    finally:
        _CLIP_LENGTHS.reset(token)


def make_exact(model: nn.Module) -> list[str]:
    """Adapt the parts of ``model`` that padding would change (see the module docstring); returns what was adapted."""
    base = model.base_model
    adapted = []
    if model.config.model_type != "data2vec-audio" and getattr(model.config, "feat_extract_norm", "layer") == "group":
        base.feature_extractor = PerClipConvEncoder(base.feature_extractor)
        adapted.append("per-clip conv encoder")
    if model.config.model_type == "data2vec-audio":
        for layer in base.encoder.pos_conv_embed.layers:
            layer.register_forward_hook(lambda module, args, output: zero_padded_frames(base, output))
        adapted.append("masked positional convolutions")
    return adapted


class PerClipConvEncoder(nn.Module):
    """The conv feature encoder, run per clip inside a padded batch (see :func:`per_clip_conv`)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        lengths = _CLIP_LENGTHS.get()
        if lengths is None:
            return self.encoder(input_values)
        return per_clip_conv(self.encoder, input_values, lengths)


def per_clip_conv(encoder: nn.Module, input_values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Conv features of each clip computed on its own samples, zero-padded to the longest: (batch, channels, frames)."""
    frames = [encoder(input_values[i : i + 1, :n]) for i, n in enumerate(lengths.tolist())]
    width = max(f.shape[-1] for f in frames)
    return torch.cat([nn.functional.pad(f, (0, width - f.shape[-1])) for f in frames])


def zero_padded_frames(base: nn.Module, output: torch.Tensor) -> torch.Tensor | None:
    """``output`` (batch, channels, frames) with every clip's frames past its end set to zero; None outside a padded batch."""
    lengths = _CLIP_LENGTHS.get()
    if lengths is None:
        return None
    frames = base._get_feat_extract_output_lengths(lengths)
    mask = torch.arange(output.shape[-1], device=output.device)[None, :] < frames[:, None]
    return output * mask[:, None, :].to(output.dtype)
