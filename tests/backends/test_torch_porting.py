"""archspec.from_torch: torch modules as their authors write them, imported into a spec and
canonical weights, compiled on every backend and compared with the original module; each
trap of porting (GRU gate order and reset-after, batch-norm momentum and epsilon, asymmetric
padding, the NCHW flatten before a linear layer) has a test that fails without its conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import archspec  # noqa: E402
from archspec.backend import BACKENDS  # noqa: E402
from archspec.backends.torch import translation  # noqa: E402
from archspec.backends.torch.porting import from_torch  # noqa: E402
from archspec.errors import PortingError  # noqa: E402
from archspec.losses import loss_value  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BOUNDS = {"float64": 1e-12, "float32": 1e-5}


def prove(imported, inputs: dict[str, np.ndarray]) -> dict[tuple[str, str], float]:
    """The largest difference between the original and the spec compiled on each backend, per
    (backend, dtype); fails when one exceeds the bound (1e-12 float64, 1e-5 float32)."""
    largest = {}
    for dtype, bound in BOUNDS.items():
        expected = imported.original.outputs(inputs, dtype)
        for backend in BACKENDS:
            model = archspec.compile(imported.document, backend=backend, dtype=dtype, weights=imported.weights)
            cast = {name: value.astype(dtype) if value.dtype.kind == "f" else value for name, value in inputs.items()}
            outputs = model.forward(cast)
            for name, value in expected.items():
                difference = float(np.max(np.abs(outputs[name] - value)))
                largest[(backend, dtype)] = max(largest.get((backend, dtype), 0.0), difference)
            assert largest[(backend, dtype)] <= bound, f"{backend} {dtype}: {largest[(backend, dtype)]:.3g} > {bound}"
    return largest


def normal(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


def layer_types(imported) -> list[str]:
    return [layer["type"] for layer in imported.document["layers"]]


# --- the corpus ---------------------------------------------------------------------------


class MnistNet(nn.Module):
    """The PyTorch examples repository's MNIST ``Net`` (examples/mnist/main.py), as written there."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


class GRURegressor(nn.Module):
    """A sequence regressor: a batch-first GRU, its last output, a linear head."""

    def __init__(self, features: int = 3, hidden: int = 8):
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1, :])


class ResidualBlock(nn.Module):
    """A ResNet basic block (torchvision style: 3x3 convolutions without bias, BatchNorm2d with
    momentum 0.1 and eps 1e-5, the identity shortcut), then a small classifier head."""

    def __init__(self, channels: int = 4, classes: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, momentum=0.1, eps=1e-5)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, momentum=0.1, eps=1e-5)
        self.fc = nn.Linear(channels * 6 * 6, classes)

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out += identity
        out = self.relu(out)
        out = out.view(out.size(0), -1)
        return self.fc(out)


def torch_example() -> nn.Module:
    """The source document's PyTorch example (configs/torch_example.yaml describes it)."""
    return nn.Sequential(nn.Linear(784, 10), nn.ReLU(), nn.Linear(10, 10), nn.Softmax(dim=1))


