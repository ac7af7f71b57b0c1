"""Image folders: one sub-folder per class (Keras' ``image_dataset_from_directory`` layout),
PNG, JPEG or BMP files read with Pillow, as channels-last arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from archspec.data.files.common import (
    Target,
    check_class_count,
    existing_file,
    file_sha256,
    fit_normalization,
    fraction_indices,
    make_splits,
    normalize,
)
from archspec.errors import DataError
from archspec.spec.files import ImageFolderData

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_classes(folder: str | Path) -> dict[str, list[Path]]:
    """Class name -> its image files, classes in sorted order; every class folder must hold images."""
    folder = existing_file(folder, "folder")
    classes = {p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if not classes:
        raise DataError(f"{folder}: expected one sub-folder of images per class, received no sub-folders")
    files = {}
    for name, sub in classes.items():
        images = _images_in(sub)
        if not images:
            raise DataError(f"{sub}: empty class folder; expected PNG, JPEG or BMP files")
        files[name] = images
    return files


def read_images(paths: list[Path], size: list[int] | None, color: str) -> np.ndarray:
    """uint8 array (N, H, W, C): grayscale C = 1, rgb C = 3; resized (bilinear) to ``size``.
    Without ``size`` every image must have the first one's size."""
    from PIL import Image, UnidentifiedImageError  # Pillow: only when images are read

    mode = "L" if color == "grayscale" else "RGB"
    first: tuple[Path, tuple[int, int]] | None = None
    out = None
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as opened:
                opened.load()
                image = opened.convert(mode)
                if size is not None and image.size != (size[1], size[0]):
                    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
            raise DataError(f"{path}: cannot read the image ({error})") from None
        if first is None:
            first = (path, array.shape[:2])
            out = np.empty((len(paths), *array.shape[:2], 1 if mode == "L" else 3), dtype=np.uint8)
        elif array.shape[:2] != first[1]:
            raise DataError(
                f"{path}: expected images of one size without 'size', received {list(array.shape[:2])} "
                f"after {list(first[1])} ({first[0]}); set size: [H, W] to resize them"
            )
        assert out is not None
        out[i] = array.reshape(out.shape[1:])
    assert out is not None
    return out


def _folder(folder: str, classes: list[str] | None) -> tuple[list[Path], list[str], np.ndarray]:
    files = list_classes(folder)
    names = classes if classes is not None else list(files)
    for name in files:
        if name not in names:
            raise DataError(f"{Path(folder) / name}: class {name!r} is not among the training folder's {names}")
    paths = [path for name in files for path in files[name]]
    ids = np.array([names.index(name) for name in files for _ in files[name]], dtype=np.int64)
    return paths, names, ids


def load_image_folder(config: ImageFolderData, target: Target, seed: int):
    """Splits of an image folder (or a folder per split); pixels normalised as ``normalization``."""
    if not target.classification:
        raise DataError(f"an image folder gives class labels: expected a classification loss, received {target.loss}")
    files = config.files()
    root = files.get("path", files.get("train"))
    assert root is not None
    paths, classes, ids = _folder(root, None)
    check_class_count(len(classes), target, f"{root}")
    pairs: dict[str, tuple[list[Path], np.ndarray]] = {}
    if "path" in files:
        parts = fraction_indices(
            len(paths), config.validation_split, config.test_split, seed, in_order=False, where=root
        )
        for name, part in zip(("train", "validation", "test"), parts, strict=True):
            if part is not None:
                pairs[name] = ([paths[i] for i in part], ids[part])
    else:
        pairs["train"] = (paths, ids)
        for name in ("validation", "test"):
            if name in files:
                split_paths, _, split_ids = _folder(files[name], classes)
                pairs[name] = (split_paths, split_ids)
    size = list(config.size) if config.size is not None else None
    pixels = {name: read_images(split_paths, size, config.color) for name, (split_paths, _) in pairs.items()}
    if size is None:
        size = list(pixels["train"].shape[1:3])
        for name, array in pixels.items():
            if list(array.shape[1:3]) != size:
                raise DataError(
                    f"{pairs[name][0][0]}: expected images of one size without 'size', received "
                    f"{list(array.shape[1:3])} in the {name} split and {size} in train; set size: [H, W]"
                )
    fitted = _fit_pixels(pixels["train"], config.normalization)
    parts = {name: (normalize(array, fitted), target.labels(pairs[name][1])) for name, array in pixels.items()}
    preprocessing = {
        "format": "image_folder",
        "input": target.input_name,
        "output": target.output_name,
        "size": size,
        "color": config.color,
        "normalization": fitted,
        "classes": classes,
        "files": [{"path": folder, "sha256": _folder_sha256(Path(folder))} for folder in files.values()],
    }
    return make_splits(parts, target, len(classes), preprocessing, classes)


def _folder_sha256(folder: Path) -> str:
    paths = [path for images in list_classes(folder).values() for path in images]
    return file_sha256(paths, root=folder)


def _fit_pixels(pixels: np.ndarray, method: str) -> dict[str, Any] | None:
    if method == "scale":  # pixel values in [0, 1], as Keras' Rescaling(1 / 255)
        return {"method": "scale", "offset": [0.0], "divisor": [255.0]}
    return fit_normalization(pixels, method, axis=(0, 1, 2))  # per channel


def image_features(preprocessing: dict[str, Any], path: str | Path) -> tuple[np.ndarray, list[str]]:
    """New images (one file, a folder of images, or a folder of class folders) as the run's
    preprocessing makes them, and each image's path."""
    path = existing_file(path, "file or folder") if not Path(path).is_file() else Path(path)
    if path.is_file():
        paths = [path]
    else:
        paths = _images_in(path) or [p for name, images in list_classes(path).items() for p in images]
    pixels = read_images(paths, preprocessing["size"], preprocessing["color"])
    return normalize(pixels, preprocessing["normalization"]), [str(p) for p in paths]
