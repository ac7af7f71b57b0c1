"""The benchmark models written by hand, the way a PyTorch, Keras or Flax user would write them.

These are the baselines ``bench_training.py`` holds archspec to: the same layers as
``configs/mnist_{mlp,cnn,lstm,tcn,transformer}.yaml`` and ``configs/sequences_masked_lstm.yaml``,
the same optimizer and batch size, trained with
each framework's everyday idioms. Frameworks are imported inside the functions, so a
worker process that times torch never loads TensorFlow or JAX, and the other way round.
"""

from __future__ import annotations

import functools
import time

MODELS = ("mlp", "cnn", "lstm", "tcn", "transformer", "masked_lstm")
TCN_DILATIONS = (1, 2, 4, 8)
WIDTH, HEADS, HIDDEN, BLOCKS = 64, 4, 128, 2
"""The Transformer's token width, attention heads, feed-forward width and encoder blocks."""
VOCABULARY, EMBEDDING, UNITS, STEPS = 10, 16, 32, 16
"""The masked LSTM's tokens (0 is padding), embedding width, LSTM units and padded length."""
INFERENCE_BATCH = 1024
"""Batch size of every inference measurement (archspec's ``predict`` default)."""


# --- PyTorch ------------------------------------------------------------------------


def torch_model(name: str):
    """The model as a torch user writes it: nn.Sequential; the CNN reads NCHW images."""
    from torch import nn

    if name == "mlp":
        return nn.Sequential(
            nn.Linear(784, 256),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(64 * 5 * 5, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    if name == "lstm":

        class LastHidden(nn.Module):
            """nn.LSTM's last hidden state, so that the LSTM fits in nn.Sequential."""

            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(28, 128, batch_first=True)

            def forward(self, x):
                _, (hidden, _) = self.lstm(x)
                return hidden[-1]

        return nn.Sequential(LastHidden(), nn.Linear(128, 10))
    if name == "tcn":
        return _torch_tcn()
    if name == "transformer":
        return _torch_transformer()
    if name == "masked_lstm":
        return _torch_masked_lstm()
    raise ValueError(f"expected a model among {MODELS}, received {name!r}")


def _torch_tcn():
    """Causal dilated nn.Conv1d layers on (N, channels, steps): each pads its reach on the left."""
    from torch import nn

    class CausalConv1d(nn.Conv1d):
        def forward(self, x):
            reach = (self.kernel_size[0] - 1) * self.dilation[0]
            return super().forward(nn.functional.pad(x, (reach, 0)))

    stack = []
    channels = 28
    for dilation in TCN_DILATIONS:
        stack += [CausalConv1d(channels, 32, 3, dilation=dilation), nn.ReLU()]
        channels = 32
    return nn.Sequential(*stack, nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * 28, 128), nn.ReLU(), nn.Linear(128, 10))


def _torch_transformer():
    """Rows as tokens: a linear embedding, learned positions, encoder blocks of
    nn.MultiheadAttention + residual + LayerNorm and a feed-forward + residual + LayerNorm."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(WIDTH, HEADS, dropout=0.1, batch_first=True)
            self.norm_1 = nn.LayerNorm(WIDTH, eps=1e-3)
            self.feed_forward = nn.Sequential(
                nn.Linear(WIDTH, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, WIDTH), nn.Dropout(0.1)
            )
            self.norm_2 = nn.LayerNorm(WIDTH, eps=1e-3)

        def forward(self, x):
            attended, _ = self.attention(x, x, x, need_weights=False)
            x = self.norm_1(x + attended)
            return self.norm_2(x + self.feed_forward(x))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(28, WIDTH)
            self.positions = nn.Parameter(torch.randn(28, WIDTH) * 0.02)
            self.blocks = nn.Sequential(*(Block() for _ in range(BLOCKS)))
            self.head = nn.Linear(WIDTH, 10)

        def forward(self, x):
            return self.head(self.blocks(self.embed(x) + self.positions).mean(dim=1))

    return Transformer()


def _torch_masked_lstm():
    """Token sequences padded with 0 at the end: nn.Embedding, then nn.LSTM over each sequence's
    valid steps (``pack_padded_sequence``, the torch idiom for padding), its last hidden state."""
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence

    class MaskedLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCABULARY, EMBEDDING)
            self.lstm = nn.LSTM(EMBEDDING, UNITS, batch_first=True)
            self.head = nn.Linear(UNITS, 2)

        def forward(self, tokens):
            lengths = (tokens != 0).sum(dim=1).cpu()
            packed = pack_padded_sequence(self.embed(tokens), lengths, batch_first=True, enforce_sorted=False)
            _, (hidden, _) = self.lstm(packed)
            return self.head(hidden[-1])

    return MaskedLSTM()


def torch_inputs(name: str, x):
    """numpy inputs in the spec's layout -> the float tensor the torch model reads (NCHW for the CNN)."""
    import torch

    tensor = torch.from_numpy(x)
    if name == "cnn":
        tensor = tensor.permute(0, 3, 1, 2).contiguous()  # (N, 28, 28, 1) -> (N, 1, 28, 28)
    if name == "tcn":
        tensor = tensor.permute(0, 2, 1).contiguous()  # (N, steps, channels) -> (N, channels, steps)
    return tensor


def torch_optimizer(model, optimizer_spec):
    import torch

    return torch.optim.Adam(
        model.parameters(),
        lr=optimizer_spec.learning_rate,
        betas=(optimizer_spec.beta_1, optimizer_spec.beta_2),
        eps=optimizer_spec.epsilon,
    )


def train_torch_tensor_loop(model, x, y, *, epochs: int, batch_size: int, optimizer) -> list[float]:
    """The whole training set as one tensor, a randperm per epoch, index slices. Seconds per epoch."""
    import torch
    import torch.nn.functional as F

    model.train()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x))
        for begin in range(0, len(x), batch_size):
            index = order[begin : begin + batch_size]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def train_torch_dataloader(model, x, y, *, epochs: int, batch_size: int, optimizer) -> list[float]:
    """The tutorial loop: TensorDataset + DataLoader(shuffle=True). Seconds per epoch."""
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    model.train()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        for inputs, targets in loader:
            loss = F.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def infer_torch(model, x, *, batch_size: int = INFERENCE_BATCH):
    """Class probabilities of ``x`` in eval mode, batch by batch."""
    import torch

    model.eval()
    with torch.inference_mode():
        return torch.cat([torch.softmax(model(chunk), dim=1) for chunk in x.split(batch_size)])


