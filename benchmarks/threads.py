"""Seconds per pipeline call against torch's intra-op thread count (the pipeline's ``num_threads``).

    python -m benchmarks.threads                       # tiny preset, 1..cores threads and "auto"
    python -m benchmarks.threads --preset base --repeats 5

One text-to-text call (greedy, 8 new tokens) and one image-to-closed-set call per round, on a
model with random weights (the timing does not depend on them). Thread counts alternate within
each round; the table gives medians. The load average at the start says how busy the machine was.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from transformers import pipeline

from ofa_plus import OFAPlusConfig, OFAPlusForConditionalGeneration, OFAPlusProcessor
from ofa_plus.threads import free_cores

CALLS = {
    "text": ('what is the name of the character " [TEXT:character] "? -> [TEXT:name]', {"character": "a"}),
    "image": ("[IMAGE:image] what does the image describe? -> [TEXT:label,closed_set]", {}),
}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    cores = os.cpu_count() or 1
    counts = sorted({1, 2, cores} & set(range(1, cores + 1))) + ["auto"]
    print(f"{cores} cores, load average {os.getloadavg()[0]:.2f}, torch default {torch.get_num_threads()} threads")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8))
    with tempfile.TemporaryDirectory() as folder:
        config = OFAPlusConfig.from_preset(args.preset)
        OFAPlusForConditionalGeneration(config).save_pretrained(folder)
        OFAPlusProcessor.for_config(config).save_pretrained(folder)
        pipe = pipeline("ofa-plus", model=folder, device="cpu")
        times = {(name, n): [] for name in CALLS for n in counts}
        for round_ in range(args.repeats + 1):  # round 0 warms up
            for n in counts[round_ % len(counts) :] + counts[: round_ % len(counts)]:
                for name, (instruction, columns) in CALLS.items():
                    extra = {"image": image, "closed_set": ["yes", "no"]} if name == "image" else {}
                    started = time.perf_counter()
                    pipe(instruction, **columns, **extra, num_threads=n, max_new_tokens=8, num_beams=1)
                    if round_:
                        times[(name, n)].append(time.perf_counter() - started)
    print(f"\n{args.preset}: median seconds per call over {args.repeats} rounds (auto = {free_cores()} now)")
    print(f"{'threads':>8} " + " ".join(f"{name:>10}" for name in CALLS))
    for n in counts:
        print(f"{n!s:>8} " + " ".join(f"{statistics.median(times[(name, n)]):>10.4f}" for name in CALLS))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