def trained_statistics(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """Running statistics far from their initial (0, 1), from a few training-mode batches, so
    the inference outputs depend on them, on momentum and on epsilon."""
    module.train()
    with torch.no_grad():
        for seed in range(3):
            module(example * 3.0 + seed)
    return module.eval()


def test_the_mnist_net_of_the_pytorch_examples_ports_with_proof():
    torch.manual_seed(0)
    imported = from_torch(MnistNet().eval(), torch.zeros(2, 1, 28, 28))
    assert imported.document["inputs"] == {"x": {"shape": [28, 28, 1]}}  # NCHW -> channels-last
    assert imported.notes[0] == "input x: torch reads (N, C, H, W), the spec (N, H, W, C), channels last"
    assert layer_types(imported)[:5] == ["conv2d", "activation", "conv2d", "activation", "maxpool2d"]
    assert imported.document["layers"][-1] == {
        "id": "log_softmax",
        "type": "activation",
        "activation": "log_softmax",
        "inputs": ["fc2"],
    }
    assert imported.document["training"]["loss"] == "sparse_categorical_crossentropy"
    largest = prove(imported, {"x": normal(3, 28, 28, 1)})
    assert max(largest[(b, "float64")] for b in BACKENDS) <= 1e-12


def test_the_gru_regressor_ports_with_proof():
    torch.manual_seed(1)
    imported = from_torch(GRURegressor().eval(), torch.zeros(2, 7, 3))
    gru = imported.document["layers"][0]
    assert (gru["type"], gru["units"], gru["return_sequences"]) == ("gru", 8, False)
    assert imported.document["training"]["loss"] == "mse"
    prove(imported, {"x": normal(4, 7, 3)})


def test_a_resnet_head_global_pooling_then_flatten():
    torch.manual_seed(15)
    module = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    module = trained_statistics(module, torch.randn(4, 3, 10, 10))
    imported = from_torch(module, torch.zeros(1, 3, 10, 10))
    assert layer_types(imported) == [
        "zero_padding2d",  # stride 2 on an even size: torch's (1, 1) is not 'same' (0, 1)
        "conv2d",
        "batch_norm",
        "activation",
        "maxpool2d",
        "global_avgpool2d",
        "reshape",
        "flatten",
        "dense",
    ]
    assert imported.document["layers"][4]["padding"] == "same"  # 5x5, window 3, stride 2: (1, 1) is 'same'
    prove(imported, {"input": normal(2, 10, 10, 3)})


def test_the_residual_block_with_batch_norm_ports_with_proof():
    torch.manual_seed(2)
    block = trained_statistics(ResidualBlock(), torch.randn(8, 4, 6, 6))
    imported = from_torch(block, torch.zeros(2, 4, 6, 6))
    assert layer_types(imported) == [
        "conv2d",
        "batch_norm",
        "activation",
        "conv2d",
        "batch_norm",
        "add",
        "activation",
        "flatten",
        "dense",
    ]
    assert {layer["padding"] for layer in imported.document["layers"] if layer["type"] == "conv2d"} == {"same"}
    prove(imported, {"x": normal(3, 6, 6, 4)})


def test_the_torch_example_of_the_source_document_ports_to_its_config():
    torch.manual_seed(3)
    imported = from_torch(torch_example(), torch.zeros(2, 784))
    config = yaml.safe_load((CONFIGS / "torch_example.yaml").read_text())
    options = ("type", "units", "activation")
    ported = [{k: v for k, v in layer.items() if k in options} for layer in imported.document["layers"]]
    assert ported == config["layers"]
    assert list(imported.document["inputs"]) == ["input"]  # nn.Sequential's forward(input)
    prove(imported, {"input": normal(5, 784)})


def test_archspec_from_torch_returns_a_spec_and_its_weights():
    torch.manual_seed(4)
    module = torch_example()
    spec, weights = archspec.from_torch(module, torch.zeros(1, 784))
    assert isinstance(spec, archspec.Spec)
    assert sorted(weights) == ["m_0.bias", "m_0.kernel", "m_2.bias", "m_2.kernel"]
    np.testing.assert_array_equal(weights["m_2.kernel"], module[2].weight.detach().numpy().T)


# --- the traps ------------------------------------------------------------------------------


def test_gru_gates_become_z_r_h_with_both_biases_reset_after():
    torch.manual_seed(5)
    module = GRURegressor(features=2, hidden=3).eval()
    imported = from_torch(module, torch.zeros(1, 4, 2))
    weight_ih = module.gru.weight_ih_l0.detach().numpy()  # torch's blocks r, z, n
    kernel = imported.weights["gru.kernel"]  # canonical blocks z, r, h
    np.testing.assert_array_equal(kernel[:, 0:3], weight_ih[3:6].T)  # z
    np.testing.assert_array_equal(kernel[:, 3:6], weight_ih[0:3].T)  # r
    np.testing.assert_array_equal(kernel[:, 6:9], weight_ih[6:9].T)  # h (torch's n)
    bias_hh = module.gru.bias_hh_l0.detach().numpy()
    np.testing.assert_array_equal(imported.weights["gru.recurrent_bias"][6:9], bias_hh[6:9])  # inside r * (...)
    prove(imported, {"x": normal(3, 4, 2)})


def test_gru_without_the_gate_swap_differs_from_torch():
    """The proof catches a port that keeps torch's r, z order: the check above is not vacuous."""
    torch.manual_seed(5)
    module = GRURegressor(features=2, hidden=3).eval()
    imported = from_torch(module, torch.zeros(1, 4, 2))
    for name in ("gru.kernel", "gru.recurrent_kernel", "gru.bias", "gru.recurrent_bias"):
        z, r, h = np.split(imported.weights[name], 3, axis=-1)
        imported.weights[name] = np.concatenate([r, z, h], axis=-1)
    with pytest.raises(AssertionError, match="float64"):
        prove(imported, {"x": normal(3, 4, 2)})


def test_batch_norm_momentum_is_one_minus_torch_s_and_epsilon_is_kept():
    torch.manual_seed(6)
    module = trained_statistics(nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)), torch.randn(4, 2, 5, 5))
    with torch.no_grad():
        module[1].running_var.mul_(1e-3)  # small variances: epsilon matters at every digit
    imported = from_torch(module, torch.zeros(1, 2, 5, 5))
    norm = imported.document["layers"][1]
    assert (norm["momentum"], norm["epsilon"]) == (pytest.approx(0.9), 1e-5)
    prove(imported, {"input": normal(2, 5, 5, 2)})
    # One training step: torch's running = 0.9 * running + 0.1 * batch statistic, as archspec's
    # moving = 0.9 * moving + (1 - 0.9) * batch statistic. torch's running variance takes the
    # unbiased batch variance, archspec's (as Keras') the biased one: the import notes say so.
    x = normal(6, 5, 5, 2, seed=1)
    model = archspec.compile(imported.document, backend="torch", dtype="float64", weights=imported.weights)
    model.forward({"input": x}, training=True)
    before = module[1].running_var.double().clone()
    module.double().train()
    with torch.no_grad():
        module(torch.from_numpy(np.moveaxis(x, -1, 1).copy()))
    moved = model.get_weights()
    np.testing.assert_allclose(moved["m_1.moving_mean"], module[1].running_mean.numpy(), rtol=1e-12, atol=1e-15)
    count = 6 * 5 * 5
    unbiased_step = (module[1].running_var - 0.9 * before).numpy()  # 0.1 * unbiased batch variance
    expected = 0.9 * before.numpy() + unbiased_step * (count - 1) / count
    np.testing.assert_allclose(moved["m_1.moving_variance"], expected, rtol=1e-12)
    assert any("unbiased" in note for note in imported.notes)


