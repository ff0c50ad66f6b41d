"""OFA+ benchmarks against transformers' BartForConditionalGeneration with the same dimensions.

    python -m benchmarks.run                      # tiny and base, all sections, ~7 min on 2 CPU cores
    python -m benchmarks.run --presets tiny --quick   # a smoke run (~1 min)

Sections: (1) training step OFA+ vs BART, text path, and OFA+'s image+text path; (2) generation
tokens/s, greedy and beam-5, batch 1 and 16; (3) matmul FLOP/s at the model's shapes, analytic
step FLOPs and MFU, with a profile of where a base step's time goes; (4) padding in the trainer's
multi-task batches with and without bucketing, and the data pipeline's rate against the trainer's
consumption; (5) peak RSS of a base training step and of base generation. Prints a table and
writes everything (every timing included) to --output as JSON. On a CUDA machine the models run
in bf16 and MFU is taken against the GPU's measured bf16 matmul rate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from . import batching, generation, hardware, memory, train_step
from .common import choose_threads, device_and_dtype, machine

# Repeats and per-measurement time budgets (s); a measurement stops after its budget once it has
# 3 rounds. Base-size steps take seconds each on 2 CPU cores, so base gets fewer, longer rounds.
PLAN = {
    "tiny": dict(
        train_repeats=15,
        train_budget=60,
        image_batch=8,
        image_repeats=8,
        image_budget=25,
        gen_tokens=32,
        gen_repeats=7,
        gen_budget=18,
        matmul_repeats=5,
    ),
    "base": dict(
        train_repeats=7,
        train_budget=80,
        image_batch=2,
        image_repeats=3,
        image_budget=40,
        gen_tokens=16,
        gen_repeats=3,
        gen_budget=25,
        matmul_repeats=3,
    ),
}
QUICK = dict(
    train_repeats=3,
    train_budget=5,
    image_batch=2,
    image_repeats=3,
    image_budget=5,
    gen_tokens=8,
    gen_repeats=3,
    gen_budget=3,
    matmul_repeats=2,
)
GEN_CASES = [(1, 1), (1, 16), (5, 1), (5, 16)]  # (num_beams, batch)
SECTIONS = ("train", "generate", "hardware", "batching", "memory")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="benchmarks.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--presets", nargs="+", default=["tiny", "base"], choices=sorted(PLAN))
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--device", default="auto", help="auto: cuda when available, else cpu")
    p.add_argument("--threads", default="auto", help="intra-op threads, or auto: the cores not busy at start")
    p.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="wall time, or this process's CPU time (steadier on a shared CPU; not for CUDA)",
    )
    p.add_argument("--quick", action="store_true", help="few repeats: a smoke run, not a measurement")
    p.add_argument("--memory-bart", action="store_true", help="also measure BART's peak memory")
    p.add_argument("--output", default="benchmarks/results.json")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(choose_threads(args.threads))
    device, dtype = device_and_dtype(args.device)
    clock = time.process_time if args.clock == "cpu" and device.type == "cpu" else time.perf_counter
    results = {
        "machine": machine(device),
        "dtype": str(dtype).replace("torch.", ""),
        "clock": args.clock,
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "presets": {},
    }
    print(
        f"# {results['machine']['cpu']}, {results['machine']['cores']} cores, {torch.get_num_threads()} "
        f"thread(s), load average {results['machine']['load_average_1m']}, {device} {results['dtype']}"
    )

    for preset in args.presets:
        plan = {**PLAN[preset], **(QUICK if args.quick else {})}
        out = results["presets"][preset] = {}
        if "train" in args.sections or "hardware" in args.sections:
            _log(started, f"{preset}: training step, text path")
            out["train_text"] = train_step.text_step(
                preset, device, dtype, plan["train_repeats"], plan["train_budget"], clock=clock
            )
            _log(started, f"{preset}: training step, image+text path")
            out["train_image"] = train_step.image_step(
                preset, device, dtype, plan["image_repeats"], plan["image_budget"], plan["image_batch"], clock=clock
            )
        if "generate" in args.sections:
            _log(started, f"{preset}: generation")
            out["generation"] = generation.bench_generation(
                preset,
                device,
                dtype,
                GEN_CASES,
                plan["gen_tokens"],
                plan["gen_repeats"],
                plan["gen_budget"],
                clock=clock,
            )
        if "hardware" in args.sections:
            _log(started, f"{preset}: matmul rate, FLOPs, MFU")
            out["hardware"] = hardware_section(
                preset, device, dtype, out["train_text"], out["train_image"], plan["matmul_repeats"]
            )
    if "batching" in args.sections:
        _log(started, "batching: padding share")
        count = 4 if args.quick else 30  # batches per task, from the start of the first epoch
        results["batching"] = {
            "padding": batching.padding_share("tiny", count),
            # the main job (`make run`): tiny at 64 px, batch 8 for every task
            "padding_main_job": batching.padding_share("tiny", count, image_size=64, batch_size=8),
        }
        _log(started, "batching: data pipeline rate")
        seconds = 3 if args.quick else 8
        results["batching"]["pipeline"] = [batching.pipeline_rate("tiny", w, seconds) for w in (0, 2)]
        tiny = results["presets"].get("tiny", {})
        results["batching"]["consumption_rows_per_s"] = {
            path: tiny[key]["batch"] / (tiny[key]["ofa_s"])
            for path, key in (("text", "train_text"), ("image", "train_image"))
            if key in tiny
        }
    if "memory" in args.sections:
        preset = "base" if "base" in args.presets else args.presets[-1]
        models = ["ofa", "bart"] if args.memory_bart else ["ofa"]
        results["memory"] = []
        for what in ("train", "generate"):
            for model in models:
                _log(started, f"memory: {preset} {model} {what}")
                results["memory"].append(
                    memory.in_subprocess(preset, what, model, args.device, torch.get_num_threads(), timeout=300)
                )
    results["elapsed_s"] = time.perf_counter() - started
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))
    print(render(results))
    print(f"\nwrote {args.output} in {results['elapsed_s']:.0f} s")
    return results


def hardware_section(preset, device, dtype, text: dict, image: dict, repeats: int) -> dict:
    from ofa_plus import OFAPlusConfig, OFAPlusProcessor  # noqa: PLC0415

    from .common import build_pair, real_batch, tensors  # noqa: PLC0415

    config = OFAPlusConfig.from_preset(preset)
    b, enc, dec = text["batch"], text["encoder_tokens"], text["decoder_tokens"]
    shapes = hardware.linear_shapes(config, b, enc, dec)
    rate = hardware.matmul_rate(shapes, device, dtype, repeats)
    square = hardware.square_rate(device, dtype, repeats=repeats)
    ofa_flops = hardware.step_flops(config, b, enc, dec)
    bart_flops = hardware.step_flops(config, b, enc, dec, position_bias=False)
    out = {
        "matmul_flop_per_s": rate["flop_per_s"],
        "square_matmul_flop_per_s": square,
        "per_shape": rate["per_shape"],
        "ofa_step_flops": ofa_flops,
        "bart_step_flops": bart_flops,
        "ofa_mfu": ofa_flops / text["ofa_s"] / rate["flop_per_s"],
        "bart_mfu": bart_flops / text["bart_s"] / rate["flop_per_s"],
    }
    # cross-checks with the FLOPs torch counts from the ops it runs, and the image path's count
    ofa, _ = build_pair(preset, device, dtype, with_bart=False)
    processor = OFAPlusProcessor.for_config(ofa.config)
    text_inputs = tensors(real_batch(train_step.TEXT_TASK, processor, b), device, dtype)
    image_inputs = tensors(real_batch(train_step.IMAGE_TASK, processor, image["batch"]), device, dtype)
    out["ofa_step_flops_counted"] = hardware.counted_flops(train_step.make_step(ofa, text_inputs))
    out["image_step_flops_counted"] = hardware.counted_flops(train_step.make_step(ofa, image_inputs))
    out["image_mfu"] = out["image_step_flops_counted"] / image["ofa_s"] / rate["flop_per_s"]
    optimizer = torch.optim.AdamW(ofa.parameters(), lr=1e-5, weight_decay=0.01, fused=True)
    hardware.profile_step(lambda: ofa(**text_inputs).loss, optimizer)  # warm-up: AdamW allocates its state
    out["profile"] = hardware.profile_step(lambda: ofa(**text_inputs).loss, optimizer)
    return out


def _log(started: float, message: str) -> None:
    print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)


def _gf(x: float) -> str:
    return f"{x / 1e9:,.0f}" if x >= 1e10 else f"{x / 1e9:,.1f}"


def render(results: dict) -> str:
    """The tables printed at the end (and pasted into benchmarks/README.md)."""
    lines = []
    presets = results["presets"]
    if any("train_text" in p for p in presets.values()):
        lines += [
            "",
            "## 1. Training step (forward + backward + AdamW), median seconds per step",
            "| preset | path | batch x enc / dec tokens | OFA+ s | BART s | OFA+/BART | spread OFA+ / BART | rounds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, p in presets.items():
            if "train_text" not in p:
                continue
            t, i = p["train_text"], p["train_image"]
            lines.append(
                f"| {name} | text ({t['task']}) | {t['batch']} x {t['encoder_tokens']} / {t['decoder_tokens']} "
                f"| {t['ofa_s']:.3f} | {t['bart_s']:.3f} | **{t['ratio']:.2f}** | "
                f"{t['spread']['ofa']:.0%} / {t['spread']['bart']:.0%} | {t['rounds']} |"
            )
            lines.append(
                f"| {name} | image+text ({i['task']}, {i['image_size']} px = {i['patch_tokens_per_image']} "
                f"patches) | {i['batch']} x {i['encoder_tokens']} / {i['decoder_tokens']} | {i['ofa_s']:.3f} "
                f"({i['per_sample_s']:.3f} per sample) | - | - | {i['spread']:.0%} | {i['rounds']} |"
            )
    if any("generation" in p for p in presets.values()):
        lines += [
            "",
            "## 2. Generation, tokens/s (generated tokens per input row, encoder pass included)",
            "| preset | search | batch | enc tokens | new tokens | OFA+ tok/s | BART tok/s | OFA+/BART | rounds |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, p in presets.items():
            for g in p.get("generation", []):
                search = "greedy" if g["num_beams"] == 1 else f"beam-{g['num_beams']}"
                lines.append(
                    f"| {name} | {search} | {g['batch']} | {g['encoder_tokens']} | {g['new_tokens']} | "
                    f"{g['ofa_tokens_per_s']:.1f} | {g['bart_tokens_per_s']:.1f} | **{g['ratio']:.2f}** | "
                    f"{g['rounds']} |"
                )
    if any("hardware" in p for p in presets.values()):
        lines += [
            "",
            "## 3. Hardware limit and utilisation (text-path training step)",
            "| preset | step GFLOP (formula / torch count) | matmul GFLOP/s at model shapes | "
            "2048² matmul GFLOP/s | OFA+ MFU | BART MFU | image-path MFU |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, p in presets.items():
            h = p.get("hardware")
            if h:
                lines.append(
                    f"| {name} | {_gf(h['ofa_step_flops'])} / {_gf(h['ofa_step_flops_counted'])} | "
                    f"{_gf(h['matmul_flop_per_s'])} | {_gf(h['square_matmul_flop_per_s'])} | "
                    f"**{h['ofa_mfu']:.0%}** | {h['bart_mfu']:.0%} | {h['image_mfu']:.0%} |"
                )
        for name, p in presets.items():
            prof = p.get("hardware", {}).get("profile")
            if prof:
                phases = ", ".join(f"{k} {v:.2f} s" for k, v in prof["phases_s"].items())
                cats = ", ".join(f"{k} {v:.0%}" for k, v in prof["categories_share"].items())
                tops = ", ".join(f"{o['op'].replace('aten::', '')} {o['share']:.0%}" for o in prof["top_ops"][:8])
                lines += [
                    "",
                    f"Profile of one {name} OFA+ step: {phases}. Forward + backward by kind of op: {cats}. "
                    f"Top ops: {tops}.",
                ]
    if "batching" in results:
        b = results["batching"]
        lines += [
            "",
            "## 4. Multi-task batching (default suite, trainer's batches)",
            "| settings | batches | padding: encoder | decoder | all tokens |",
            "|---|---|---|---|---|",
        ]
        for key in ("padding", "padding_main_job"):
            settings = f"tiny, {b[key]['image_size']} px, batch {'/'.join(map(str, b[key]['batch_sizes']))}" + (
                " (main job)" if key == "padding_main_job" else " (cards)"
            )
            for mode in ("bucketed", "unbucketed"):
                o = b[key][mode]["overall"]
                lines.append(f"| {settings} | {mode} | {o['encoder']:.1%} | {o['decoder']:.1%} | **{o['all']:.1%}** |")
        rates = ", ".join(f"{r['workers']} worker(s): {r['rows_per_s']:.0f} rows/s" for r in b["pipeline"])
        use = ", ".join(f"{k} path {v:.0f} rows/s" for k, v in b.get("consumption_rows_per_s", {}).items())
        lines += [
            "",
            f"Data pipeline (processor + collate, trainer's task mix): {rates}. Tiny training consumes: {use}.",
        ]
    if "memory" in results:
        lines += [
            "",
            "## 5. Memory",
            "| preset | model | workload | RSS after build | peak RSS |",
            "|---|---|---|---|---|",
        ]
        for m in results["memory"]:
            extra = (
                f" (CUDA peak {m['peak_cuda_allocated_bytes'] / 2**30:.2f} GiB)"
                if "peak_cuda_allocated_bytes" in m
                else ""
            )
            lines.append(
                f"| {m['preset']} | {m['model']} | {m['workload']} | {m['rss_after_build_bytes'] / 2**30:.2f} GiB "
                f"| {m['peak_rss_bytes'] / 2**30:.2f} GiB{extra} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
