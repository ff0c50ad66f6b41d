"""OFAPlusConfig: strict types, one validator per concern, old config.json files, save/load."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError

from ofa_plus import OFAPlusConfig
from ofa_plus.configuration_ofa_plus import MelSettings, image_grid_size

SAVED_MODEL = Path(__file__).parent / "fixtures" / "saved_model"


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(d_model="big"), "d_model"),
        (dict(normformer=1), "normformer"),
        (dict(image_backbone=18), "image_backbone"),
        (dict(adaptors=["IMAGE", 3]), "adaptors"),
        (dict(output_kinds="tokens"), "output_kinds"),
        (dict(tts_mel_mean="loud"), "tts_mel_mean"),
    ],
)
def test_wrong_type_is_an_error(overrides, field):
    with pytest.raises(StrictDataclassFieldValidationError, match=f"field '{field}'"):
        OFAPlusConfig(**overrides)


def test_wrong_type_on_assignment_is_an_error():
    config = OFAPlusConfig()
    with pytest.raises(StrictDataclassFieldValidationError, match="field 'image_size'"):
        config.image_size = "128"


@pytest.mark.parametrize(
    "overrides, validator, message",
    [
        (dict(d_model=250), "validate_architecture", "d_model 250 is not divisible by encoder_attention_heads 4"),
        (
            dict(decoder_attention_heads=3),
            "validate_architecture",
            "d_model 256 is not divisible by decoder_attention_heads 3",
        ),
        (dict(image_backbone="vit"), "validate_image", "image_backbone must be one of"),
        (dict(image_backbone_stages=5), "validate_image", r"image_backbone_stages must be 1..4"),
        (dict(image_size=100), "validate_image", "image_size 100 must be a multiple of the backbone stride 16"),
        (
            dict(image_size=1024),
            "validate_image",
            "image_size 1024 gives a 64x64 patch grid, larger than image_bucket_size=42",
        ),
        (dict(num_bins=1001), "validate_bins", r"num_bins must be 2..1000 \(the vocabulary's location bins\)"),
        (dict(audio_feature_size=6), "validate_audio", "audio_feature_size 6 is too small for 4x subsampling"),
        (dict(vocab_size=100), "validate_vocabulary", "vocab_size 100 is smaller than the reserved ranges"),
        (dict(vocabulary_layout_version=99), "validate_vocabulary", "checkpoint uses vocabulary layout v99"),
        (dict(tts_f_max=9000.0), "validate_speech", "need 0 < tts_f_min < tts_f_max <= tts_sampling_rate / 2"),
        (dict(tts_win_length=2048), "validate_speech", "tts_win_length 2048 is longer than tts_n_fft 1024"),
        (dict(tts_postnet_kernel=4), "validate_speech", "the post-net needs >= 2 layers and an odd kernel"),
        (dict(tts_max_frames=5000), "validate_speech", "tts_max_frames=5000 at 2 frames per step needs more"),
        (dict(tts_mel_std=[1.0] * 3), "validate_speech", "tts_mel_std has 3 values for 80 mel bins"),
        (dict(adaptors=["AUDIO", "AUDIO"]), "validate_modalities", r"adaptors lists \['AUDIO'\] more than once"),
        (dict(output_kinds=["speech"]), "validate_modalities", "output_kinds must contain 'tokens'"),
    ],
)
def test_each_validator_names_the_problem(overrides, validator, message):
    with pytest.raises(StrictDataclassClassValidationError, match=validator) as info:
        OFAPlusConfig(**overrides)
    assert isinstance(info.value.__cause__, ValueError)  # the message of the check itself, unchanged
    assert re.match(message, str(info.value.__cause__))


def test_numbers_may_be_ints_and_mel_stats_tuples_are_stored_as_lists():
    config = OFAPlusConfig(tts_f_min=80, init_std=1, tts_mel_mean=tuple([0.5] * 80), tts_mel_std=2.0)
    assert config.tts_f_min == 80 and config.init_std == 1
    assert config.tts_mel_mean == [0.5] * 80 and config.tts_mel_std == 2.0
    assert json.loads(config.to_json_string())["tts_mel_mean"] == [0.5] * 80


def test_defaults_and_presets():
    config = OFAPlusConfig()
    assert config.adaptors == ["IMAGE", "AUDIO"] and config.output_kinds == ["tokens", "speech"]
    assert config.task_cards == [] and OFAPlusConfig(task_cards=None).task_cards == []
    config.adaptors.append("VIDEO")  # each config has its own list
    assert OFAPlusConfig().adaptors == ["IMAGE", "AUDIO"]
    assert config.hidden_size == config.d_model and config.num_hidden_layers == config.encoder_layers
    base = OFAPlusConfig.from_preset("base")
    assert (base.d_model, base.image_grid_size, base.image_tokens) == (768, 30, 900)
    assert image_grid_size(480, 3) == 30 and image_grid_size(128, 2) == 16
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        OFAPlusConfig.from_preset("huge")


def test_tts_defaults_are_mel_settings_defaults():
    assert MelSettings.from_config(OFAPlusConfig()) == MelSettings()
    settings = MelSettings.from_config(OFAPlusConfig(tts_mel_mean=[0.0] * 80, tts_hop_length=200))
    assert settings.mel_mean == (0.0,) * 80 and settings.hop_length == 200
    assert MelSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(ValueError, match=r"unknown TTS settings \['hop'\]"):
        MelSettings.from_dict({"hop": 1})


def test_old_config_json_loads_with_the_new_fields_defaulted():
    old = json.loads((SAVED_MODEL / "config.json").read_text())
    assert "adaptors" not in old and "output_kinds" not in old  # written by 0.1.0
    config = OFAPlusConfig.from_pretrained(SAVED_MODEL)
    assert config.adaptors == ["IMAGE", "AUDIO"] and config.output_kinds == ["tokens", "speech"]
    loaded = config.to_dict()
    for key, value in old.items():
        if key != "transformers_version":
            assert loaded[key] == value, key


def test_save_load_round_trip(tmp_path):
    config = OFAPlusConfig.from_preset(
        "tiny",
        image_size=64,
        adaptors=["AUDIO"],
        output_kinds=["tokens"],
        tts_mel_mean=(0.25,) * 80,
        task_cards=[{"name": "caption"}],
    )
    config.save_pretrained(tmp_path)
    again = OFAPlusConfig.from_pretrained(tmp_path)
    assert again.to_dict() == config.to_dict()
    assert again.adaptors == ["AUDIO"] and again.tts_mel_mean == [0.25] * 80


def test_a_bad_saved_config_is_refused(tmp_path):
    config = json.loads((SAVED_MODEL / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "d_model": 33}))
    with pytest.raises(StrictDataclassClassValidationError, match="validate_architecture"):
        OFAPlusConfig.from_pretrained(tmp_path)
