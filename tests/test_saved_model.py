"""A model saved by ofa_plus 0.1.0 (tests/fixtures/saved_model) loads with the current code and
computes what 0.1.0 computed: the same losses, logits, generated ids, decoded values and mels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ofa_plus import OFAPlusForConditionalGeneration, OFAPlusProcessor

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_saved_model import CASES, FOLDER, compute  # noqa: E402


@pytest.fixture(scope="module")
def computed():
    model = OFAPlusForConditionalGeneration.from_pretrained(FOLDER).eval()
    processor = OFAPlusProcessor.from_pretrained(FOLDER)
    return compute(model, processor)


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_saved_model_computes_what_it_computed(computed, case):
    numbers, tensors = computed
    expected = json.loads((FOLDER / "expected.json").read_text())[case]
    expected_tensors = load_file(FOLDER / "expected_tensors.safetensors")
    assert numbers[case]["loss"] == pytest.approx(expected["loss"], rel=1e-6, abs=1e-6)
    for key in ("generated", "decoded", "mel_lengths"):
        assert numbers[case].get(key) == expected.get(key), key
    for key, value in expected_tensors.items():
        if key.startswith(f"{case}."):
            torch.testing.assert_close(tensors[key], value, rtol=1e-5, atol=1e-5)
