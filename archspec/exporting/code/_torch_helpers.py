"""The functions and classes a generated torch file defines when its model needs them: archspec's
behaviour that plain PyTorch lacks, written out in plain PyTorch (each is copied in as text).

They follow ``backends/torch`` op for op, so the generated model computes what archspec's own
torch model computes, bit for bit where the ops are the same.
"""

from __future__ import annotations

DROPOUT = '''
MASK32 = 0xFFFFFFFF


def mix32(x):
    """archspec's 32-bit mix (archspec/random.py) of ints or int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = (x * 0x045D9F3B) & MASK32
    x = x ^ (x >> 16)
    x = (x * 0x045D9F3B) & MASK32
    return x ^ (x >> 16)


@functools.cache
def counter_hashes(count: int, device: torch.device) -> torch.Tensor:
    """mix32(0 .. count - 1) as int64: the same at every call, so computed once."""
    return mix32(torch.arange(count, device=device))


def archspec_dropout(x: torch.Tensor, rate: float, layer: int, step: int, training: bool) -> torch.Tensor:
    """archspec's dropout (the identity outside training): element k of sample p (row-major within the sample) is kept iff
    hash32(SEED, layer, step, p, k) >= floor(rate * 2**32), and kept values are scaled by 1 / (1 - rate).
    The counters are folded in one at a time, so the masks equal archspec's bit for bit (torch's own
    dropout draws from its generator instead). ``layer`` is the layer's index in the spec."""
    if not training or rate == 0.0:
        return x
    prefix = mix32(mix32(mix32(SEED & MASK32) ^ mix32(layer & MASK32)) ^ mix32(step & MASK32))
    positions = counter_hashes(x.shape[0], x.device).unsqueeze(1)
    elements = counter_hashes(math.prod(x.shape[1:]), x.device)
    keep = mix32(mix32(prefix ^ positions) ^ elements) >= math.floor(rate * 2**32)
    return (x / (1.0 - rate)) * keep.reshape(x.shape).to(x.dtype)
'''

SAME_POOL = '''
def same_pool(x: torch.Tensor, mode: str, kernel: tuple, stride: tuple, pad: tuple) -> torch.Tensor:
    """Pooling of channels-last sequences or images with TensorFlow's "same" padding ``pad`` (F.pad's
    order, last axis first): max never picks a padded position; the mean counts the real positions of
    each window only. A sequence is pooled as an image of height 1."""
    sequence = x.dim() == 3
    if sequence:
        x, kernel, stride, pad = x.unsqueeze(1), (1, *kernel), (1, *stride), (*pad, 0, 0)
    x = x.permute(0, 3, 1, 2)
    if mode == "max":
        y = F.max_pool2d(F.pad(x, pad, value=-math.inf), kernel, stride)
    else:
        sums = F.avg_pool2d(F.pad(x, pad), kernel, stride, divisor_override=1)
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        y = sums / F.avg_pool2d(F.pad(ones, pad), kernel, stride, divisor_override=1)
    y = y.permute(0, 2, 3, 1)
    return y.squeeze(1) if sequence else y
'''

MASKED_POOL = '''
def masked_global_pool(x: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Mean or max over the valid steps of (batch, steps, channels); 0 for a sequence without any."""
    valid = mask.unsqueeze(-1)
    any_valid = valid.any(dim=1)
    if mode == "max":
        largest = x.masked_fill(~valid, -math.inf).amax(dim=1)
        return torch.where(any_valid, largest, torch.zeros_like(largest))
    total = torch.where(valid, x, torch.zeros_like(x)).sum(dim=1)
    count = valid.sum(dim=1).to(x.dtype)
    return torch.where(any_valid, total / count.clamp(min=1), torch.zeros_like(total))
'''

