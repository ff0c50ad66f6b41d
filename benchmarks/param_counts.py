"""Print parameter counts of the tiny / base / large presets (built on the meta device: no memory, no init).

    python benchmarks/param_counts.py

OFA's published sizes: OFA-tiny 33M, OFA-base 180M, OFA-large 470M (those include OFA's 59k-row vocabulary;
our tiny preset uses a 17.5k-row one).
"""

from __future__ import annotations

import torch

from ofa_plus import PRESETS, OFAPlusConfig, OFAPlusForConditionalGeneration

OFA_SIZES = {"tiny": 33e6, "base": 180e6, "large": 470e6}


def count(name: str) -> dict[str, int]:
    config = OFAPlusConfig.from_preset(name)
    with torch.device("meta"):
        model = OFAPlusForConditionalGeneration(config)
    core = model.model
    parts = {
        "total": sum(p.numel() for p in model.parameters()),  # tied embeddings / lm_head counted once
        "embeddings": core.shared.weight.numel(),
        "image_adaptor": sum(p.numel() for p in core.encoder.image_adaptor.parameters()),
        "encoder_layers": sum(p.numel() for p in core.encoder.layers.parameters()),
        "decoder_layers": sum(p.numel() for p in core.decoder.layers.parameters()),
    }
    return parts


def main() -> None:
    columns = ["total", "embeddings", "image_adaptor", "encoder_layers", "decoder_layers"]
    print(f"{'preset':<7} " + " ".join(f"{c:>15}" for c in columns) + f" {'OFA':>8} {'ratio':>6}")
    for name in PRESETS:
        parts = count(name)
        ratio = parts["total"] / OFA_SIZES[name] if name in OFA_SIZES else float("nan")
        print(
            f"{name:<7} "
            + " ".join(f"{parts[c] / 1e6:>14.1f}M" for c in columns)
            + f" {OFA_SIZES.get(name, float('nan')) / 1e6:>7.0f}M {ratio:>6.2f}"
        )


if __name__ == "__main__":
    main()
