"""The block product of merged members' layers: each member reads only its own rows, so a NaN stays in its
member, and the product equals the separate layers' products."""

from __future__ import annotations

import numpy as np

from deep_learning_workflow.inference.blocks import BlockProduct, coalesce
from deep_learning_workflow.inference.ops import MemberMean, SegmentSoftmax


def test_block_product_equals_the_members_products_and_keeps_nan_in_its_member():
    rng = np.random.default_rng(0)
    kernels = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3)]
    shared = rng.normal(size=(2, 9)).astype(np.float32)
    kernel = np.zeros((14, 9), dtype=np.float32)
    blocks = []
    for member, part in enumerate(kernels):
        kernel[4 * member : 4 * member + 4, 3 * member : 3 * member + 3] = part
        blocks.append((4 * member, 4 * member + 4, 3 * member, 3 * member + 3))
    kernel[12:] = shared
    blocks += [(12, 14, 3 * member, 3 * member + 3) for member in range(3)]
    product = BlockProduct(kernel, blocks)
    assert (12, 14, 0, 9) in product.blocks  # the shared rows' blocks joined into one
    x = rng.normal(size=(5, 14)).astype(np.float32)
    x[0, 1] = np.nan  # member 0's input
    out = product(x)
    for member, part in enumerate(kernels):
        expected = (
            x[:, 4 * member : 4 * member + 4] @ part + x[:, 12:] @ shared[:, 3 * member :][:, :3]
        )
        np.testing.assert_allclose(out[:, 3 * member : 3 * member + 3], expected, rtol=1e-5)
    assert np.isnan(out[0, :3]).all() and np.isfinite(out[0, 3:]).all()
    assert np.isfinite(out[1:]).all()


def test_block_rows_cut_the_blocks_to_a_band():
    kernel = np.arange(24, dtype=np.float32).reshape(6, 4)
    product = BlockProduct(kernel, [(0, 3, 0, 2), (3, 6, 2, 4)]).rows(2, 5)
    assert product.blocks == [(0, 1, 0, 2), (1, 3, 2, 4)]
    x = np.ones((1, 3), dtype=np.float32)
    np.testing.assert_array_equal(product(x), [[8, 9, 14 + 18, 15 + 19]])


def test_coalesce_joins_touching_blocks_only():
    assert coalesce([(0, 2, 0, 3), (0, 2, 3, 5), (2, 4, 0, 5)]) == [(0, 4, 0, 5)]
    assert coalesce([(0, 2, 0, 3), (2, 4, 3, 5)]) == [(0, 2, 0, 3), (2, 4, 3, 5)]


def test_member_softmax_and_mean_are_the_members_softmax_and_average():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 3, 2)).astype(np.float32)
    soft = SegmentSoftmax([2, 2, 2])(logits.reshape(6, 6))
    expected = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(soft.reshape(6, 3, 2), expected, rtol=1e-6)
    uneven = SegmentSoftmax([2, 4])(logits.reshape(6, 6))
    np.testing.assert_allclose(uneven[:, :2], expected[:, 0], rtol=1e-6)
    mean = MemberMean(3)(soft)
    np.testing.assert_allclose(mean, expected.mean(axis=1), rtol=1e-6)


def test_disjoint_blocks_leave_the_uncovered_columns_zero_and_add_in_place():
    rng = np.random.default_rng(1)
    kernel = np.zeros((5, 6), dtype=np.float32)
    kernel[:2, :2] = rng.normal(size=(2, 2))
    kernel[2:, 4:] = rng.normal(size=(3, 2))
    product = BlockProduct(kernel, [(0, 2, 0, 2), (2, 5, 4, 6)])
    x = rng.normal(size=(7, 5)).astype(np.float32)
    np.testing.assert_allclose(product(x), x @ kernel, rtol=1e-6, atol=1e-6)
    assert (product(x)[:, 2:4] == 0).all()
    out = np.ones((7, 6), dtype=np.float32)
    product.add_to(out, x)
    np.testing.assert_allclose(out, 1 + x @ kernel, rtol=1e-6, atol=1e-6)
