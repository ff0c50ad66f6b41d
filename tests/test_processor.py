"""Processor tests: constrained outputs (closed sets, boxes), batching rules, repeats, prefixes, STRUCT, save/load."""

from __future__ import annotations

import random
import sqlite3

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

import ofa_plus.vocabulary as V
from conftest import digit_image, shape_image, small_model
from ofa_plus import OFAPlusProcessor, compile_plan
from ofa_plus.modalities.base import SlotContext
from ofa_plus.modalities.box import BoxModality

SEEDS = [0, 1, 2, 3]


@pytest.fixture(scope="module")
def models():
    return {seed: small_model(seed) for seed in SEEDS}


class Boost(LogitsProcessor):
    """A hostile user processor: pushes given tokens (per decoding step) far above everything else."""

    def __init__(self, prompt_length: int, tokens_by_step):
        self.prompt_length, self.tokens_by_step = prompt_length, tokens_by_step

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_length
        scores = scores.clone()
        scores[:, self.tokens_by_step(step)] += 1000.0
        return scores


# ------------------------------------------------------------------------------------- closed set
CANDIDATES = ["yes", "no", "maybe not"]


@pytest.mark.parametrize("seed", SEEDS)
def test_closed_set_outputs_are_always_candidates(models, processor, images, seed):
    model = models[seed]
    pics = images + [digit_image(seed + 10)]
    questions = ["is there a red shape?", "what colour?", "digit?", "a triangle?", "is it a handwritten nine?"]
    by_attribute = processor(
        "[IMAGE:image] [TEXT:question] -> [TEXT:answer,closed_set=yes|no|maybe not]", image=pics, question=questions
    )
    by_call = processor(
        "[IMAGE:image] [TEXT:question] -> [TEXT:answer,closed_set]",
        image=pics,
        question=questions,
        closed_set=CANDIDATES,
    )
    assert by_attribute["constraints"].sequences == by_call["constraints"].sequences
    for inputs in (by_attribute, by_call):
        for kwargs in (
            dict(num_beams=1),
            dict(num_beams=3),
            dict(num_beams=4, num_return_sequences=3),
            dict(num_beams=1, max_new_tokens=20),
        ):
            values = processor.postprocess(model.generate(**inputs, **kwargs), inputs)
            assert len(values) == len(pics)
            flat = [v for row in values for v in row] if kwargs.get("num_return_sequences") else values
            assert set(flat) <= set(CANDIDATES), (kwargs, values)
            if kwargs.get("num_return_sequences"):  # 3 beams over 3 candidates: each answer once
                assert all(sorted(row) == sorted(CANDIDATES) for row in values), values
    # a user processor that pushes EOS first, then a non-candidate word, cannot escape the set
    word = processor.tokenizer.encode_text("banana")
    boost = Boost(1, lambda step: [V.EOS_ID] + word)
    for num_beams in (1, 3):
        out = model.generate(**by_attribute, num_beams=num_beams, logits_processor=LogitsProcessorList([boost]))
        assert set(processor.postprocess(out, by_attribute)) <= set(CANDIDATES)
    # pushing "maybe" selects the two-token candidate, not the one-token prefix "maybe"
    maybe = processor.tokenizer.encode_text("maybe")
    boost = Boost(1, lambda step: maybe[step : step + 1] if step < len(maybe) else [V.EOS_ID])
    out = model.generate(**by_attribute, logits_processor=LogitsProcessorList([boost]))
    assert processor.postprocess(out, by_attribute) == ["maybe not"] * len(pics)


def test_closed_set_candidates_follow_slot_normalisation(processor):
    plan_text = "[TEXT:question] -> [TEXT:answer,closed_set=Yes|No,uncased]"
    train = processor(plan_text, question="is it?", answer="Yes")
    constraints = processor(plan_text, question="is it?")["constraints"]
    # the constraint allows exactly what training teaches (lower-cased "yes" + EOS)
    assert train["labels"][0].tolist() in constraints.sequences


def test_closed_set_argument_without_attribute_is_an_error(processor, images):
    with pytest.raises(ValueError, match="closed_set"):
        processor("[IMAGE:image] -> [TEXT:caption]", image=images[0], closed_set=["a", "b"])


