"""`pipeline("multimodal-instruction")` on a model trained with the default run's recipe (the default
suite's ten cards, scaled down): tasks by name and plain instructions, single and batched, give
exactly what the processor + generate() path gives; the built-in image-text-to-text pipeline too."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoProcessor, pipeline

import ofa_plus
from generalist import default_generalist, inside
from ofa_plus.task_card import generation_kwargs, inference_row

pytestmark = pytest.mark.slow  # every test here trains a model first

CAPTION = "[IMAGE:image] what does the image describe? -> [TEXT:caption]"


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    root = default_generalist(tmp_path_factory)
    with inside(root):  # the stored cards name their data relative to the run's folder
        yield root


@pytest.fixture(scope="module")
def model_dir(run_root):
    return str(run_root / "run" / "final")


@pytest.fixture(scope="module")
def loaded(model_dir):
    return AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval(), AutoProcessor.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def pipe(model_dir):
    return pipeline("multimodal-instruction", model=model_dir, device="cpu")


def reference(loaded, plan, rows, **generate):
    """The processor + generate() + postprocess path, on one batch of rows."""
    model, processor = loaded
    rows = [inference_row(plan, row) for row in rows]
    batch = processor(plan, **{column: [row[column] for row in rows] for column in rows[0]})
    return processor.postprocess(model.generate(**batch, **{**generation_kwargs(plan), **generate}), batch)


def test_tasks_by_name_single_and_batched_equal_the_processor_path(pipe, loaded):
    for name in ("mnist", "grounding", "vqa", "fortunes"):  # closed set, box, image + text, text only
        card = pipe.tasks[name]
        rows = [card.to_row(example) for example in card.head("test", 3)]
        if name == "grounding":  # boxes come back in each image's own pixels: sizes tell rows apart
            for row, size in zip(rows, [(64, 64), (120, 80), (90, 150)]):
                row["image"] = row["image"].resize(size)
        inputs = {c: [row[c] for row in rows] for c in card.plan.columns("encoder")}

        single = [pipe(task=name, **{c: values[i] for c, values in inputs.items()}) for i in range(3)]
        assert single == [reference(loaded, card.plan, [row])[0] for row in rows], name
        assert pipe(task=name, **inputs, batch_size=3) == reference(loaded, card.plan, rows), name
        # batch_size=2 -> two generate() calls of 2 and 1 rows, in order
        chunked = reference(loaded, card.plan, rows[:2]) + reference(loaded, card.plan, rows[2:])
        assert pipe(task=name, **inputs, batch_size=2) == chunked, name
        assert pipe([{c: row[c] for c in inputs} for row in rows], task=name, batch_size=2) == chunked, name
        if name == "grounding":  # boxes in pixels, ordered corners; rows differ, so a mix-up would show
            assert all(len(box) == 4 and box[0] <= box[2] and box[1] <= box[3] for box in single)
            assert len(set(single)) == 3
        if card.closed_set:  # the card's closed set constrains the answer
            assert set(single) <= set(card.closed_set), name


def test_plain_instruction_and_generation_kwargs(pipe, loaded):
    # a box instruction on images of different sizes: rows give different boxes (in their own pixels)
    box = '[IMAGE:image] which region does the text " [TEXT:text] " describe? -> [BOX:region]'
    card = pipe.tasks["grounding"]
    rows = [
        {"image": e["image"].resize(size), "text": e["text"]}
        for e, size in zip(card.head("test", 3), [(64, 64), (120, 80), (90, 150)])
    ]
    plan = ofa_plus.compile_plan(box)
    expected = reference(loaded, plan, rows, num_beams=2)
    assert len(set(expected)) == 3
    assert [pipe(box, **row, num_beams=2) for row in rows] == [
        reference(loaded, plan, [r], num_beams=2)[0] for r in rows
    ]
    assert (
        pipe(box, image=[r["image"] for r in rows], text=[r["text"] for r in rows], num_beams=2, batch_size=3)
        == expected
    )

    # decoder prompts (no_loss prefixes) of different lengths in one batch
    images = [e["image"] for e in pipe.tasks["emoji_caption"].head("test", 3)]
    prefixed = "[IMAGE:image] what does the image describe? -> [TEXT:start,no_loss] [TEXT:caption]"
    rows = [{"image": i, "start": t} for i, t in zip(images, ["a picture of", "the", "one small green"])]
    settings = dict(num_beams=2, max_new_tokens=6)
    assert pipe(prefixed, image=images, start=[r["start"] for r in rows], batch_size=3, **settings) == reference(
        loaded, ofa_plus.compile_plan(prefixed), rows, **settings
    )

    # without kwargs the instruction's own generator settings apply (5 beams, 32 tokens for text) ...
    caption = ofa_plus.compile_plan(CAPTION)
    assert pipe(CAPTION, image=images[0]) == reference(loaded, caption, [{"image": images[0]}])[0]
    # ... and any generate() setting passes through: two sequences per row
    two = pipe(CAPTION, image=images[:2], num_beams=2, num_return_sequences=2, max_new_tokens=4, batch_size=2)
    assert two == reference(
        loaded, caption, [{"image": i} for i in images[:2]], num_beams=2, num_return_sequences=2, max_new_tokens=4
    )
    assert [len(sequences) for sequences in two] == [2, 2]


def test_alias_init_kwargs_and_device(model_dir, loaded):
    pipe = pipeline("ofa-plus", model=model_dir, device=-1, max_new_tokens=1, num_beams=1)
    assert isinstance(pipe, ofa_plus.OFAPlusPipeline)
    assert pipe.device.type == "cpu" and pipe.model.device.type == "cpu"
    card = pipe.tasks["emoji_caption"]
    image = card.head("test", 1)[0]["image"]
    plan = ofa_plus.compile_plan(CAPTION)
    assert pipe(CAPTION, image=image) == reference(loaded, plan, [{"image": image}], max_new_tokens=1, num_beams=1)[0]


def test_task_cards_travel_with_the_model(pipe, model_dir, loaded):
    model, processor = loaded
    names = {
        "asr",
        "emoji_caption",
        "entailment",
        "fortunes",
        "grounded_caption",
        "grounding",
        "mnist",
        "sudoku",
        "summarization",
        "text_to_sql",
        "tts",
        "vqa",
    }
    assert set(model.tasks) == set(processor.tasks) == set(pipe.tasks) == names
    stored = {c["name"]: c for c in json.loads(open(f"{model_dir}/config.json").read())["task_cards"]}
    # closed sets read from a dataset column are stored as lists: running needs no dataset
    assert stored["mnist"]["generation"]["closed_set"] == model.tasks["mnist"].closed_set
    assert sorted(model.tasks["mnist"].closed_set) == sorted(set(model.tasks["mnist"].load_split("train")["label"]))
    assert model.tasks["vqa"].instruction == "[IMAGE:image] [TEXT:question] -> [TEXT:answer,closed_set]"
    assert model.tasks["summarization"].plan.generator.num_beams == 3


def test_errors_say_what_to_do(pipe):
    image = pipe.tasks["mnist"].head("test", 1)[0]["image"]
    with pytest.raises(ValueError, match="unknown task 'caption'; the model's tasks: asr, emoji_caption, entailment"):
        pipe(task="caption", image=image)
    with pytest.raises(ValueError, match="'imag': neither a column of the instruction"):
        pipe(task="mnist", imag=image)
    with pytest.raises(ValueError, match="either an instruction or task="):
        pipe(CAPTION, task="mnist", image=image)
    with pytest.raises(ValueError, match="known: asr, emoji_caption"):
        pipe(image=image)
    with pytest.raises(ValueError, match="no value for column 'image'"):
        pipe(task="mnist")


def test_builtin_image_text_to_text_pipeline(model_dir, pipe, loaded):
    """Registered with AutoModelForImageTextToText, the model runs in transformers' own pipeline: the
    text is the prompt after the image, so it matches the instruction with that prompt."""
    builtin = pipeline("image-text-to-text", model=model_dir, device="cpu")
    images = [e["image"] for e in pipe.tasks["emoji_caption"].head("test", 2)]
    prompt = "what does the image describe?"
    processor = loaded[1]
    assert torch.equal(
        processor(images=images, text=[prompt] * 2)["input_ids"], processor(CAPTION, image=images)["input_ids"]
    )
    got = builtin(images=images, text=[prompt] * 2, max_new_tokens=8, num_beams=1, return_full_text=False)
    assert [g["generated_text"] for g in got] == pipe(
        CAPTION, image=images, max_new_tokens=8, num_beams=1, batch_size=2
    )
    one = builtin(images=images[0], text=prompt, max_new_tokens=8, num_beams=1, return_full_text=False)
    assert one[0]["generated_text"] == pipe(CAPTION, image=images[0], max_new_tokens=8, num_beams=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_placement_gives_the_cpu_outputs(model_dir, pipe):
    gpu = pipeline("multimodal-instruction", model=model_dir, device=0)
    assert gpu.model.device.type == "cuda"
    card = pipe.tasks["grounding"]
    rows = [card.to_row(e) for e in card.head("test", 3)]
    inputs = {c: [row[c] for row in rows] for c in card.plan.columns("encoder")}
    cpu_boxes, gpu_boxes = (
        pipe(task="grounding", **inputs, batch_size=3),
        gpu(task="grounding", **inputs, batch_size=3),
    )
    assert len(gpu_boxes) == 3 and all(abs(a - b) < 5 for x, y in zip(cpu_boxes, gpu_boxes) for a, b in zip(x, y))
    mnist = pipe.tasks["mnist"]
    images = [e["image"] for e in mnist.head("test", 3)]
    assert set(gpu(task="mnist", image=images, batch_size=3)) <= set(mnist.closed_set)
