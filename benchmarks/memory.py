"""Peak memory of one training step or one generate() call, each in a fresh process.

    python -m benchmarks.memory --preset base --what train --model ofa

Prints one JSON line: the resident set size once the model and inputs are built, and its peak
during the measured call (the kernel's high-water mark, reset just before the call, so set-up
does not count); on CUDA also the peak allocated device memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

import torch


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # since the process started


def measure(preset: str, what: str, model_name: str, device: str, threads: int) -> dict:
    from ofa_plus import OFAPlusProcessor  # noqa: PLC0415

    from .common import build_pair, device_and_dtype, real_batch, tensors  # noqa: PLC0415
    from .generation import TASK, generate_fn, generation_config  # noqa: PLC0415
    from .train_step import TEXT_TASK, make_step  # noqa: PLC0415

    torch.set_num_threads(threads)
    device, dtype = device_and_dtype(device)
    ofa, bart = build_pair(preset, device, dtype, with_bart=model_name == "bart")
    model = bart if model_name == "bart" else ofa
    processor = OFAPlusProcessor.for_config(ofa.config)
    if model_name == "bart":
        del ofa
    if what == "train":
        inputs = tensors(real_batch(TEXT_TASK, processor, 8), device, dtype)
        run = make_step(model, inputs, is_bart=model_name == "bart")
        label = f"training step, {TEXT_TASK} batch 8, AdamW"
    else:
        inputs = tensors(real_batch(TASK, processor, 16), device, dtype)
        run = generate_fn(model, inputs, generation_config(model, 5, 32))
        label = f"generate(), {TASK} batch 16, beam 5, 32 new tokens"
    built = current_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    reset = reset_peak_rss()
    run()
    out = {
        "preset": preset,
        "what": what,
        "model": model_name,
        "workload": label,
        "rss_after_build_bytes": built,
        "peak_rss_bytes": peak_rss(),
        "peak_is_of_the_call_only": reset,
    }
    if device.type == "cuda":
        out["peak_cuda_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
    return out


def in_subprocess(preset: str, what: str, model_name: str, device: str, threads: int, timeout: float) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--preset",
        preset,
        "--what",
        what,
        "--model",
        model_name,
        "--device",
        device,
        "--threads",
        str(threads),
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="base")
    p.add_argument("--what", choices=["train", "generate"], default="train")
    p.add_argument("--model", choices=["ofa", "bart"], default="ofa")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)
    print(json.dumps(measure(args.preset, args.what, args.model, args.device, args.threads)))


if __name__ == "__main__":
    main()