# -------------------------------------------------------------------------------------------- box
GROUNDING = '[IMAGE:img] which region does the text " [TEXT:cap] " describe? -> [BOX:region]'
SIZES = [(50, 80), (300, 120), (64, 64), (17, 203)]


def _check_box(box, width, height):
    assert isinstance(box, tuple) and len(box) == 4 and all(isinstance(c, float) for c in box), box
    x0, y0, x1, y1 = box
    assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height, (box, width, height)


@pytest.mark.parametrize("seed", SEEDS)
def test_box_outputs_are_ordered_boxes_in_original_pixels(models, processor, seed):
    model = models[seed]
    pics = [shape_image(w, h, shape) for (w, h), shape in zip(SIZES, ["ellipse", "rectangle", "triangle", "ellipse"])]
    inputs = processor(GROUNDING, img=pics, cap=["the red shape", "a shape", "the middle", "a tall thin thing"])
    assert [r.image_sizes["img"] for r in inputs.rows] == SIZES
    hostile = [
        None,
        Boost(1, lambda step: [V.EOS_ID, 10000]),  # stop early / emit text: must still give 4 bins
        Boost(1, lambda step: [V.BIN_OFFSET + 999] if step < 2 else [V.BIN_OFFSET]),  # tries x1 < x0, y1 < y0
    ]
    for boost in hostile:
        for num_beams in (1, 3):
            processors = LogitsProcessorList([boost] if boost else [])
            generated = model.generate(**inputs, num_beams=num_beams, logits_processor=processors)
            assert generated.shape[1] == 6  # BOS + 4 bins + EOS
            assert ((generated[:, 1:5] >= V.BIN_OFFSET) & (generated[:, 1:5] < V.BIN_OFFSET + V.NUM_BINS)).all()
            boxes = processor.postprocess(generated, inputs)
            for box, (w, h) in zip(boxes, SIZES):
                _check_box(box, w, h)
            if boost is hostile[2]:
                assert boxes == [(float(w), float(h), float(w), float(h)) for w, h in SIZES]


def test_box_round_trip_within_one_bin(processor):
    rng = random.Random(0)
    for width, height in SIZES + [(640, 480), (1, 1000)]:
        ctx = SlotContext(processor.tokenizer, {}, "test", image_size=(width, height))
        for _ in range(50):
            x0, x1 = sorted(rng.uniform(0, width) for _ in range(2))
            y0, y1 = sorted(rng.uniform(0, height) for _ in range(2))
            ids = BoxModality.encode((x0, y0, x1, y1), ctx)
            assert all(V.BIN_OFFSET <= i < V.BIN_OFFSET + V.NUM_BINS for i in ids)
            decoded = BoxModality.decode(ids, ctx)
            _check_box(decoded, width, height)
            for original, back, size in zip((x0, y0, x1, y1), decoded, (width, height, width, height)):
                assert abs(original - back) <= size / (V.NUM_BINS - 1), (original, back, size)
        # the corners are exact
        assert BoxModality.decode(BoxModality.encode((0, 0, width, height), ctx), ctx) == (0, 0, width, height)


def test_box_labels_are_bins_of_the_original_image(processor):
    pics = [shape_image(50, 80), shape_image(300, 120)]
    inputs = processor(GROUNDING, img=pics, cap=["a", "b"], region=[(10, 20, 40, 70), (0, 0, 300, 120)])
    top = V.NUM_BINS - 1
    assert inputs["labels"][0].tolist() == [
        V.BIN_OFFSET + round(c) for c in (10 / 50 * top, 20 / 80 * top, 40 / 50 * top, 70 / 80 * top)
    ] + [V.EOS_ID]
    assert inputs["labels"][1].tolist() == [
        V.BIN_OFFSET,
        V.BIN_OFFSET,
        V.BIN_OFFSET + top,
        V.BIN_OFFSET + top,
        V.EOS_ID,
    ]


