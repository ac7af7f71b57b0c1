"""MNIST for models with several inputs and outputs: inputs and targets derived from the digits.

``inputs`` maps each model input to a view of the digits, optionally with Gaussian pixel noise;
``targets`` maps each model output to ``digit`` (the class, 0..9) or ``even`` (1.0 for an even
digit, else 0.0). The noise of split ``s`` (0 train, 1 validation, 2 test) and input ``k`` (its
place in ``inputs``) is ``float32(noise) * N(0, 1)``, float32 standard normals drawn by numpy's
PCG64 from ``SeedSequence([seed, s, k, 0x0015E])``, added to the normalised float32 pixels; so
the data is the same for a seed on every backend and run.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from archspec.data.splits import SPLIT_NAMES, Pair, Splits
from archspec.errors import UsageError

TARGET_KINDS = ("digit", "even")
VIEW_SHAPES = {"flat": (784,), "image": (28, 28, 1), "sequence": (28, 28)}
_NOISE_TAG = 0x0015E


def derive_mnist(
    splits: Splits,
    inputs: Mapping[str, Mapping[str, object]] | None,
    targets: Mapping[str, str] | None,
    *,
    view: str,
    seed: int,
) -> Splits:
    """``splits`` (MNIST in ``view``, int64 labels) with named inputs and targets.

    ``inputs``: input name -> ``{"view": flat | image | sequence (default ``view``), "noise": std >= 0}``;
    None: one input named ``x`` in ``view``. ``targets``: output name -> ``digit`` or ``even``;
    None: the labels as they are (one output).
    """
    for name, options in (inputs or {}).items():
        unknown = sorted(set(options) - {"view", "noise"})
        if unknown:
            raise UsageError(f"mnist input {name!r}: expected keys among 'view', 'noise', received {unknown}")
        chosen = options.get("view") or view
        if chosen not in VIEW_SHAPES:
            raise UsageError(f"mnist input {name!r}: expected a view among {list(VIEW_SHAPES)}, received {chosen!r}")
        noise = options.get("noise", 0.0)
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
            raise UsageError(f"mnist input {name!r}: expected noise >= 0, received {noise!r}")
    for name, kind in (targets or {}).items():
        if kind not in TARGET_KINDS:
            raise UsageError(f"mnist target {name!r}: expected one of {list(TARGET_KINDS)}, received {kind!r}")
    parts: dict[str, Pair | None] = {}
    for index, split in enumerate(SPLIT_NAMES):
        pair = getattr(splits, split)
        if pair is None:
            parts[split] = None
            continue
        x, labels = pair
        assert isinstance(x, np.ndarray) and isinstance(labels, np.ndarray)  # MNIST as load_mnist gives it
        flat = x.reshape(len(x), -1)
        named_x: np.ndarray | dict[str, np.ndarray] = x
        if inputs is not None:
            named_x = {}
            for k, (name, options) in enumerate(inputs.items()):
                pixels = flat.reshape((len(x), *VIEW_SHAPES[str(options.get("view") or view)]))
                given = options.get("noise", 0.0)
                noise = float(given) if isinstance(given, (int, float)) else 0.0
                if noise > 0:
                    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index, k, _NOISE_TAG])))
                    # Drawn in the pixels' float32 (60,000 x 784 float64 draws would take 376 MB).
                    pixels = pixels + np.float32(noise) * rng.standard_normal(pixels.shape, dtype=np.float32)
                named_x[name] = pixels
        named_y: np.ndarray | dict[str, np.ndarray] = labels
        if targets is not None:
            named_y = {
                name: labels.copy() if kind == "digit" else (labels % 2 == 0).astype(np.float64).reshape(-1, 1)
                for name, kind in targets.items()
            }
        parts[split] = (named_x, named_y)
    train = parts["train"]
    assert train is not None
    return Splits(train=train, validation=parts["validation"], test=parts["test"], num_classes=None)
