"""Bad instructions, text and calls get pointed errors (issue 18): an empty encoder side, text longer
than the model can place, a non-string instruction, impossible generate() settings, an empty batch."""

from __future__ import annotations

import re

import pytest
import torch

from ofa_plus.instruction import InstructionError
from ofa_plus.plan import compile_plan

SUMMARY = 'what is the summary of article " [TEXT:document] "? -> [TEXT:summary]'
# a real-looking article far over the tiny model's 1024 text positions
ARTICLE = " ".join(f"the council met on day {d} and voted on budget item {d * 7}." for d in range(300))


@pytest.mark.parametrize(
    "instruction, column",
    [
        ("-> [TEXT:c]", 0),
        ("   -> [TEXT:c]", 3),
        ("[TEXT:a] -> [TEXT:b] ||| -> [TEXT:b]", 25),
    ],
)
def test_an_empty_encoder_side_is_an_instruction_error_with_a_caret(instruction, column, processor):
    with pytest.raises(InstructionError) as err:
        compile_plan(instruction)
    assert err.value.column == column and "encoder side" in err.value.message
    assert str(err.value).endswith("\n    " + " " * column + "^")
    with pytest.raises(InstructionError):  # the processor compiles the same way
        processor(instruction, c="x")


def test_prompt_text_alone_is_a_valid_encoder_side():
    assert compile_plan("write a haiku -> [TEXT:poem]").generator.kind == "text"


@pytest.mark.parametrize("bad", [123, None, ["[TEXT:a] -> [TEXT:b]"]])
def test_compile_plan_of_a_non_string_says_what_it_takes(bad):
    with pytest.raises(TypeError, match=r"compile_plan takes an instruction string .* got " + type(bad).__name__):
        compile_plan(bad)


def test_long_text_fails_in_the_processor_naming_the_slot_and_the_fix(model, processor):
    with pytest.raises(ValueError) as err:
        processor(SUMMARY, document=ARTICLE)
    message = str(err.value)
    assert "slot [TEXT:document]" in message and "max_positions=1024" in message and "encoder" in message
    keep = int(re.search(r"\[TEXT:document,max_length=(\d+)\]", message).group(1))
    assert f"settings: {{document: {{max_length: {keep}}}}}" in message
    # the suggested max_length makes the run exactly fit, and the model runs it
    fitted = processor(SUMMARY.replace("[TEXT:document]", f"[TEXT:document,max_length={keep}]"), document=ARTICLE)
    assert fitted["input_ids"].shape[1] == 1024
    with torch.no_grad():
        out = model(**{k: v for k, v in fitted.items() if k != "constraints"}, decoder_input_ids=torch.tensor([[0]]))
    assert out.logits.shape[:2] == (1, 1)


def test_a_long_target_fails_naming_the_decoder_slot(processor):
    with pytest.raises(ValueError, match=r"slot \[TEXT:summary\].*decoder text.*max_positions=1024"):
        processor(SUMMARY, document="a short article", summary=ARTICLE)
    row = processor(SUMMARY, document="a short article", summary="a short summary")
    assert row["labels"].shape[0] == 1


def test_a_long_row_in_a_task_batch_names_the_task_and_row(processor):
    plan = compile_plan(SUMMARY, name="summarization")
    rows = [{"document": "fine"}, {"document": ARTICLE}]
    with pytest.raises(ValueError, match=r"task 'summarization', row 1, slot \[TEXT:document\]"):
        processor.process_rows(plan, rows)


@pytest.mark.parametrize(
    "setting, value",
    [("num_beams", 0), ("num_beams", "three"), ("max_new_tokens", -3), ("num_return_sequences", 1.5)],
)
def test_generate_rejects_impossible_settings_by_name(model, processor, setting, value):
    inputs = processor("[TEXT:text] -> [TEXT:out]", text="a red apple")
    with pytest.raises(ValueError, match=rf"generate\(\): {setting} must be a positive integer, got {value!r}"):
        model.generate(**inputs, **{setting: value})


def test_an_empty_batch_is_a_clear_error(model, processor):
    with pytest.raises(ValueError, match="an empty batch"):
        processor("[TEXT:text] -> [TEXT:out]", text=[])
    plan = compile_plan("[TEXT:text] -> [TEXT:out]", name="echo")
    with pytest.raises(ValueError, match="task 'echo', an empty batch"):
        processor.process_rows(plan, [])
    with pytest.raises(ValueError, match=r"generate\(\): empty input_ids"):
        model.generate(input_ids=torch.zeros((0, 0), dtype=torch.long))
