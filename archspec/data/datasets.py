"""The trainer's one entry point: a data config (a plain dict) in, checked Splits out."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path

from archspec.data._checks import check_choice
from archspec.data.mnist import load_mnist
from archspec.data.sequences import load_sequences
from archspec.data.splits import Splits
from archspec.data.synthetic import load_binary, load_regression
from archspec.errors import UsageError

# Each loader's keyword arguments are the keys its config accepts.
_LOADERS: dict[str, Callable[..., Splits]] = {
    "binary": load_binary,
    "mnist": load_mnist,
    "regression": load_regression,
    "sequences": load_sequences,
}
DATASET_NAMES = tuple(_LOADERS)


def dataset_options(name: str) -> tuple[str, ...]:
    """The config keys, besides ``"dataset"``, that data set ``name`` accepts."""
    loader = _LOADERS[check_choice(name, DATASET_NAMES, "dataset")]
    return tuple(key for key in inspect.signature(loader).parameters if key != "data_dir")


def load_dataset(config: Mapping[str, object], *, data_dir: str | Path | None = None, seed: int = 0) -> Splits:
    """Load the data set a config names, e.g. ``{"dataset": "mnist", "view": "flat"}``.

    Data sets and their keys (all optional except ``dataset``):

    - ``mnist``: ``view`` (flat | image | sequence), ``normalization`` (scale | standardize |
      none), ``validation_split``; files found from ``data_dir`` as by ``locate_mnist``.
      float32 x, int64 y of shape (N,), ``num_classes=10``. ``inputs`` and ``targets``
      derive named inputs and targets for several inputs and outputs (``archspec.data.derived``).
    - ``regression``: ``n_samples``, ``n_features``, ``noise``, ``validation_split``,
      ``test_split``, ``seed``. float64 x (N, n_features) and y (N, 1).
    - ``binary``: as regression, y (N, 1) in {0.0, 1.0}, ``num_classes=2``.
    - ``sequences``: ``task`` (sorted | token_at | count), ``n_samples``, ``min_length``,
      ``max_length``, ``vocabulary``, ``position`` (token_at), ``token`` (count),
      ``validation_split``, ``test_split``, ``seed``. int64 x (N, max_length) of tokens
      ``1 .. vocabulary - 1`` padded with 0 at the end, int64 y (N,) class labels.

    Synthetic sets are drawn with the config's ``seed`` when it has one, else with ``seed``.
    Raises UsageError for an unknown data set or key (listing the valid ones) or a bad value,
    DataError when data is missing or corrupt.
    """
    if not isinstance(config, Mapping):
        raise UsageError(f"expected the data config to be a mapping, received {type(config).__name__}")
    if "dataset" not in config:
        raise UsageError(
            f"expected the data config to name a dataset ({', '.join(DATASET_NAMES)}), "
            f"received keys: {', '.join(map(repr, config)) or 'none'}"
        )
    name = check_choice(config["dataset"], DATASET_NAMES, "dataset")
    options = {key: value for key, value in config.items() if key != "dataset"}
    accepted = dataset_options(name)
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise UsageError(
            f"expected keys of dataset {name!r} among {', '.join(accepted)}, received {', '.join(map(repr, unknown))}"
        )
    if name == "mnist":
        if options.get("inputs") is not None or options.get("targets") is not None:
            options.setdefault("seed", seed)  # draws the noise of noisy inputs
        return _LOADERS[name](data_dir, **options)  # the loader checks each option's value
    options.setdefault("seed", seed)
    return _LOADERS[name](**options)