def test_symmetric_padding_that_is_not_same_becomes_a_zero_padding_layer():
    """Stride 2 on an even size: TensorFlow's 'same' pads (0, 1), torch's padding=1 pads (1, 1)."""
    torch.manual_seed(7)
    module = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU()).eval()
    imported = from_torch(module, torch.zeros(1, 2, 8, 8))
    padding = imported.document["layers"][0]
    assert (padding["type"], padding["padding"]) == ("zero_padding2d", [[1, 1], [1, 1]])
    assert imported.document["layers"][1]["padding"] == "valid"
    prove(imported, {"input": normal(2, 8, 8, 2)})


def test_conv1d_padding_wider_than_same_becomes_zero_padding1d():
    torch.manual_seed(8)
    module = nn.Sequential(nn.Conv1d(3, 2, 3, padding=2), nn.Conv1d(2, 2, 3, padding=1)).eval()
    imported = from_torch(module, torch.zeros(1, 3, 9))
    assert layer_types(imported) == ["zero_padding1d", "conv1d", "conv1d"]
    assert imported.document["layers"][0]["padding"] == [2, 2]
    assert imported.document["layers"][2]["padding"] == "same"
    prove(imported, {"input": normal(2, 9, 3)})


def test_nchw_flatten_permutes_the_rows_of_the_next_linear_layer():
    torch.manual_seed(9)
    module = nn.Sequential(nn.Conv2d(1, 2, 2), nn.Flatten(), nn.Linear(2 * 3 * 3, 4)).eval()
    imported = from_torch(module, torch.zeros(1, 1, 4, 4))
    weight = module[2].weight.detach().numpy()  # (4, 18), features in C, H, W order
    kernel = imported.weights["m_2.kernel"]  # (18, 4), rows in H, W, C order
    np.testing.assert_array_equal(kernel.reshape(3, 3, 2, 4), weight.T.reshape(2, 3, 3, 4).transpose(1, 2, 0, 3))
    prove(imported, {"input": normal(2, 4, 4, 1)})


def test_without_the_row_permutation_the_proof_fails(monkeypatch):
    monkeypatch.setattr("archspec.backends.torch.translator.flat_order", lambda shape: None)
    torch.manual_seed(9)
    module = nn.Sequential(nn.Conv2d(1, 2, 2), nn.Flatten(), nn.Linear(2 * 3 * 3, 4)).eval()
    imported = from_torch(module, torch.zeros(1, 1, 4, 4))
    with pytest.raises(AssertionError, match="float64"):
        prove(imported, {"input": normal(2, 4, 4, 1)})


def test_flat_order_is_channels_last_of_a_channels_first_tensor():
    order = translation.flat_order((2, 1, 3))  # torch features c0w0 c0w1 c0w2 c1w0 ...
    assert order is not None
    assert order.tolist() == [0, 2, 4, 1, 3, 5]
    assert translation.flat_order((5, 1, 1)) is None  # after a global pooling: nothing to permute


