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
  axis, so padding would change every frame. The convolutions themselves
  are local (a clip's valid frames read only its own samples). On a GPU,
  where a pass per clip is bound by kernel launches, the stack runs on the
  padded batch and only that norm's statistics are taken over each clip's
  valid frames (:func:`masked_group_norm_conv`); so it does in a graph
  exported for OpenVINO. In PyTorch on a CPU it runs once per
  clip on the clip's own samples (:func:`per_clip_conv`): measured 1.35x
  (float32) and 1.7x (bfloat16) faster there than the padded batch, whose
  activations outgrow the caches; so does any stack of another shape.
  Either way the frames past a clip's end are zero, as if it had been run
  alone and zero-padded.
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
        masked = has_group_norm_first_layer(base.feature_extractor)
        base.feature_extractor = GroupNormConvEncoder(base.feature_extractor, masked)
        adapted.append("group-norm conv encoder: masked on GPU, per clip on CPU" if masked else "per-clip conv encoder")
    if model.config.model_type == "data2vec-audio":
        for layer in base.encoder.pos_conv_embed.layers:
            layer.register_forward_hook(lambda module, args, output: zero_padded_frames(base, output))
        adapted.append("masked positional convolutions")
    return adapted


def has_group_norm_first_layer(encoder: nn.Module) -> bool:
    """True for the stock group-norm stack: a first layer conv -> per-channel GroupNorm -> activation, then plain convs."""
    layers = getattr(encoder, "conv_layers", None)
    if not layers:
        return False
    first, rest = layers[0], layers[1:]
    norm = getattr(first, "layer_norm", None)
    plain_convs = all(isinstance(getattr(layer, "conv", None), nn.Conv1d) and layer.conv.padding == (0,)
                      and layer.conv.dilation == (1,) for layer in layers)
    return (plain_convs and isinstance(norm, nn.GroupNorm) and norm.num_groups == norm.num_channels
            and callable(getattr(first, "activation", None))
            and all({name for name, _ in layer.named_children()} == {"conv", "activation"} for layer in rest))


class GroupNormConvEncoder(nn.Module):
    """The group-norm conv feature encoder, exact inside a padded batch (see :func:`masked_group_norm_conv`)."""

    def __init__(self, encoder: nn.Module, masked: bool):
        super().__init__()
        self.encoder = encoder
        self.maskable = masked  # the stack has the stock shape masked_group_norm_conv needs

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        lengths = _CLIP_LENGTHS.get()
        if lengths is None:
            return self.encoder(input_values)
        # Masked on a GPU, and in a graph traced for another runtime (ser_serve.model.openvino_runtime):
        # a traced per-clip loop would bake in the example's clip lengths.
        if self.maskable and (input_values.is_cuda or torch.jit.is_tracing()):
            return masked_group_norm_conv(self.encoder, input_values, lengths)
        return per_clip_conv(self.encoder, input_values, lengths)


def masked_group_norm_conv(encoder: nn.Module, input_values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The conv stack on the padded batch, its GroupNorm's statistics over each clip's valid frames only.

    (batch, channels, frames); frames past a clip's own frames are zero. The
    norm is computed in float32, as autocast runs GroupNorm.
    """
    first, *rest = encoder.conv_layers
    hidden = first.conv(input_values[:, None])
    valid = valid_frames(lengths, first.conv)
    mask = (torch.arange(hidden.shape[-1], device=hidden.device)[None, :] < valid[:, None])[:, None, :]
    out_dtype = torch.float32 if torch.is_autocast_enabled(hidden.device.type) else hidden.dtype
    values, count = hidden.float(), valid[:, None, None].float()
    mean = (values * mask).sum(-1, keepdim=True) / count
    variance = (((values - mean) * mask) ** 2).sum(-1, keepdim=True) / count
    norm = first.layer_norm
    normalised = (values - mean) * torch.rsqrt(variance + norm.eps)
    normalised = normalised * norm.weight.float()[None, :, None] + norm.bias.float()[None, :, None]
    hidden = first.activation(normalised.to(out_dtype))
    for layer in rest:
        hidden = layer(hidden)
        valid = valid_frames(valid, layer.conv)
    keep = torch.arange(hidden.shape[-1], device=hidden.device)[None, :] < valid[:, None]
    return hidden * keep[:, None, :].to(hidden.dtype)


def valid_frames(lengths: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """Output frames of ``conv`` (no padding) that read only the first ``lengths`` input frames."""
    return (lengths - conv.kernel_size[0]) // conv.stride[0] + 1


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
