"""Seeded synthetic data sets for the linear- and logistic-regression examples (float64)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from archspec.data._checks import check_fraction, check_non_negative, check_positive_int, check_seed
from archspec.data.splits import Pair, Splits, validation_count
from archspec.errors import UsageError


@dataclass(frozen=True, repr=False)
class GeneratedData:
    """Samples of a synthetic set and the linear model that generated them.

    ``x`` has shape ``(n_samples, n_features)`` and ``y`` shape ``(n_samples, 1)``, both
    float64. ``weights`` has shape ``(n_features, 1)`` and ``bias`` shape ``(1,)``; see
    ``make_regression`` and ``make_binary`` for how ``y`` follows from them.
    """

    x: np.ndarray
    y: np.ndarray
    weights: np.ndarray
    bias: np.ndarray

    def __repr__(self) -> str:
        return f"GeneratedData(x{self.x.shape}, y{self.y.shape})"


def make_regression(n_samples: int = 1000, n_features: int = 8, noise: float = 0.1, seed: int = 0) -> GeneratedData:
    """Linear data ``y = x @ weights + bias + noise * e`` with x, weights, bias, e ~ N(0, 1).

    Shapes: x ``(n_samples, n_features)``, y ``(n_samples, 1)``. Draws from
    ``numpy.random.default_rng(seed)`` in the order weights, bias, x, e, so a seed always
    gives the same set.
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    n_features = check_positive_int(n_features, "n_features")
    noise = check_non_negative(noise, "noise")
    rng = np.random.default_rng(check_seed(seed))
    weights = rng.normal(size=(n_features, 1))
    bias = rng.normal(size=(1,))
    x = rng.normal(size=(n_samples, n_features))
    y = x @ weights + bias + noise * rng.normal(size=(n_samples, 1))
    return GeneratedData(x=x, y=y, weights=weights, bias=bias)


def make_binary(n_samples: int = 1000, n_features: int = 8, noise: float = 0.1, seed: int = 0) -> GeneratedData:
    """Labels 0/1 from a logistic model: ``P(y = 1 | x) = sigmoid((x @ weights + bias) / noise)``.

    x, weights, bias ~ N(0, 1) as in ``make_regression``; ``y = 1`` where
    ``x @ weights + bias + noise * u > 0`` with ``u`` standard-logistic noise, so ``noise = 0``
    gives linearly separable classes. Shapes: x ``(n_samples, n_features)``, y
    ``(n_samples, 1)`` with values 0.0 and 1.0. Draws from ``numpy.random.default_rng(seed)``
    in the order weights, bias, x, u.
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    n_features = check_positive_int(n_features, "n_features")
    noise = check_non_negative(noise, "noise")
    rng = np.random.default_rng(check_seed(seed))
    weights = rng.normal(size=(n_features, 1))
    bias = rng.normal(size=(1,))
    x = rng.normal(size=(n_samples, n_features))
    # P(z + noise * u > 0) = sigmoid(z / noise) for standard-logistic u: the logistic model.
    y = (x @ weights + bias + noise * rng.logistic(size=(n_samples, 1)) > 0).astype(np.float64)
    return GeneratedData(x=x, y=y, weights=weights, bias=bias)


def load_regression(
    n_samples: int = 1000,
    n_features: int = 8,
    noise: float = 0.1,
    *,
    validation_split: float = 0.0,
    test_split: float = 0.2,
    seed: int = 0,
) -> Splits:
    """``make_regression`` split as by ``split_generated``; ``num_classes`` is None."""
    data = make_regression(n_samples, n_features, noise, seed)
    return split_generated(data, validation_split, test_split, num_classes=None)


def load_binary(
    n_samples: int = 1000,
    n_features: int = 8,
    noise: float = 0.1,
    *,
    validation_split: float = 0.0,
    test_split: float = 0.2,
    seed: int = 0,
) -> Splits:
    """``make_binary`` split as by ``split_generated``; ``num_classes`` is 2."""
    data = make_binary(n_samples, n_features, noise, seed)
    return split_generated(data, validation_split, test_split, num_classes=2)


class Samples(Protocol):
    """Generated samples: ``x`` and ``y``, aligned on their first axis."""

    @property
    def x(self) -> np.ndarray: ...

    @property
    def y(self) -> np.ndarray: ...


def split_generated(data: Samples, validation_split: float, test_split: float, *, num_classes: int | None) -> Splits:
    """Split samples in order: train first, then ``round(validation_split * n)`` validation,
    then the last ``round(test_split * n)`` as test (samples are i.i.d., so no shuffling).
    A split of size 0 is None.
    """
    validation_split = check_fraction(validation_split, "validation_split")
    test_split = check_fraction(test_split, "test_split")
    n_samples = len(data.x)
    n_test = validation_count(n_samples, test_split)
    n_validation = validation_count(n_samples, validation_split)
    n_train = n_samples - n_validation - n_test
    if n_train < 1:
        raise UsageError(
            f"expected validation_split + test_split to leave training samples, "
            f"received {n_validation} validation + {n_test} test of n_samples={n_samples}"
        )

    def part(start: int, stop: int) -> Pair | None:
        return (data.x[start:stop], data.y[start:stop]) if stop > start else None

    return Splits(
        train=(data.x[:n_train], data.y[:n_train]),
        validation=part(n_train, n_train + n_validation),
        test=part(n_train + n_validation, n_samples),
        num_classes=num_classes,
    )
