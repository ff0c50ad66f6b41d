"""Hardware limit: matmul FLOP/s at the model's own GEMM shapes, the training step's FLOPs counted
analytically, the resulting model-FLOPs utilisation (MFU), and where the rest of the time goes."""

from __future__ import annotations

import collections
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

from .common import sync


def linear_shapes(config, batch: int, enc: int, dec: int) -> list[tuple[int, int, int, int]]:
    """(M, K, N, count) of every forward GEMM of one training step of the text path."""
    d, v = config.d_model, config.vocab_size
    ne, nd = batch * enc, batch * dec
    e, dl = config.encoder_layers, config.decoder_layers
    return [
        (ne, d, 3 * d, e),
        (ne, d, d, e),
        (ne, d, config.encoder_ffn_dim, e),
        (ne, config.encoder_ffn_dim, d, e),
        (nd, d, 3 * d, dl),
        (nd, d, d, 3 * dl),
        (ne, d, 2 * d, dl),
        (nd, d, config.decoder_ffn_dim, dl),
        (nd, config.decoder_ffn_dim, d, dl),
        (nd, d, v, 1),
    ]


def step_flops(config, batch: int, enc: int, dec: int, position_bias: bool = True, layouts: int = 1) -> float:
    """FLOPs of one training step (forward x 3: the backward pass costs two forwards) of the text path:
    every GEMM, the attention products, and OFA+'s position-bias products (per distinct row layout)."""
    d = config.d_model
    forward = sum(2 * m * k * n * c for m, k, n, c in linear_shapes(config, batch, enc, dec))
    forward += config.encoder_layers * 4 * batch * enc * enc * d  # q.k^T and p.v
    forward += config.decoder_layers * 4 * batch * (dec * dec + dec * enc) * d
    if position_bias:  # absolute-position projections and their q.k^T, once per layout
        forward += 2 * 2 * layouts * enc * d * d + 2 * layouts * enc * enc * d
        forward += 2 * 2 * dec * d * d + 2 * dec * dec * d
    return 3.0 * forward


def counted_flops(step) -> float:
    """FLOPs torch itself counts (from op shapes) while running one step: a cross-check of the formula,
    and the count for the image path (convolutions included)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def matmul_rate(shapes: list[tuple[int, int, int, int]], device, dtype, repeats: int = 5) -> dict:
    """Measured torch.matmul FLOP/s over the step's GEMMs: each forward shape and the two backward
    products (input and weight gradients), weighted by how often the step runs them."""
    total_flops = total_time = 0.0
    per_shape = []
    for m, k, n, count in shapes:
        for a_shape, b_shape in (((m, k), (k, n)), ((m, n), (n, k)), ((n, m), (m, k))):
            a = torch.randn(a_shape, device=device, dtype=dtype)
            b = torch.randn(b_shape, device=device, dtype=dtype)
            seconds = _matmul_seconds(a, b, device, repeats)
            flops = 2.0 * a_shape[0] * a_shape[1] * b_shape[1]
            total_flops += flops * count
            total_time += seconds * count
            per_shape.append({"shape": [a_shape[0], a_shape[1], b_shape[1]], "flop_per_s": flops / seconds})
    return {"flop_per_s": total_flops / total_time, "per_shape": per_shape}


def square_rate(device, dtype, size: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    return 2.0 * size**3 / _matmul_seconds(a, a, device, repeats)


def _matmul_seconds(a: torch.Tensor, b: torch.Tensor, device, repeats: int) -> float:
    """Median seconds of ``a @ b`` after one warm-up call."""
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


CATEGORIES = [
    ("matmul (GEMM)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::baddbmm", "aten::linear")),
    ("attention kernels", ("aten::_scaled_dot_product", "aten::_softmax", "aten::_softmax_backward_data")),
    (
        "embedding lookups / gathers",
        (
            "aten::embedding",
            "aten::index_select",
            "aten::embedding_dense_backward",
            "aten::index_add_",
            "aten::_coalesce",
            "aten::index",
        ),
    ),
    (
        "loss (log-softmax)",
        ("aten::_log_softmax", "aten::nll_loss", "aten::logsumexp", "aten::exp", "aten::amax", "_LabelSmoothedLMLoss"),
    ),
    ("dropout", ("aten::bernoulli_", "aten::native_dropout")),
    (
        "layer norm / gelu",
        ("aten::native_layer_norm", "aten::native_layer_norm_backward", "aten::gelu", "aten::gelu_backward"),
    ),
    ("copies / fills", ("aten::copy_", "aten::fill_", "aten::cat", "aten::zero_", "aten::clone", "aten::contiguous")),
    (
        "elementwise",
        (
            "aten::add",
            "aten::add_",
            "aten::mul",
            "aten::mul_",
            "aten::div",
            "aten::div_",
            "aten::sum",
            "aten::sub",
            "aten::where",
            "aten::masked_fill",
        ),
    ),
]


def profile_step(forward_loss, optimizer, top: int = 12) -> dict:
    """Where one training step's time goes: forward / backward / optimizer, and for forward + backward
    the share of each kind of op and the top ops by self time."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as model_prof:
        with record_function("phase:forward"):
            loss = forward_loss()
        with record_function("phase:backward"):
            loss.backward()
    with profile(activities=activities) as optimizer_prof:
        with record_function("phase:optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    phases = {
        e.key.split(":", 1)[1]: e.cpu_time_total / 1e6
        for prof in (model_prof, optimizer_prof)
        for e in prof.key_averages()
        if e.key.startswith("phase:")
    }
    ops = [
        (e.key, e.self_cpu_time_total / 1e6, e.count)
        for e in model_prof.key_averages()
        if not e.key.startswith("phase:")
    ]
    total = sum(t for _, t, _ in ops) or 1.0
    categories = collections.Counter()
    for key, seconds, _ in ops:
        name = next((c for c, prefixes in CATEGORIES if key.startswith(prefixes)), "other")
        categories[name] += seconds
    return {
        "phases_s": phases,
        "categories_share": {k: v / total for k, v in categories.most_common()},  # of forward + backward
        "top_ops": [
            {"op": k, "self_s": t, "share": t / total, "calls": n}
            for k, t, n in sorted(ops, key=lambda o: -o[1])[:top]
        ],
    }
