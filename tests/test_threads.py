"""Inference threads: the cores other processes leave free unless the user chose a count; the
pipeline, ``ofa-plus run`` and ``ofa-plus evaluate`` apply it during their work and put torch back."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import pipeline

from ofa_plus import cli, evaluation, threads
from ofa_plus.pipeline import TASK

INSTRUCTION = 'what is the name of the character " [TEXT:character] "? -> [TEXT:name]'


@pytest.fixture
def cores(monkeypatch):
    """Four cores, no thread variable set, the load average as the test says."""
    for name in threads.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    # conftest may have called torch.set_num_threads after ofa_plus was imported: not the user's choice here
    monkeypatch.setattr(threads, "_AT_IMPORT", torch.get_num_threads())
    load = [0.0]
    monkeypatch.setattr(os, "getloadavg", lambda: (load[0], 0.0, 0.0))
    return load


@pytest.fixture
def pipe(model, processor, cores):
    pipe = pipeline(TASK, model=model, processor=processor, device="cpu")
    seen = []
    generate = pipe.model.generate

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return generate(*args, **kwargs)

    pipe.model.generate = recording
    yield pipe, seen
    pipe.model.generate = generate


def test_auto_leaves_the_busy_cores_alone(cores):
    cores[0] = 0.2
    assert threads.resolve_threads(None) == threads.resolve_threads("auto") == 4
    cores[0] = 2.6
    assert threads.resolve_threads("auto") == 1
    cores[0] = 9.0  # more than busy: still one
    assert threads.resolve_threads("auto") == 1
    assert threads.resolve_threads(3) == threads.resolve_threads("3") == 3
    with pytest.raises(ValueError, match="positive count"):
        threads.resolve_threads(0)


def test_a_count_the_user_chose_is_kept(cores, monkeypatch):
    cores[0] = 3.0
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.resolve_threads("auto") is None
    assert threads.resolve_threads(2) == 2  # an explicit count still wins
    monkeypatch.delenv("OMP_NUM_THREADS")
    before = torch.get_num_threads()
    torch.set_num_threads(before + 1)
    try:
        assert threads.resolve_threads(None) is None
        with threads.inference_threads():
            assert torch.get_num_threads() == before + 1
    finally:
        torch.set_num_threads(before)


def test_pipeline_applies_its_threads_per_call_and_restores_them(pipe, cores):
    pipe, seen = pipe
    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    pipe(INSTRUCTION, character="a", max_new_tokens=2, num_threads=target)
    assert seen == [target] and torch.get_num_threads() == before
    pipe.num_threads = 3  # as pipeline(..., num_threads=3) sets it
    pipe(INSTRUCTION, character="a", max_new_tokens=2)
    assert seen[-1] == 3 and torch.get_num_threads() == before


def test_pipeline_default_is_the_free_cores_at_construction(model, processor, cores):
    cores[0] = 3.4  # a busy machine: one core free
    assert pipeline(TASK, model=model, processor=processor, device="cpu").num_threads == 1
    cores[0] = 0.0
    assert pipeline(TASK, model=model, processor=processor, device="cpu").num_threads == 4
    assert pipeline(TASK, model=model, processor=processor, device="cpu", num_threads=2).num_threads == 2


def test_commands_take_num_threads(cores, monkeypatch):
    assert cli.run_parser().parse_args(["--model", "m", "--task", "t"]).num_threads is None
    assert cli.run_parser().parse_args(["--model", "m", "--task", "t", "--num-threads", "2"]).num_threads == 2
    with pytest.raises(SystemExit):
        cli.run_parser().parse_args(["--model", "m", "--task", "t", "--num-threads", "0"])
    monkeypatch.setattr(evaluation, "run_evaluation", lambda args: torch.get_num_threads())
    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    assert evaluation.main(["--model", "m", "--output", "o.json", "--num-threads", str(target)]) == target
    cores[0] = 3.5
    assert evaluation.main(["--model", "m", "--output", "o.json"]) == 1
    assert torch.get_num_threads() == before