def infer_torch_dataloader(model, x, *, batch_size: int = INFERENCE_BATCH):
    """As :func:`infer_torch`, reading the batches from a DataLoader."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    model.eval()
    with torch.inference_mode():
        loader = DataLoader(TensorDataset(x), batch_size=batch_size)
        return torch.cat([torch.softmax(model(inputs), dim=1) for (inputs,) in loader])


# --- Keras --------------------------------------------------------------------------


def keras_model(name: str):
    """The model as a Keras user writes it: a Sequential of built-in layers, logits out."""
    import keras
    from keras import layers

    if name == "mlp":
        stack = [
            keras.Input((784,)),
            layers.Dense(256, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(128, activation="relu"),
            layers.Dense(10),
        ]
    elif name == "cnn":
        stack = [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(128, activation="relu"),
            layers.Dense(10),
        ]
    elif name == "lstm":
        stack = [keras.Input((28, 28)), layers.LSTM(128), layers.Dense(10)]
    elif name == "tcn":
        stack = [keras.Input((28, 28))]
        for dilation in TCN_DILATIONS:
            stack.append(layers.Conv1D(32, 3, padding="causal", dilation_rate=dilation, activation="relu"))
        stack += [layers.Flatten(), layers.Dropout(0.3), layers.Dense(128, activation="relu"), layers.Dense(10)]
    elif name == "transformer":
        return _keras_transformer()
    elif name == "masked_lstm":
        stack = [
            keras.Input((STEPS,), dtype="int64"),
            layers.Embedding(VOCABULARY, EMBEDDING, mask_zero=True),
            layers.LSTM(UNITS),
            layers.Dense(2),
        ]
    else:
        raise ValueError(f"expected a model among {MODELS}, received {name!r}")
    return keras.Sequential(stack)


def _keras_transformer():
    """The Transformer of :func:`_torch_transformer` with keras.layers.MultiHeadAttention (functional API)."""
    import keras
    from keras import layers

    class PositionEmbedding(layers.Layer):
        def build(self, input_shape):
            self.positions = self.add_weight(shape=tuple(input_shape[1:]), initializer="glorot_uniform")

        def call(self, x):
            return x + self.positions

    inputs = keras.Input((28, 28))
    x = PositionEmbedding()(layers.Dense(WIDTH)(inputs))
    for _ in range(BLOCKS):
        attended = layers.MultiHeadAttention(HEADS, WIDTH // HEADS, dropout=0.1)(x, x)
        x = layers.LayerNormalization(epsilon=1e-3)(x + attended)
        hidden = layers.Dense(WIDTH)(layers.Dense(HIDDEN, activation="gelu")(x))
        x = layers.LayerNormalization(epsilon=1e-3)(x + layers.Dropout(0.1)(hidden))
    outputs = layers.Dense(10)(layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs)


def compile_keras(model, optimizer_spec, *, jit_compile="auto") -> None:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(
            optimizer_spec.learning_rate,
            beta_1=optimizer_spec.beta_1,
            beta_2=optimizer_spec.beta_2,
            epsilon=optimizer_spec.epsilon,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )


def train_keras_fit(model, x, y, *, epochs: int, batch_size: int) -> list[float]:
    """``model.fit``; seconds per epoch from a callback's epoch_begin/epoch_end timestamps."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = EpochTimer()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=[timer])
    return timer.seconds


