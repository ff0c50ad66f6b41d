"""Task plan: an instruction compiled into what runs for each slot, the loss and the generator.

A plan is plain data: which modality handles each slot and with which settings, how slots group
into segments (each run of adjacent text-like items on one side becomes one BOS ... EOS token
sequence; every non-text slot is a segment of its own), which decoder slots are scored, and how
the output is generated and constrained. ``print(plan)`` shows the whole pipeline of a task.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from .instruction import Instruction, InstructionError, PromptText, Repeat, Slot, parse_instruction
from .modalities import Modality, get_modality

LOSS = "label_smoothed_cross_entropy"
# A target's modality names its output kind (ofa_plus.outputs): token targets share this loss; other
# kinds (speech: AUDIO) bring their own generator and loss and, by default, fill the decoder side alone.


@dataclass(frozen=True)
class SlotPlan:
    """One slot with its handler. ``settings`` = slot attributes over the task card's settings."""

    slot: Slot
    side: str
    modality: type[Modality] = field(compare=False)
    settings: dict[str, Any] = field(compare=False, hash=False)
    in_repeat: bool = False

    @property
    def column(self) -> str:
        return self.slot.column or self.slot.modality.lower()  # unnamed decoder slot: the modality's name

    @property
    def scored(self) -> bool:
        """Decoder slots are targets unless marked ``no_loss``; encoder slots never are."""
        return self.side == "decoder" and not self.settings.get("no_loss", False)

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"[{self.slot.modality}:{self.column}] -> {self.modality.__name__}" + (f" ({attrs})" if attrs else "")


@dataclass(frozen=True)
class RepeatPlan:
    """``( item item ... )*``: the items repeat once per element of their (list-valued) columns."""

    items: tuple[PromptText | SlotPlan, ...]
    position: int = 0

    def slots(self) -> list[SlotPlan]:
        return [i for i in self.items if isinstance(i, SlotPlan)]


@dataclass(frozen=True)
class SegmentPlan:
    """A token run (``kind == "tokens"``, wrapped in BOS ... EOS unless disabled) or one non-text slot."""

    kind: str
    items: tuple[PromptText | SlotPlan | RepeatPlan, ...]
    bos_eos: bool = True

    def slots(self) -> list[SlotPlan]:
        out = []
        for item in self.items:
            out.extend(item.slots() if isinstance(item, RepeatPlan) else [item] if isinstance(item, SlotPlan) else [])
        return out


@dataclass(frozen=True)
class TemplatePlan:
    encoder: tuple[SegmentPlan, ...]
    decoder: tuple[SegmentPlan, ...]

    def slots(self, side: str | None = None) -> list[SlotPlan]:
        segments = {"encoder": self.encoder, "decoder": self.decoder}.get(side, self.encoder + self.decoder)
        return [s for segment in segments for s in segment.slots()]

    def targets(self) -> list[SlotPlan]:
        return [s for s in self.slots("decoder") if s.scored]


@dataclass(frozen=True)
class GeneratorPlan:
    """How outputs are produced: ``kind`` is "text", "closed_set", "box", "sequence" (mixed/repeated targets)
    or a non-text target's own kind ("audio": decoder steps of mel frames; ``max_new_tokens`` None = the
    model's limit)."""

    kind: str
    num_beams: int = 5
    max_new_tokens: int | None = 32
    closed_set: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TaskPlan:
    instruction: Instruction
    templates: tuple[TemplatePlan, ...]
    loss: str
    generator: GeneratorPlan
    name: str | None = None
    output_kind: str = "tokens"  # the output kind (ofa_plus.outputs) that trains, generates and decodes it

    def __str__(self) -> str:
        lines = [f"TaskPlan{f' {self.name!r}' if self.name else ''}: {self.instruction}"]
        for t, template in enumerate(self.templates):
            if len(self.templates) > 1:
                lines.append(f"  template {t}:")
            for side, segments in (("encoder", template.encoder), ("decoder", template.decoder)):
                lines.append(f"  {side}:")
                for segment in segments:
                    wrap = " BOS ... EOS" if segment.kind == "tokens" and segment.bos_eos else ""
                    lines.append(f"    segment {segment.kind}{wrap}:")
                    for item in segment.items:
                        lines.extend(_describe_item(item, "      "))
        g = self.generator
        lines.append(f"  loss: {self.loss} on {', '.join(s.column for s in self.templates[0].targets()) or '-'}")
        extra = f", candidates={list(g.closed_set)}" if g.closed_set else ""
        lines.append(f"  generator: {g.kind} (num_beams={g.num_beams}, max_new_tokens={g.max_new_tokens}{extra})")
        return "\n".join(lines)

    def columns(self, side: str | None = None) -> list[str]:
        seen: dict[str, None] = {}
        for template in self.templates:
            for s in template.slots(side):
                seen.setdefault(s.column)
        return list(seen)


