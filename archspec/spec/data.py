"""The data part of a spec: which data set, in which view, split how."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from archspec.spec.common import Integer, Number, PositiveInteger, StrictModel
from archspec.spec.files import CsvData, ImageFolderData, NpzData


class MnistInput(StrictModel):
    """One model input fed from the digits: a ``view`` (default: the data section's) and
    Gaussian pixel ``noise`` (standard deviation, after normalisation; drawn from the seed)."""

    view: Literal["flat", "image", "sequence"] | None = None
    noise: Number = Field(0.0, ge=0)


class MnistData(StrictModel):
    """MNIST digits. ``view``: ``flat`` (784,), ``image`` (28, 28, 1), ``sequence``
    (28 steps of 28). ``validation_split`` takes the last fraction of the training set.

    For several inputs and outputs: ``inputs`` maps every model input to a view of the same
    digit (optionally noisy), ``targets`` every model output to ``digit`` (its class) or
    ``even`` (1 for an even digit, else 0); ``archspec/data/derived.py``."""

    dataset: Literal["mnist"]
    view: Literal["flat", "image", "sequence"] = "flat"
    normalization: Literal["scale", "standardize", "none"] = "scale"
    validation_split: Number = Field(0.0, ge=0.0, lt=1.0)
    inputs: dict[str, MnistInput] | None = None
    targets: dict[str, Literal["digit", "even"]] | None = None


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


SEQUENCE_TASKS = ("sorted", "token_at", "count")
"""``sorted``: 1 when the tokens are non-decreasing, else 0 (half of each, by construction).
``token_at``: the token at ``position``. ``count``: how many times ``token`` occurs."""


def sequence_classes(task: str, *, max_length: int, vocabulary: int) -> int:
    """The number of classes of a sequences task: 2 (sorted), ``vocabulary`` (token_at: labels
    are tokens; class 0, the padding token, never occurs) or ``max_length + 1`` (count)."""
    if task == "sorted":
        return 2
    if task == "token_at":
        return vocabulary
    return max_length + 1


class SequencesData(StrictModel):
    """Synthetic integer sequences of ``min_length .. max_length`` tokens in ``1 .. vocabulary - 1``,
    padded with 0 at the end to ``max_length`` (int64), drawn from the seed. Tasks: ``sorted``
    (2 classes, balanced: are the tokens non-decreasing), ``token_at`` (``vocabulary`` classes:
    the token at ``position``), ``count`` (``max_length + 1`` classes: occurrences of ``token``).
    Samples are split in order: train, validation, test."""

    dataset: Literal["sequences"]
    task: Literal["sorted", "token_at", "count"]
    n_samples: PositiveInteger = 2000
    min_length: PositiveInteger = 4
    max_length: PositiveInteger = 16
    vocabulary: Integer = Field(10, ge=2)
    position: Integer = Field(0, ge=0)
    token: Integer = Field(1, ge=1)
    validation_split: Number = Field(0.0, ge=0.0, lt=1.0)
    test_split: Number = Field(0.2, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_length > self.max_length:
            raise ValueError(
                f"expected min_length <= max_length, received min_length={self.min_length}, max_length={self.max_length}"
            )
        if self.task == "sorted" and (self.min_length < 2 or self.vocabulary < 3):
            raise ValueError(
                "expected min_length >= 2 and vocabulary >= 3 for task 'sorted' (else no sequence is unsorted), "
                f"received min_length={self.min_length}, vocabulary={self.vocabulary}"
            )
        if self.task == "token_at" and self.position >= self.min_length:
            raise ValueError(
                f"expected position < min_length for task 'token_at' (every sequence has a token there), "
                f"received position={self.position}, min_length={self.min_length}"
            )
        for option, task, default in (("position", "token_at", 0), ("token", "count", 1)):
            if getattr(self, option) != default and self.task != task:
                raise ValueError(f"expected '{option}' only with task '{task}', received task '{self.task}'")
        if self.task == "count" and self.token >= self.vocabulary:
            raise ValueError(
                f"expected token < vocabulary for task 'count', received token={self.token}, vocabulary={self.vocabulary}"
            )
        return self

    @property
    def num_classes(self) -> int:
        return sequence_classes(self.task, max_length=self.max_length, vocabulary=self.vocabulary)


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
    | Annotated[SequencesData, Tag("sequences")]
    | Annotated[NpzData, Tag("npz")]
    | Annotated[CsvData, Tag("csv")]
    | Annotated[ImageFolderData, Tag("image_folder")],
    Discriminator(_DataKind()),
]