MASKED_RECURRENCE = '''
def trailing_lengths(mask: torch.Tensor):
    """The valid lengths when every sequence of ``mask`` (batch, steps) is valid up to its length and
    padded after it, and none is empty; else None."""
    lengths = mask.sum(dim=1)
    steps = torch.arange(mask.shape[1], device=mask.device)
    if torch.equal(steps.unsqueeze(0) < lengths.unsqueeze(1), mask) and bool((lengths > 0).all()):
        return lengths
    return None


def masked_recurrence(layer: nn.RNNBase, x: torch.Tensor, mask: torch.Tensor, sequences: bool) -> torch.Tensor:
    """Run ``layer`` (one-layer, batch-first RNN, LSTM or GRU) over x, skipping the masked steps
    (Keras' rule, which torch's modules lack): at a masked step the state stays and the output repeats
    the previous one (zeros before the first valid step). Returns every step's output or the last."""
    lengths = trailing_lengths(mask)
    if lengths is not None:  # padding at the end only: torch's packed sequences
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, state = layer(packed)
        last = (state[0] if isinstance(state, tuple) else state)[0]
        if not sequences:
            return last
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])
        return torch.where(mask.unsqueeze(-1), outputs, last.unsqueeze(1))
    # Padding anywhere: torch's cell, step by step.
    cells = {"LSTM": torch.lstm_cell, "GRU": torch.gru_cell, "RNN_TANH": torch.rnn_tanh_cell}
    cell = cells.get(layer.mode, torch.rnn_relu_cell)
    weights = [layer.weight_ih_l0, layer.weight_hh_l0]
    biases = (layer.bias_ih_l0, layer.bias_hh_l0) if layer.bias else (None, None)
    h = x.new_zeros((x.shape[0], layer.hidden_size))
    c = h
    valid = mask.unsqueeze(-1)
    outputs = []
    for t in range(x.shape[1]):
        if layer.mode == "LSTM":
            h_new, c_new = cell(x[:, t], (h, c), *weights, *biases)
            c = torch.where(valid[:, t], c_new, c)
        else:
            h_new = cell(x[:, t], h, *weights, *biases)
        h = torch.where(valid[:, t], h_new, h)
        outputs.append(h)
    return torch.stack(outputs, dim=1) if sequences else h


def masked_backward_recurrence(layer: nn.RNNBase, x: torch.Tensor, mask: torch.Tensor, sequences: bool):
    """The backward direction of a bidirectional layer over a masked sequence: it reads the reversed
    sequence and mask, so it starts at the last valid step; outputs lined up in time."""
    lengths = trailing_lengths(mask)
    if lengths is None:
        y = masked_recurrence(layer, x.flip(1), mask.flip(1), sequences)
        return y.flip(1) if sequences else y
    # Padding at the end only: reverse each sequence within its length, so it packs too; at padded
    # steps the output is zeros (what it outputs before reaching a valid step).
    positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    ends = lengths.unsqueeze(1)
    index = torch.where(positions < ends, ends - 1 - positions, positions).unsqueeze(-1)
    y = masked_recurrence(layer, x.gather(1, index.expand_as(x)), mask, sequences)
    if not sequences:
        return y
    y = y.gather(1, index.expand_as(y))
    return torch.where(mask.unsqueeze(-1), y, torch.zeros_like(y))
'''

RECURRENCE = '''
def recurrence(layer: nn.RNNBase, x: torch.Tensor, sequences: bool) -> torch.Tensor:
    """Every step's output of a one-layer batch-first RNN, LSTM or GRU, or the last step's."""
    outputs, state = layer(x)
    if sequences:
        return outputs
    return (state[0] if isinstance(state, tuple) else state)[0]
'''