def test_intermediates_are_channels_last_and_locate_the_first_layer_that_differs():
    torch.manual_seed(9)
    module = nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(18, 4), nn.Tanh()).eval()
    imported = from_torch(module, torch.zeros(1, 1, 4, 4))
    x = normal(2, 4, 4, 1)
    original = imported.original.intermediates({"input": x}, "float64")
    model = archspec.compile(imported.document, backend="torch", dtype="float64", weights=imported.weights)
    spec = {
        name: value.detach().numpy()
        for name, value in model.native.tensors({"input": torch.from_numpy(x)}, list(original)).items()
    }
    assert list(original) == ["m_0", "m_1", "m_2", "m_3", "m_4"]  # graph order
    assert original["m_0"].shape == (2, 3, 3, 2)  # channels-last, as the spec's
    for name, value in original.items():
        np.testing.assert_allclose(spec[name], value, rtol=0, atol=1e-12, err_msg=name)
    # A wrong bias shows first at the linear layer, not at the convolution before it.
    imported.weights["m_3.bias"] = imported.weights["m_3.bias"] + 1
    model.set_weights(imported.weights)
    spec = {
        name: value.detach().numpy()
        for name, value in model.native.tensors({"input": torch.from_numpy(x)}, list(original)).items()
    }
    differing = [name for name in original if np.max(np.abs(spec[name] - original[name])) > 1e-12]
    assert differing[0] == "m_3"


def test_a_log_softmax_classifier_trains_on_its_logits():
    """torch's log_softmax + nll_loss is archspec's cross-entropy from the logits before log_softmax."""
    torch.manual_seed(13)
    module = nn.Sequential(nn.Linear(5, 3), nn.LogSoftmax(dim=1)).eval()
    imported = from_torch(module, torch.zeros(1, 5))
    graph = archspec.api.graph_of(imported.document)
    (head,) = graph.heads
    assert (head.logits, head.from_logits, head.activation) == ("m_0", True, "softmax")
    x, labels = normal(8, 5), np.random.default_rng(1).integers(0, 3, size=8)
    model = archspec.compile(imported.document, backend="torch", dtype="float64", weights=imported.weights)
    logits = model.native.tensors({"input": torch.from_numpy(x)}, [head.logits])[head.logits].detach().numpy()
    loss = loss_value(imported.document["training"]["loss"], logits, labels, from_logits=head.from_logits)
    expected = F.nll_loss(module.double()(torch.from_numpy(x)), torch.from_numpy(labels)).item()
    assert loss == pytest.approx(expected, rel=1e-12)


# --- more of the mapping ----------------------------------------------------------------------


class TwoLayerLstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(11, 4)
        self.lstm = nn.LSTM(4, 5, num_layers=2, batch_first=True, bidirectional=True)
        self.norm = nn.LayerNorm(10)
        self.attention = nn.MultiheadAttention(10, 2, batch_first=True)
        self.out = nn.Linear(10, 3)

    def forward(self, ids):
        x = self.embedding(ids)
        x, _ = self.lstm(x)
        x = self.norm(x)
        attended, _ = self.attention(x, x, x, need_weights=False)
        x = torch.cat([x, attended], dim=1)
        return torch.log_softmax(self.out(torch.tanh(x)), dim=-1)


def test_embedding_stacked_bidirectional_lstm_attention_and_concatenation():
    torch.manual_seed(10)
    imported = from_torch(TwoLayerLstm().eval(), torch.zeros(2, 6, dtype=torch.long))
    assert imported.document["inputs"] == {"ids": {"shape": [6], "dtype": "int64"}}
    assert layer_types(imported) == [
        "embedding",
        "bidirectional",
        "bidirectional",
        "layer_norm",
        "multi_head_attention",
        "concatenate",
        "activation",
        "dense",
        "activation",
    ]
    ids = np.random.default_rng(0).integers(0, 11, size=(3, 6))
    prove(imported, {"ids": ids})


def test_the_last_hidden_state_of_a_relu_rnn():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(16, 4, batch_first=True, nonlinearity="relu")

        def forward(self, x):
            _, h = self.rnn(x)
            return h[-1]

    torch.manual_seed(11)
    imported = from_torch(Model().eval(), torch.zeros(2, 5, 16))
    assert imported.document["layers"][0]["return_sequences"] is False
    prove(imported, {"x": normal(3, 5, 16)})


