"""Image backbones: MobileNetV2 blocks and starting a CNN from a torchvision checkpoint."""

from __future__ import annotations

import pytest
import torch
import torchvision

from conftest import digit_image, small_model
from ofa_plus import OFAPlusForConditionalGeneration, OFAPlusProcessor
from ofa_plus.modalities.image import IMAGENET_MEAN, IMAGENET_STD

CAPTION = "[IMAGE:image] what does the image describe? -> [TEXT:caption]"


def torchvision_checkpoint(name: str, seed: int = 3) -> tuple[torch.nn.Module, dict]:
    """A torchvision model with random weights and non-trivial BatchNorm statistics, and its state dict."""
    torch.manual_seed(seed)
    cnn = getattr(torchvision.models, name)(weights=None)
    for module in cnn.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    return cnn.eval(), cnn.state_dict()


@pytest.mark.parametrize("name, stages, cut", [("mobilenet_v2", 3, 14), ("mobilenet_v2", 2, 7), ("resnet18", 2, None)])
def test_loaded_backbone_computes_what_torchvision_computes(name, stages, cut):
    cnn, checkpoint = torchvision_checkpoint(name)
    model = small_model(image_backbone=name, image_backbone_stages=stages, image_backbone_pretrained=True)
    adaptor = model.model.encoder.image_adaptor
    adaptor.load_backbone_weights(checkpoint)

    pixels = torch.rand(2, 3, 64, 64)
    imagenet = torchvision.transforms.functional.normalize(pixels, IMAGENET_MEAN, IMAGENET_STD)
    with torch.no_grad():
        if cut is None:
            expected = torch.nn.Sequential(cnn.conv1, cnn.bn1, cnn.relu, cnn.maxpool, cnn.layer1, cnn.layer2)(imagenet)
        else:
            expected = cnn.features[:cut](imagenet)
        # the processor normalises with mean = std = 0.5; the adaptor must undo that for ImageNet weights
        got = adaptor.backbone(
            ((pixels - 0.5) / 0.5 * 0.5 + 0.5 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        )
        features = adaptor((pixels - 0.5) / 0.5)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    stride = 2 ** (stages + 1)
    assert features.shape == (2, (64 // stride) ** 2, model.config.d_model)
    torch.testing.assert_close(features, adaptor.proj(expected.flatten(2).transpose(1, 2)), atol=1e-5, rtol=1e-5)


def test_pretrained_backbone_keeps_its_batchnorm_statistics_in_training():
    _, checkpoint = torchvision_checkpoint("mobilenet_v2")
    model = small_model(image_backbone="mobilenet_v2", image_backbone_pretrained=True)
    adaptor = model.model.encoder.image_adaptor
    adaptor.load_backbone_weights(checkpoint)
    pixels = torch.rand(4, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        evaluated = adaptor(pixels)
        model.train()
        trained = adaptor(pixels)
        alone = adaptor(pixels[:1])  # a batch's own statistics would change a row's features
    torch.testing.assert_close(trained, evaluated)
    torch.testing.assert_close(alone, evaluated[:1])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in adaptor.modules())
    assert adaptor.backbone[0][1].running_var.equal(checkpoint["features.0.1.running_var"])


def test_wrong_checkpoint_and_unprepared_model_are_refused():
    model = small_model(image_backbone="mobilenet_v2", image_backbone_pretrained=True)
    _, resnet = torchvision_checkpoint("resnet18")
    with pytest.raises(ValueError, match=r"lacks \d+ tensor\(s\), e.g. \['features.0.0.weight'.*mobilenet_v2"):
        model.model.encoder.image_adaptor.load_backbone_weights(resnet)
    plain = small_model(image_backbone="mobilenet_v2")
    with pytest.raises(ValueError, match="image_backbone_pretrained=True"):
        plain.model.encoder.image_adaptor.load_backbone_weights(torchvision_checkpoint("mobilenet_v2")[1])


def test_pretrained_backbone_round_trips_through_save_pretrained(tmp_path):
    _, checkpoint = torchvision_checkpoint("mobilenet_v2")
    model = small_model(image_backbone="mobilenet_v2", image_backbone_pretrained=True)
    model.model.encoder.image_adaptor.load_backbone_weights(checkpoint)
    processor = OFAPlusProcessor.for_config(model.config)
    model.save_pretrained(tmp_path)
    loaded = OFAPlusForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.image_backbone == "mobilenet_v2" and loaded.config.image_backbone_pretrained
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys() and all(torch.equal(state[k], loaded_state[k]) for k in state)
    inputs = processor(CAPTION, image=[digit_image(3), digit_image(7)])
    with torch.no_grad():
        out, loaded_out = model.generate(**inputs, max_new_tokens=4), loaded.generate(**inputs, max_new_tokens=4)
    assert torch.equal(out, loaded_out)


def test_trainer_builds_a_pretrained_backbone_and_config_overrides(tmp_path):
    from ofa_plus.train import build_model, parse_args, parse_config_overrides

    _, checkpoint = torchvision_checkpoint("mobilenet_v2")
    torch.save(checkpoint, tmp_path / "mobilenet.pth")
    args = parse_args(
        [
            "--cards",
            "x",
            "--output",
            str(tmp_path),
            "--image-size",
            "64",
            "--image-backbone",
            "mobilenet_v2",
            "--backbone-weights",
            str(tmp_path / "mobilenet.pth"),
            "--config-overrides",
            "d_model=128, encoder_ffn_dim=512,label_smoothing=0.0",
        ]
    )
    model, processor = build_model(args, [])
    config = model.config
    assert (
        config.image_backbone,
        config.image_backbone_pretrained,
        config.d_model,
        config.encoder_ffn_dim,
        config.label_smoothing,
    ) == ("mobilenet_v2", True, 128, 512, 0.0)
    loaded = model.model.encoder.image_adaptor.backbone[0][1].running_mean
    assert loaded.equal(checkpoint["features.0.1.running_mean"])
    assert processor.image_size == 64
    with pytest.raises(ValueError, match=r"'d_modle=1' is not KEY=VALUE with KEY a field of OFAPlusConfig"):
        parse_config_overrides("d_modle=1")
    with pytest.raises(ValueError, match=r"'d_model' is not KEY=VALUE"):
        parse_config_overrides("d_model")
