"""PHONE: phoneme tokens in the reserved phone range of the unified vocabulary (text-like).

English text becomes phones offline with the ``espeak-ng`` program (``espeak-ng -q -x --ipa``), many
texts per process call and cached; its IPA is split into the symbols of `vocabulary.PHONES` by
longest match, with ``|`` between words. Stress (ˈ ˌ) and length (ː) marks are symbols of their
own; tie bars (U+0361, U+035C, and the zero-width joiner espeak-ng writes with ``--ipa=3``) are
removed on purpose, since the vocabulary writes an affricate as two symbols (t ʃ). Any other
character is an error naming it, the text and the slot, never dropped.

A slot value is English text, a list of phone symbols, or (with ``phonemized``) an IPA string.
``preprocess=text_phone`` on a TEXT target asks the processor for the phones of the target text as
``ctc_labels``: the ASR model's auxiliary CTC loss on the encoder's audio states (see
`ctc_phone_ids`; the CTC blank is `CTC_BLANK_ID`).
"""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from typing import Any

from .. import vocabulary as V
from . import register_modality
from .base import Attribute, Modality, SlotContext

DEFAULT_VOICE = "en-us"
WORD_BOUNDARY = "|"
TIE_BARS = {"\u0361", "\u035c", "\u200d"}
_SYMBOLS = sorted(V.PHONES, key=len, reverse=True)  # longest match first
_PHONE_INDEX = {p: i for i, p in enumerate(V.PHONES)}
# CTC blank: the last phone slot (id PHONE_OFFSET + NUM_PHONE_SLOTS - 1, token <phone_extra_255>)
CTC_BLANK = V.CTC_BLANK
CTC_BLANK_ID = V.PHONE_OFFSET + CTC_BLANK
# Not sounds of their own: left out of CTC targets (they stay in PHONE slots, where TTS needs them).
CTC_SKIPPED = {"ˈ", "ˌ", WORD_BOUNDARY}
_SENTINEL = "qzqx qxqz"  # a line espeak-ng reads between texts, to split one call's output per text
_CACHE: dict[tuple[str, str], str] = {}
_CACHE_LIMIT = 200_000


def _espeak(lines: list[str], voice: str) -> list[str]:
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise RuntimeError(
            "PHONE needs the espeak-ng program for text -> phones (Debian/Ubuntu: apt-get install "
            "espeak-ng), or give phones directly as a list of symbols"
        )
    result = subprocess.run(
        [executable, "-q", "-x", "--ipa", "-v", voice],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"espeak-ng -v {voice} failed: {result.stderr.strip()[:300]}")
    return result.stdout.splitlines()


def phonemize(texts: list[str], voice: str = DEFAULT_VOICE) -> list[str]:
    """English texts -> espeak-ng IPA strings (clauses joined by a space), one espeak-ng call for all
    texts not yet cached. Each text is read on its own line, with a sentinel line after it."""
    clean = [" ".join(t.split()) for t in texts]  # newlines would start a new text in espeak-ng
    todo = sorted({t for t in clean if t and (voice, t) not in _CACHE})
    if todo:
        marker = _espeak([_SENTINEL], voice)[0].strip()
        lines: list[str] = []
        for text in todo:
            lines += [text, _SENTINEL]
        output, current, results = _espeak(lines, voice), [], []
        for line in output:
            if line.strip() == marker:
                results.append(" ".join(" ".join(current).split()))
                current = []
            else:
                current.append(line)
        if len(results) != len(todo):
            raise RuntimeError(f"espeak-ng returned {len(results)} results for {len(todo)} texts")
        if len(_CACHE) + len(todo) > _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE.update(((voice, t), r) for t, r in zip(todo, results))
    return [_CACHE[(voice, t)] if t else "" for t in clean]


