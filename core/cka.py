"""Linear centered kernel alignment (CKA; Kornblith et al., ICML 2019), pure NumPy.

Linear CKA between two representations X (n x p) and Y (n x q) of the same n examples is

    CKA(X, Y) = <Kc, Lc>_F / (||Kc||_F ||Lc||_F),   K = X X^T, L = Y Y^T, Kc = H K H,

with H = I - 11^T/n the centering matrix: the cosine between the two centered Gram matrices.
It is 1 for identical representations, invariant to orthogonal transforms and isotropic
scaling of either (not to arbitrary invertible linear maps), and lies in [0, 1]. The feature
space form ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) gives the same number
(``cka_features``); the worker stores Gram matrices, which have the same size for every layer.

Storage (``pack_gram``/``unpack_gram``): a centered Gram is symmetric, so only its upper
triangle is kept, each off-diagonal entry weighted by sqrt(2) so that the plain dot product of
two packed vectors is the Frobenius inner product of the matrices. The vector is scaled to unit
norm (CKA ignores scale), multiplied by sqrt(len) so typical entries are near 1, and stored as
float16: n (n + 1) bytes per layer (512 probe examples: 262,656 bytes). The rounding moves CKA
by well under 1e-3 (tests/unit/core/test_cka.py measures it).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "center_gram",
    "cka",
    "cka_features",
    "cka_matrix",
    "gram_linear",
    "pack_gram",
    "packed_bytes",
    "unpack_gram",
]

Array = npt.NDArray[np.float64]


def gram_linear(x: npt.ArrayLike) -> Array:
    """The linear Gram matrix X X^T of n examples (rows), flattened to n x features."""
    a = np.asarray(x, dtype=np.float64)
    a = a.reshape(len(a), -1)
    g: Array = a @ a.T
    return g


def center_gram(gram: npt.ArrayLike) -> Array:
    """H K H, the Gram matrix of the column-centered features (H = I - 11^T / n)."""
    k = np.array(gram, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"a Gram matrix must be square, not {k.shape}")
    k -= k.mean(axis=0, keepdims=True)
    k -= k.mean(axis=1, keepdims=True)
    out: Array = (k + k.T) / 2  # exactly symmetric
    return out


def cka(gram_x: npt.ArrayLike, gram_y: npt.ArrayLike) -> float:
    """Linear CKA from two (uncentered or centered) Gram matrices of the same examples.

    NaN when either representation is constant over the examples (a zero centered Gram)."""
    kx, ky = center_gram(gram_x), center_gram(gram_y)
    if kx.shape != ky.shape:
        raise ValueError(f"Gram matrices of different sizes: {kx.shape} and {ky.shape}")
    denom = float(np.linalg.norm(kx) * np.linalg.norm(ky))
    if denom == 0.0:
        return float("nan")
    return float(np.clip(np.sum(kx * ky) / denom, 0.0, 1.0))


def cka_features(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Linear CKA from the activations themselves (n x p and n x q), the feature-space form."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    denom = float(np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b))
    if denom == 0.0:
        return float("nan")
    return float(np.clip(np.linalg.norm(b.T @ a) ** 2 / denom, 0.0, 1.0))


def packed_bytes(n: int) -> int:
    """Bytes one packed Gram of ``n`` examples takes."""
    return n * (n + 1) // 2 * 2


def pack_gram(gram: npt.ArrayLike) -> bytes:
    """A Gram matrix (n x n) centered, as its weighted, unit-scaled upper triangle (float16)."""
    k = center_gram(gram)
    n = len(k)
    rows, cols = np.triu_indices(n)
    v = k[rows, cols] * np.where(rows == cols, 1.0, np.sqrt(2.0))
    norm = float(np.linalg.norm(v))
    if norm > 0:
        v = v / norm * np.sqrt(len(v))
    return v.astype("<f2").tobytes()


def unpack_gram(blob: bytes, n: int) -> Array:
    """The unit-norm vector ``pack_gram`` stored (a zero vector for a constant layer)."""
    v = np.frombuffer(blob, dtype="<f2").astype(np.float64)
    if len(v) != n * (n + 1) // 2:
        raise ValueError(
            f"a packed Gram of {n} examples has {n * (n + 1) // 2} entries, not {len(v)}"
        )
    norm = float(np.linalg.norm(v))
    out: Array = v / norm if norm > 0 else v
    return out


def cka_matrix(packed_a: list[Array], packed_b: list[Array]) -> Array:
    """CKA of every layer of A (rows) with every layer of B (columns), from ``unpack_gram``
    vectors; NaN where a layer is constant over the probe set."""
    if not packed_a or not packed_b:
        return np.zeros((len(packed_a), len(packed_b)))
    va, vb = np.stack(packed_a), np.stack(packed_b)
    out: Array = np.clip(va @ vb.T, 0.0, 1.0)
    zero_a = np.linalg.norm(va, axis=1) == 0
    zero_b = np.linalg.norm(vb, axis=1) == 0
    out[zero_a, :] = np.nan
    out[:, zero_b] = np.nan
    return out
