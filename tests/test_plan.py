"""Task plans: segments, scored vs prefix slots, generators, printing, caching and errors."""

from __future__ import annotations

import pytest

from ofa_plus import InstructionError, compile_plan, parse_instruction
from ofa_plus.instruction import PromptText
from ofa_plus.modalities.box import BoxModality
from ofa_plus.modalities.image import ImageModality
from ofa_plus.modalities.struct import StructModality
from ofa_plus.modalities.text import TextModality
from ofa_plus.plan import RepeatPlan, SlotPlan

CAPTION = "[IMAGE:image] what does the image describe? -> [TEXT:caption]"
GROUNDING = '[IMAGE:img] which region does the text " [TEXT:cap] " describe? -> [BOX:region]'
DETECT = "[IMAGE:image] what are the objects? -> ( [BOX:boxes] [TEXT:labels] )*"
SENTIMENT = (
    'is the sentiment of text " [TEXT:sentence] " positive or negative? -> '
    "[TEXT:sentence,no_loss] [TEXT:label,closed_set=positive|negative]"
)


def _kinds(segments):
    return [(s.kind, s.bos_eos) for s in segments]


def test_caption_plan_structure():
    plan = compile_plan(CAPTION)
    (template,) = plan.templates
    assert _kinds(template.encoder) == [("IMAGE", False), ("tokens", True)]
    assert _kinds(template.decoder) == [("tokens", True)]
    (image,) = template.encoder[0].items
    assert isinstance(image, SlotPlan) and image.modality is ImageModality and image.side == "encoder"
    assert not image.scored
    assert template.encoder[1].items == (PromptText("what does the image describe?"),)
    assert [s.column for s in template.targets()] == ["caption"]
    assert template.targets()[0].modality is TextModality and template.targets()[0].scored
    assert plan.columns() == ["image", "caption"]
    assert plan.columns("encoder") == ["image"] and plan.columns("decoder") == ["caption"]
    assert plan.loss == "label_smoothed_cross_entropy"
    assert (plan.generator.kind, plan.generator.num_beams, plan.generator.max_new_tokens) == ("text", 5, 32)


def test_text_runs_merge_into_one_segment_and_non_text_slots_split_them():
    plan = compile_plan("[TEXT:a] and [STRUCT:t] [IMAGE:x] [IMAGE:y] then [TEXT:b] -> [TEXT:out]")
    (template,) = plan.templates
    assert _kinds(template.encoder) == [("tokens", True), ("IMAGE", False), ("IMAGE", False), ("tokens", True)]
    first = template.encoder[0].items
    assert [type(i) for i in first] == [SlotPlan, PromptText, SlotPlan]
    assert first[2].modality is StructModality
    assert [s.column for s in template.encoder[3].slots()] == ["b"]
    # disable_auto_boseos drops BOS ... EOS for its run only
    plan = compile_plan("[TEXT:a,disable_auto_boseos] [IMAGE:x] [TEXT:b] -> [TEXT:c]")
    assert _kinds(plan.templates[0].encoder) == [("tokens", False), ("IMAGE", False), ("tokens", True)]


def test_prefix_and_scored_slots():
    plan = compile_plan(SENTIMENT)
    (template,) = plan.templates
    assert _kinds(template.decoder) == [("tokens", True)]
    prefix, label = template.slots("decoder")
    assert (prefix.column, label.column) == ("sentence", "label") and prefix.settings == {"no_loss": True}
    assert not prefix.scored and label.scored
    assert template.targets() == [label]
    assert [s.column for s in template.slots("encoder")] == ["sentence"]
    assert not template.slots("encoder")[0].scored
    assert plan.generator.kind == "closed_set" and plan.generator.closed_set == ("positive", "negative")
    assert plan.generator.num_beams == 1


def test_generator_kinds_and_defaults():
    cases = {
        CAPTION: ("text", 5, 32, None),
        "[TEXT:premise] [TEXT:hypothesis] -> [TEXT:label,closed_set=yes|no|maybe]": (
            "closed_set",
            1,
            32,
            ("yes", "no", "maybe"),
        ),
        "[TEXT:question] -> [TEXT:answer,closed_set]": ("closed_set", 1, 32, None),
        GROUNDING: ("box", 1, 5, None),
        DETECT: ("sequence", 5, 128, None),
        "[IMAGE:img] -> [TEXT:caption] [BOX:region]": ("sequence", 5, 128, None),
        "[IMAGE:i] [TEXT:src] -> [TEXT:src,no_loss] [BOX:region]": ("box", 1, 5, None),  # prefix + one target
    }
    for instruction, (kind, beams, tokens, candidates) in cases.items():
        g = compile_plan(instruction).generator
        assert (g.kind, g.num_beams, g.max_new_tokens, g.closed_set) == (kind, beams, tokens, candidates), instruction
    g = compile_plan(CAPTION, generation={"num_beams": 2, "max_new_tokens": 7}).generator
    assert (g.num_beams, g.max_new_tokens) == (2, 7)


