"""The generated torch file is the same model, not a look-alike: its ``nn.Module`` trained with a
plain torch loop (archspec's data order, torch.optim with the spec's optimizer, the file's own loss
from logits, its own dropout masks) follows archspec's torch training step for step, within 1e-12
per-step loss in float64 (60 steps of 32 samples, six epochs), for the MLP, CNN and LSTM configs."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from paths import CONFIGS, mnist_dir

import archspec
from archspec.data import load_dataset
from archspec.exporting.code._writer import import_file, weights_path
from archspec.exporting.code.torch_code import TorchCode
from archspec.training.order import epoch_order

from .code_support import export

STEPS = 60
SUBSET = 320  # 10 batches of 32: 60 steps are 6 epochs, so the reshuffling is exercised
BATCH = 32


@functools.cache
def mnist(view: str):
    splits = load_dataset({"dataset": "mnist", "view": view}, data_dir=mnist_dir())
    x, y = splits.train
    return x[:SUBSET].astype(np.float64), y[:SUBSET]


def plain_torch_training(module, model, x: np.ndarray, y: np.ndarray, training) -> list[float]:
    """A plain torch loop: the order of archspec.training.order.epoch_order, consecutive batches,
    torch.optim's own optimizer (archspec's update rules are torch.optim's), the file's loss."""
    o = training.optimizer
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=o.learning_rate, betas=(o.beta_1, o.beta_2), eps=o.epsilon)
    model.train()
    losses: list[float] = []
    epoch = 0
    while len(losses) < STEPS:
        order = epoch_order(training.seed, epoch, len(x))
        for start in range(0, len(x), BATCH):
            batch = order[start : start + BATCH]
            optimizer.zero_grad()
            loss = module.loss_function(
                model(torch.from_numpy(x[batch]), return_logits=True), torch.from_numpy(y[batch])
            )
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if len(losses) == STEPS:
                break
        epoch += 1
    return losses


@pytest.mark.parametrize("config", ["mnist_mlp", "mnist_cnn", "mnist_lstm"])
def test_generated_module_trains_like_archspec_float64(config, tmp_path):
    relative = training_differences(config, tmp_path)
    worst = int(np.argmax(relative))
    assert relative[worst] <= 1e-12, f"{config}: step {worst} loss differs by {relative[worst]:.3g} relative"


def training_differences(config: str, folder) -> np.ndarray:
    """Per-step relative loss differences: the generated module in a plain loop vs archspec."""
    spec = archspec.load(CONFIGS / f"{config}.yaml")
    spec = spec.model_copy(update={"training": spec.training.model_copy(update={"batch_size": BATCH})})
    assert spec.training.optimizer.type == "adam" and spec.training.schedule.type == "constant"
    x, y = mnist(spec.data.view)
    initial = archspec.compile(spec, backend="torch", dtype="float64").get_weights()
    result = archspec.train(spec, backend="torch", data={"train": (x, y)}, dtype="float64", max_steps=STEPS, epochs=20)

    out = export(TorchCode(), spec, initial, folder, config, "float64")
    module = import_file(out)
    model = module.load_model(weights_path(out), "float64")
    losses = np.array(plain_torch_training(module, model, x, y, spec.training))

    expected = np.asarray(result.step_losses)
    assert len(losses) == len(expected) == STEPS
    assert losses[-1] < losses[0], f"{config}: the loss did not go down ({losses[0]:.4f} -> {losses[-1]:.4f})"
    return np.abs(losses - expected) / np.maximum(np.abs(losses), np.abs(expected))