def test_box_bins_follow_the_model_config(tmp_path):
    """A model configured with fewer location bins gets box labels, decoding constraints and decoded
    boxes on that grid, and keeps it through save/load (num_bins used to be ignored: always 1000)."""
    model = small_model(0, num_bins=100)
    processor = OFAPlusProcessor.for_config(model.config)
    processor.save_pretrained(tmp_path)
    pics = [shape_image(50, 80), shape_image(300, 120)]
    for proc in (processor, OFAPlusProcessor.from_pretrained(tmp_path)):
        assert proc.num_bins == 100
        inputs = proc(GROUNDING, img=pics, cap=["a", "b"], region=[(10, 20, 40, 70), (0, 0, 300, 120)])
        assert inputs["labels"][0].tolist() == [
            V.BIN_OFFSET + round(c) for c in (10 / 50 * 99, 20 / 80 * 99, 40 / 50 * 99, 70 / 80 * 99)
        ] + [V.EOS_ID]
        assert inputs["labels"][1, :4].tolist() == [V.BIN_OFFSET, V.BIN_OFFSET, V.BIN_OFFSET + 99, V.BIN_OFFSET + 99]
        assert inputs["constraints"].num_bins == 100
        # a bin beyond the grid is never generated, even when pushed; bin 99 is the far corner
        inputs = proc(GROUNDING, img=pics, cap=["a", "b"])
        beyond = Boost(1, lambda step: [V.BIN_OFFSET + 500])
        generated = model.generate(**inputs, logits_processor=LogitsProcessorList([beyond]))
        assert ((generated[:, 1:5] >= V.BIN_OFFSET) & (generated[:, 1:5] < V.BIN_OFFSET + 100)).all()
        corner = torch.tensor([[V.BOS_ID, *[V.BIN_OFFSET + 99] * 4, V.EOS_ID]] * 2)
        assert proc.postprocess(corner, inputs) == [(50.0, 80.0, 50.0, 80.0), (300.0, 120.0, 300.0, 120.0)]


@pytest.mark.parametrize(
    "bad, message",
    [
        ((0, 0, 301, 120), "outside"),
        ((-1, 0, 10, 10), "outside"),
        ((40, 20, 10, 70), "unordered"),
        ((10, 70, 40, 20), "unordered"),
        ((1, 2, 3), "three numbers"),
    ],
)
def test_bad_boxes_raise_naming_row_and_slot(processor, bad, message):
    pics = [shape_image(50, 80), shape_image(300, 120)]
    with pytest.raises(ValueError) as info:
        processor(GROUNDING, img=pics, cap=["a", "b"], region=[(10, 20, 40, 70), bad])
    text = str(info.value)
    assert "row 1" in text and "[BOX:region]" in text, (message, text)


# ---------------------------------------------------------------------------------------- batches
CAPTION = "[IMAGE:image] what does the image describe? -> [TEXT:caption]"


def test_single_row_versus_batch(processor, images):
    single = processor(CAPTION, image=images[0])
    batch = processor(CAPTION, image=images[:3])
    assert single["input_ids"].shape[0] == 1 and len(single.rows) == 1
    assert batch["input_ids"].shape[0] == 3 and batch["pixel_values"].shape[0] == 3
    assert torch.equal(batch["input_ids"][0], single["input_ids"][0])
    assert torch.equal(batch["pixel_values"][0], single["pixel_values"][0])
    assert "labels" not in single and "labels" not in batch
    train_single = processor(CAPTION, image=images[0], caption="a red ellipse")
    train_batch = processor(CAPTION, image=images[:2], caption=["a red ellipse", "a blue rectangle"])
    assert train_single["labels"].shape[0] == 1 and train_batch["labels"].shape[0] == 2
    assert torch.equal(train_batch["labels"][0, : train_single["labels"].shape[1]], train_single["labels"][0])
    # a single STRUCT table (list of rows) is one row, a list of tables is a batch
    table = [["name", "age"], ["ann", 3]]
    assert processor("[STRUCT:t] -> [TEXT:o]", t=table)["input_ids"].shape[0] == 1
    assert processor("[STRUCT:t] -> [TEXT:o]", t=[table, table, table])["input_ids"].shape[0] == 3
    # a 4-D array is a batch of images, like a list of them
    import numpy as np

    arrays = np.stack([np.asarray(digit_image(i)) for i in range(3)])
    from_array = processor(CAPTION, image=arrays, caption=["zero", "one", "two"])
    from_list = processor(CAPTION, image=[digit_image(i) for i in range(3)], caption=["zero", "one", "two"])
    assert torch.equal(from_array["pixel_values"], from_list["pixel_values"])
    assert torch.equal(from_array["labels"], from_list["labels"])
    # an empty target still teaches EOS
    assert processor(CAPTION, image=images[0], caption="")["labels"][0].tolist() == [V.EOS_ID]
    # a repeat column: one row's value is a list of items
    detect = "[IMAGE:image] what are the objects? -> ( [BOX:boxes] [TEXT:labels] )*"
    one = processor(detect, image=images[0], boxes=[(1, 2, 3, 4)], labels=["dot"])
    two = processor(
        detect,
        image=images[:2],
        boxes=[[(1, 2, 3, 4)], [(1, 2, 3, 4), (5, 6, 7, 8)]],
        labels=[["dot"], ["dot", "spot"]],
    )
    assert one["labels"].shape[0] == 1 and two["labels"].shape[0] == 2


