"""Every layer type of the catalogue has a builder in every backend, and the README says so."""

import pytest

from archspec.backend import BACKENDS
from archspec.graph import layer_types
from archspec.support import builders, support_matrix


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_layer_type_has_a_builder(backend):
    missing = set(layer_types()) - builders(backend)
    extra = builders(backend) - set(layer_types())
    assert not missing, f"{backend} lacks builders for {sorted(missing)}"
    assert not extra, f"{backend} has builders for unknown types {sorted(extra)}"


@pytest.mark.parametrize("module", ["layers", "layout", "model", "random", "activations", "optimizers", "engine"])
def test_backends_share_module_names(root_dir, module):
    for backend in BACKENDS:
        assert (root_dir / "backends" / backend / f"{module}.py").is_file(), (
            f"backends/{backend}/{module}.py is missing"
        )


def test_readme_support_matrix_is_current(root_dir):
    readme = (root_dir / "README.md").read_text()
    assert support_matrix() in readme, "README's support matrix differs from `python -m archspec.support`"
