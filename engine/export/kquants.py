"""Quantizing rows of weights to llama.cpp's k-quants Q4_K, Q5_K and Q6_K, in numpy.

Our own code, and on purpose small: the `gguf` package (llama.cpp's gguf-py) quantizes to Q8_0, Q5_0
and Q5_1 but only *de*quantizes the k-quants, llama.cpp's `llama-quantize` that writes them is a C++
program that no wheel ships (llama-cpp-python compiles it from source), and q4_k_m cannot be written
without them. The byte layouts are the inverse of gguf-py's `dequantize_blocks` (which the
verification reads them back with); each block's scales are chosen by min-max per sub-block, as
ggml's reference does before its search for a better scale, so files are a little less accurate
than llama-quantize's, never laid out differently.
"""

from __future__ import annotations

import numpy as np

QK_K = 256  # weights per super-block


def _f16_bytes(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16).reshape(-1, 1).view(np.uint8)


def _pack_scales(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """Eight 6-bit scales and eight 6-bit mins per block into 12 bytes (gguf-py's Q4_K.get_scale_min, inverted)."""
    lo_sc, hi_sc, lo_mn, hi_mn = sc[:, :4], sc[:, 4:], mn[:, :4], mn[:, 4:]
    d = (lo_sc & 0x3F) | ((hi_sc >> 4) << 6)
    m = (lo_mn & 0x3F) | ((hi_mn >> 4) << 6)
    m_d = (hi_sc & 0x0F) | ((hi_mn & 0x0F) << 4)
    return np.concatenate([d, m, m_d], axis=1).astype(np.uint8)


def _affine(blocks: np.ndarray, levels: int) -> tuple[np.ndarray, ...]:
    """Q4_K / Q5_K: each sub-block of 32 as scale·q − min with q in 0..levels, the scales and mins
    themselves as 6-bit multiples of the block's d and dmin. Returns (d, dmin, scales, mins, q)."""
    n = blocks.shape[0]
    sub = blocks.reshape(n, 8, 32)
    low = np.minimum(sub.min(axis=2), 0.0)  # the min is stored as a subtraction, never negative
    scale = (sub.max(axis=2) - low) / levels
    mins = -low
    d = scale.max(axis=1) / 63
    dmin = mins.max(axis=1) / 63
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d[:, None] > 0, np.rint(scale / d[:, None]), 0).clip(0, 63).astype(np.uint8)
        mn = np.where(dmin[:, None] > 0, np.rint(mins / dmin[:, None]), 0).clip(0, 63).astype(np.uint8)
    # Quantize against the scales as the file stores them (f16 d and dmin times the 6-bit factors).
    step = (d.astype(np.float16).astype(np.float32)[:, None] * sc)[:, :, None]
    offset = (dmin.astype(np.float16).astype(np.float32)[:, None] * mn)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step > 0, np.rint((sub + offset) / step), 0).clip(0, levels).astype(np.uint8)
    return d, dmin, sc, mn, q


def quantize_q4_k(blocks: np.ndarray) -> np.ndarray:
    """(n, 256) float32 → (n, 144) bytes: d, dmin (f16), 12 bytes of scales, 128 bytes of 4-bit q."""
    d, dmin, sc, mn, q = _affine(blocks, 15)
    n = blocks.shape[0]
    pairs = q.reshape(n, 4, 2, 32)  # sub-blocks 2g and 2g+1 share bytes g: low and high nibbles
    qs = (pairs[:, :, 0] | (pairs[:, :, 1] << 4)).reshape(n, 128)
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), _pack_scales(sc, mn), qs], axis=1)


def quantize_q5_k(blocks: np.ndarray) -> np.ndarray:
    """(n, 256) float32 → (n, 176) bytes: as Q4_K, with each q's fifth bit in 32 bytes of high bits."""
    d, dmin, sc, mn, q = _affine(blocks, 31)
    n = blocks.shape[0]
    low = q & 0x0F
    pairs = low.reshape(n, 4, 2, 32)
    qs = (pairs[:, :, 0] | (pairs[:, :, 1] << 4)).reshape(n, 128)
    high = (q >> 4) & 1  # (n, 8, 32): bit j of byte i is sub-block j's element i
    qh = np.zeros((n, 32), dtype=np.uint8)
    for j in range(8):
        qh |= high[:, j] << j
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), _pack_scales(sc, mn), qh, qs], axis=1)


def quantize_q6_k(blocks: np.ndarray) -> np.ndarray:
    """(n, 256) float32 → (n, 210) bytes: 128 bytes of low nibbles, 64 of high 2 bits, 16 int8
    scales (one per 16 weights), d (f16). q − 32 in −32..31; the weight farthest from zero maps to −32."""
    n = blocks.shape[0]
    sub = blocks.reshape(n, 16, 16)
    far = np.take_along_axis(sub, np.abs(sub).argmax(axis=2)[:, :, None], axis=2)[:, :, 0]
    scale = far / -32
    biggest = np.take_along_axis(scale, np.abs(scale).argmax(axis=1)[:, None], axis=1)[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(biggest != 0, -128 / biggest, 0)
    sc = np.rint(inverse[:, None] * scale).clip(-128, 127).astype(np.int8)
    d = np.where(inverse != 0, 1 / np.where(inverse != 0, inverse, 1), 0)
    step = (d.astype(np.float16).astype(np.float32)[:, None] * sc)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(step != 0, np.rint(sub / step), 0).clip(-32, 31).astype(np.int16) + 32
    q = q.astype(np.uint8).reshape(n, 2, 4, 32)  # [half of the block, quarter, element]
    low, high = q & 0x0F, q >> 4
    ql = (low[:, :, 0:2] | (low[:, :, 2:4] << 4)).reshape(n, 128)
    qh = (high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)).reshape(n, 64)
    return np.concatenate([ql, qh, sc.view(np.uint8), _f16_bytes(d)], axis=1)


QUANTIZERS = {"Q4_K": quantize_q4_k, "Q5_K": quantize_q5_k, "Q6_K": quantize_q6_k}


def quantize_rows(rows: np.ndarray, name: str) -> np.ndarray:
    """A 2-D float32 array whose rows are a multiple of 256 long, as the bytes of k-quant `name`
    (one row of bytes per row)."""
    blocks = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1, QK_K)
    packed = QUANTIZERS[name](blocks)
    return packed.reshape(rows.shape[0], -1)