def _describe_item(item, indent: str) -> list[str]:
    if isinstance(item, PromptText):
        return [f"{indent}prompt {item.text!r} -> text tokens"]
    if isinstance(item, RepeatPlan):
        return [f"{indent}repeat ( ... )* over list columns:"] + [
            line for sub in item.items for line in _describe_item(sub, indent + "  ")
        ]
    role = " [scored]" if item.scored else (" [prefix, no loss]" if item.side == "decoder" else "")
    return [f"{indent}{item.describe()}{role}"]


def _slot_plan(slot: Slot, side: str, settings: dict, in_repeat: bool) -> SlotPlan:
    modality = get_modality(slot.modality)
    merged = dict(settings.get(slot.column or "", {}))
    for key, value in slot.attrs.items():
        if value is True and isinstance(merged.get(key), (tuple, list)):
            continue  # a bare choices flag (``closed_set``) takes its candidates from the card
        merged[key] = value
    return SlotPlan(slot, side, modality, merged, in_repeat)


def _segments(items, side: str, settings: dict) -> tuple[SegmentPlan, ...]:
    segments: list[SegmentPlan] = []
    run: list = []
    run_bos_eos = True

    def close_run():
        nonlocal run, run_bos_eos
        if run:
            segments.append(SegmentPlan("tokens", tuple(run), run_bos_eos))
        run, run_bos_eos = [], True

    for item in items:
        if isinstance(item, PromptText):
            run.append(item)
        elif isinstance(item, Repeat):
            plans = tuple(_slot_plan(i, side, settings, True) if isinstance(i, Slot) else i for i in item.items)
            for p in plans:
                if isinstance(p, SlotPlan) and not p.modality.text_like:
                    raise InstructionError(
                        f"a repeat group may only hold text-like slots, not {p.slot.modality}", "", p.slot.position
                    )
            run.append(RepeatPlan(plans, item.position))
        else:
            plan = _slot_plan(item, side, settings, False)
            if plan.modality.text_like:
                run.append(plan)
                run_bos_eos = run_bos_eos and not plan.settings.get("disable_auto_boseos", False)
            else:
                close_run()
                segments.append(SegmentPlan(item.modality, (plan,), False))
    close_run()
    return tuple(segments)


def _check_template(template: TemplatePlan, source: str) -> None:
    """The output kind checks the decoder side, each modality its slots."""
    from .outputs import get_output_kind  # noqa: PLC0415 (output kinds build on plans)

    kind = _output_kind(template)
    if kind is None:
        slot = next(s for s in template.slots("decoder") if s.modality.output_kind is None)
        raise InstructionError(
            f"{slot.slot.modality} cannot be generated by this model yet (decoder-side slots "
            f"must be text-like: TEXT, BOX, STRUCT, or AUDIO)",
            source,
            slot.slot.position,
        )
    problem = get_output_kind(kind).check_template(template)
    if problem:
        slot = next(s for s in template.slots("decoder") if s.modality.output_kind == kind)
        raise InstructionError(problem, source, slot.slot.position)
    for s in template.slots():
        recipe = s.settings.get("preprocess")
        if recipe is not None and recipe not in s.modality.preprocess_recipes:
            known = ", ".join(s.modality.preprocess_recipes) or "none"
            raise InstructionError(
                f"unknown preprocess recipe {recipe!r} for {s.slot.modality} (known: {known})", source, s.slot.position
            )
        problem = s.modality.check_slot(s, template)
        if problem:
            raise InstructionError(problem, source, s.slot.position)


