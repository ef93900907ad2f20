"""Random-init checkpoints of a few fixed shapes and structures, made locally (nothing is downloaded).

Shapes (``PRESETS``): ``tiny`` for unit tests, ``small`` for the demo model
trained here, ``base`` (wav2vec2-base's shape) for benchmarks. Structures
(``STRUCTURES``): the fields of published emotion checkpoints that decide how
they load and batch (model_type, conv norm, stable layer norm, weighted layer
sum, preprocessing), applied to any shape.
"""

from __future__ import annotations

from pathlib import Path

from ser_serve.model.checkpoint import SUPPORTED_MODEL_TYPES

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


# Structural fields of published speech-emotion checkpoints' config.json
# ("config") and preprocessor_config.json ("extractor"); everything else
# comes from the shape. Each names the kind of checkpoint it mirrors.
STRUCTURES = {
    # wav2vec2-base fine-tunes (and this project's demo): group-norm conv, post-LN encoder, no attention mask.
    "wav2vec2-base": dict(model_type="wav2vec2", config=dict(feat_extract_norm="group", do_stable_layer_norm=False),
                          extractor=dict(do_normalize=True, return_attention_mask=False)),
    # superb/wav2vec2-base-superb-er: as base, with a learned weighted sum of all layers.
    "wav2vec2-base-weighted": dict(model_type="wav2vec2", config=dict(feat_extract_norm="group", do_stable_layer_norm=False,
                                                                      use_weighted_layer_sum=True),
                                   extractor=dict(do_normalize=True, return_attention_mask=False)),
    # XLSR / large-lv60 / large-robust fine-tunes: layer-norm conv with bias, pre-LN ("stable") encoder, attention mask.
    "wav2vec2-large": dict(model_type="wav2vec2", config=dict(feat_extract_norm="layer", do_stable_layer_norm=True,
                                                              conv_bias=True),
                           extractor=dict(do_normalize=True, return_attention_mask=True)),
    # superb/wav2vec2-large-superb-er: the large layout with a weighted layer sum.
    "wav2vec2-large-weighted": dict(model_type="wav2vec2", config=dict(feat_extract_norm="layer", do_stable_layer_norm=True,
                                                                       conv_bias=True, use_weighted_layer_sum=True),
                                    extractor=dict(do_normalize=True, return_attention_mask=True)),
    # superb/hubert-base-superb-er: group-norm conv, weighted layer sum, raw (unnormalised) input.
    "hubert-base-weighted": dict(model_type="hubert", config=dict(feat_extract_norm="group", do_stable_layer_norm=False,
                                                                  use_weighted_layer_sum=True),
                                 extractor=dict(do_normalize=False, return_attention_mask=False)),
    # superb/hubert-large-superb-er: layer-norm conv, stable layer norm, weighted layer sum.
    "hubert-large-weighted": dict(model_type="hubert", config=dict(feat_extract_norm="layer", do_stable_layer_norm=True,
                                                                   conv_bias=True, use_weighted_layer_sum=True),
                                  extractor=dict(do_normalize=True, return_attention_mask=True)),
    # microsoft/wavlm-base-plus fine-tunes: group-norm conv, relative position bias, raw input, attention mask.
    "wavlm-base-plus": dict(model_type="wavlm", config=dict(feat_extract_norm="group", do_stable_layer_norm=False),
                            extractor=dict(do_normalize=False, return_attention_mask=True)),
    # microsoft/wavlm-large fine-tunes (SUPERB-style): layer-norm conv, stable layer norm, weighted layer sum.
    "wavlm-large-weighted": dict(model_type="wavlm", config=dict(feat_extract_norm="layer", do_stable_layer_norm=True,
                                                                 conv_bias=False, use_weighted_layer_sum=True),
                                 extractor=dict(do_normalize=True, return_attention_mask=True)),
    # facebook/data2vec-audio-base fine-tunes: layer-norm conv (always), a stack of 5 positional convolutions.
    "data2vec-audio-base": dict(model_type="data2vec-audio", config=dict(num_conv_pos_embeddings=5, conv_pos_kernel_size=19),
                                extractor=dict(do_normalize=True, return_attention_mask=True)),
}
# Fields of a wav2vec2 shape that mean something else (or nothing) in data2vec-audio.
_NOT_DATA2VEC = ("num_conv_pos_embeddings", "feat_extract_norm", "do_stable_layer_norm")


def make_preset_checkpoint(
    preset: str,
    out_dir: str | Path,
    labels=DEFAULT_LABELS,
    seed: int = 0,
    structure: str = "wav2vec2-base",
    **config_overrides,
) -> Path:
    """Write a random-init checkpoint of shape ``preset`` and structure ``structure`` to ``out_dir``.

    ``config_overrides`` go into config.json last (e.g.
    ``problem_type="multi_label_classification"``). Deterministic for a
    given seed. The result is untrained: its answers are meaningless, but its
    shapes and numerics are those of the real thing.
    """
    import torch
    from transformers import AutoConfig, AutoModelForAudioClassification, Wav2Vec2FeatureExtractor

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if structure not in STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}; choose one of {sorted(STRUCTURES)}")
    out_dir = Path(out_dir)
    model_type = STRUCTURES[structure]["model_type"]
    fields = {k: v for k, v in PRESETS[preset].items() if model_type != "data2vec-audio" or k not in _NOT_DATA2VEC}
    config = AutoConfig.for_model(
        model_type,
        **{**fields, **STRUCTURES[structure]["config"], **config_overrides},
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        architectures=[SUPPORTED_MODEL_TYPES[model_type]],
    )
    torch.manual_seed(seed)
    model = AutoModelForAudioClassification.from_config(config).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, **STRUCTURES[structure]["extractor"]
    ).save_pretrained(out_dir)
    return out_dir