def infer_keras(model, x, *, batch_size: int = INFERENCE_BATCH):
    """Class probabilities of ``x`` with ``model.predict``."""
    import keras

    return keras.ops.softmax(model.predict(x, batch_size=batch_size, verbose=0), axis=-1)


# --- JAX (Flax NNX) -----------------------------------------------------------------

FLAX_MODELS = ("mlp", "cnn", "lstm")


def flax_model(name: str, seed: int = 0):
    """The model as a Flax user writes it: an ``nnx.Module`` of ``nnx`` layers, logits out;
    dropout draws from the module's own ``nnx.Rngs`` stream."""
    from flax import nnx

    rngs = nnx.Rngs(params=seed, dropout=seed + 1)
    if name == "mlp":

        class MLP(nnx.Module):
            def __init__(self, rngs: nnx.Rngs):
                self.dense_1 = nnx.Linear(784, 256, rngs=rngs)
                self.dropout = nnx.Dropout(0.2, rngs=rngs)
                self.dense_2 = nnx.Linear(256, 128, rngs=rngs)
                self.head = nnx.Linear(128, 10, rngs=rngs)

            def __call__(self, x):
                x = self.dropout(nnx.relu(self.dense_1(x)))
                return self.head(nnx.relu(self.dense_2(x)))

        return MLP(rngs)
    if name == "cnn":

        class CNN(nnx.Module):
            def __init__(self, rngs: nnx.Rngs):
                self.conv_1 = nnx.Conv(1, 32, (3, 3), padding="VALID", rngs=rngs)
                self.conv_2 = nnx.Conv(32, 64, (3, 3), padding="VALID", rngs=rngs)
                self.dropout = nnx.Dropout(0.3, rngs=rngs)
                self.dense = nnx.Linear(64 * 5 * 5, 128, rngs=rngs)
                self.head = nnx.Linear(128, 10, rngs=rngs)

            def __call__(self, x):
                x = nnx.max_pool(nnx.relu(self.conv_1(x)), (2, 2), strides=(2, 2))
                x = nnx.max_pool(nnx.relu(self.conv_2(x)), (2, 2), strides=(2, 2))
                x = self.dropout(x.reshape(x.shape[0], -1))
                return self.head(nnx.relu(self.dense(x)))

        return CNN(rngs)
    if name == "lstm":

        class LSTM(nnx.Module):
            def __init__(self, rngs: nnx.Rngs):
                self.lstm = nnx.RNN(nnx.OptimizedLSTMCell(28, 128, rngs=rngs))
                self.head = nnx.Linear(128, 10, rngs=rngs)

            def __call__(self, x):
                return self.head(self.lstm(x)[:, -1])

        return LSTM(rngs)
    raise ValueError(f"expected a model among {FLAX_MODELS}, received {name!r}")


