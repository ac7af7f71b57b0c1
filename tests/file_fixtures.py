"""Data files for the file-source tests: real data from scikit-learn's package (a test-only
dependency; nothing is downloaded) written in standard formats, and generated files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
from paths import CONFIGS


def sklearn_data(name: str) -> Path:
    """A file scikit-learn ships in ``sklearn/datasets/data``."""
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "data" / name


def write_breast_cancer_csv(path: Path) -> Path:
    """sklearn's breast_cancer.csv (first line ``569,30,malignant,benign``, no column names)
    as a standard CSV: a header of the 30 feature names and ``diagnosis`` (class names)."""
    from sklearn.datasets import load_breast_cancer

    names = list(load_breast_cancer().feature_names)
    lines = sklearn_data("breast_cancer.csv").read_text().splitlines()
    first = lines[0].split(",")
    classes = first[2:]  # target 0 -> 'malignant', 1 -> 'benign'
    out = [",".join([*names, "diagnosis"])]
    for line in lines[1:]:
        cells = line.split(",")
        out.append(",".join([*cells[:-1], classes[int(cells[-1])]]))
    path.write_text("\n".join(out) + "\n")
    return path


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits.csv.gz: 1797 images of 8x8 values 0..16, labels 0..9."""
    with gzip.open(sklearn_data("digits.csv.gz"), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",")
    return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)


def write_digits_folder(folder: Path, limit: int | None = None) -> Path:
    """The digits as grayscale PNG files, ``folder/<digit>/<index>.png``, pixels ``v * 255 // 16``."""
    from PIL import Image

    images, labels = digits_arrays()
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        sub = folder / str(label)
        sub.mkdir(parents=True, exist_ok=True)
        pixels = (image * 255 // 16).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(sub / f"{k:04d}.png")
    return folder


def sine_series(n: int = 1200, seed: int = 0) -> np.ndarray:
    """A noisy sum of two sines: ``sin(2 pi t / 50) + 0.5 sin(2 pi t / 17) + 0.1 N(0, 1)``."""
    t = np.arange(n)
    noise = np.random.default_rng(seed).normal(size=n)
    return np.sin(2 * np.pi * t / 50) + 0.5 * np.sin(2 * np.pi * t / 17) + 0.1 * noise


def write_series_csv(path: Path, values: np.ndarray) -> Path:
    path.write_text("step,value\n" + "".join(f"{t},{float(v)!r}\n" for t, v in enumerate(values)))
    return path


def config_with_data(name: str, folder: Path) -> Path:
    """``configs/NAME.yaml`` copied into ``folder`` beside the data it names, written there."""
    shutil.copy(CONFIGS / f"{name}.yaml", folder / f"{name}.yaml")
    if name == "breast_cancer":
        write_breast_cancer_csv(folder / "breast_cancer.csv")
    elif name == "digits_images":
        write_digits_folder(folder / "digits")
    elif name == "sine_series":
        write_series_csv(folder / "sine_series.csv", sine_series())
    return folder / f"{name}.yaml"


def write_two_heads_csv(path: Path, rows: int = 96, seed: int = 0) -> Path:
    """A table for a model with two inputs and two outputs: numeric ``x1, x2, x3``, a text
    ``colour`` and a numeric ``size``; the class ``kind`` (ant, bee, cat) and the value ``score``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -3.0]
    colours = rng.choice(["blue", "green", "red"], size=rows)
    size = rng.uniform(1, 5, size=rows)
    kind = np.argmax(np.stack([x[:, 0], x[:, 1] / 2 - 0.5, (colours == "red") * 1.0], axis=1), axis=1)
    score = 2 * x[:, 0] - x[:, 2] + 0.5 * size + 0.1 * rng.normal(size=rows)
    lines = ["x1,x2,x3,colour,size,kind,score"]
    for k in range(rows):
        cells = [*(repr(float(v)) for v in x[k]), str(colours[k]), repr(float(size[k]))]
        lines.append(",".join([*cells, ("ant", "bee", "cat")[kind[k]], repr(float(score[k]))]))
    path.write_text("\n".join(lines) + "\n")
    return path
