"""The torch model is a real nn.Module: torch.compile, a plain optimizer loop, state_dict files."""

import numpy as np
import torch

import archspec
from paths import CONFIGS


def test_native_module_works_with_torch_tooling(tmp_path):
    model = archspec.compile(CONFIGS / "mnist_cnn.yaml", backend="torch")
    native = model.native
    assert isinstance(native, torch.nn.Module)
    x = torch.from_numpy(np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32))

    native.eval()
    expected = native(x)
    compiled = torch.compile(native)
    assert torch.allclose(compiled(x), expected, atol=1e-6)

    # A user's own training loop with torch.optim moves archspec's parameters.
    native.train()
    optimizer = torch.optim.SGD(native.parameters(), lr=0.1)
    before = model.get_weights()["dense_2.kernel"].copy()
    loss = native(x).square().mean()
    loss.backward()
    optimizer.step()
    assert not np.array_equal(model.get_weights()["dense_2.kernel"], before)

    torch.save(native.state_dict(), tmp_path / "state.pt")
    fresh = archspec.compile(CONFIGS / "mnist_cnn.yaml", backend="torch")
    fresh.native.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    for name, value in model.get_weights().items():
        assert np.array_equal(fresh.get_weights()[name], value), name