def _output_kind(template: TemplatePlan) -> str | None:
    """The output kind of the decoder side: that of its (first non-token) slot; None if one can't be generated."""
    kinds = [s.modality.output_kind for s in template.slots("decoder")]
    if None in kinds:
        return None
    return next((k for k in kinds if k != "tokens"), "tokens")


def _generator(template: TemplatePlan, generation: dict) -> GeneratorPlan:
    targets = template.targets()
    decoder_repeats = [i for seg in template.decoder for i in seg.items if isinstance(i, RepeatPlan)]
    from .outputs import get_output_kind  # noqa: PLC0415 (output kinds build on plans)

    kind, candidates = "text", None
    output_kind = _output_kind(template)
    if output_kind != "tokens":
        kind = get_output_kind(output_kind).generator
    elif decoder_repeats or len(targets) > 1:
        kind = "sequence"
    elif targets and targets[0].slot.modality == "BOX":
        kind = "box"
    elif targets and "closed_set" in targets[0].settings:
        kind = "closed_set"
        value = targets[0].settings["closed_set"]
        candidates = tuple(value) if isinstance(value, (tuple, list)) else None
    defaults = {"text": (5, 32), "closed_set": (1, 32), "box": (1, 5), "sequence": (5, 128)}.get(kind, (1, None))
    return GeneratorPlan(
        kind, generation.get("num_beams", defaults[0]), generation.get("max_new_tokens", defaults[1]), candidates
    )


def compile_plan(
    instruction: str | Instruction,
    settings: dict | None = None,
    generation: dict | None = None,
    name: str | None = None,
) -> TaskPlan:
    """Compile an instruction (string or parsed) into a `TaskPlan`.

    ``settings`` maps a column to default slot settings (a task card's, e.g. ``{"label":
    {"closed_set": ("yes", "no")}}``); attributes written in the instruction win. ``generation``
    overrides the generator defaults (``num_beams``, ``max_new_tokens``). Plans of plain instruction
    strings are cached.
    """
    if not isinstance(instruction, (str, Instruction)):
        raise TypeError(
            f"compile_plan takes an instruction string (or a parsed Instruction), got {type(instruction).__name__}: "
            f"{instruction!r:.80}"
        )
    if isinstance(instruction, str) and not settings and not generation:
        return _compile_cached(instruction, name)
    parsed = parse_instruction(instruction) if isinstance(instruction, str) else instruction
    return _compile(parsed, settings or {}, generation or {}, name)


@functools.lru_cache(maxsize=256)
def _compile_cached(instruction: str, name: str | None) -> TaskPlan:
    return _compile(parse_instruction(instruction), {}, {}, name)


def _compile(parsed: Instruction, settings: dict, generation: dict, name: str | None) -> TaskPlan:
    source = parsed.source if getattr(parsed, "source", None) else str(parsed)
    templates = []
    for template in parsed.templates:
        if not template.encoder:  # the encoder needs at least one token to attend over
            raise InstructionError(
                "the encoder side (left of '->') is empty: give it an input slot or prompt text",
                source,
                max(template.position, 0),
            )
        try:  # the checks below raise without the source text; attach it here
            plan = TemplatePlan(
                _segments(template.encoder, "encoder", settings), _segments(template.decoder, "decoder", settings)
            )
            _check_template(plan, source)
        except InstructionError as err:
            raise InstructionError(err.message, source, err.column) from None
        templates.append(plan)
    generators = {_generator(t, generation) for t in templates}
    if len(generators) > 1:
        raise InstructionError(
            "all templates of one instruction must produce the same kind of output "
            f"({sorted(g.kind for g in generators)})",
            source,
            0,
        )
    from .outputs import get_output_kind  # noqa: PLC0415 (output kinds build on plans)

    kind = _output_kind(templates[0])
    return TaskPlan(parsed, tuple(templates), get_output_kind(kind).loss, generators.pop(), name, kind)
