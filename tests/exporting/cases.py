"""Specs that the code-format tests export: every config, and three small specs that hold every
layer type and option the configs leave out (same and causal padding, dilation, batch and layer
normalisation, masks made by masking and embeddings, every recurrent layer masked and not,
attention with separate value and key, causal, with dropout, position tables, every merge)."""

from __future__ import annotations

from paths import CONFIGS

IMAGES = """
name: every-image-layer
inputs: {x: {shape: [9, 9, 2]}}
layers:
  - {id: c1, type: conv2d, filters: 3, kernel_size: 4, strides: 2, padding: same, activation: elu}
  - {id: bn, type: batch_norm, momentum: 0.9}
  - {id: avg, type: avgpool2d, pool_size: 2, padding: same}
  - {id: mx, type: maxpool2d, pool_size: 2, strides: 1, padding: same, inputs: [bn]}
  - {id: c2, type: conv2d, filters: 3, kernel_size: 2, dilation_rate: 2, padding: same, activation: leaky_relu}
  - {id: gmax, type: global_maxpool2d}
  - {id: gavg, type: global_avgpool2d, inputs: [avg]}
  - {id: prod, type: multiply, inputs: [gmax, gavg]}
  - {id: flat, type: flatten, inputs: [avg]}
  - {id: cat, type: concatenate, inputs: [prod, flat]}
  - {id: drop, type: dropout, rate: 0.5}
  - {id: shaped, type: reshape, target_shape: [-1, 5]}
  - {id: ln, type: layer_norm, scale: false}
  - {id: hidden, type: dense, units: 4, activation: gelu}
  - {id: flat2, type: flatten}
  - {id: probs, type: activation, activation: softmax}
"""

SEQUENCES = """
name: every-sequence-layer
inputs: {x: {shape: [7, 3]}}
layers:
  - {id: m, type: masking, mask_value: 0.0}
  - {id: c, type: conv1d, filters: 5, kernel_size: 3, padding: causal, dilation_rate: 2, activation: silu, inputs: [x]}
  - {id: p, type: avgpool1d, pool_size: 2, strides: 1, padding: same}
  - {id: q, type: maxpool1d, pool_size: 3, strides: 2, padding: same}
  - {id: gq, type: global_avgpool1d}
  - {id: rnn, type: simple_rnn, units: 4, activation: relu, return_sequences: true, inputs: [m]}
  - {id: gru, type: gru, units: 3, return_sequences: true}
  - {id: bi, type: bidirectional, merge_mode: ave, layer: {type: lstm, units: 3, return_sequences: true}, inputs: [m]}
  - {id: total, type: add, inputs: [gru, bi]}
  - {id: pos, type: position_embedding, kind: sinusoidal, max_length: 10}
  - {id: att, type: multi_head_attention, num_heads: 2, key_dim: 2, value_dim: 3, output_dim: 5, causal: true, dropout: 0.3, inputs: [pos, rnn, total]}
  - {id: steps, type: concatenate, axis: 0, inputs: [att, c]}
  - {id: gmax, type: global_maxpool1d}
  - {id: bi2, type: bidirectional, layer: {type: gru, units: 2}, inputs: [m]}
  - {id: pool1, type: maxpool1d, pool_size: 2, inputs: [c]}
  - {id: pool2, type: avgpool1d, pool_size: 2}
  - {id: gp, type: global_maxpool1d}
  - {id: out, type: concatenate, inputs: [gmax, bi2, gq, gp]}
"""

IDS = """
name: every-id-layer
inputs: {ids: {shape: [6], dtype: int64}}
layers:
  - {id: e, type: embedding, input_dim: 4, output_dim: 3, mask_zero: true}
  - {id: pe, type: position_embedding, max_length: 8}
  - {id: a, type: multi_head_attention, num_heads: 1, key_dim: 4, use_bias: false}
  - {id: g, type: global_avgpool1d}
  - {id: e2, type: embedding, input_dim: 4, output_dim: 2, inputs: [ids]}
  - {id: lstm, type: lstm, units: 2, use_bias: false}
  - {id: rnn, type: simple_rnn, units: 2, inputs: [e]}
  - {id: out, type: concatenate, inputs: [g, lstm, rnn]}
"""

CASES = {path.stem: path.read_text() for path in sorted(CONFIGS.glob("*.yaml"))}
CASES.update({"every_image_layer": IMAGES, "every_sequence_layer": SEQUENCES, "every_id_layer": IDS})