class TimeMajorTagger(nn.Module):
    """The older torch style: sequences (steps, batch, features), batch_first=False."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(9, 4)
        self.lstm = nn.LSTM(4, 5)
        self.gru = nn.GRU(5, 3, num_layers=2)
        self.out = nn.Linear(3, 2)
        self.summary = nn.Linear(5, 2)

    def forward(self, ids):
        x, _ = self.lstm(self.embedding(ids))
        per_step, _ = self.gru(x)
        return self.out(torch.relu(per_step)), self.summary(x[-1])


def test_time_major_sequences_are_batch_first_in_the_spec():
    torch.manual_seed(14)
    imported = from_torch(TimeMajorTagger().eval(), torch.zeros(6, 2, dtype=torch.long))  # (steps, batch)
    assert imported.document["inputs"] == {"ids": {"shape": [6], "dtype": "int64"}}
    assert "training" not in imported.document  # two outputs: no default to guess
    # The whole sequence and the last step of one LSTM call are two spec layers with one weight copy each.
    assert any(note.startswith("lstm: one torch module") for note in imported.notes)
    ids = np.random.default_rng(2).integers(0, 9, size=(3, 6))  # the spec's (batch, steps)
    outputs = imported.original.outputs({"ids": ids}, "float64")
    assert [value.shape for value in outputs.values()] == [(3, 6, 2), (3, 2)]
    prove(imported, {"ids": ids})


def test_a_module_in_training_mode_is_traced_in_eval_mode_and_left_as_it_was():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 4)

        def forward(self, x):
            return F.dropout(torch.relu(self.fc(x)), p=0.3, training=self.training)

    torch.manual_seed(16)
    module = Model().train()
    imported = from_torch(module, torch.zeros(2, 6))
    assert module.training
    assert imported.document["layers"][-1]["type"] == "dropout"
    assert imported.document["layers"][-1]["rate"] == 0.3
    prove(imported, {"x": normal(3, 6)})


def test_a_flat_input_viewed_as_an_image_feeds_a_convolution():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.pool = nn.AvgPool2d(2)

        def forward(self, x):
            return torch.sigmoid(self.pool(self.conv(x.view(-1, 1, 6, 6))))

    torch.manual_seed(12)
    imported = from_torch(Model().eval(), torch.zeros(2, 36))
    assert imported.document["layers"][0]["target_shape"] == [6, 6, 1]
    prove(imported, {"x": normal(3, 36)})


# --- what cannot be mapped ---------------------------------------------------------------------


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))

    def forward(self, x):
        return x * self.scale


class Unportable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 1)
        self.fc = nn.Linear(8, 4)
        self.custom = Custom()
        self.bn = nn.BatchNorm1d(4, momentum=None)

    def forward(self, x, y):
        a = self.conv(x).flatten(1)
        h = self.fc(y)
        return self.bn(h), self.custom(torch.sin(h)), a


def test_every_unsupported_module_and_op_is_listed_in_one_error():
    with pytest.raises(PortingError) as caught:
        from_torch(Unportable(), (torch.zeros(2, 1, 2, 2, 2), torch.zeros(2, 8)))
    message = str(caught.value)
    assert message.startswith("expected modules and operations archspec can express, received 4 that it cannot")
    for item in ("conv (torch.nn.modules.conv.Conv3d)", "sin (function torch.sin)", "custom_scale (get_attr", "bn "):
        assert item in message, item
    assert "\n" not in message


def test_an_example_input_the_module_refuses_is_a_usage_error():
    with pytest.raises(
        archspec.UsageError, match=r"expected example_input that Sequential accepts, received shapes \[\[2, 5\]\]"
    ):
        from_torch(torch_example(), torch.zeros(2, 5))


def test_a_forward_torch_fx_cannot_trace_is_refused_plainly():
    class Branching(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(PortingError, match="expected a forward that torch.fx can trace"):
        from_torch(Branching(), torch.zeros(1, 3))


# --- round trips ----------------------------------------------------------------------------------


def _without_ids(layers: list[dict]) -> list[dict]:
    return [{k: v for k, v in layer.items() if k not in ("id", "inputs")} for layer in layers]


@pytest.mark.parametrize("config", sorted(path.name for path in CONFIGS.glob("*.yaml")))
def test_a_compiled_spec_ports_back_to_itself_with_bit_identical_weights(config):
    spec = archspec.load(CONFIGS / config)
    model = archspec.compile(spec, backend="torch", dtype="float32")
    example = tuple(torch.zeros(1, *item.shape) for item in spec.inputs.values())
    imported = from_torch(model.native, example)
    original = spec.model_dump(mode="json", exclude_none=True)
    assert imported.document["inputs"] == original["inputs"]
    assert _without_ids(imported.document["layers"]) == _without_ids(original["layers"])
    weights = model.get_weights()
    assert sorted(imported.weights) == sorted(weights)
    for name, value in weights.items():
        assert imported.weights[name].dtype == value.dtype
        np.testing.assert_array_equal(imported.weights[name], value, err_msg=name)
