"""The README's inference example: build a tiny OFA+ from the preset, run instructions on an image,
save, reload through the Auto classes offline, run again and check the outputs are identical.

    python -m ofa_plus.demo [--output DIR]

The model is freshly initialised (no weights are downloaded), so its answers are not meaningful
yet; the training issue's main job replaces this with real multi-task training.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from PIL import Image, ImageDraw
from transformers import AutoModelForSeq2SeqLM, AutoProcessor

from . import OFAPlusConfig, OFAPlusForConditionalGeneration, OFAPlusProcessor

INSTRUCTIONS = {
    "caption": ("[IMAGE:image] what does the image describe? -> [TEXT:caption]", {}),
    "grounding": ('[IMAGE:image] which region does the text " [TEXT:text] " describe? -> [BOX:region]',
                  {"text": "the red square"}),
    "yes/no": ("[IMAGE:image] is there a [TEXT:thing] in the image? -> [TEXT:answer,closed_set=yes|no]",
               {"thing": "circle"}),
}


def example_image() -> Image.Image:
    image = Image.new("RGB", (200, 120), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 30, 80, 90), fill="red")
    draw.ellipse((120, 20, 180, 80), fill="blue")
    return image


def run_all(model, processor, image) -> dict:
    outputs = {}
    for name, (instruction, columns) in INSTRUCTIONS.items():
        inputs = processor(instruction, image=image, **columns)
        generated = model.generate(**inputs, num_beams=3, max_new_tokens=12)
        outputs[name] = processor.postprocess(generated, inputs)[0]
    return outputs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", help="where to save the model (default: a temporary folder)")
    parser.add_argument("--preset", default="tiny", choices=["tiny", "base", "large"])
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    config = OFAPlusConfig.from_preset(args.preset)
    model = OFAPlusForConditionalGeneration(config).eval()
    processor = OFAPlusProcessor.from_preset(args.preset)
    print(f"OFA+ {args.preset}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    image = example_image()
    before = run_all(model, processor, image)

    output = args.output or tempfile.mkdtemp(prefix="ofa_plus_demo_")
    model.save_pretrained(output)
    processor.save_pretrained(output)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(output).eval()
    after = run_all(reloaded, AutoProcessor.from_pretrained(output), image)
    for name, value in before.items():
        print(f"{name:>10}: {value!r}")
    if before != after:
        raise SystemExit(f"outputs differ after save/load: {before} vs {after}")
    print(f"saved to {output}; reloaded with AutoModelForSeq2SeqLM/AutoProcessor: identical outputs")


if __name__ == "__main__":
    main()
