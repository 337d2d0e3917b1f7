"""NumPy ops of the layers that make the PLR-MLP and TabM model families.

- :class:`PeriodicEmbedding`: periodic embeddings of numeric features (PLR, Gorishniy et al. 2022):
  ``out_j = ReLU([cos(2 pi c_j x_j), sin(2 pi c_j x_j)] @ kernel_j + bias_j)``, concatenated over the features j.
- :class:`BatchEnsembleDense`: one TabM layer, k members sharing a kernel ``W`` with their own adapters:
  ``y_i = activation(((x_i * r_i) @ W) * s_i + b_i)``; a 2-D input is the same record for every member.
- :class:`MemberDense`: per-member output heads (the model averages their probabilities after them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import FLOAT, activation


class PeriodicEmbedding:
    """(n, features) -> (n, features * d): each feature's periodic embedding, flattened feature by feature."""

    def __init__(self, frequencies: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> None:
        self.frequencies = np.asarray(frequencies, dtype=FLOAT) * FLOAT(2 * np.pi)
        features = self.frequencies.shape[0]
        # The "lite" variant shares one linear map across the features: broadcast it to one per feature.
        kernel = np.asarray(kernel, dtype=FLOAT)
        bias = np.asarray(bias, dtype=FLOAT)
        self.kernel = np.broadcast_to(kernel, (features, *kernel.shape[-2:]))
        self.bias = np.broadcast_to(bias, (features, bias.shape[-1]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=FLOAT)
        rows, features = x.shape
        k, width = self.frequencies.shape[1], self.kernel.shape[-1]
        out = np.empty((rows, features * width), dtype=FLOAT)
        periodic = np.empty((rows, 2 * k), dtype=FLOAT)
        # Feature by feature, one BLAS product each: an einsum over (n, features, 2k) does not reach BLAS.
        for feature in range(features):
            angles = x[:, feature, None] * self.frequencies[feature]  # (n, k)
            np.cos(angles, out=periodic[:, :k])
            np.sin(angles, out=periodic[:, k:])
            part = out[:, feature * width : (feature + 1) * width]
            np.matmul(periodic, self.kernel[feature], out=part)
            part += self.bias[feature]
        return np.maximum(out, FLOAT(0), out=out)


class BatchEnsembleDense:
    """(n, d_in) or (n, k, d_in) -> (n, k, d_out)."""

    def __init__(
        self,
        r: np.ndarray,
        kernel: np.ndarray,
        s: np.ndarray,
        bias: np.ndarray,
        activation_name: Any,
        members: int,
    ) -> None:
        self.r = np.asarray(r, dtype=FLOAT)
        self.kernel = np.asarray(kernel, dtype=FLOAT)
        self.s = np.asarray(s, dtype=FLOAT)
        self.bias = np.asarray(bias, dtype=FLOAT)
        self.members = members
        self.activation_name = activation_name or "linear"
        self.activation = activation(activation_name)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=FLOAT)
        if x.ndim == 2:
            x = np.broadcast_to(x[:, None, :], (x.shape[0], self.members, x.shape[1]))
        return self.activation((x * self.r) @ self.kernel * self.s + self.bias)


class MemberDense:
    """(n, k, d) -> (n, k, c): member i's own head ``activation(x_i @ kernel_i + bias_i)``."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, activation_name: Any) -> None:
        self.kernel = np.asarray(kernel, dtype=FLOAT)
        self.bias = np.asarray(bias, dtype=FLOAT)
        self.activation = activation(activation_name)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.activation(np.einsum("bkd,kdc->bkc", x, self.kernel) + self.bias)


class Members:
    """(n, k * d) -> (n, k, d): the side-by-side outputs of k members as one axis per member."""

    def __init__(self, members: int) -> None:
        self.members = members

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], self.members, -1)
