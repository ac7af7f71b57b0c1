"""The numpy optimizers match torch.optim step for step, state included."""

import numpy as np
import pytest
import torch

from archspec.definitions.optimizers import OPTIMIZER_NAMES, resolve_options, state_slots
from archspec.errors import UsageError
from archspec.reference import optimizers

# canonical slot -> torch state key
TORCH_SLOTS = {
    "momentum": "momentum_buffer",
    "m": "exp_avg",
    "v": "exp_avg_sq",
    "square_avg": "square_avg",
    "acc_delta": "acc_delta",
}


def torch_optimizer(name, options, tensors):
    o = resolve_options(name, {"lr": 0.1, **options})
    if name == "sgd":
        return torch.optim.SGD(
            tensors, lr=o["lr"], momentum=o["momentum"], nesterov=o["nesterov"], weight_decay=o["weight_decay"]
        )
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(
            tensors, lr=o["lr"], betas=(o["beta_1"], o["beta_2"]), eps=o["epsilon"], weight_decay=o["weight_decay"]
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(tensors, lr=o["lr"], alpha=o["rho"], eps=o["epsilon"], momentum=o["momentum"])
    return torch.optim.Adadelta(tensors, lr=o["lr"], rho=o["rho"], eps=o["epsilon"])


CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("sgd", {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    ("adam", {}),
    ("adam", {"beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-6, "weight_decay": 0.1}),
    ("adamw", {}),
    ("adamw", {"weight_decay": 0.3, "beta_2": 0.9}),
    ("rmsprop", {}),
    ("rmsprop", {"rho": 0.9, "momentum": 0.5, "epsilon": 1e-4}),
    ("adadelta", {}),
    ("adadelta", {"rho": 0.5, "epsilon": 1e-3}),
]


@pytest.mark.parametrize("name, options", CASES)
def test_five_steps_match_torch_with_changing_learning_rate(name, options):
    rng = np.random.default_rng(0)
    params = {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=(4,))}
    grads = [{key: rng.normal(size=value.shape) for key, value in params.items()} for _ in range(5)]
    lrs = [0.1, 0.05, 0.2, 0.01, 0.1]

    state = optimizers.init_state(name, options, params)
    ours = params
    for step, lr in enumerate(lrs, start=1):
        ours, state = optimizers.apply(name, options, ours, grads[step - 1], state, step, lr)

    tensors = {key: torch.tensor(value, requires_grad=True) for key, value in params.items()}
    optimizer = torch_optimizer(name, options, list(tensors.values()))
    for step, lr in enumerate(lrs):
        optimizer.param_groups[0]["lr"] = lr
        for key, tensor in tensors.items():
            tensor.grad = torch.tensor(grads[step][key])
        optimizer.step()

    for key, tensor in tensors.items():
        np.testing.assert_allclose(ours[key], tensor.detach().numpy(), rtol=1e-12, atol=0)
        torch_state = optimizer.state[tensor]
        assert set(state[key]) == set(state_slots(name, options))
        for slot, value in state[key].items():
            np.testing.assert_allclose(value, torch_state[TORCH_SLOTS[slot]].numpy(), rtol=1e-12, atol=0)


def test_first_sgd_momentum_step_uses_the_gradient_as_buffer():
    params, grads = {"w": np.array([1.0])}, {"w": np.array([2.0])}
    state = optimizers.init_state("sgd", {"lr": 0.5, "momentum": 0.9}, params)
    new_params, new_state = optimizers.apply("sgd", {"momentum": 0.9}, params, grads, state, step=1, lr=0.5)
    assert new_state["w"]["momentum"].tolist() == [2.0]
    assert new_params["w"].tolist() == [0.0]


def test_first_adam_step_moves_each_weight_by_about_lr():
    params, grads = {"w": np.array([1.0, 1.0])}, {"w": np.array([3.0, -0.5])}
    state = optimizers.init_state("adam", {}, params)
    new_params, _ = optimizers.apply("adam", {}, params, grads, state, step=1, lr=0.01)
    np.testing.assert_allclose(new_params["w"], [0.99, 1.01], rtol=1e-8)


def test_apply_leaves_its_inputs_untouched():
    params, grads = {"w": np.ones(3)}, {"w": np.ones(3)}
    state = optimizers.init_state("rmsprop", {"momentum": 0.5}, params)
    optimizers.apply("rmsprop", {"momentum": 0.5}, params, grads, state, step=1, lr=0.1)
    assert params["w"].tolist() == [1.0] * 3
    assert state["w"]["square_avg"].tolist() == [0.0] * 3


def test_every_optimizer_has_an_update_rule():
    assert tuple(optimizers.UPDATE_RULES) == OPTIMIZER_NAMES


def test_mismatched_state_is_refused():
    params = {"w": np.ones(2)}
    state = optimizers.init_state("sgd", {}, params)
    with pytest.raises(UsageError, match="expected state slots \\['momentum'\\]"):
        optimizers.apply("sgd", {"momentum": 0.9}, params, {"w": np.ones(2)}, state, step=1, lr=0.1)
    with pytest.raises(UsageError, match="expected gradients and state"):
        optimizers.apply("sgd", {}, params, {}, state, step=1, lr=0.1)
    with pytest.raises(UsageError, match="expected step >= 1"):
        optimizers.apply("sgd", {}, params, {"w": np.ones(2)}, state, step=0, lr=0.1)
