"""The layers a generated Keras file defines when its model needs them: archspec's behaviour that
Keras' own layers lack, written with ``keras.ops`` (each is copied in as text).

They follow ``backends/tensorflow`` op for op. Masks are passed to them explicitly (``key_mask``,
``steps_mask``), by archspec's rules, never left to Keras' implicit propagation.
"""

from __future__ import annotations

DROPOUT = '''
MASK32 = 0xFFFFFFFF


def mix32(x):
    """archspec's 32-bit mix (archspec/random.py) of int64 tensors holding 32-bit values."""
    x = keras.ops.bitwise_xor(x, keras.ops.right_shift(x, 16))
    x = keras.ops.bitwise_and(x * 0x045D9F3B, MASK32)
    x = keras.ops.bitwise_xor(x, keras.ops.right_shift(x, 16))
    x = keras.ops.bitwise_and(x * 0x045D9F3B, MASK32)
    return keras.ops.bitwise_xor(x, keras.ops.right_shift(x, 16))


def fold(h, counter):
    """One counter folded into the hash: mix32(h ^ mix32(counter & 0xFFFFFFFF))."""
    return mix32(keras.ops.bitwise_xor(h, mix32(keras.ops.bitwise_and(counter, MASK32))))


def keep_mask(x, rate: float, layer: int, step):
    """True where archspec keeps element k of sample p (row-major within the sample) of x at dropout
    step ``step``: hash32(SEED, layer, step, p, k) >= floor(rate * 2**32) (Keras' own dropout draws
    from its generator instead). ``layer`` is the layer's index in the spec."""
    h = mix32(keras.ops.convert_to_tensor(SEED & MASK32, dtype="int64"))
    h = fold(h, keras.ops.convert_to_tensor(layer, dtype="int64"))
    h = fold(h, keras.ops.cast(step, "int64"))
    h = fold(h, keras.ops.arange(keras.ops.shape(x)[0], dtype="int64")[:, None])
    h = fold(h, keras.ops.arange(math.prod(x.shape[1:]), dtype="int64")[None, :])
    return keras.ops.reshape(h >= math.floor(rate * 2**32), keras.ops.shape(x))


class ArchspecDropout(keras.layers.Layer):
    """archspec's dropout: the mask of ``keep_mask``, kept values scaled by 1 / (1 - rate). Each
    training call uses the layer's dropout step, then advances it (archspec's step counter)."""

    def __init__(self, rate: float, layer: int, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.layer = rate, layer
        self.step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="dropout_step")

    def call(self, x, training=False):
        if not training:
            return x
        keep = keep_mask(x, self.rate, self.layer, self.step)
        self.step.assign_add(1)
        return keras.ops.where(keep, x / (1.0 - self.rate), keras.ops.zeros_like(x))
'''

MASKED_POOL = '''
class MaskedGlobalPool1D(keras.layers.Layer):
    """Mean or max over the valid steps of (batch, steps, channels); 0 for a sequence without any
    (Keras' GlobalAveragePooling1D gives NaN there, and its max pooling ignores masks)."""

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, x, steps_mask):
        valid = steps_mask[:, :, None]
        any_valid = keras.ops.any(valid, axis=1)
        if self.mode == "max":
            largest = keras.ops.max(keras.ops.where(valid, x, -math.inf), axis=1)
            return keras.ops.where(any_valid, largest, keras.ops.zeros_like(largest))
        total = keras.ops.sum(keras.ops.where(valid, x, keras.ops.zeros_like(x)), axis=1)
        count = keras.ops.sum(keras.ops.cast(valid, x.dtype), axis=1)
        return keras.ops.where(any_valid, total / keras.ops.maximum(count, 1.0), keras.ops.zeros_like(total))
'''