def test_mismatched_lengths_and_missing_columns(processor, images):
    with pytest.raises(ValueError, match=r"batch of 3 values.*'question'.*list of 2"):
        processor("[IMAGE:image] [TEXT:question] -> [TEXT:answer]", image=images[:3], question=["a", "b"])
    with pytest.raises(ValueError, match="'question'"):
        processor("[IMAGE:image] [TEXT:question] -> [TEXT:answer]", image=images[:2], question="a")
    with pytest.raises(ValueError) as info:
        processor("[IMAGE:image] [TEXT:question] -> [TEXT:answer]", image=images[:2])
    assert "'question'" in str(info.value) and "row 0" in str(info.value)
    rows = [{"image": images[0], "question": "a"}, {"image": images[1]}]
    with pytest.raises(ValueError) as info:
        processor.process_rows(compile_plan("[IMAGE:image] [TEXT:question] -> [TEXT:answer]"), rows)
    assert "row 1" in str(info.value) and "'question'" in str(info.value)
    # targets present in some rows only
    rows = [{"image": images[0], "question": "a", "answer": "x"}, {"image": images[1], "question": "b"}]
    with pytest.raises(ValueError, match=r"row 1.*answer"):
        processor.process_rows(compile_plan("[IMAGE:image] [TEXT:question] -> [TEXT:answer]"), rows)
    # repeat columns of one row must have equal lengths
    with pytest.raises(ValueError, match=r"row 0.*equal lengths"):
        processor(
            "[IMAGE:image] -> ( [BOX:boxes] [TEXT:labels] )*",
            image=images[0],
            boxes=[(1, 2, 3, 4), (1, 2, 3, 4)],
            labels=["one"],
        )


# ----------------------------------------------------------------------------------------- repeat
DETECT = "[IMAGE:image] what are the objects? -> ( [BOX:boxes] [TEXT:labels] )*"


def test_repeat_training_labels_and_postprocess(processor):
    image = shape_image(300, 120, "rectangle")
    boxes, labels = [(10, 10, 100, 100), (150, 20, 290, 110)], ["red ellipse", "box"]
    train = processor(DETECT, image=image, boxes=boxes, labels=labels)
    ctx = SlotContext(processor.tokenizer, {}, "test", image_size=(300, 120))
    expected = []
    for box, label in zip(boxes, labels):
        expected += BoxModality.encode(box, ctx) + processor.tokenizer.encode_text(label)
    assert train["labels"][0].tolist() == expected + [V.EOS_ID]
    assert train["decoder_input_ids"][0].tolist() == [V.BOS_ID] + expected
    # no repeat elements: only EOS is learnt
    empty = processor(DETECT, image=image, boxes=[], labels=[])
    assert empty["labels"][0].tolist() == [V.EOS_ID]

    inference = processor(DETECT, image=image)
    assert "decoder_input_ids" not in inference and inference.rows[0].prompt_length == 1
    generated = torch.tensor([[V.BOS_ID] + expected + [V.EOS_ID, V.PAD_ID, V.PAD_ID]])
    (value,) = processor.postprocess(generated, inference)
    assert value["labels"] == labels
    assert len(value["boxes"]) == 2
    for got, want in zip(value["boxes"], boxes):
        _check_box(got, 300, 120)
        assert all(abs(g - w) <= 300 / 999 for g, w in zip(got, want))
    # a random model's free output still parses into the same structure
    model = small_model(5)
    out = processor.postprocess(model.generate(**inference, num_beams=2, max_new_tokens=12), inference)[0]
    assert set(out) == {"boxes", "labels"} and len(out["boxes"]) == len(out["labels"])


