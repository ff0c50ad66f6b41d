"""Tests for the multi-modal instruction parser (ofa_plus.instruction)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ofa_plus.instruction import (
    Instruction,
    InstructionError,
    PromptText,
    Repeat,
    Slot,
    Template,
    parse_instruction,
)
from ofa_plus.modalities import MODALITIES

REAL_INSTRUCTIONS = [
    "[IMAGE:img] what does the image describe? -> [TEXT:cap]",
    "[TEXT:premise] can we infer [TEXT:hypothesis]? -> [TEXT:label,closed_set=yes|no|maybe]",
    "[IMAGE:image] what are the objects? -> ( [BOX:boxes] [TEXT:labels] )*",
    "[TEXT:question,max_length=64] [IMAGE:image] -> [TEXT:answer,closed_set]",
    '[IMAGE:img] which region does the text " [TEXT:cap] " describe? -> [BOX:region]',
    "[IMAGE:img] what does the region describe? region: [BOX:region] -> [TEXT:cap]",
    'is the sentiment of text " [TEXT:sentence] " positive or negative? -> is the sentiment of text " '
    '[TEXT:sentence,no_loss] " positive or negative? [TEXT:label,closed_set]',
    '" [TEXT:src] " ; structured knowledge: " [STRUCT:database,max_length=876] " . generating sql code. -> [TEXT:tgt]',
]


def error_of(text: str) -> InstructionError:
    with pytest.raises(InstructionError) as info:
        parse_instruction(text)
    assert info.value.instruction == text
    return info.value


def assert_round_trip(x: Instruction) -> None:
    again = parse_instruction(str(x))
    assert again == x
    assert str(again) == str(x)


# ------------------------------------------------------------------------------ real instructions


@pytest.mark.parametrize("text", REAL_INSTRUCTIONS)
def test_real_instructions_round_trip(text):
    x = parse_instruction(text)
    assert x.source == text
    assert_round_trip(x)


def test_caption_structure():
    x = parse_instruction("[IMAGE:img]   what does the\timage describe?  -> [TEXT:cap]")
    (t,) = x.templates
    assert t.encoder == (Slot("IMAGE", "img"), PromptText("what does the image describe?"))
    assert t.decoder == (Slot("TEXT", "cap"),)
    assert t.encoder[1].position == 14
    assert t.decoder[0].position == x.source.index("[TEXT")
    assert str(x) == "[IMAGE:img] what does the image describe? -> [TEXT:cap]"
    assert x.columns() == ["img", "cap"]


def test_sentiment_structure_and_typed_attributes():
    x = parse_instruction(REAL_INSTRUCTIONS[6])
    (t,) = x.templates
    enc, dec = list(t.slots("encoder")), list(t.slots("decoder"))
    assert [s.column for s in enc] == ["sentence"]
    assert [s.column for s in dec] == ["sentence", "label"]
    assert dec[0].get("no_loss") is True and dec[0].has("no_loss")
    assert dec[1].attrs == {"closed_set": True}
    assert not enc[0].has("no_loss") and enc[0].get("no_loss", "dflt") == "dflt"
    assert x.columns() == ["sentence", "label"]

    y = parse_instruction("[TEXT:q , max_length = 64 , uncased] -> [TEXT:a,closed_set=yes|no|maybe]")
    q, a = y.templates[0].slots()
    assert q.attributes == (("max_length", 64), ("uncased", True))
    assert isinstance(q.get("max_length"), int)
    assert a.get("closed_set") == ("yes", "no", "maybe")
    assert str(y) == "[TEXT:q,max_length=64,uncased] -> [TEXT:a,closed_set=yes|no|maybe]"


def test_empty_sides_and_unnamed_decoder_slot():
    x = parse_instruction("  ->  [TEXT,closed_set]")
    (t,) = x.templates
    assert t.encoder == () and t.decoder == (Slot("TEXT", None, (("closed_set", True),)),)
    assert str(x) == "-> [TEXT,closed_set]"
    assert x.columns() == []
    y = parse_instruction("[TEXT:x] ->")
    assert str(y) == "[TEXT:x] ->" and y.templates[0].decoder == ()
    assert str(parse_instruction("->")) == "->"
    for z in (x, y):
        assert_round_trip(z)


def test_templates():
    x = parse_instruction("[TEXT:a] summarise -> [TEXT:b]|||[TEXT:a] tl;dr: ->[TEXT:b] ||| -> [TEXT:c]")
    assert len(x.templates) == 3
    assert x.templates[1].encoder[1] == PromptText("tl;dr:")
    assert x.templates[2].encoder == ()
    assert x.columns() == ["a", "b", "c"]
    assert str(x) == "[TEXT:a] summarise -> [TEXT:b] ||| [TEXT:a] tl;dr: -> [TEXT:b] ||| -> [TEXT:c]"
    assert_round_trip(x)
    # Escaped pipes are text, not a separator.
    y = parse_instruction(r"[TEXT:a] x \||| y -> [TEXT:b]")
    assert len(y.templates) == 1 and y.templates[0].encoder[1].text == "x ||| y"
    assert_round_trip(y)


def test_slots_side_validation():
    t = parse_instruction(REAL_INSTRUCTIONS[0]).templates[0]
    with pytest.raises(ValueError):
        list(t.slots("target"))


def test_equality_ignores_position_and_source():
    a = parse_instruction("[TEXT:a] hi -> [TEXT:b]")
    b = parse_instruction("[TEXT:a]     hi   ->    [TEXT:b]")
    assert a == b and hash(a) == hash(b) and a.source != b.source
    built = Instruction((Template((Slot("TEXT", "a"), PromptText("hi")), (Slot("TEXT", "b"),)),))
    assert built == a
    assert repr(a) == "Instruction('[TEXT:a] hi -> [TEXT:b]')"
    assert parse_instruction("[TEXT:a] hi -> [TEXT:b]") is a  # cached


# ------------------------------------------------------------------------------------ attributes


def valid_value(spec):
    """A (written, parsed) pair that is valid for ``spec``."""
    if spec.kind is bool:
        return None, True
    if spec.kind is int:
        n = int(spec.minimum) + 2 if spec.minimum is not None else 7
        return str(n), n
    if spec.kind is float:
        lo = spec.minimum if spec.minimum is not None else -5.0
        hi = spec.maximum if spec.maximum is not None else 5.0
        v = (lo + hi) / 2
        return repr(v), v
    if spec.kind == "choices":
        return r"very good | not\|bad", ("very good", "not|bad")
    return "my recipe", "my recipe"


def place(modality, attr, spec, body):
    """An instruction that puts the slot ``[modality:c,body]`` on a side ``attr`` may appear on."""
    slot = f"[{modality}:c,{body}]"
    return f"-> {slot}" if spec.side == "decoder" else f"{slot} -> [TEXT:out]"


ALL_ATTRIBUTES = [(m, a, spec) for m, cls in sorted(MODALITIES.items()) for a, spec in cls.all_attributes().items()]


@pytest.mark.parametrize("modality,attr,spec", ALL_ATTRIBUTES, ids=[f"{m}.{a}" for m, a, _ in ALL_ATTRIBUTES])
def test_every_attribute_parses_typed_value(modality, attr, spec):
    written, expected = valid_value(spec)
    body = attr if written is None else f"{attr}={written}"
    x = parse_instruction(place(modality, attr, spec, body))
    (slot,) = [s for s in x.templates[0].slots() if s.column == "c"]
    assert slot.modality == modality
    assert slot.get(attr) == expected
    assert type(slot.get(attr)) is type(expected)
    assert_round_trip(x)
    if spec.kind == "choices" and spec.flag_allowed:
        assert parse_instruction(place(modality, attr, spec, attr)).templates[0].decoder[0].get(attr) is True


@pytest.mark.parametrize("modality,attr,spec", ALL_ATTRIBUTES, ids=[f"{m}.{a}" for m, a, _ in ALL_ATTRIBUTES])
def test_every_attribute_rejects_ill_typed_value(modality, attr, spec):
    if spec.kind is bool:
        body, fragment = f"{attr}=1", "takes no value"
    elif spec.kind in (int, float):
        body, fragment = f"{attr}=abc", "expects"
    elif spec.kind == "choices":
        body, fragment = f"{attr}=a||b", "empty choice"
    else:
        body, fragment = attr, "needs a value"
    text = place(modality, attr, spec, body)
    err = error_of(text)
    assert fragment in err.message
    if fragment == "expects":
        expected_column = text.index("abc")
    elif fragment == "empty choice":
        expected_column = text.index("||") + 1
    else:  # attribute-level errors point at the attribute name
        expected_column = text.index(attr)
    assert err.column == expected_column
    # Numbers must also respect the declared range.
    if spec.kind in (int, float) and (spec.minimum is not None or spec.maximum is not None):
        bad = spec.minimum - 1 if spec.minimum is not None else spec.maximum + 1
        text = place(modality, attr, spec, f"{attr}={bad}")
        err = error_of(text)
        assert "must be" in err.message and err.column == text.index(f"={bad}") + 1


def test_ill_typed_numbers():
    assert "integer" in error_of("[TEXT:a,max_length=1.5] -> [TEXT:b]").message
    assert "finite" in error_of("[TEXT:a,noise_ratio=nan] -> [TEXT:b]").message
    assert "empty value" in error_of("[TEXT:a,max_length= ] -> [TEXT:b]").message
    x = parse_instruction("[TEXT:a,noise_ratio=1] -> [TEXT:b]")
    assert x.templates[0].encoder[0].get("noise_ratio") == 1.0
    assert str(x) == "[TEXT:a,noise_ratio=1.0] -> [TEXT:b]"


def test_choices_with_spaces_and_escapes():
    x = parse_instruction(r"-> [TEXT:l, closed_set = very good | not good\|bad | a\,b\=c\] | x\[y\\z ]")
    assert x.templates[0].decoder[0].get("closed_set") == ("very good", "not good|bad", "a,b=c]", "x[y\\z")
    assert str(x) == r"-> [TEXT:l,closed_set=very good|not good\|bad|a\,b\=c\]|x\[y\\z]"
    assert_round_trip(x)
    y = parse_instruction(r"[TEXT:a,preprocess=re\,cipe\] x] -> [TEXT:b]")
    assert y.templates[0].encoder[0].get("preprocess") == "re,cipe] x"
    assert_round_trip(y)


# ---------------------------------------------------------------------------------------- repeat


def test_repeat_pattern():
    x = parse_instruction(REAL_INSTRUCTIONS[2])
    (t,) = x.templates
    (rep,) = t.decoder
    assert isinstance(rep, Repeat)
    assert rep.items == (Slot("BOX", "boxes"), Slot("TEXT", "labels"))
    assert rep.position == x.source.index("(")
    assert [s.column for s in t.slots("decoder")] == ["boxes", "labels"]
    assert x.columns() == ["image", "boxes", "labels"]
    assert str(x) == REAL_INSTRUCTIONS[2]
    assert_round_trip(x)


def test_repeat_with_text_on_encoder_side():
    x = parse_instruction("(   [BOX:b] is a [TEXT:l] ;)* what else? -> [TEXT:rest]")
    (rep, text) = x.templates[0].encoder
    assert rep.items == (Slot("BOX", "b"), PromptText("is a"), Slot("TEXT", "l"), PromptText(";"))
    assert text == PromptText("what else?")
    assert str(x) == "( [BOX:b] is a [TEXT:l] ; )* what else? -> [TEXT:rest]"
    assert_round_trip(x)


def test_parentheses_and_star_are_text_outside_groups():
    x = parse_instruction("[TEXT:a] f(x) = (y)* , (z -> [TEXT:b] )*")
    assert x.templates[0].encoder[1].text == "f(x) = (y)* , (z"
    assert x.templates[0].decoder[1].text == ")*"
    assert_round_trip(x)


# -------------------------------------------------------------------------------------- escaping


def test_escaping_in_prompt_text():
    src = r"[TEXT:a] \[x\] \(y\) a\|b c \-> d \\ e -> [TEXT:b]"
    x = parse_instruction(src)
    assert x.templates[0].encoder[1] == PromptText(r"[x] (y) a|b c -> d \ e")
    assert str(x) == r"[TEXT:a] \[x\] (y) a\|b c \-> d \\ e -> [TEXT:b]"
    assert_round_trip(x)


def test_parenthesis_before_slot_is_escaped():
    x = parse_instruction(r"[TEXT:a] see \( [TEXT:b] ) -> [TEXT:c]")
    assert x.templates[0].encoder[1:] == (PromptText("see ("), Slot("TEXT", "b"), PromptText(")"))
    assert str(x) == r"[TEXT:a] see \( [TEXT:b] ) -> [TEXT:c]"
    assert_round_trip(x)
    # Canonical form escapes what would otherwise open/close a group or form an arrow.
    assert str(PromptText("a (")) == r"a \("
    assert str(PromptText("x)*")) == r"x\)*"
    assert str(PromptText("a->b|c")) == r"a\->b\|c"


# ---------------------------------------------------------------------------------------- errors

ERROR_CASES = [
    # (instruction, fragment of the message, column of the caret)
    ("[SMELL:a] -> [TEXT:b]", "unknown modality 'SMELL'", 1),
    ("[ text:a] -> [TEXT:b]", "modalities are upper case: TEXT", 2),
    ("[TEXT:a,colour=red] -> [TEXT:b]", "unknown attribute 'colour'", 8),
    ("[TEXT:a, max_length= abc] -> [TEXT:b]", "expects an integer", 21),
    ("[IMAGE:a,mask_ratio=1.5] -> [TEXT:b]", "must be <= 1.0", 20),
    ("-> [TEXT:a,no_loss=1]", "takes no value", 11),
    ("[TEXT:a,max_length] -> [TEXT:b]", "needs a value", 8),
    ("[IMAGE:a,max_length=3] -> [TEXT:b]", "is an attribute of STRUCT, TEXT", 9),
    ("[TEXT:a,no_loss] -> [TEXT:b]", "target-only attribute 'no_loss'", 8),
    ("[BOX:a,no_loss] -> [TEXT:b]", "target-only attribute 'no_loss'", 7),
    ("[TEXT:a] -> [TEXT:b,closed_set=x|y]", "target-only", None),  # valid: no error
    ("[IMAGE:a] -> [TEXT:b,mask_ratio=0.3]", "encoder-only attribute 'mask_ratio'", 21),
    ("[TEXT:a,max_length=3,max_length=4] -> [TEXT:b]", "duplicate attribute 'max_length'", 21),
    ("[TEXT:a] caption", "missing '->'", 16),
    ("[TEXT:a] -> [TEXT:b] ||| [TEXT:a] x ||| -> [TEXT:c]", "missing '->'", 36),
    ("[TEXT:a] -> b -> [TEXT:c]", "exactly one '->'", 14),
    ("[TEXT:] -> [TEXT:b]", "empty column name", 5),
    ("[TEXT:a b] -> [TEXT:b]", "invalid column name", 6),
    ("[TEXT] -> [TEXT:b]", "encoder-side slot needs a column name", 0),
    ("[IMAGE:i] -> ( [BOX] [TEXT:l] )*", "inside a repeat group needs a column name", 15),
    ("[TEXT:a -> [TEXT:b]", "not closed before the next '['", 0),
    ("[TEXT:a] -> [TEXT:b", "never closed", 12),
    ("[TEXT:a] x] -> [TEXT:b]", "']' without a matching '['", 10),
    ("[IMAGE:i] -> ( [BOX:b] [TEXT:l]", "not closed with ')*'", 13),
    ("( [TEXT:a] -> [TEXT:b] )*", "not closed with ')*' before '->'", 0),
    ("[IMAGE:i] -> ( )*", "empty repeat group", 13),
    ("( [TEXT:a] ( [TEXT:b] )* -> [TEXT:c]", "cannot be nested", 11),
    ("[TEXT:a] -> [TEXT:b] \\", "lone backslash", 21),
    ("[] -> [TEXT:b]", "no modality name", 0),
    ("[TEXT:a,,uncased] -> [TEXT:b]", "empty attribute", 7),
    ("-> [TEXT:a,closed_set=yes|]", "empty choice", 26),
]


@pytest.mark.parametrize("text,fragment,column", ERROR_CASES)
def test_error_cases(text, fragment, column):
    if column is None:
        parse_instruction(text)  # a control case: the same attribute on its allowed side
        return
    err = error_of(text)
    assert fragment in err.message
    assert err.column == column


def test_unknown_modality_lists_known_ones():
    err = error_of("[SMELL:a] -> [TEXT:b]")
    assert all(name in err.message for name in MODALITIES)
    err = error_of("[TEXT:a,colour=red] -> [TEXT:b]")
    assert all(name in err.message for name in MODALITIES["TEXT"].all_attributes())


def test_error_rendering_has_caret_under_column():
    err = error_of("[TEXT:a] -> [TEXT:b,mask_ratio=0.3]")
    message, line, caret = str(err).split("\n")
    assert message == err.message
    prefix = line[: len(line) - len(err.instruction)]
    assert line == prefix + err.instruction
    assert caret == prefix + " " * err.column + "^"
    assert line[len(caret) - 1] == "m"  # the caret sits under "mask_ratio"
    assert isinstance(err, ValueError)


def test_error_pickles():
    import pickle

    err = error_of("[TEXT] -> [TEXT:b]")
    again = pickle.loads(pickle.dumps(err))
    assert (again.message, again.instruction, again.column) == (err.message, err.instruction, err.column)


def test_non_string_input():
    with pytest.raises(TypeError):
        parse_instruction(42)


# -------------------------------------------------------------------------------------- hypothesis

NAMES = sorted(MODALITIES) + [m.lower() for m in MODALITIES]
ATTR_NAMES = sorted({a for cls in MODALITIES.values() for a in cls.all_attributes()})
ALPHABET = "[]():,=|->\\* *ab\t"
TEXT_ALPHABET = "[]():,=|->\\*  ab.\"'\t\n"


def _slot_source(draw_side=None):
    """Strategy for slot strings written by hand, valid or not."""
    body = st.lists(
        st.one_of(
            st.sampled_from(ATTR_NAMES),
            st.builds(
                lambda a, v: f"{a}={v}",
                st.sampled_from(ATTR_NAMES),
                st.sampled_from(["1", "0.5", "-1", "2", "x", "a|b", "a\\,b", "", "1e9", "yes | no"]),
            ),
        ),
        max_size=3,
    )
    return st.builds(
        lambda m, c, attrs: "[" + ",".join([m + c, *attrs]) + "]",
        st.sampled_from(NAMES),
        st.sampled_from(["", ":", ":col", ":a.b-c", " : x ", ":x y"]),
        body,
    )


PIECES = st.one_of(
    st.text(alphabet=ALPHABET, max_size=6),
    st.sampled_from(NAMES + ATTR_NAMES + ["->", "|||", "( ", " )*", "\\", " ", "\\(", "[", "]"]),
    _slot_source(),
)


# Mostly well-formed: every template gets exactly one arrow, pieces are words, escapes and slots.
VALID_PIECES = st.one_of(
    st.sampled_from(["what", "is", "(", ")", ")*", "*", "\\[", "\\]", "\\|", "\\->", "\\\\", "\\(", "-", ">"]),
    _slot_source(),
    st.builds(lambda a, b: f"( {a} {b} )*", _slot_source(), _slot_source()),
)
SIDE = st.lists(VALID_PIECES, max_size=4).map(" ".join)
TEMPLATE = st.builds(lambda enc, dec: f"{enc} -> {dec}", SIDE, SIDE)
RANDOM_INSTRUCTIONS = st.one_of(
    st.lists(PIECES, max_size=10).map("".join),
    st.lists(TEMPLATE, min_size=1, max_size=3).map(" ||| ".join),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RANDOM_INSTRUCTIONS)
def test_random_strings_only_raise_instruction_error(text):
    try:
        x = parse_instruction(text)
    except InstructionError as err:
        assert 0 <= err.column <= len(text)
        assert str(err).endswith("^")
        return
    assert_round_trip(x)


# Objects built directly from the data model: their canonical form must parse back to them.


def _norm(s: str) -> str:
    return " ".join(s.split())


TEXTS = st.text(alphabet=TEXT_ALPHABET, min_size=1, max_size=10).map(_norm).filter(bool)
VALUES = st.text(alphabet=TEXT_ALPHABET, min_size=1, max_size=8).map(str.strip).filter(bool)
COLUMNS = st.from_regex(r"[A-Za-z0-9_.\-]{1,6}", fullmatch=True)


def _value(spec):
    if spec.kind is bool:
        return st.just(True)
    if spec.kind is int:
        lo = int(spec.minimum) if spec.minimum is not None else -(10**6)
        hi = int(spec.maximum) if spec.maximum is not None else 10**6
        return st.integers(lo, hi)
    if spec.kind is float:
        lo = spec.minimum if spec.minimum is not None else -1e6
        hi = spec.maximum if spec.maximum is not None else 1e6
        return st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    if spec.kind == "choices":
        lists = st.lists(VALUES, min_size=1, max_size=3).map(tuple)
        return st.one_of(st.just(True), lists) if spec.flag_allowed else lists
    return VALUES


@st.composite
def slots(draw, side, named):
    modality = draw(st.sampled_from(sorted(MODALITIES)))
    allowed = {a: s for a, s in MODALITIES[modality].all_attributes().items() if s.side in ("both", side)}
    names = draw(st.lists(st.sampled_from(sorted(allowed)), unique=True, max_size=3)) if allowed else []
    attrs = tuple((a, draw(_value(allowed[a]))) for a in names)
    column = draw(COLUMNS) if named else draw(st.one_of(st.none(), COLUMNS))
    return Slot(modality, column, attrs)


def _merge_texts(items):
    out = []
    for item in items:
        if isinstance(item, PromptText) and out and isinstance(out[-1], PromptText):
            out[-1] = PromptText(out[-1].text + " " + item.text)
        else:
            out.append(item)
    return tuple(out)


@st.composite
def sides(draw, side):
    items = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "slot", "repeat"]))
        if kind == "text":
            items.append(PromptText(draw(TEXTS)))
        elif kind == "slot":
            items.append(draw(slots(side, named=side == "encoder")))
        else:  # the grammar makes a group start with a slot
            rest = draw(st.lists(st.one_of(TEXTS.map(PromptText), slots(side, named=True)), max_size=3))
            items.append(Repeat(_merge_texts([draw(slots(side, named=True)), *rest])))
    return _merge_texts(items)


INSTRUCTIONS = st.lists(st.builds(Template, sides("encoder"), sides("decoder")), min_size=1, max_size=3).map(
    lambda ts: Instruction(tuple(ts))
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(INSTRUCTIONS)
def test_built_instructions_round_trip(x):
    parsed = parse_instruction(str(x))
    assert parsed == x
    assert str(parsed) == str(x)
