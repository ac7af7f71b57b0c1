"""The data part of a spec: which data set, in which view, split how."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag

from archspec.spec.common import Number, PositiveInteger, StrictModel
from archspec.spec.files import CsvData, ImageFolderData, NpzData


class MnistData(StrictModel):
    """MNIST digits. ``view``: ``flat`` (784,), ``image`` (28, 28, 1), ``sequence``
    (28 steps of 28). ``validation_split`` takes the last fraction of the training set."""

    dataset: Literal["mnist"]
    view: Literal["flat", "image", "sequence"] = "flat"
    normalization: Literal["scale", "standardize", "none"] = "scale"
    validation_split: Number = Field(0.0, ge=0.0, lt=1.0)


class RegressionData(StrictModel):
    """Synthetic linear regression: ``y = x @ w + b + noise * N(0, 1)``, drawn from the seed.
    Samples are split in order: train, validation, test."""

    dataset: Literal["regression"]
    n_samples: PositiveInteger = 1000
    n_features: PositiveInteger = 8
    noise: Number = Field(0.1, ge=0)
    validation_split: Number = Field(0.0, ge=0.0, lt=1.0)
    test_split: Number = Field(0.2, ge=0.0, lt=1.0)


class BinaryData(StrictModel):
    """Synthetic binary classification (labels 0/1 from a logistic model), drawn from the seed."""

    dataset: Literal["binary"]
    n_samples: PositiveInteger = 1000
    n_features: PositiveInteger = 8
    noise: Number = Field(0.1, ge=0)
    validation_split: Number = Field(0.0, ge=0.0, lt=1.0)
    test_split: Number = Field(0.2, ge=0.0, lt=1.0)


class _DataKind:
    """The tag of a data section: its ``dataset`` (built-in sets) or its ``format`` (files)."""

    fields = ("dataset", "format")  # read by the diagnostics to name the missing or wrong key
    __name__ = "dataset or format"  # pydantic names the discriminator by it

    def __call__(self, value: object) -> object:
        for field in self.fields:
            tag = value.get(field) if isinstance(value, dict) else getattr(value, field, None)
            if tag is not None:
                return tag
        return None


Data = Annotated[
    Annotated[MnistData, Tag("mnist")]
    | Annotated[RegressionData, Tag("regression")]
    | Annotated[BinaryData, Tag("binary")]
    | Annotated[NpzData, Tag("npz")]
    | Annotated[CsvData, Tag("csv")]
    | Annotated[ImageFolderData, Tag("image_folder")],
    Discriminator(_DataKind()),
]