# ---------------------------------------------------------------------------------- no_loss prefix
SENTIMENT = (
    'is the sentiment of text " [TEXT:sentence] " positive or negative? -> '
    "[TEXT:sentence,no_loss] [TEXT:label,closed_set=positive|negative]"
)
SENTENCES = ["good movie", "an utterly boring , far too long and badly acted film", "fine", "i loved every minute"]


def test_no_loss_prefix_labels_and_decoder_prompt(processor):
    train = processor(SENTIMENT, sentence=SENTENCES[:2], label=["positive", "negative"])
    for row, (sentence, label) in enumerate(zip(SENTENCES[:2], ["positive", "negative"])):
        prefix, target = processor.tokenizer.encode_text(sentence), processor.tokenizer.encode_text(label)
        width = len(prefix) + len(target) + 1
        labels = train["labels"][row].tolist()
        assert labels[:width] == [-100] * len(prefix) + target + [V.EOS_ID]
        assert all(t == -100 for t in labels[width:])
        assert train["decoder_input_ids"][row, :width].tolist() == [V.BOS_ID] + prefix + target
    inference = processor(SENTIMENT, sentence=SENTENCES)
    for row, sentence in enumerate(SENTENCES):
        prompt = [V.BOS_ID] + processor.tokenizer.encode_text(sentence)
        assert inference.rows[row].prompt_length == len(prompt)
        assert inference["decoder_input_ids"][row, : len(prompt)].tolist() == prompt
        assert inference["decoder_input_ids"][row, len(prompt) :].eq(V.PAD_ID).all()


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_prefix_rows_of_different_lengths_generate_like_one_by_one(models, processor, seed):
    model = models[seed]
    free = SENTIMENT.replace(",closed_set=positive|negative", "")
    for instruction in (SENTIMENT, free):
        batch = processor(instruction, sentence=SENTENCES)
        for kwargs in (dict(num_beams=1, max_new_tokens=6), dict(num_beams=3, max_new_tokens=6)):
            together = processor.postprocess(model.generate(**batch, **kwargs), batch)
            alone = []
            for sentence in SENTENCES:
                single = processor(instruction, sentence=sentence)
                generated = model.generate(**single, **kwargs)
                assert (
                    generated[0, : single.rows[0].prompt_length].tolist() == single["decoder_input_ids"][0].tolist()
                )  # the prompt is fed, then continued
                alone += processor.postprocess(generated, single)
            assert together == alone, (instruction, kwargs)
            if instruction == SENTIMENT:
                assert set(together) <= {"positive", "negative"}
        # several sequences per row come back grouped per row, in row order
        many = processor.postprocess(
            model.generate(**batch, num_beams=2, num_return_sequences=2, max_new_tokens=6), batch
        )
        assert len(many) == len(SENTENCES) and all(len(r) == 2 for r in many)
        single = processor(instruction, sentence=SENTENCES[1])
        assert (
            many[1]
            == processor.postprocess(
                model.generate(**single, num_beams=2, num_return_sequences=2, max_new_tokens=6), single
            )[0]
        )


# ----------------------------------------------------------------------------------------- STRUCT
def _encoder_text(processor, inputs, row=0):
    ids = inputs["input_ids"][row].tolist()
    assert ids[0] == V.BOS_ID and V.EOS_ID in ids
    return processor.tokenizer.decode_text(ids[1 : ids.index(V.EOS_ID)])