ATTENTION = '''
class MultiHeadAttention(nn.Module):
    """Keras' multi-head attention: per head h, softmax(q_h k_h^T / sqrt(key_dim)) over the keys a
    query may attend to (``causal``: key steps <= the query step; with a key mask, the valid keys
    only; a query allowed no key gets zero weights), then concat_h(weights_h v_h) @ output. Dropout on
    the weights is archspec's (element (h * Tq + i) * Tk + j of each sample), not torch's."""

    def __init__(self, features: tuple, heads: int, key_dim: int, value_dim: int, output_dim: int, **options):
        super().__init__()
        bias, dtype = options["bias"], options["dtype"]
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
        self.causal, self.dropout, self.layer = options["causal"], options["dropout"], options["layer"]
        query_features, value_features, key_features = features
        self.query = nn.Linear(query_features, heads * key_dim, bias=bias, dtype=dtype)
        self.key = nn.Linear(key_features, heads * key_dim, bias=bias, dtype=dtype)
        self.value = nn.Linear(value_features, heads * value_dim, bias=bias, dtype=dtype)
        self.output = nn.Linear(heads * value_dim, output_dim, bias=bias, dtype=dtype)

    def split_heads(self, x: torch.Tensor, size: int) -> torch.Tensor:
        """(N, T, heads * size) -> (N, heads, T, size)."""
        return x.reshape(x.shape[0], x.shape[1], self.heads, size).transpose(1, 2)

    def forward(self, query, value=None, key=None, mask=None, step: int = 0) -> torch.Tensor:
        value = query if value is None else value
        key = value if key is None else key
        q = self.split_heads(self.query(query), self.key_dim)
        k = self.split_heads(self.key(key), self.key_dim)
        v = self.split_heads(self.value(value), self.value_dim)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.key_dim)
        allowed = None
        if self.causal:
            allowed = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
        if mask is None:
            if allowed is not None:
                scores = scores.masked_fill(~allowed, -math.inf)
            weights = torch.softmax(scores, dim=-1)
        else:
            # The key's mask: masked keys get weight 0, and a query allowed no key gets zero weights
            # (its row made finite first, so no NaN flows back).
            allowed = mask[:, None, None, :] if allowed is None else mask[:, None, None, :] & allowed
            sees = allowed.any(dim=-1, keepdim=True)
            scores = scores.masked_fill(~allowed, -math.inf).masked_fill(~sees, 0.0)
            weights = torch.where(sees, torch.softmax(scores, dim=-1), torch.zeros_like(scores))
        weights = archspec_dropout(weights, self.dropout, self.layer, step, self.training)
        attended = (weights @ v).transpose(1, 2)
        return self.output(attended.reshape(attended.shape[0], attended.shape[1], self.heads * self.value_dim))
'''

SINUSOIDAL = '''
def sinusoidal_table(steps: int, features: int) -> torch.Tensor:
    """The fixed position table of Vaswani et al.: for feature c, i = c // 2,
    sin(t / 10000^(2i / features)) at even c, cos(...) at odd c (float64)."""
    t = torch.arange(steps, dtype=torch.float64).unsqueeze(1)
    pairs = 2 * (torch.arange(features, dtype=torch.float64) // 2)
    angles = t * torch.pow(torch.tensor(10000.0, dtype=torch.float64), -pairs / features)
    return torch.where(torch.arange(features) % 2 == 0, torch.sin(angles), torch.cos(angles))
'''

BATCH_NORM = '''
class BatchNorm(nn.Module):
    """Batch normalisation over the last axis with Keras' meaning of ``momentum`` (torch's own
    updates its running variance with the unbiased variance and the opposite momentum). Training:
    the batch mean and biased variance, running = momentum * running + (1 - momentum) * batch value.
    Inference: the running statistics."""

    def __init__(self, channels: int, momentum: float, epsilon: float, scale: bool, center: bool, dtype):
        super().__init__()
        self.momentum, self.epsilon = momentum, epsilon
        self.weight = nn.Parameter(torch.ones(channels, dtype=dtype)) if scale else None
        self.bias = nn.Parameter(torch.zeros(channels, dtype=dtype)) if center else None
        self.register_buffer("running_mean", torch.zeros(channels, dtype=dtype))
        self.register_buffer("running_var", torch.ones(channels, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            var, mean = torch.var_mean(x, dim=tuple(range(x.dim() - 1)), correction=0)
            with torch.no_grad():
                self.running_mean.copy_(self.momentum * self.running_mean + (1 - self.momentum) * mean)
                self.running_var.copy_(self.momentum * self.running_var + (1 - self.momentum) * var)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean) / torch.sqrt(var + self.epsilon)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y
'''

HELPER_ORDER = (
    "dropout",
    "same_pool",
    "masked_pool",
    "recurrence",
    "masked_recurrence",
    "attention",
    "sinusoidal",
    "batch_norm",
)
HELPERS = {
    "dropout": DROPOUT,
    "same_pool": SAME_POOL,
    "masked_pool": MASKED_POOL,
    "recurrence": RECURRENCE,
    "masked_recurrence": MASKED_RECURRENCE,
    "attention": ATTENTION,
    "sinusoidal": SINUSOIDAL,
    "batch_norm": BATCH_NORM,
}
