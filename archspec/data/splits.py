"""The train/validation/test arrays a trainer consumes, and the checks every such set passes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral

import numpy as np

from archspec.errors import DataError, UsageError

Arrays = np.ndarray | dict[str, np.ndarray]
"""One array, or several by name (a model's inputs or outputs): every one with N rows."""
Pair = tuple[Arrays, Arrays]
ArrayPair = tuple[np.ndarray, np.ndarray]
SPLIT_NAMES = ("train", "validation", "test")

# bool, signed and unsigned integers, floats; complex, object, strings and dates are refused.
_NUMERIC_KINDS = "biuf"


@dataclass(frozen=True, repr=False)
class Splits:
    """The arrays of one run; every split is a pair ``(x, y)`` with the same length ``N``.

    ``x`` has shape ``(N, *input_shape)``. ``y`` has shape ``(N,)`` (int64 class labels) or
    ``(N, outputs)``. For a model with several inputs or outputs, ``x`` is a dict of such
    arrays by input name and ``y`` one by output name (either may be a dict alone), with
    the same names in every split. ``N`` may differ between splits, the per-sample shapes may not.
    ``validation`` and ``test`` may be None. ``num_classes`` is the number of classes when ``y``
    holds class labels (labels then lie in ``0 .. num_classes - 1``), None for regression.
    Construction checks all of this and raises DataError naming the split and array at fault.
    """

    train: Pair
    validation: Pair | None = None
    test: Pair | None = None
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if self.num_classes is not None:
            bad = isinstance(self.num_classes, bool) or not isinstance(self.num_classes, Integral)
            if bad or self.num_classes < 2:
                raise UsageError(
                    f"expected num_classes to be None or an integer >= 2, received num_classes={self.num_classes!r}"
                )
        if self.train is None:
            raise DataError("expected a 'train' split (x, y), received train=None")
        for name, pair in self.as_dict().items():
            _check_pair(pair, name, self.num_classes)
            _check_same_sample_shape(pair, self.train, name)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample: ``train x.shape[1:]`` (of the first input when named)."""
        return tuple(first_array(self.train[0]).shape[1:])

    def as_dict(self) -> dict[str, Pair]:
        """The splits that are present, by name, in the order train, validation, test."""
        pairs = {"train": self.train, "validation": self.validation, "test": self.test}
        return {name: pair for name, pair in pairs.items() if pair is not None}

    def __repr__(self) -> str:
        parts = [f"{name}=(x{_describe(x)}, y{_describe(y)})" for name, (x, y) in self.as_dict().items()]
        return f"Splits({', '.join(parts)}, num_classes={self.num_classes})"


def splits_from_arrays(data: Pair | Mapping[str, Pair | None], *, num_classes: int | None = None) -> Splits:
    """Check user arrays and wrap them as Splits.

    ``data`` is either a pair ``(x, y)`` (used as the train split) or a dict with a ``"train"``
    pair and optional ``"validation"`` and ``"test"`` pairs. Each ``x`` has shape ``(N, ...)``,
    each ``y`` shape ``(N,)`` or ``(N, outputs)``; both numeric with finite values. ``x``
    and ``y`` may be dicts of such arrays by input or output name.
    Arrays are not copied. Raises DataError saying which split and array is wrong.
    """
    if isinstance(data, Mapping):
        unknown = [key for key in data if key not in SPLIT_NAMES]
        if unknown:
            raise DataError(
                f"expected split names among {', '.join(map(repr, SPLIT_NAMES))}, "
                f"received {', '.join(map(repr, unknown))}"
            )
        if data.get("train") is None:
            raise DataError(f"expected a 'train' split (x, y), received keys: {', '.join(map(repr, data))}")
        return Splits(
            train=_train_pair(data["train"]),
            validation=_as_pair(data.get("validation"), "validation"),
            test=_as_pair(data.get("test"), "test"),
            num_classes=num_classes,
        )
    if isinstance(data, (tuple, list)):
        return Splits(train=_train_pair(data), num_classes=num_classes)
    raise DataError(
        f"expected (x, y) or a dict of splits 'train', 'validation', 'test', received {type(data).__name__}"
    )


def validation_count(n_samples: int, fraction: float) -> int:
    """Number of samples a ``fraction`` of ``n_samples`` sets aside: ``round(fraction * n)``."""
    return round(fraction * n_samples)


def split_off_last(pair: ArrayPair, count: int) -> tuple[ArrayPair, ArrayPair | None]:
    """Split ``(x, y)`` into its first ``N - count`` and its last ``count`` samples (None if 0)."""
    x, y = pair
    if count == 0:
        return pair, None
    keep = len(x) - count
    if keep < 1:
        raise UsageError(
            f"expected to keep at least one training sample, received {count} of {len(x)} samples set aside"
        )
    return (x[:keep], y[:keep]), (x[keep:], y[keep:])


def first_array(arrays: Arrays) -> np.ndarray:
    """The array itself, or the first of several by name."""
    return next(iter(arrays.values())) if isinstance(arrays, dict) else arrays


def sample_count(arrays: Arrays) -> int:
    """N, the rows of the array (of every array, when named)."""
    return len(first_array(arrays))


def take(arrays: Arrays, index) -> Arrays:
    """Rows ``index`` (indices or a slice) of the array, or of each array by name."""
    if isinstance(arrays, dict):
        return {name: array[index] for name, array in arrays.items()}
    return arrays[index]


def named(arrays: Arrays, role: str) -> list[tuple[str, np.ndarray]]:
    """``(where, array)`` pairs: ``(role, array)``, or ``(f"{role}['{name}']", array)`` per name."""
    if isinstance(arrays, dict):
        return [(f"{role}[{name!r}]", array) for name, array in arrays.items()]
    return [(role, arrays)]


def _describe(arrays: Arrays) -> str:
    if isinstance(arrays, dict):
        return "{" + ", ".join(f"{name!r}: {tuple(a.shape)} {a.dtype}" for name, a in arrays.items()) + "}"
    return f"{tuple(arrays.shape)} {arrays.dtype}"


def _train_pair(value: object) -> Pair:
    pair = _as_pair(value, "train")
    if pair is None:  # _as_pair returns None only for the optional splits
        raise DataError("expected a 'train' split (x, y), received train=None")
    return pair


def _as_pair(value: object, name: str) -> Pair | None:
    if value is None and name != "train":
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise DataError(f"{name}: expected a pair (x, y), received {type(value).__name__}")
    x, y = (_as_arrays(array, f"{name}.{role}") for array, role in zip(value, ("x", "y")))
    return x, y


def _as_arrays(value: object, where: str) -> Arrays:
    if isinstance(value, Mapping):
        if not value:
            raise DataError(f"{where}: expected arrays by name, received an empty dict")
        bad = [key for key in value if not isinstance(key, str)]
        if bad:
            raise DataError(f"{where}: expected arrays by input or output name (text), received key {bad[0]!r}")
        return {key: np.asarray(array) for key, array in value.items()}
    return np.asarray(value)


def _check_pair(pair: Pair, split: str, num_classes: int | None) -> None:
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise DataError(f"{split}: expected a pair (x, y), received {type(pair).__name__}")
    x, y = pair
    counts = []
    for role, arrays, min_ndim in (("x", x, 2), ("y", y, 1)):
        if isinstance(arrays, dict) and not arrays:
            raise DataError(f"{split}.{role}: expected arrays by name, received an empty dict")
        for label, array in named(arrays, role):
            where = f"{split}.{label}"
            if not isinstance(array, np.ndarray):
                raise DataError(f"{where}: expected a numpy array, received {type(array).__name__}")
            if array.dtype.kind not in _NUMERIC_KINDS:
                raise DataError(
                    f"{where}: expected a numeric (bool, integer or float) array, received dtype {array.dtype}"
                )
            if array.ndim < min_ndim:
                expected = "(N, ...features)" if role == "x" else "(N,) or (N, outputs)"
                raise DataError(f"{where}: expected shape {expected}, received shape {array.shape}")
            if array.dtype.kind == "f":
                _check_finite(array, where)
            counts.append((label, len(array)))
    if len({count for _, count in counts}) > 1:
        listed = ", ".join(f"{where} has {count}" for where, count in counts)
        raise DataError(f"{split}: expected x and y with the same number of samples, received {listed}")
    if counts[0][1] == 0:
        raise DataError(f"{split}: expected at least one sample, received 0 samples")
    if num_classes is not None:
        for where, array in named(y, f"{split}.y"):
            _check_labels(array, num_classes, where)


def _check_finite(array: np.ndarray, where: str) -> None:
    # A NaN or infinity makes the sum non-finite, so a finite sum clears the array without a
    # full-size mask; a non-finite sum (possibly only an overflow) gets the exact check.
    with np.errstate(all="ignore"):  # inf - inf in the sum is expected here, not worth a warning
        total = array.sum(dtype=np.float64)
    if np.isfinite(total):
        return
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.argwhere(~finite)
        first = tuple(int(i) for i in bad[0])
        raise DataError(
            f"{where}: expected finite values, received {len(bad)} NaN or infinite values, the first at index {first}"
        )


def _check_labels(y: np.ndarray, num_classes: int, where: str) -> None:
    valid = (y >= 0) & (y < num_classes)
    if y.dtype.kind == "f":
        valid &= y == np.floor(y)
    if not valid.all():
        first = tuple(int(i) for i in np.argwhere(~valid)[0])
        raise DataError(
            f"{where}: expected class labels 0..{num_classes - 1}, received {y[first].item()!r} at index {first}"
        )


def _check_same_sample_shape(pair: Pair, train: Pair, split: str) -> None:
    for role, arrays, reference in (("x", pair[0], train[0]), ("y", pair[1], train[1])):
        if isinstance(arrays, dict) != isinstance(reference, dict) or (
            isinstance(arrays, dict) and isinstance(reference, dict) and sorted(arrays) != sorted(reference)
        ):
            expected = f"arrays named {sorted(reference)}" if isinstance(reference, dict) else "one array"
            received = f"arrays named {sorted(arrays)}" if isinstance(arrays, dict) else "one array"
            raise DataError(f"{split}.{role}: expected {expected} as in train, received {received}")
        compared: list[tuple[str, np.ndarray, np.ndarray]] = []
        if isinstance(arrays, dict) and isinstance(reference, dict):
            compared = [(f"{split}.{role}[{name!r}]", arrays[name], reference[name]) for name in reference]
        elif isinstance(arrays, np.ndarray) and isinstance(reference, np.ndarray):
            compared = [(f"{split}.{role}", arrays, reference)]
        for where, array, train_array in compared:
            if array.shape[1:] != train_array.shape[1:]:
                raise DataError(
                    f"{where}: expected per-sample shape {train_array.shape[1:]} as in train, received {array.shape[1:]}"
                )