def test_struct_tables_linearise(processor):
    table = [["name", "age"], ["ann", 31], ["bob", 7]]
    as_dict = {"header": ["name", "age"], "rows": [["ann", 31], ["bob", 7]], "title": "people"}
    inputs = processor("[STRUCT:table] -> [TEXT:answer]", table=[table, as_dict, "already : linear"])
    assert _encoder_text(processor, inputs, 0) == "name : age | ann : 31 | bob : 7"
    assert _encoder_text(processor, inputs, 1) == "people | name : age | ann : 31 | bob : 7"
    assert _encoder_text(processor, inputs, 2) == "already : linear"
    schema = {
        "db_id": "zoo",
        "tables": {"animal": {"columns": ["name", "legs"], "values": {"name": ["cat", "emu", "ant"]}}},
    }
    inputs = processor("[STRUCT:db,max_values=2] -> [TEXT:sql]", db=schema)
    assert _encoder_text(processor, inputs) == "zoo | animal : name ( cat , emu ) , legs"
    with pytest.raises(ValueError, match=r"row 0.*\[STRUCT:table\]"):
        processor("[STRUCT:table] -> [TEXT:answer]", table=42)


def test_struct_sqlite_database(processor, tmp_path):
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE items (name TEXT, price INTEGER)")
    conn.execute("CREATE TABLE clerks (clerk TEXT)")
    conn.executemany("INSERT INTO items VALUES (?, ?)", [("apple", 3), ("pear", 4), ("fig", 5), ("apple", 3)])
    conn.execute("INSERT INTO clerks VALUES ('eve')")
    conn.commit()
    text2sql = '" [TEXT:question] " ; structured knowledge: " [STRUCT:db] " . -> [TEXT:sql]'
    expected_default = "shop | clerks : clerk ( eve ) | items : name ( apple , pear ) , price ( 3 , 4 )"
    by_path = processor("[STRUCT:db] -> [TEXT:sql]", db=str(path))
    assert _encoder_text(processor, by_path) == expected_default
    by_pathlike = processor("[STRUCT:db] -> [TEXT:sql]", db=path)
    assert torch.equal(by_pathlike["input_ids"], by_path["input_ids"])
    by_connection = processor("[STRUCT:db,max_values=3] -> [TEXT:sql]", db=conn)
    assert (
        _encoder_text(processor, by_connection)
        == "main | clerks : clerk ( eve ) | items : name ( apple , pear , fig ) , price ( 3 , 4 , 5 )"
    )
    no_values = processor("[STRUCT:db,max_values=0] -> [TEXT:sql]", db=str(path))
    assert _encoder_text(processor, no_values) == "shop | clerks : clerk | items : name , price"
    full = processor(text2sql, question="cheapest item?", db=str(path), sql="select name from items order by price")
    assert full["labels"].shape[0] == 1
    conn.close()
    with pytest.raises(ValueError, match="does not exist"):
        processor("[STRUCT:db] -> [TEXT:sql]", db=str(tmp_path / "missing.sqlite"))


# ------------------------------------------------------------------------------------- save / load
def test_processor_save_load_round_trip(tmp_path, processor, images):
    from transformers import AutoProcessor

    processor.save_pretrained(tmp_path)
    for loaded in (OFAPlusProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert isinstance(loaded, OFAPlusProcessor)
        assert loaded.image_size == processor.image_size and loaded.image_tokens == processor.image_tokens
        for instruction, columns in [
            (CAPTION, dict(image=images, caption=["a", "b c", "d", "the end"])),
            (GROUNDING, dict(img=images[:2], cap=["x", "y"], region=[(1, 2, 30, 40), (0, 0, 40, 90)])),
            (SENTIMENT, dict(sentence=SENTENCES)),
        ]:
            ours, theirs = processor(instruction, **columns), loaded(instruction, **columns)
            tensors = [k for k, v in ours.items() if torch.is_tensor(v)]
            assert tensors == [k for k, v in theirs.items() if torch.is_tensor(v)]
            for key in tensors:
                assert torch.equal(ours[key], theirs[key]), key
            assert ours["constraints"] == theirs["constraints"] and ours.rows == theirs.rows


def test_from_preset():
    processor = OFAPlusProcessor.from_preset("tiny")
    assert processor.image_size == 128 and processor.image_tokens == 64
    inputs = processor(CAPTION, image=digit_image(0))
    assert inputs["pixel_values"].shape == (1, 3, 128, 128)
    assert inputs["input_ids"][0].tolist().count(V.IMAGE_ID) == 64
    assert OFAPlusProcessor.from_preset("base").image_tokens == 900
    with pytest.raises(ValueError, match="unknown preset"):
        OFAPlusProcessor.from_preset("huge")
