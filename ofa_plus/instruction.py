"""Multi-modal instructions: the one-line task declarations of OFASys.

An instruction such as ``[IMAGE:img] what does the image describe? -> [TEXT:cap]`` says which
columns feed the encoder (left of ``->``) and which ones the decoder must produce (right of ``->``),
with free prompt text in between. Grammar in short:

* templates are joined by ``|||`` (one is drawn per sample);
* each template has exactly one ``->``; either side may be empty;
* a slot is ``[MODALITY:column,attr,attr=value,...]``; attributes are validated against the
  modality registry (``ofa_plus.modalities``), so a new modality file works without edits here;
* ``( [BOX:boxes] [TEXT:labels] )*`` repeats its items (a ``(`` whose next non-space character
  is ``[`` opens a group, ``)*`` closes it); elsewhere ``(``, ``)`` and ``*`` are plain text;
* a backslash escapes the next character, in prompt text and in attribute values.

``str(instruction)`` is a canonical form with ``parse_instruction(str(x)) == x``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NoReturn

from .modalities import MODALITIES, Attribute

__all__ = ["InstructionError", "PromptText", "Slot", "Repeat", "Template", "Instruction", "parse_instruction"]

_COLUMN_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_INT_RE = re.compile(r"[+-]?[0-9]+")


class InstructionError(ValueError):
    """A malformed instruction; ``column`` is the 0-based index of the offending character."""

    def __init__(self, message: str, instruction: str, column: int):
        super().__init__(message)
        self.message = message
        self.instruction = instruction
        self.column = column

    def __reduce__(self):  # picklable, e.g. when raised inside a DataLoader worker
        return (type(self), (self.message, self.instruction, self.column))

    def __str__(self) -> str:
        prefix = "    "
        # Show tabs/newlines as spaces (same length) so the caret stays under the right character.
        shown = "".join(" " if ch.isspace() else ch for ch in self.instruction)
        return f"{self.message}\n{prefix}{shown}\n{prefix}{' ' * self.column}^"


# ----------------------------------------------------------------------------------- data model
# ``position`` is the 0-based index in the parsed string (-1 for objects built in code); it is
# excluded from equality so that an instruction equals the parse of its canonical form.


@dataclass(frozen=True)
class PromptText:
    """Free text between slots, unescaped and whitespace-normalised."""

    text: str
    position: int = field(default=-1, compare=False)

    def __str__(self) -> str:
        return _escape_text(self.text)


@dataclass(frozen=True)
class Slot:
    """``[MODALITY:column,attr=value,...]``; ``attributes`` keeps the written order."""

    modality: str
    column: str | None = None
    attributes: tuple[tuple[str, object], ...] = ()
    position: int = field(default=-1, compare=False)

    @property
    def attrs(self) -> dict[str, object]:
        return dict(self.attributes)

    def get(self, name: str, default: object = None) -> object:
        for key, value in self.attributes:
            if key == name:
                return value
        return default

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.attributes)

    def __str__(self) -> str:
        parts = [self.modality if self.column is None else f"{self.modality}:{self.column}"]
        for name, value in self.attributes:
            if value is True:
                parts.append(name)
            elif isinstance(value, tuple):
                parts.append(name + "=" + "|".join(_escape_value(str(v)) for v in value))
            elif isinstance(value, float):
                parts.append(f"{name}={value!r}")
            else:
                parts.append(f"{name}={_escape_value(str(value))}")
        return "[" + ",".join(parts) + "]"


@dataclass(frozen=True)
class Repeat:
    """``( item item ... )*``: the items repeat once per element of their (list) columns."""

    items: tuple[PromptText | Slot, ...]
    position: int = field(default=-1, compare=False)

    def __str__(self) -> str:
        return "( " + " ".join(map(str, self.items)) + " )*"


Item = PromptText | Slot | Repeat


@dataclass(frozen=True)
class Template:
    """One ``encoder -> decoder`` alternative of an instruction."""

    encoder: tuple[Item, ...] = ()
    decoder: tuple[Item, ...] = ()
    position: int = field(default=-1, compare=False)

    def slots(self, side: str | None = None) -> Iterator[Slot]:
        """The slots in written order (those inside repeat groups included); ``side`` filters."""
        if side not in (None, "encoder", "decoder"):
            raise ValueError(f"side must be None, 'encoder' or 'decoder', got {side!r}")
        groups = (self.encoder, self.decoder) if side is None else (getattr(self, side),)
        for items in groups:
            for item in items:
                if isinstance(item, Repeat):
                    yield from (x for x in item.items if isinstance(x, Slot))
                elif isinstance(item, Slot):
                    yield item

    def __str__(self) -> str:
        encoder = " ".join(map(str, self.encoder))
        decoder = " ".join(map(str, self.decoder))
        return " ".join(part for part in (encoder, "->", decoder) if part)


@dataclass(frozen=True)
class Instruction:
    """A parsed instruction: one or more templates. ``str()`` gives the canonical form."""

    templates: tuple[Template, ...]
    source: str = field(default="", compare=False)

    def columns(self) -> list[str]:
        """Column names of all slots, in order of first appearance (unnamed slots skipped)."""
        seen: dict[str, None] = {}
        for template in self.templates:
            for slot in template.slots():
                if slot.column is not None:
                    seen.setdefault(slot.column, None)
        return list(seen)

    def __str__(self) -> str:
        return " ||| ".join(map(str, self.templates))

    def __repr__(self) -> str:
        return f"Instruction({str(self)!r})"


# ------------------------------------------------------------------------------------ escaping


def _escape_text(text: str) -> str:
    out = []
    for i, ch in enumerate(text):
        nxt = text[i + 1 : i + 2]
        if (
            ch in "\\[]|"
            or (ch == "-" and nxt == ">")
            or (ch == ")" and nxt == "*")  # would close a repeat group (or be read as an empty one)
            or (ch == "(" and text[i + 1 :].lstrip()[:1] in ("", "["))  # would open a repeat group
        ):
            out.append("\\")
        out.append(ch)
    return "".join(out)


def _escape_value(value: str) -> str:
    return "".join("\\" + ch if ch in "\\,]|=[" else ch for ch in value)


def _unescape(raw: str) -> str:
    # Only called on text inside a slot, where every backslash is followed by a character.
    return re.sub(r"\\(.)", r"\1", raw, flags=re.DOTALL)


# -------------------------------------------------------------------------------------- parser


@functools.lru_cache(maxsize=4096)
def parse_instruction(text: str) -> Instruction:
    """Parse (and validate against the modality registry) an instruction string; cached."""
    if not isinstance(text, str):
        raise TypeError(f"an instruction is a str, got {type(text).__name__}")
    return _Parser(text).parse()


class _Parser:
    """Two passes: ``_lex`` cuts the string into text / slot / arrow / separator / group tokens
    (bracket and escape errors), then each template is assembled with its sides known, so that
    slot attributes can be checked against the side they are on."""

    def __init__(self, src: str):
        self.src = src

    def fail(self, message: str, column: int) -> NoReturn:
        raise InstructionError(message, self.src, column)

    # -- pass 1 -------------------------------------------------------------------------------

    def _lex(self) -> list[tuple]:
        src, n = self.src, len(self.src)
        tokens: list[tuple] = []
        buf: list[tuple[str, int]] = []  # (character, position) of the current prompt-text run
        group: int | None = None  # position of the '(' of the open repeat group

        def flush() -> None:
            if buf:
                tokens.append(("text", list(buf)))
                buf.clear()

        i = 0
        while i < n:
            ch = src[i]
            if ch == "\\":
                if i + 1 >= n:
                    self.fail("lone backslash at the end (write '\\\\' for a literal backslash)", i)
                buf.append((src[i + 1], i))
                i += 2
            elif ch == "[":
                end = self._slot_end(i)
                flush()
                tokens.append(("slot", i, end))
                i = end + 1
            elif ch == "]":
                self.fail("']' without a matching '[' (write '\\]' for a literal bracket)", i)
            elif src.startswith("->", i) or src.startswith("|||", i):
                kind, width = ("arrow", 2) if ch == "-" else ("sep", 3)
                if group is not None:
                    self.fail(f"repeat group is not closed with ')*' before '{src[i : i + width]}'", group)
                flush()
                tokens.append((kind, i))
                i += width
            elif ch == "(" and self._next_nonspace(i + 1, 2) == ")*":
                self.fail("empty repeat group: a group needs at least one slot (write '\\(' for text)", i)
            elif ch == "(" and self._next_nonspace(i + 1, 1) == "[":
                if group is not None:
                    self.fail("repeat groups cannot be nested", i)
                flush()
                tokens.append(("open", i))
                group = i
                i += 1
            elif ch == ")" and group is not None and src.startswith(")*", i):
                flush()
                tokens.append(("close", i))
                group = None
                i += 2
            else:
                buf.append((ch, i))
                i += 1
        if group is not None:
            self.fail("repeat group is not closed with ')*'", group)
        flush()
        return tokens

    def _next_nonspace(self, i: int, width: int) -> str:
        while i < len(self.src) and self.src[i].isspace():
            i += 1
        return self.src[i : i + width]

    def _slot_end(self, start: int) -> int:
        """Index of the ']' closing the slot that opens at ``start``."""
        i = start + 1
        while i < len(self.src):
            ch = self.src[i]
            if ch == "\\":
                i += 2
                continue
            if ch == "]":
                return i
            if ch == "[":
                self.fail(f"'[' is not closed before the next '[' (column {i})", start)
            i += 1
        self.fail("'[' is never closed by ']'", start)

    # -- pass 2 -------------------------------------------------------------------------------

    def parse(self) -> Instruction:
        tokens = self._lex()
        templates = []
        chunk: list[tuple] = []
        start = 0
        for token in tokens + [("sep", len(self.src))]:  # sentinel closes the last template
            if token[0] == "sep":
                templates.append(self._template(chunk, start, token[1]))
                chunk, start = [], token[1] + 3
            else:
                chunk.append(token)
        return Instruction(tuple(templates), source=self.src)

    def _template(self, tokens: list[tuple], start: int, end: int) -> Template:
        arrows = [token[1] for token in tokens if token[0] == "arrow"]
        if not arrows:
            self.fail("missing '->' between the encoder side and the decoder side", end)
        if len(arrows) > 1:
            self.fail("a template has exactly one '->' (write '\\->' for a literal arrow)", arrows[1])
        sides: dict[str, list] = {"encoder": [], "decoder": []}
        side = "encoder"
        group: tuple[int, list] | None = None  # (position of '(', items so far)
        for token in tokens:
            kind = token[0]
            target = group[1] if group is not None else sides[side]
            if kind == "arrow":
                side = "decoder"
            elif kind == "text":
                text = " ".join("".join(ch for ch, _ in token[1]).split())
                if text:
                    position = next(pos for ch, pos in token[1] if not ch.isspace())
                    target.append(PromptText(text, position))
            elif kind == "slot":
                slot = self._slot(token[1], token[2], side)
                if slot.column is None and group is not None:
                    self.fail("a slot inside a repeat group needs a column name: [MODALITY:column]", token[1])
                if slot.column is None and side == "encoder":
                    self.fail("an encoder-side slot needs a column name: [MODALITY:column]", token[1])
                target.append(slot)
            elif kind == "open":
                group = (token[1], [])
            elif kind == "close":
                assert group is not None  # _lex only emits 'close' inside a group
                sides[side].append(Repeat(tuple(group[1]), group[0]))
                group = None
        first = next((i for i in range(start, end) if not self.src[i].isspace()), start)
        return Template(tuple(sides["encoder"]), tuple(sides["decoder"]), first)

    def _split(self, a: int, b: int, sep: str) -> list[tuple[int, int]]:
        """Ranges of ``src[a:b]`` between unescaped ``sep`` characters."""
        parts, start, i = [], a, a
        while i < b:
            if self.src[i] == "\\":
                i += 2
                continue
            if self.src[i] == sep:
                parts.append((start, i))
                start = i + 1
            i += 1
        parts.append((start, b))
        return parts

    def _lead(self, a: int, b: int) -> int:
        """Index of the first non-space character of ``src[a:b]`` (``b`` if none)."""
        while a < b and self.src[a].isspace():
            a += 1
        return a

    def _slot(self, start: int, end: int, side: str) -> Slot:
        src = self.src
        pieces = self._split(start + 1, end, ",")
        a, b = pieces[0]
        colon = src.find(":", a, b)
        name_end = b if colon < 0 else colon
        name = src[a:name_end].strip()
        if not name:
            self.fail("slot has no modality name: [MODALITY:column]", start)
        name_pos = self._lead(a, name_end)
        if name not in MODALITIES:
            if name.upper() in MODALITIES:
                self.fail(f"unknown modality {name!r} (modalities are upper case: {name.upper()})", name_pos)
            self.fail(f"unknown modality {name!r}; known: {', '.join(sorted(MODALITIES))}", name_pos)
        modality = MODALITIES[name]

        column = None
        if colon >= 0:
            column = src[colon + 1 : b].strip()
            if not column:
                self.fail(
                    "empty column name after ':' (write [MODALITY:column]; [MODALITY] is allowed on the decoder side)",
                    colon,
                )
            if not _COLUMN_RE.fullmatch(column):
                self.fail(
                    f"invalid column name {column!r}: use letters, digits, '_', '.' and '-'", self._lead(colon + 1, b)
                )

        valid = modality.all_attributes()
        attributes: list[tuple[str, object]] = []
        for a, b in pieces[1:]:
            first = self._split(a, b, "=")[0][1]  # end of the text before the first unescaped '='
            eq = first if first < b else -1
            name_end = b if eq < 0 else eq
            attr = src[a:name_end].strip()
            attr_pos = self._lead(a, name_end)
            if not attr:
                if eq < 0:
                    self.fail("empty attribute (stray ',')", a - 1)
                self.fail("'=' without an attribute name", eq)
            spec = valid.get(attr)
            if spec is None:
                owners = [m for m, cls in sorted(MODALITIES.items()) if attr in cls.all_attributes()]
                hint = f" ({attr} is an attribute of {', '.join(owners)})" if owners else ""
                self.fail(f"unknown attribute {attr!r} for {name}{hint}; valid: {', '.join(sorted(valid))}", attr_pos)
            if any(attr == seen for seen, _ in attributes):
                self.fail(f"duplicate attribute {attr!r}", attr_pos)
            if spec.side == "decoder" and side == "encoder":
                self.fail(f"target-only attribute {attr!r} of {name} on the encoder side", attr_pos)
            if spec.side == "encoder" and side == "decoder":
                self.fail(f"encoder-only attribute {attr!r} of {name} on the decoder side", attr_pos)
            attributes.append((attr, self._value(attr, attr_pos, spec, eq, b)))
        return Slot(name, column, tuple(attributes), start)

    def _value(self, attr: str, attr_pos: int, spec: Attribute, eq: int, b: int) -> object:
        if eq < 0:
            if spec.kind is bool or (spec.kind == "choices" and spec.flag_allowed):
                return True
            self.fail(f"attribute {attr!r} needs a value: {attr}=...", attr_pos)
        if spec.kind is bool:
            self.fail(f"flag {attr!r} takes no value: write just {attr}", attr_pos)
        raw = self.src[eq + 1 : b]
        if not _unescape(raw).strip():
            self.fail(f"attribute {attr!r} has an empty value after '='", eq)
        pos = self._lead(eq + 1, b)

        if spec.kind == "choices":
            choices = []
            for ca, cb in self._split(eq + 1, b, "|"):
                choice = _unescape(self.src[ca:cb]).strip()
                if not choice:
                    self.fail(f"empty choice in {attr}= (write '\\|' for a literal '|')", ca)
                choices.append(choice)
            return tuple(choices)

        text = _unescape(raw).strip()
        if spec.kind is int:
            if not _INT_RE.fullmatch(text):
                self.fail(f"attribute {attr!r} expects an integer, got {text!r}", pos)
            value: object = int(text)
        elif spec.kind is float:
            try:
                value = float(text)
            except ValueError:
                self.fail(f"attribute {attr!r} expects a number, got {text!r}", pos)
            if not math.isfinite(value):  # nan would also break equality of parsed instructions
                self.fail(f"attribute {attr!r} expects a finite number, got {text!r}", pos)
        else:  # str (and any kind the registry may add later) keeps the unescaped text
            return text
        if spec.minimum is not None and value < spec.minimum:
            self.fail(f"attribute {attr!r} must be >= {spec.minimum}, got {text}", pos)
        if spec.maximum is not None and value > spec.maximum:
            self.fail(f"attribute {attr!r} must be <= {spec.maximum}, got {text}", pos)
        return value
