"""Random-init checkpoints of a few fixed shapes, made locally (nothing is downloaded).

``tiny`` for unit tests, ``small`` for the demo model trained here, ``base``
(wav2vec2-base's shape) for benchmarks.
"""

from __future__ import annotations

from pathlib import Path

from ser_serve.model.checkpoint import ARCHITECTURE

# The label set of CREMA-D-style emotion models (RAVDESS adds calm and surprise).
DEFAULT_LABELS = ("angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise")

PRESETS = {
    # Two transformer layers of width 32: loads in milliseconds, for unit tests.
    # feat_extract_norm="group" keeps the base model's time-normalised first
    # conv layer, the part that makes padding change answers.
    "tiny": dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(32, 32, 32),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        # With the default 0.02 an untrained model answers 0.125 for every
        # label, and tests comparing two paths would compare constants; 0.2
        # spreads the scores so that a wrong input changes the answer.
        initializer_range=0.2,
    ),
    # The demo model (under 20 MB): wav2vec2's layout, shrunk to train from
    # scratch on 2 CPU cores. Five conv layers to a 20 ms frame rate (stride
    # 320, as base), GroupNorm on the first like base, 3 transformer layers.
    "small": dict(
        hidden_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=512,
        conv_dim=(64, 64, 64, 64, 64),
        conv_stride=(5, 4, 4, 2, 2),
        conv_kernel=(10, 8, 8, 4, 4),
        num_conv_pos_embeddings=32,
        num_conv_pos_embedding_groups=8,
        classifier_proj_size=64,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        hidden_dropout=0.1,
        activation_dropout=0.0,
        attention_dropout=0.1,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
        mask_time_prob=0.0,
    ),
    # wav2vec2-base(-960h): 12 layers, hidden 768, 12 heads, 7 conv layers with
    # group norm, classifier projection 256. These are transformers' defaults,
    # spelled out so a change of defaults cannot silently change the benchmark.
    "base": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        conv_dim=(512,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        classifier_proj_size=256,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
    ),
}


def make_preset_checkpoint(preset: str, out_dir: str | Path, labels=DEFAULT_LABELS, seed: int = 0) -> Path:
    """Write a random-init checkpoint of ``preset`` ("tiny" or "base") to ``out_dir``.

    Deterministic for a given seed. The result is untrained: its answers are
    meaningless, but its shapes and numerics are those of the real thing.
    """
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    out_dir = Path(out_dir)
    config = Wav2Vec2Config(
        **PRESETS[preset],
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        architectures=[ARCHITECTURE],
    )
    torch.manual_seed(seed)
    model = Wav2Vec2ForSequenceClassification(config).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    # wav2vec2-base's preprocessing: per-utterance zero-mean unit-variance, no attention mask.
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16_000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=False,
    ).save_pretrained(out_dir)
    return out_dir