def flax_optimizer(model, optimizer_spec):
    """``nnx.Optimizer`` over the model's parameters with optax's Adam."""
    import optax
    from flax import nnx

    transform = optax.adam(
        optimizer_spec.learning_rate, b1=optimizer_spec.beta_1, b2=optimizer_spec.beta_2, eps=optimizer_spec.epsilon
    )
    return nnx.Optimizer(model, transform, wrt=nnx.Param)


def _flax_loss(model, x, y):
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def flax_nnx_step():
    """The Flax NNX tutorial's step: ``nnx.jit`` over the model and the optimizer, a batch in."""
    from flax import nnx

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(_flax_loss)(model, x, y)
        optimizer.update(model, grads)
        return loss

    return step


def flax_split_step(model, optimizer):
    """The functional form: ``jax.jit`` over the split state (donated), the training set
    resident on the device, the batch gathered inside from sample indices.

    Returns ``(step, state)``: ``state, loss = step(state, x, y, indices)``; ``nnx.update``
    writes a state back into the model.
    """
    from functools import partial

    import jax
    from flax import nnx

    graphdef, state = nnx.split((model, optimizer))

    @partial(jax.jit, donate_argnums=0)
    def step(state, x, y, indices):
        model, optimizer = nnx.merge(graphdef, state)
        loss, grads = nnx.value_and_grad(_flax_loss)(model, x[indices], y[indices])
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss

    return step, state


def train_flax(impl: str, model, x, y, *, epochs: int, batch_size: int, optimizer, seed: int = 0) -> list[float]:
    """A Flax user's epoch loop: a numpy permutation per epoch, batches of ``batch_size``.

    ``flax_nnx_jit``: numpy batches into the ``nnx.jit`` step; ``flax_jax_jit``: the data on
    the device once, index batches into the split-state step. Seconds per epoch (the last
    loss waited for, as JAX dispatches asynchronously).
    """
    import jax
    import numpy as np
    from flax import nnx

    model.train()
    random = np.random.default_rng(seed)
    seconds = []
    if impl == "flax_nnx_jit":
        step = flax_nnx_step()
        for _ in range(epochs):
            start = time.perf_counter()
            order = random.permutation(len(x))
            loss = None
            for begin in range(0, len(x), batch_size):
                index = order[begin : begin + batch_size]
                loss = step(model, optimizer, x[index], y[index])
            jax.block_until_ready(loss)
            seconds.append(time.perf_counter() - start)
        return seconds
    split_step, state = flax_split_step(model, optimizer)
    x_device, y_device = jax.device_put(x), jax.device_put(y.astype(np.int32))
    for _ in range(epochs):
        start = time.perf_counter()
        order = random.permutation(len(x)).astype(np.int32)
        loss = None
        for begin in range(0, len(x), batch_size):
            state, loss = split_step(state, x_device, y_device, order[begin : begin + batch_size])
        jax.block_until_ready(loss)
        seconds.append(time.perf_counter() - start)
    nnx.update((model, optimizer), state)
    return seconds


@functools.cache
def _flax_probabilities():
    """The jitted inference function, made once (a new ``nnx.jit`` per call would compile every time)."""
    import jax
    from flax import nnx

    @nnx.jit
    def probabilities(model, x):
        return jax.nn.softmax(model(x), axis=-1)

    return probabilities


def infer_flax(model, x, *, batch_size: int = INFERENCE_BATCH):
    """Class probabilities of ``x`` in eval mode, batch by batch, through one ``nnx.jit`` call per batch."""
    import numpy as np

    model.eval()
    probabilities = _flax_probabilities()
    return np.concatenate(
        [np.asarray(probabilities(model, x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    )