def split_ipa(ipa: str, where: str = "phones", text: str | None = None) -> list[str]:
    """An IPA string -> symbols of `vocabulary.PHONES` (longest match), ``|`` between words."""
    symbols: list[str] = []
    ipa = unicodedata.normalize("NFC", ipa)
    i = 0
    while i < len(ipa):
        char = ipa[i]
        if char.isspace() or char == WORD_BOUNDARY:
            if symbols and symbols[-1] != WORD_BOUNDARY:
                symbols.append(WORD_BOUNDARY)
            i += 1
            continue
        if char in TIE_BARS:
            i += 1
            continue
        match = next((s for s in _SYMBOLS if ipa.startswith(s, i)), None)
        if match is None:
            source = f" (espeak-ng's reading of {text!r})" if text is not None else ""
            raise ValueError(
                f"{where}: phone symbol {char!r} (U+{ord(char):04X}, {unicodedata.name(char, '?')}) "
                f"in {ipa!r}{source} is not in the phone inventory (vocabulary.PHONES)"
            )
        symbols.append(match)
        i += len(match)
    while symbols and symbols[-1] == WORD_BOUNDARY:
        symbols.pop()
    return symbols


def text_to_phones(text: str, where: str = "phones", voice: str = DEFAULT_VOICE) -> list[str]:
    if not text.strip():
        raise ValueError(f"{where}: the text to turn into phones is empty")
    ipa = phonemize([text], voice)[0]
    symbols = split_ipa(ipa, where, text)
    if not symbols:
        raise ValueError(f"{where}: espeak-ng gave no phones for {text!r}")
    return symbols


def phone_symbols(value: Any, where: str, voice: str = DEFAULT_VOICE, phonemized: bool = False) -> list[str]:
    """A PHONE slot value -> symbols: English text (or an IPA string if ``phonemized``) or a symbol list."""
    if isinstance(value, str):
        return split_ipa(value, where) if phonemized else text_to_phones(value, where, voice)
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        unknown = [s for s in value if s not in _PHONE_INDEX]
        if unknown:
            raise ValueError(
                f"{where}: phone symbols {unknown[:5]} are not in the phone inventory (vocabulary.PHONES)"
            )
        return list(value)
    raise ValueError(f"{where}: expected English text or a list of phone symbols, got {type(value).__name__}")


def phone_ids(symbols: list[str]) -> list[int]:
    return [V.PHONE_OFFSET + _PHONE_INDEX[s] for s in symbols]


def ctc_phone_ids(text: str, where: str, voice: str = DEFAULT_VOICE) -> list[int]:
    """CTC targets of a transcript: its phone ids without stress marks and word boundaries."""
    return phone_ids([s for s in text_to_phones(text, where, voice) if s not in CTC_SKIPPED])


def phones_to_string(ids: list[int]) -> str:
    """Phone ids -> an IPA string, words separated by spaces; ids outside the inventory are skipped."""
    out = []
    for i in ids:
        k = i - V.PHONE_OFFSET
        if 0 <= k < len(V.PHONES):
            out.append(" " if V.PHONES[k] == WORD_BOUNDARY else V.PHONES[k])
    return " ".join("".join(out).split())


@register_modality
class PhoneModality(Modality):
    name = "PHONE"
    text_like = True
    attributes = {
        "voice": Attribute(str, help="espeak-ng voice for text -> phones (default en-us)"),
        "phonemized": Attribute(bool, help="the column holds IPA strings, not text"),
        "no_loss": Attribute(bool, side="decoder", help="teacher-forced prefix: fed to the decoder, not scored"),
    }

    @classmethod
    def is_single(cls, value) -> bool:
        return isinstance(value, str) or (
            isinstance(value, (list, tuple))
            and all(isinstance(s, str) and s in _PHONE_INDEX for s in value)
            and len(value) > 0
        )

    @classmethod
    def prepare(cls, values, settings) -> None:
        if not settings.get("phonemized"):  # all of the batch's texts in one espeak-ng call
            phonemize([v for v in values if isinstance(v, str) and v.strip()], settings.get("voice", DEFAULT_VOICE))

    @classmethod
    def encode(cls, value, ctx: SlotContext) -> list[int]:
        voice = ctx.settings.get("voice", DEFAULT_VOICE)
        return phone_ids(phone_symbols(value, ctx.where, voice, bool(ctx.settings.get("phonemized"))))

    @classmethod
    def decode(cls, ids: list[int], ctx: SlotContext) -> str:
        return phones_to_string(ids)

    @classmethod
    def output_ids(cls, ctx: SlotContext) -> list[range]:
        return [range(V.PHONE_OFFSET, V.PHONE_OFFSET + V.NUM_PHONE_SLOTS)]