ATTENTION = '''
class MultiHeadAttention(keras.layers.Layer):
    """Keras' multi-head attention, written out: per head h, softmax(q_h k_h^T / sqrt(key_dim)) over
    the keys a query may attend to (``causal``: key steps <= the query step; with ``key_mask``, the
    valid keys only; a query allowed no key gets zero weights), then concat_h(weights_h v_h) @ output.
    Dropout on the weights is archspec's (element (h * Tq + i) * Tk + j of each sample). Keras' own
    layer differs: its dropout, and in float64 its scale 1 / sqrt(key_dim) rounded to float32."""

    def __init__(self, features: tuple, heads: int, key_dim: int, value_dim: int, output_dim: int, **options):
        super().__init__(name=options["name"], dtype=options["dtype"])
        bias, dtype = options["use_bias"], options["dtype"]
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
        self.causal, self.dropout = options["causal"], options["dropout"]
        self.query_dense = keras.layers.Dense(heads * key_dim, use_bias=bias, name="query", dtype=dtype)
        self.key_dense = keras.layers.Dense(heads * key_dim, use_bias=bias, name="key", dtype=dtype)
        self.value_dense = keras.layers.Dense(heads * value_dim, use_bias=bias, name="value", dtype=dtype)
        self.output_dense = keras.layers.Dense(output_dim, use_bias=bias, name="output", dtype=dtype)
        self.weights_dropout = ArchspecDropout(self.dropout, options["layer"], name="dropout", dtype=dtype)
        query_features, value_features, key_features = features
        self.query_dense.build((None, query_features))
        self.key_dense.build((None, key_features))
        self.value_dense.build((None, value_features))
        self.output_dense.build((None, heads * value_dim))

    def build(self, query_shape, value_shape=None, key_shape=None):
        """Nothing left to make: __init__ built the projections from the input sizes."""

    def split_heads(self, x, size: int):
        """(N, T, heads * size) -> (N, heads, T, size)."""
        x = keras.ops.reshape(x, (keras.ops.shape(x)[0], x.shape[1], self.heads, size))
        return keras.ops.transpose(x, (0, 2, 1, 3))

    def call(self, query, value=None, key=None, key_mask=None, training=False):
        value = query if value is None else value
        key = value if key is None else key
        q = self.split_heads(self.query_dense(query), self.key_dim)
        k = self.split_heads(self.key_dense(key), self.key_dim)
        v = self.split_heads(self.value_dense(value), self.value_dim)
        scores = keras.ops.matmul(q, keras.ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(self.key_dim)
        allowed = None
        if self.causal:
            allowed = keras.ops.tril(keras.ops.ones(scores.shape[-2:], dtype="bool"))
        if key_mask is None:
            if allowed is not None:
                scores = keras.ops.where(allowed, scores, -math.inf)
            weights = keras.ops.softmax(scores, axis=-1)
        else:
            # Masked keys get weight 0; a query allowed no key gets zero weights (its row is made
            # finite first, so no NaN flows back).
            keys = key_mask[:, None, None, :]
            allowed = keys if allowed is None else keras.ops.logical_and(keys, allowed)
            sees = keras.ops.any(allowed, axis=-1, keepdims=True)
            scores = keras.ops.where(allowed, scores, -math.inf)
            scores = keras.ops.where(sees, scores, keras.ops.zeros_like(scores))
            weights = keras.ops.where(sees, keras.ops.softmax(scores, axis=-1), keras.ops.zeros_like(scores))
        if self.dropout > 0.0:
            weights = self.weights_dropout(weights, training=training)
        attended = keras.ops.transpose(keras.ops.matmul(weights, v), (0, 2, 1, 3))
        shape = (keras.ops.shape(attended)[0], attended.shape[1], self.heads * self.value_dim)
        return self.output_dense(keras.ops.reshape(attended, shape))
'''

POSITION = '''
def sinusoidal_table(steps: int, features: int) -> np.ndarray:
    """The fixed position table of Vaswani et al.: for feature c, i = c // 2,
    sin(t / 10000^(2i / features)) at even c, cos(...) at odd c (float64)."""
    t = np.arange(steps, dtype=np.float64)[:, None]
    angles = t * np.power(10000.0, -(2 * (np.arange(features) // 2)) / features)
    return np.where(np.arange(features) % 2 == 0, np.sin(angles), np.cos(angles))


class PositionEmbedding(keras.layers.Layer):
    """x + table[:steps]: a learned ``embeddings`` table (max_length, features), or the fixed
    sinusoidal one."""

    def __init__(self, kind: str, max_length: int, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.max_length = kind, max_length

    def build(self, input_shape):
        steps, features = input_shape[-2], input_shape[-1]
        if self.kind == "learned":
            self.embeddings = self.add_weight(shape=(self.max_length, features), initializer="zeros", name="embeddings")
        else:
            self.table = keras.ops.convert_to_tensor(sinusoidal_table(steps, features), dtype=self.compute_dtype)
        self.steps = steps

    def call(self, x):
        if self.kind == "learned":
            return x + self.embeddings[: self.steps]
        return x + self.table
'''

LEAKY_RELU = '''
def leaky_relu(x):
    """x above 0, 0.2 * x below (Keras' own rounds its slope to float32, even in float64)."""
    return keras.ops.where(x > 0.0, x, 0.2 * x)
'''

GELU = '''
def gelu(x):
    """The exact (erf) GELU in the input's precision (Keras' own rounds its constants to float32)."""
    return 0.5 * x * (1.0 + keras.ops.erf(x / math.sqrt(2.0)))
'''

HELPER_ORDER = ("leaky_relu", "gelu", "dropout", "masked_pool", "attention", "position")
HELPERS = {
    "leaky_relu": LEAKY_RELU,
    "gelu": GELU,
    "dropout": DROPOUT,
    "masked_pool": MASKED_POOL,
    "attention": ATTENTION,
    "position": POSITION,
}
