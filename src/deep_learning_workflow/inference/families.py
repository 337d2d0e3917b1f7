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

_ROW_KERNEL_VALUES = 1 << 18
"""Largest block-diagonal kernel (values) a periodic embedding keeps for single records (1 MB in float32)."""


class PeriodicEmbedding:
    """(n, features) -> (n, groups * d): each group's periodic embedding of its feature, flattened group by group.

    A layer has one group per feature; the layers of an ensemble's members that embed the same features merge into
    one op whose groups are every member's features (``sources`` maps each group to its input column), so the
    members' cosines, sines and projections run as one call each.
    """

    def __init__(
        self,
        frequencies: np.ndarray,
        kernel: np.ndarray,
        bias: np.ndarray,
        sources: np.ndarray | None = None,
        angular: bool = False,
    ) -> None:
        # angular: the frequencies are already multiplied by 2 pi (those of merged embeddings).
        self.frequencies = np.asarray(frequencies, dtype=FLOAT) * FLOAT(1 if angular else 2 * np.pi)
        groups = self.frequencies.shape[0]
        # The "lite" variant shares one linear map across the features: broadcast it to one per feature.
        kernel = np.asarray(kernel, dtype=FLOAT)
        bias = np.asarray(bias, dtype=FLOAT)
        self.kernel = np.ascontiguousarray(np.broadcast_to(kernel, (groups, *kernel.shape[-2:])))
        self.bias = np.ascontiguousarray(np.broadcast_to(bias, (groups, bias.shape[-1])))
        self.sources = np.arange(groups) if sources is None else np.asarray(sources, dtype=np.intp)
        self._identity = bool(np.array_equal(self.sources, np.arange(groups)))
        self._bias_rows = self.bias[:, None, :]
        # [cos, sin] @ kernel = cos @ kernel[:k] + sin @ kernel[k:]: two products over contiguous arrays (NumPy's
        # vectorised cos and sin are slower writing into strided halves of one array).
        k = self.frequencies.shape[1]
        self._cos_kernel = np.ascontiguousarray(self.kernel[:, :k])
        self._sin_kernel = np.ascontiguousarray(self.kernel[:, k:])
        # One record: every group's angles from one product of the features by a matrix holding each group's
        # frequencies in its source's column (exact: one non-zero term per angle), then projected by block-diagonal
        # kernels (one product each for the cosines and the sines instead of a stacked product per group), when
        # those kernels stay small. A last angle of 0 carries the bias: its cosine is 1 and its sine 0.
        self.row_ready = False
        width = self.kernel.shape[-1]
        if groups * k * groups * width <= _ROW_KERNEL_VALUES:
            angles = np.zeros((groups * k + 1, int(self.sources.max()) + 1), dtype=FLOAT)
            cos_kernel = np.zeros((groups * k + 1, groups * width), dtype=FLOAT)
            sin_kernel = np.zeros_like(cos_kernel)
            for group in range(groups):
                rows = slice(group * k, (group + 1) * k)
                columns = slice(group * width, (group + 1) * width)
                angles[rows, self.sources[group]] = self.frequencies[group]
                cos_kernel[rows, columns] = self._cos_kernel[group]
                sin_kernel[rows, columns] = self._sin_kernel[group]
            cos_kernel[-1] = self.bias.reshape(-1)
            self._angles, self._row_cos, self._row_sin = angles, cos_kernel, sin_kernel
            self.row_ready = True

    @classmethod
    def merged(cls, parts: list[PeriodicEmbedding]) -> PeriodicEmbedding:
        """One op for several embeddings of the same input: their groups side by side, in order."""
        return cls(
            np.concatenate([p.frequencies for p in parts]),
            np.concatenate([p.kernel for p in parts]),
            np.concatenate([p.bias for p in parts]),
            np.concatenate([p.sources for p in parts]),
            angular=True,
        )

    def row(self, x: Any) -> np.ndarray:
        """One record's features (a 1-D array or list of floats) -> its embedding (1-D)."""
        angles = self._angles @ np.asarray(x, dtype=FLOAT)
        projected = np.cos(angles) @ self._row_cos
        projected += np.sin(angles, out=angles) @ self._row_sin
        return np.maximum(projected, FLOAT(0), out=projected)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=FLOAT)
        rows = x.shape[0]
        if rows == 1 and self.row_ready:
            return self.row(x[0])[None, :]
        groups = self.frequencies.shape[0]
        width = self.kernel.shape[-1]
        # Angles (groups, n, k): group-major, so each group's projection is one matrix of a stacked matmul.
        values = x.T if self._identity else x.T[self.sources]
        angles = values[:, :, None] * self.frequencies[:, None, :]
        projected = np.matmul(np.cos(angles), self._cos_kernel)  # (groups, n, d)
        projected += np.matmul(np.sin(angles, out=angles), self._sin_kernel)
        projected += self._bias_rows
        np.maximum(projected, FLOAT(0), out=projected)
        return projected.transpose(1, 0, 2).reshape(rows, groups * width)


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
