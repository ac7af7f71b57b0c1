"""A seeded synthetic set of integer token sequences of different lengths, padded with 0 at the
end, for models with embeddings, masks and attention. Its tasks need the tokens' order (or
must ignore the padding) to be solved."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archspec.data._checks import check_choice, check_positive_int, check_seed
from archspec.data.splits import Splits
from archspec.data.synthetic import split_generated
from archspec.errors import UsageError
from archspec.spec.data import SEQUENCE_TASKS, sequence_classes


@dataclass(frozen=True, repr=False)
class SequenceData:
    """Token sequences and their labels.

    ``x``: int64 ``(n_samples, max_length)``; sample ``i`` holds ``lengths[i]`` tokens in
    ``1 .. vocabulary - 1`` followed by zeros (padding). ``y``: int64 ``(n_samples,)`` class
    labels in ``0 .. num_classes - 1``. ``lengths``: int64 ``(n_samples,)``.
    """

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray
    num_classes: int

    def __repr__(self) -> str:
        return f"SequenceData(x{self.x.shape}, y{self.y.shape}, num_classes={self.num_classes})"


def make_sequences(
    task: str = "sorted",
    n_samples: int = 2000,
    min_length: int = 4,
    max_length: int = 16,
    vocabulary: int = 10,
    *,
    position: int = 0,
    token: int = 1,
    seed: int = 0,
) -> SequenceData:
    """Draw ``n_samples`` sequences with ``numpy.random.default_rng(seed)``.

    Lengths are uniform in ``min_length .. max_length`` and tokens uniform in
    ``1 .. vocabulary - 1``, drawn in that order, sample by sample. For ``sorted`` the labels
    come first: a random permutation of ``n_samples // 2`` ones (rounded down) and zeros; a
    sample labelled 1 has its tokens sorted, a sample labelled 0 is drawn again until it is not
    non-decreasing (so both classes have the same lengths and token counts, and only the order
    tells them apart; this needs ``min_length >= 2`` and ``vocabulary >= 3``). ``token_at``
    needs ``position < min_length`` so that every sample has a token there.
    """
    task = check_choice(task, SEQUENCE_TASKS, "task")
    n_samples = check_positive_int(n_samples, "n_samples")
    min_length = check_positive_int(min_length, "min_length")
    max_length = check_positive_int(max_length, "max_length")
    vocabulary = check_positive_int(vocabulary, "vocabulary")
    seed = check_seed(seed)
    if min_length > max_length:
        raise UsageError(
            f"expected min_length <= max_length, received min_length={min_length}, max_length={max_length}"
        )
    if vocabulary < 2:
        raise UsageError(f"expected vocabulary >= 2 (token 0 is padding), received vocabulary={vocabulary}")
    if task == "sorted" and (min_length < 2 or vocabulary < 3):
        raise UsageError(
            "expected min_length >= 2 and vocabulary >= 3 for task 'sorted' (else no sequence is unsorted), "
            f"received min_length={min_length}, vocabulary={vocabulary}"
        )
    if task == "token_at" and (
        isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < min_length
    ):
        raise UsageError(
            f"expected 0 <= position < min_length={min_length} for task 'token_at', received position={position!r}"
        )
    if task == "count" and (isinstance(token, bool) or not isinstance(token, int) or not 1 <= token < vocabulary):
        raise UsageError(f"expected 1 <= token < vocabulary={vocabulary} for task 'count', received token={token!r}")

    rng = np.random.default_rng(seed)
    x = np.zeros((n_samples, max_length), dtype=np.int64)
    lengths = np.zeros(n_samples, dtype=np.int64)
    if task == "sorted":
        y = rng.permutation(np.arange(n_samples) < n_samples // 2).astype(np.int64)
    for i in range(n_samples):
        length = int(rng.integers(min_length, max_length + 1))
        tokens = rng.integers(1, vocabulary, size=length)
        if task == "sorted":
            if y[i] == 1:
                tokens = np.sort(tokens)
            else:
                while np.all(tokens[1:] >= tokens[:-1]):
                    tokens = rng.integers(1, vocabulary, size=length)
        x[i, :length] = tokens
        lengths[i] = length
    if task == "token_at":
        y = x[:, position].copy()
    elif task == "count":
        y = np.sum(x == token, axis=1).astype(np.int64)
    num_classes = sequence_classes(task, max_length=max_length, vocabulary=vocabulary)
    return SequenceData(x=x, y=y, lengths=lengths, num_classes=num_classes)


def load_sequences(
    task: str = "sorted",
    n_samples: int = 2000,
    min_length: int = 4,
    max_length: int = 16,
    vocabulary: int = 10,
    *,
    position: int = 0,
    token: int = 1,
    validation_split: float = 0.0,
    test_split: float = 0.2,
    seed: int = 0,
) -> Splits:
    """``make_sequences`` split in order (train, validation, test) as by ``split_generated``."""
    data = make_sequences(
        task, n_samples, min_length, max_length, vocabulary, position=position, token=token, seed=seed
    )
    return split_generated(data, validation_split, test_split, num_classes=data.num_classes)
