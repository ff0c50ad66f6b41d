"""fortunes: topic classification of Debian fortunes quotations."""

from __future__ import annotations

import re

import datasets

from .common import FORTUNES, SPLITS, STRING, Build, TaskData, require, shuffled, token_length

# benign categories with distinct wording and enough quotes: a specialist tells them apart within the
# main job's per-task budget (dataset_scripts/README.md; the earlier food, linux, love, sports and
# startrek, 100-304 quotes each, it did not)
FORTUNE_CATEGORIES = ("computers", "definitions", "food", "startrek", "zippy")
FORTUNES_PER_CATEGORY = 400


def read_fortunes(category: str) -> list[str]:
    text = require(FORTUNES / category, "Debian fortunes").read_text(encoding="utf-8", errors="replace")
    text = re.sub(r".\x08", "", text)  # overstrike sequences (x BACKSPACE x) of old terminals
    quotes = []
    for quote in re.split(r"^%\s*$", text, flags=re.MULTILINE):
        # drop the attribution ("-- Kirk, ...") so the label has to come from the wording
        lines = [line for line in quote.splitlines() if not line.strip().startswith("--")]
        quote = " ".join(" ".join(lines).split())
        # whole quotes only: at most 300 characters and the card's max_length of 96 tokens
        if 20 <= len(quote) <= 300 and token_length(quote) <= 96:
            quotes.append(quote)
    return list(dict.fromkeys(quotes))


def build_fortunes(b: Build) -> TaskData:
    rng = b.rng("fortunes")
    parts = {split: [] for split in SPLITS}
    for category in FORTUNE_CATEGORIES:
        quotes = shuffled(rng, read_fortunes(category))[:FORTUNES_PER_CATEGORY]
        n_test, n_validation = round(0.23 * len(quotes)), round(0.12 * len(quotes))  # stratified
        rows = [{"text": q, "label": category} for q in quotes]
        parts["test"] += rows[:n_test]
        parts["validation"] += rows[n_test : n_test + n_validation]
        parts["train"] += rows[n_test + n_validation :]
    splits = {split: shuffled(rng, rows)[: b.size(len(rows))] for split, rows in parts.items()}
    return TaskData(
        splits,
        datasets.Features({"text": STRING, "label": STRING}),
        "Debian fortunes",
        "Topic classification of quotations from the Debian `fortunes` package (fortune-mod data, "
        "distributed under the BSD licence of BSD fortune(6); the non-offensive collection only) in the "
        f"categories {', '.join(FORTUNE_CATEGORIES)}. Quotes are whitespace-normalised, attribution "
        "lines removed, 20-300 characters and at most 96 tokens, deduplicated, at most "
        f"{FORTUNES_PER_CATEGORY} per category (seeded choice). Split per category: 23% test, 12% "
        "validation, the rest train.",
    )
