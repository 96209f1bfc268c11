"""Linear centered kernel alignment (CKA; Kornblith et al., ICML 2019), pure NumPy.

Linear CKA between two representations X (n x p) and Y (n x q) of the same n examples is
HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = X X^T, L = Y Y^T. HSIC is estimated with the
unbiased estimator of Song et al. (2012), as in the minibatch CKA of Nguyen, Raghu and
Kornblith (2021): the plug-in estimate tr(K H L H) (H = I - 11^T/n) is biased upward when a
layer has many more units than there are probe examples (two independent random
representations of 1,000 units on 256 examples score about 0.8 with it; 0 debiased). The
unbiased HSIC is <U(K), U(L)>_F / (n (n - 3)) with U the "unbiased centering"
(``debias_gram``): zero the diagonal, subtract row and column sums / (n - 2), add the total /
((n - 1)(n - 2)), zero the diagonal again. So debiased CKA is the cosine between U(K) and
U(L); it needs n >= 4 examples (NaN below). It is 1 for identical representations, invariant
to orthogonal transforms and isotropic scaling of either (not to arbitrary invertible linear
maps). An estimate below 0 (two unrelated representations, by chance) is kept as it is:
the report averages CKA over seeds, and clipping each value at 0 would bias that mean up.
``cka_features`` computes the same from activations; the worker stores Gram matrices, which
have the same size for every layer.
U(H K H) = U(K), so the stored centered Grams give debiased CKA (``unpack_gram``).

Storage (``pack_gram``/``unpack_gram``): a centered Gram is symmetric, so only its upper
triangle is kept, each off-diagonal entry weighted by sqrt(2) so that the plain dot product of
two packed vectors is the Frobenius inner product of the matrices. The vector is scaled to unit
norm (CKA ignores scale), multiplied by sqrt(len) so typical entries are near 1, and stored as
float16: n (n + 1) bytes per layer (512 probe examples: 262,656 bytes). The rounding moves CKA
by well under 1e-3 (tests/unit/core/test_cka.py measures it).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

__all__ = [
    "center_gram",
    "cka",
    "cka_features",
    "cka_matrix",
    "debias_gram",
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


def debias_gram(gram: npt.ArrayLike) -> Array:
    """U(K), the unbiased centering of a Gram matrix (Song et al. 2012; Kornblith et al.'s
    ``center_gram(unbiased=True)``): <U(K), U(L)> / (n (n - 3)) is the unbiased HSIC.
    Needs n >= 4; the same for K and for its centered H K H."""
    k = np.array(gram, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"a Gram matrix must be square, not {k.shape}")
    n = len(k)
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 examples, not {n}")
    k = (k + k.T) / 2
    np.fill_diagonal(k, 0.0)
    means = k.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))  # twice subtracted: + total / ((n - 1)(n - 2))
    k -= means[None, :]
    k -= means[:, None]
    np.fill_diagonal(k, 0.0)
    return k


def cka(gram_x: npt.ArrayLike, gram_y: npt.ArrayLike) -> float:
    """Debiased linear CKA from two (uncentered or centered) Gram matrices of the same examples.

    NaN when either representation is constant over the examples (a zero centered Gram) or
    there are fewer than 4 examples."""
    if len(np.asarray(gram_x)) < 4:
        return float("nan")
    kx, ky = debias_gram(gram_x), debias_gram(gram_y)
    if kx.shape != ky.shape:
        raise ValueError(f"Gram matrices of different sizes: {kx.shape} and {ky.shape}")
    denom = float(np.linalg.norm(kx) * np.linalg.norm(ky))
    if denom == 0.0:
        return float("nan")
    return float(np.clip(np.sum(kx * ky) / denom, -1.0, 1.0))


def cka_features(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Debiased linear CKA from the activations themselves (n x p and n x q)."""
    return cka(gram_linear(x), gram_linear(y))


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


@functools.lru_cache(maxsize=8)
def _triangle(n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], Array]:
    """Rows, columns and weights (1 on the diagonal, sqrt(2) off it) of the packed triangle."""
    rows, cols = np.triu_indices(n)
    return rows, cols, np.where(rows == cols, 1.0, np.sqrt(2.0))


def unpack_gram(blob: bytes, n: int) -> Array:
    """The stored centered Gram, debiased (``debias_gram``), as a unit-norm weighted upper
    triangle: the dot product of two is debiased CKA (a zero vector for a constant layer;
    NaN entries under 4 examples, where the unbiased HSIC is undefined)."""
    v = np.frombuffer(blob, dtype="<f2").astype(np.float64)
    if len(v) != n * (n + 1) // 2:
        raise ValueError(
            f"a packed Gram of {n} examples has {n * (n + 1) // 2} entries, not {len(v)}"
        )
    if n < 4:
        return np.full(len(v), np.nan)
    rows, cols, weight = _triangle(n)
    k = np.zeros((n, n))
    v /= weight
    k[rows, cols] = v
    k[cols, rows] = v
    v = debias_gram(k)[rows, cols] * weight
    norm = float(np.linalg.norm(v))
    out: Array = v / norm if norm > 0 else v
    return out


def cka_matrix(packed_a: list[Array], packed_b: list[Array]) -> Array:
    """CKA of every layer of A (rows) with every layer of B (columns), from ``unpack_gram``
    vectors; NaN where a layer is constant over the probe set."""
    if not packed_a or not packed_b:
        return np.zeros((len(packed_a), len(packed_b)))
    va, vb = np.stack(packed_a), np.stack(packed_b)
    out: Array = np.clip(va @ vb.T, -1.0, 1.0)  # rounding only: a cosine is within [-1, 1]
    zero_a = np.linalg.norm(va, axis=1) == 0
    zero_b = np.linalg.norm(vb, axis=1) == 0
    out[zero_a, :] = np.nan
    out[:, zero_b] = np.nan
    return out
