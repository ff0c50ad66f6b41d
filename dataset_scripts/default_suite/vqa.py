"""vqa: easy-vqa's questions about one coloured shape."""

from __future__ import annotations

from pathlib import Path

import datasets

from .common import IMAGE, SPLITS, STRING, STRINGS, Build, TaskData, shuffled


def build_vqa(b: Build) -> TaskData:
    import easy_vqa  # noqa: PLC0415

    rng = b.rng("vqa")
    train_questions, train_answers, train_images = easy_vqa.get_train_questions()
    test_questions, test_answers, test_images = easy_vqa.get_test_questions()
    train_paths, test_paths = easy_vqa.get_train_image_paths(), easy_vqa.get_test_image_paths()
    # validation images are held out of the published train images; test uses the published test images
    held_out = set(shuffled(rng, sorted(train_paths))[:100])
    pools = {
        "train": [(i, train_paths) for i, image in enumerate(train_images) if image not in held_out],
        "validation": [(i, train_paths) for i, image in enumerate(train_images) if image in held_out],
        "test": [(i, test_paths) for i in range(len(test_questions))],
    }
    sizes = {"train": 6000, "validation": 300, "test": 500}
    splits = {}
    for split in SPLITS:
        questions, answers, images = (
            (test_questions, test_answers, test_images)
            if split == "test"
            else (train_questions, train_answers, train_images)
        )
        picked = rng.choice(len(pools[split]), size=b.size(sizes[split]), replace=False)
        rows = []
        for k in picked:
            i, paths = pools[split][k]
            rows.append(
                {
                    "image": {"bytes": Path(paths[images[i]]).read_bytes(), "path": None},
                    "question": questions[i],
                    "answer": answers[i],
                    "answers": [answers[i]],
                }
            )
        splits[split] = rows
    return TaskData(
        splits,
        datasets.Features({"image": IMAGE, "question": STRING, "answer": STRING, "answers": STRINGS}),
        "easy-vqa (PyPI, MIT)",
        "Visual question answering: easy-vqa by Victor Zhou (PyPI, MIT licence), 64x64 images of one "
        "coloured shape with questions about its shape and colour (13 answers). Train and validation "
        "questions come from the published train images, 100 of which are held out for validation; "
        "test questions come from the published test images, so no image is shared between splits. "
        "Subsampled with the seed to 6,000 / 300 / 500 questions.",
    )
