"""Bad task cards are refused when they load, naming the card file and the key (issue 18): generation
values, settings, training numbers, closed sets, duplicate YAML keys, metrics that do not fit the
target, names that would escape the run folder; fine-tuning over an existing task; and a fuzz test
over mutated cards that may only ever see such errors."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import small_model
from ofa_plus import OFAPlusProcessor
from ofa_plus.finetune import finetune
from ofa_plus.task_card import CARD_KEYS, CardError, TaskCard, cards_from_dicts, generation_kwargs, load_cards
from toy_suite import write_toy_suite

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    return write_toy_suite(tmp_path_factory.mktemp("bad_cards"), digits_rows=60)


@pytest.fixture()
def digits(suite) -> dict:
    return yaml.safe_load((suite / "digits.yaml").read_text())


@pytest.fixture()
def characters(suite) -> dict:
    return yaml.safe_load((suite / "characters.yaml").read_text())


def refused(card: dict | str, folder: Path) -> CardError:
    """Load ``card`` (a dict, or YAML text) from a file; it must be refused naming the file and the key."""
    path = folder / "card.yaml"
    path.write_text(card if isinstance(card, str) else yaml.safe_dump(card))
    with pytest.raises(CardError) as err:
        load_cards(path)
    assert str(path) in str(err.value) and f": {err.value.key}: " in str(err.value), str(err.value)
    return err.value


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("num_beams", 0, "positive integer, got 0"),
        ("num_beams", "three", "positive integer, got 'three'"),
        ("num_beams", 2.5, "positive integer, got 2.5"),
        ("num_beams", True, "positive integer, got True"),
        ("max_new_tokens", -3, "positive integer, got -3"),
        ("max_new_tokens", None, "positive integer, got None"),
    ],
)
def test_generation_values_are_checked_when_the_card_loads(characters, tmp_path, key, value, words):
    characters["generation"][key] = value
    err = refused(characters, tmp_path)
    assert err.key == f"generation.{key}" and words in str(err)


@pytest.mark.parametrize(
    "value, key, words",
    [
        ({"caption": {"max_length": 8}}, "settings.caption", "no slot 'caption'"),
        ({"character": {"max_lenght": 8}}, "settings.character.max_lenght", "no attribute 'max_lenght'"),
        ({"character": 5}, "settings.character", "must be a mapping, got int"),
        ({"character": {"max_length": "eight"}}, "settings.character.max_length", "must be an integer"),
        ({"character": {"max_length": 0}}, "settings.character.max_length", "must be >= 1"),
        ({"character": {"uncased": "yes"}}, "settings.character.uncased", "true or false"),
        ({"character": {"no_loss": True}}, "settings.character.no_loss", "encoder side has no attribute"),
        ({"name": {"mask_ratio": 0.5}}, "settings.name.mask_ratio", "decoder side has no attribute"),
        ({"character": {"mask_ratio": float("nan")}}, "settings.character.mask_ratio", "finite number"),
        ({"name": {"closed_set": "yes"}}, "settings.name.closed_set", "list of candidates"),
        ([1, 2], "settings", "must be a mapping, got list"),
    ],
)
def test_settings_are_checked_like_instruction_attributes(characters, tmp_path, value, key, words):
    characters["settings"] = value
    err = refused(characters, tmp_path)
    assert err.key == key and words in str(err)


def test_valid_settings_reach_the_plan(characters, tmp_path):
    characters["settings"] = {"character": {"max_length": 4, "uncased": True}}
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(characters))
    slot = load_cards(tmp_path / "ok.yaml")[0].plan.templates[0].slots("encoder")[0]
    assert slot.settings == {"max_length": 4, "uncased": True}


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("weight", float("nan"), "positive finite number, got nan"),
        ("loss_weight", float("inf"), "positive finite number, got inf"),
        ("batch_size", 2.7, "positive integer, got 2.7"),
        ("eval_batch_size", 16.0, "positive integer, got 16.0"),
        ("batch_size", True, "positive integer, got True"),
    ],
)
def test_training_numbers_are_finite_and_batch_sizes_whole(characters, tmp_path, key, value, words):
    characters["training"][key] = value
    err = refused(characters, tmp_path)
    assert err.key == f"training.{key}" and words in str(err)


@pytest.mark.parametrize(
    "closed, key, words",
    [
        ({"column": "label", "colum": "label"}, "generation.closed_set.colum", "unknown key"),
        ({"column": "label", "file": "labels.txt"}, "generation.closed_set", "exactly one of"),
        ({}, "generation.closed_set", "exactly one of"),
        ({"column": 3}, "generation.closed_set.column", "non-empty string"),
        ({"column": "image"}, "generation.closed_set.column", "holds Image values, not plain labels"),
        ([], "generation.closed_set", "empty list"),
        (["zero", None], "generation.closed_set[1]", "non-empty string, got None"),
    ],
)
def test_closed_sets_accept_only_their_forms(digits, tmp_path, closed, key, words):
    digits["generation"]["closed_set"] = closed
    err = refused(digits, tmp_path)
    assert err.key == key and words in str(err)


def test_a_yaml_key_given_twice_is_refused(digits, tmp_path):
    text = yaml.safe_dump(digits)
    err = refused(text + "metrics: [exact_match]\n", tmp_path)
    assert err.key == "metrics" and "given twice" in str(err)
    nested = text.replace("generation:\n", "generation:\n  closed_set: [zero, one]\n")
    err = refused(nested, tmp_path)
    assert err.key == "generation.closed_set" and "line 5" in str(err)


def test_a_metric_must_fit_the_target(digits, tmp_path, suite):
    digits["metrics"] = ["accuracy", "iou_acc"]
    err = refused(digits, tmp_path)
    assert err.key == "metrics[1]" and "scores box predictions, but the task's target gives text" in str(err)
    grounding = {
        "name": "where",
        "instruction": "[IMAGE:image] where is [TEXT:label] ? -> [BOX:box]",
        "dataset": digits["dataset"],
        "metrics": ["iou_acc", "cider"],
    }
    err = refused_saved(grounding)
    assert err.key == "metrics[1]" and "scores text predictions, but the task's target gives box" in str(err)


def refused_saved(data: dict) -> CardError:
    with pytest.raises(CardError) as err:
        cards_from_dicts([data])
    return err.value


@pytest.mark.parametrize("name", ["../../x", "sub/task", "/tmp/x", ".hidden", "a b", "", "x" * 101, "tâche", 7])
def test_names_are_safe_file_names(digits, tmp_path, name):
    digits["name"] = name
    err = refused(digits, tmp_path)
    assert err.key == "name" and "names files" in str(err)


def test_the_shipped_cards_pass_the_new_checks():
    root = Path(__file__).parents[1] / "task_cards"
    names = []
    for file in sorted([*root.glob("default/*.yaml"), *root.glob("speech/*.yaml")]):
        data = yaml.safe_load(file.read_text())
        if isinstance(data.get("generation", {}).get("closed_set"), dict):
            data["generation"]["closed_set"] = ["yes", "no"]  # a column's labels need the built data
        names.append(TaskCard.from_dict(data, source=str(file), check_dataset=False).name)
    assert {"grounding", "tts", "asr", "ljspeech_tts"} <= set(names) and len(names) == 14


# ------------------------------------------------------------------------------ fine-tuning a known task


@pytest.fixture(scope="module")
def model_with_digits(suite, tmp_path_factory) -> Path:
    """A small untrained model that already carries the digits card, saved like a trained one."""
    folder = tmp_path_factory.mktemp("model_with_digits")
    model = small_model(0)
    model.config.task_cards = [load_cards(suite / "digits.yaml")[0].to_dict()]
    model.save_pretrained(folder)
    OFAPlusProcessor.for_config(model.config).save_pretrained(folder)
    return folder


def test_finetuning_a_card_named_like_a_known_task_needs_replace(model_with_digits, suite, tmp_path):
    with pytest.raises(CardError, match="already has a task 'digits'.*--replace") as err:
        finetune(str(model_with_digits), suite / "digits.yaml", tmp_path / "out", steps=1)
    assert err.value.key == "name" and str(suite / "digits.yaml") in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_replace_lets_the_new_card_take_the_task_over(model_with_digits, suite, digits, tmp_path):
    digits["generation"]["num_beams"] = 1  # the new card differs from the saved one
    (tmp_path / "digits.yaml").write_text(yaml.safe_dump(digits))
    finetune(str(model_with_digits), tmp_path / "digits.yaml", tmp_path / "out", steps=1, eval_limit=2, replace=True)
    saved = OFAPlusProcessor.from_pretrained(tmp_path / "out").task_cards
    assert [c["name"] for c in saved] == ["digits"] and saved[0]["generation"]["num_beams"] == 1


# ---------------------------------------------------------------------------------------- fuzzing

# Where a mutation lands, as a key path into the card (ints index lists), and what it writes there.
PATHS = [
    ("name",),
    ("description",),
    ("instruction",),
    ("dataset",),
    ("dataset", "path"),
    ("dataset", "name"),
    ("dataset", "splits"),
    ("dataset", "splits", "train"),
    ("dataset", "splits", "dev"),
    ("columns",),
    ("columns", "label"),
    ("columns", "image", "transform"),
    ("references",),
    ("metrics",),
    ("metrics", 0),
    ("generation",),
    ("generation", "num_beams"),
    ("generation", "max_new_tokens"),
    ("generation", "closed_set"),
    ("generation", "closed_set", "column"),
    ("generation", "closed_set", 0),
    ("training",),
    ("training", "batch_size"),
    ("training", "weight"),
    ("settings",),
    ("settings", "label"),
    ("settings", "label", "max_length"),
    ("settings", "image", "preprocess"),
    ("settings", "label", "closed_set"),
    ("epochs",),
]
WORDS = [
    "label",
    "image",
    "train",
    "validation",
    "accuracy",
    "iou_acc",
    "first",
    "column",
    "file",
    "zero",
    "../x",
    "[TEXT:label] -> [TEXT:image]",
    "[IMAGE:image] -> [BOX:label]",
    "-> [TEXT:label]",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=6),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.one_of(st.sampled_from(WORDS), st.integers(0, 2)), SCALARS, max_size=2),
)


def put(card: dict, path: tuple, value, delete: bool) -> None:
    """Write (or delete) ``value`` at ``path``, turning whatever is in the way into a mapping or list."""
    node = card
    for step, nxt in zip(path, path[1:]):
        if isinstance(step, int):
            if not isinstance(node, list) or not node:
                return
            step = min(step, len(node) - 1)
        child = node[step] if isinstance(node, list) else node.get(step)
        if not isinstance(child, (dict, list)) or (isinstance(nxt, int) != isinstance(child, list)):
            child = [None] if isinstance(nxt, int) else {}
            node[step] = child
        node = child
    last = path[-1]
    if isinstance(node, list):
        if node:
            node[min(last, len(node) - 1) if isinstance(last, int) else 0] = value
    elif delete:
        node.pop(last, None)
    else:
        node[last] = value


MUTATIONS = st.lists(st.tuples(st.sampled_from(PATHS), VALUES, st.booleans()), min_size=1, max_size=3)
# now and then the whole document is something else than a card
WHOLE = st.integers(0, 9).flatmap(lambda n: VALUES if n == 0 else st.just(None))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=MUTATIONS, whole=WHOLE)
def test_fuzzed_cards_only_raise_card_errors_naming_the_file_and_the_key(suite, mutations, whole):
    base = yaml.safe_load((suite / "digits.yaml").read_text())
    card = copy.deepcopy(base)
    for path, value, delete in mutations:
        put(card, path, value, delete)
    folder = suite.parent / "fuzz"
    folder.mkdir(exist_ok=True)
    path = folder / "card.yaml"
    path.write_text(yaml.safe_dump(card if whole is None else whole))
    try:
        loaded = load_cards(path)
    except CardError as err:
        message = str(err)
        assert str(path) in message, message
        written = card if whole is None else whole
        known = CARD_KEYS | (set(map(str, written)) if isinstance(written, dict) else set())
        starts = [k for k in known if err.key == k or err.key.startswith((k + ".", k + "["))]
        assert starts or err.key in ("(top level)", "(yaml)"), err.key
        assert f": {err.key}: " in message, message
        return
    # what loads runs: its plan compiles, its generation settings are usable, and it survives saving
    card = loaded[0]
    settings_of = generation_kwargs(card.plan)
    assert all(isinstance(v, int) and v > 0 for v in settings_of.values() if v is not None), settings_of
    assert all(math.isfinite(v) and v > 0 for v in vars(card.training).values())
    assert cards_from_dicts([card.to_dict()])[0].plan.generator == card.plan.generator
