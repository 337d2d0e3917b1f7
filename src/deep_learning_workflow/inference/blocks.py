"""A matrix product with a block-structured kernel: the merged layers of an ensemble's members, where member ``i``
reads only its own rows and writes only its own columns.

Multiplying by the dense kernel would cost the zero blocks too, and would let a NaN in one member's input reach
the other members' outputs (``0 * NaN``), which the separate layers never do; the blocks are multiplied alone. One
finite row is the exception: there a product per block costs more in calls than the zeros cost in arithmetic, and
a finite value times zero adds an exact zero.
"""

from __future__ import annotations

import numpy as np

from .activations import FLOAT

Block = tuple[int, int, int, int]
"""(first row, row stop, first column, column stop) of a block of the kernel."""


def _join(blocks: list[Block], rows_first: bool) -> list[Block]:
    """Blocks with the same rows and touching columns joined (``rows_first``), else the same columns and
    touching rows."""
    merged = sorted(set(blocks))
    joined = True
    while joined:
        joined = False
        for a in merged:
            for b in merged:
                same, touching = (
                    ((a[0], a[1]) == (b[0], b[1]), a[3] == b[2])
                    if rows_first
                    else ((a[2], a[3]) == (b[2], b[3]), a[1] == b[0])
                )
                if a != b and same and touching:
                    union = (a[0], b[1], a[2], a[3]) if not rows_first else (a[0], a[1], a[2], b[3])
                    merged = sorted([block for block in merged if block not in (a, b)] + [union])
                    joined = True
                    break
            if joined:
                break
    return merged


def coalesce(blocks: list[Block]) -> list[Block]:
    """Blocks with the same rows and touching columns joined, then those with the same columns and touching rows."""
    return _join(_join(blocks, rows_first=True), rows_first=False)


class BlockProduct:
    """``x @ kernel`` for a kernel that is zero outside ``blocks`` (rows/columns outside every block read 0).

    Args:
        kernel: (rows, columns).
        blocks: the nonzero blocks; they must not overlap.
    """

    def __init__(self, kernel: np.ndarray, blocks: list[Block]) -> None:
        self.kernel = np.asarray(kernel, dtype=FLOAT)
        self.blocks = coalesce(blocks)
        self.parts = [
            (r0, r1, c0, c1, np.ascontiguousarray(self.kernel[r0:r1, c0:c1]))
            for r0, r1, c0, c1 in self.blocks
        ]
        self.columns = self.kernel.shape[1]
        # The kernel with exact zeros outside the blocks, for single rows.
        self.dense = np.zeros_like(self.kernel)
        for r0, r1, c0, c1, part in self.parts:
            self.dense[r0:r1, c0:c1] = part
        spans = sorted((c0, c1) for _, _, c0, c1 in self.blocks)
        # Blocks on disjoint columns (the merged members of an ensemble) write their products in place: no zeroed
        # output, no temporary product, no second pass adding it; they then fill the output when they cover it.
        self._disjoint = all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
        self._covering = self._disjoint and sum(c1 - c0 for c0, c1 in spans) == self.columns

    def rows(self, start: int, stop: int) -> BlockProduct:
        """The product by the kernel's rows ``start:stop`` (the blocks cut to them)."""
        blocks = [
            (max(r0, start) - start, min(r1, stop) - start, c0, c1)
            for r0, r1, c0, c1 in self.blocks
            if r0 < stop and r1 > start
        ]
        return BlockProduct(self.kernel[start:stop], blocks)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 1 and x.dtype == FLOAT and np.isfinite(x).all():
            return x @ self.dense
        shape, dtype = (x.shape[0], self.columns), np.result_type(x.dtype, FLOAT)
        if not self._disjoint:
            out = np.zeros(shape, dtype=dtype)
            self.add_to(out, x)
            return out
        out = np.empty(shape, dtype=dtype) if self._covering else np.zeros(shape, dtype=dtype)
        for r0, r1, c0, c1, part in self.parts:
            np.matmul(x[:, r0:r1], part, out=out[:, c0:c1])
        return out

    def add_to(self, out: np.ndarray, x: np.ndarray) -> None:
        """``out += x @ kernel`` without a full-width temporary (``out`` as wide as the kernel)."""
        for r0, r1, c0, c1, part in self.parts:
            out[:, c0:c1] += x[:, r0:r1] @ part
