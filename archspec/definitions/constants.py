"""Numerical constants that the backends, the core's numpy losses and the reference all use."""

EPSILON = 1e-7
"""Probabilities are clipped to [EPSILON, 1 - EPSILON] before a log, as Keras does."""

LEAKY_RELU_SLOPE = 0.2
"""Slope of ``leaky_relu`` for negative inputs (Keras' default)."""

ELU_ALPHA = 1.0
"""``elu(x) = ELU_ALPHA * (exp(x) - 1)`` for x <= 0."""

SINUSOIDAL_WAVELENGTH = 10000.0
"""The longest wavelength of a sinusoidal position embedding (Vaswani et al., Keras Hub's default)."""
