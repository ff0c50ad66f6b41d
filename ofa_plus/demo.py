"""Show a trained model at work: a few held-out rows of each of its tasks, run the way a user
runs them (Auto classes, the processor, ``generate``, ``postprocess``).

    python -m ofa_plus.demo --model runs/default/final [--rows 2]

The model's own task cards say which instruction each task uses and where its test rows live.
"""

from __future__ import annotations

import argparse

from transformers import AutoModelForSeq2SeqLM, AutoProcessor

from .task_card import cards_from_dicts


def shown_input(column: str, value) -> str:
    """A row's input for the printout: text and boxes as values, media by their column's name."""
    if isinstance(value, str):
        return f"{column}={value[:60]!r}"
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return f"{column}={list(value)}"
    return f"<{column}>"


def show(model_dir: str, rows_per_task: int = 2) -> list[dict]:
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    shown = []
    for card in cards_from_dicts(model.config.task_cards):
        rows = [card.to_row(example) for example in card.head("test", rows_per_task)]
        inputs = {
            column: [row[column] for row in rows]
            for column in rows[0]
            if column not in card.scored_columns | {"references"}
        }
        batch = processor(card.plan, **inputs)
        generated = model.generate(
            **batch, num_beams=card.plan.generator.num_beams, max_new_tokens=card.plan.generator.max_new_tokens
        )
        print(f"\n{card.name}: {card.instructions[0]}")
        for row, prediction in zip(rows, processor.postprocess(generated, batch)):
            given = "; ".join(shown_input(k, row[k]) for k in inputs)
            print(f"  {given}\n    -> {prediction!r}   (reference: {row['references']!r})")
            shown.append({"task": card.name, "prediction": prediction, "reference": row["references"]})
    return shown


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained model folder (e.g. runs/default/final)")
    parser.add_argument("--rows", type=int, default=2, help="test rows shown per task")
    args = parser.parse_args(argv)
    show(args.model, args.rows)


if __name__ == "__main__":
    main()
