"""The unified vocabulary layout: fixed, versioned id ranges shared by every tokenizer and model.

Reserved ranges come first so their ids never depend on the size of the text vocabulary, nor on
which modalities a model uses (OFASys built its dictionary at run time, so ids moved with the
set of active preprocessors). Text pieces of the SentencePiece model follow at ``TEXT_OFFSET``.
Changing anything here breaks every saved checkpoint: bump ``LAYOUT_VERSION`` if you must.
"""

from __future__ import annotations

LAYOUT_VERSION = 1

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<mask>", "<image>", "<audio>", "<video>", "<motion>"]
NUM_SPECIAL_SLOTS = 64  # room for specials of later modalities without moving any range
PAD_ID, BOS_ID, EOS_ID, UNK_ID, MASK_ID, IMAGE_ID, AUDIO_ID, VIDEO_ID, MOTION_ID = range(len(SPECIAL_TOKENS))

NUM_BINS = 1000  # location bins for BOX coordinates
BIN_OFFSET = NUM_SPECIAL_SLOTS
NUM_CODES = 8192  # discrete image codes (VQ tokens for image generation)
CODE_OFFSET = BIN_OFFSET + NUM_BINS

# Phone inventory: the IPA symbols espeak-ng prints for English (plus stress and length marks) and
# a silence/word-boundary marker; the rest of the range is kept free for other languages.
PHONES = [
    "|",
    "ˈ",
    "ˌ",
    "ː",
    "a",
    "b",
    "d",
    "e",
    "f",
    "h",
    "i",
    "j",
    "k",
    "l",
    "m",
    "n",
    "o",
    "p",
    "r",
    "s",
    "t",
    "u",
    "v",
    "w",
    "x",
    "z",
    "æ",
    "ð",
    "ŋ",
    "ɐ",
    "ɑ",
    "ɒ",
    "ɔ",
    "ə",
    "ɚ",
    "ɛ",
    "ɜ",
    "ɡ",
    "ɪ",
    "ɬ",
    "ɹ",
    "ɾ",
    "ʃ",
    "ʊ",
    "ʌ",
    "ʒ",
    "ʔ",
    "θ",
    "ᵻ",
    "ɫ",
    "ɲ",
    "ç",
    "ø",
    "œ",
    "y",
    "ʏ",
    "ɣ",
    "χ",
    "ʁ",
    "ɕ",
    "ʑ",
    "ʂ",
    "ʐ",
    "c",
    "g",
    "q",
    "ʎ",
    "ɭ",
    "ɳ",
    "ɻ",
    "ɯ",
    "ɤ",
    "ɨ",
    "ʉ",
    "ɵ",
    "ɞ",
    "ɘ",
    "ʍ",
    "ɥ",
    "β",
    "ɸ",
    "ʋ",
    "ɰ",
    "\u0329",  # syllabic mark (espeak-ng en-us: "button" -> bˈʌʔn̩); appended, so no id moved
]
NUM_PHONE_SLOTS = 256
PHONE_OFFSET = CODE_OFFSET + NUM_CODES
# The phone CTC's blank class: the last phone slot, reserved and far from any symbol the inventory grows into.
CTC_BLANK = NUM_PHONE_SLOTS - 1
TEXT_OFFSET = PHONE_OFFSET + NUM_PHONE_SLOTS  # = 9512: first SentencePiece piece


def bin_token(i: int) -> str:
    return f"<bin_{i}>"


def code_token(i: int) -> str:
    return f"<code_{i}>"


def phone_token(i: int) -> str:
    return f"<phone_{PHONES[i]}>" if i < len(PHONES) else f"<phone_extra_{i}>"


def reserved_tokens() -> list[str]:
    """Token strings of ids 0 .. TEXT_OFFSET-1, in id order."""
    specials = SPECIAL_TOKENS + [f"<special_{i}>" for i in range(len(SPECIAL_TOKENS), NUM_SPECIAL_SLOTS)]
    return (
        specials
        + [bin_token(i) for i in range(NUM_BINS)]
        + [code_token(i) for i in range(NUM_CODES)]
        + [phone_token(i) for i in range(NUM_PHONE_SLOTS)]
    )


assert len(PHONES) == len(set(PHONES)) <= NUM_PHONE_SLOTS
assert len(reserved_tokens()) == TEXT_OFFSET