def test_repeat_plan():
    plan = compile_plan(DETECT)
    (template,) = plan.templates
    (segment,) = template.decoder
    (repeat,) = segment.items
    assert isinstance(repeat, RepeatPlan)
    assert [(s.column, s.modality, s.in_repeat, s.scored) for s in repeat.slots()] == [
        ("boxes", BoxModality, True, True),
        ("labels", TextModality, True, True),
    ]
    assert [s.column for s in template.targets()] == ["boxes", "labels"]
    assert not template.slots("encoder")[0].in_repeat


def test_card_settings_and_instruction_attributes():
    card = {"label": {"closed_set": ("yes", "no"), "max_length": 4}, "premise": {"max_length": 64}}
    plan = compile_plan("[TEXT:premise] [TEXT:hypothesis] -> [TEXT:label,closed_set]", settings=card)
    assert plan.generator.kind == "closed_set" and plan.generator.closed_set == ("yes", "no")  # bare flag: card's
    assert plan.templates[0].targets()[0].settings == {"closed_set": ("yes", "no"), "max_length": 4}
    assert plan.templates[0].slots("encoder")[0].settings == {"max_length": 64}
    # attributes written in the instruction win over the card
    plan = compile_plan("[TEXT:premise,max_length=8] -> [TEXT:label,closed_set=a|b]", settings=card)
    assert plan.generator.closed_set == ("a", "b")
    assert plan.templates[0].slots("encoder")[0].settings == {"max_length": 8}


def test_print_shows_slots_and_generator(capsys):
    plan = compile_plan(SENTIMENT, name="sst2")
    print(plan)
    text = capsys.readouterr().out
    assert text.startswith("TaskPlan 'sst2': ")
    assert "encoder:" in text and "decoder:" in text and "segment tokens BOS ... EOS:" in text
    assert "[TEXT:sentence] -> TextModality (no_loss=True) [prefix, no loss]" in text
    assert "[TEXT:label] -> TextModality (closed_set=('positive', 'negative')) [scored]" in text
    assert "prompt 'is the sentiment of text \"' -> text tokens" in text
    assert "loss: label_smoothed_cross_entropy on label" in text
    assert "generator: closed_set (num_beams=1, max_new_tokens=32, candidates=['positive', 'negative'])" in text
    detect = str(compile_plan(DETECT))
    assert "segment IMAGE:" in detect and "[IMAGE:image] -> ImageModality" in detect
    assert "repeat ( ... )* over list columns:" in detect and "[BOX:boxes] -> BoxModality [scored]" in detect
    assert "generator: sequence (num_beams=5, max_new_tokens=128)" in detect
    two = str(compile_plan("[TEXT:a] -> [TEXT:b] ||| [TEXT:a] again -> [TEXT:b]"))
    assert "template 0:" in two and "template 1:" in two


def test_plans_are_cached_for_plain_strings():
    assert compile_plan(CAPTION) is compile_plan(CAPTION)
    assert compile_plan(DETECT) is compile_plan(DETECT)
    assert compile_plan(CAPTION) is not compile_plan(DETECT)
    # with settings / generation overrides a plan is built fresh, and equals by value
    card = {"caption": {"max_length": 20}}
    assert compile_plan(CAPTION, settings=card) is not compile_plan(CAPTION, settings=card)
    assert compile_plan(parse_instruction(CAPTION)).templates == compile_plan(CAPTION).templates


def _error(instruction, **kwargs) -> InstructionError:
    with pytest.raises(InstructionError) as info:
        compile_plan(instruction, **kwargs)
    assert info.value.instruction == instruction
    return info.value


@pytest.mark.parametrize(
    "instruction, slot, message",
    [
        ("[TEXT:cap] -> [BOX:region]", "[BOX:region]", "needs an IMAGE slot"),
        ('which region does " [TEXT:cap] " describe? -> [BOX:region]', "[BOX:region]", "needs an IMAGE"),
        ("[TEXT:cap] region: [BOX:region] -> [TEXT:out]", "[BOX:region]", "needs an IMAGE"),
        ("[TEXT:cap] -> [IMAGE:img]", "[IMAGE:img]", "cannot be generated"),
        ("[IMAGE:a] [TEXT:t] -> [TEXT:x] [IMAGE:b]", "[IMAGE:b]", "cannot be generated"),
        ("[IMAGE:a] -> [BOX:r,image=b]", "[BOX:r,image=b]", "image column 'b'"),
        ("[TEXT:q] -> ( [IMAGE:i] [TEXT:l] )*", "[IMAGE:i]", "text-like"),
        ("[IMAGE:a] -> [TEXT:x] ||| [TEXT:y] -> [BOX:r]", "[BOX:r]", "needs an IMAGE"),
    ],
)
def test_errors_point_at_the_offending_slot(instruction, slot, message):
    err = _error(instruction)
    assert message in err.message
    assert err.column == instruction.index(slot), (err.column, instruction)
    assert str(err).splitlines()[-1] == " " * (4 + err.column) + "^"


def test_templates_must_agree_on_the_output_kind():
    err = _error("[IMAGE:a] -> [TEXT:x] ||| [IMAGE:a] -> [BOX:r]")
    assert "same kind of output" in err.message
    with pytest.raises(InstructionError):
        compile_plan("[TEXT:a] -> [TEXT:b")  # parse errors come through compile_plan as well
