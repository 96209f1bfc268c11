"""Linear CKA against its defining properties and a direct computation from activations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from core.cka import (
    center_gram,
    cka,
    cka_features,
    cka_matrix,
    gram_linear,
    pack_gram,
    packed_bytes,
    unpack_gram,
)


def direct_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s definition written out: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))
    with HSIC(K, L) = tr(K H L H) / (n - 1)^2, K = X X^T, L = Y Y^T."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, lg = x @ x.T, y @ y.T

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h)) / (n - 1) ** 2

    return hsic(k, lg) / np.sqrt(hsic(k, k) * hsic(lg, lg))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_cka_of_a_representation_with_itself_is_one(rng: np.random.Generator) -> None:
    x = rng.normal(size=(40, 12))
    assert cka(gram_linear(x), gram_linear(x)) == pytest.approx(1.0, abs=1e-12)
    assert cka_features(x, x) == pytest.approx(1.0, abs=1e-12)


def test_invariant_to_orthogonal_transforms_and_isotropic_scaling(
    rng: np.random.Generator,
) -> None:
    x = rng.normal(size=(50, 8))
    y = np.tanh(x @ rng.normal(size=(8, 6))) + 0.3 * rng.normal(size=(50, 6))
    base = cka(gram_linear(x), gram_linear(y))
    q = ortho_group.rvs(8, random_state=3)
    assert cka(gram_linear(x @ q), gram_linear(y)) == pytest.approx(base, abs=1e-10)
    assert cka(gram_linear(7.5 * x), gram_linear(0.01 * y)) == pytest.approx(base, abs=1e-10)
    assert cka_features(x @ q * 3.0, y) == pytest.approx(base, abs=1e-10)
    # ...but not to an arbitrary invertible linear map (that would make it meaningless).
    skew = np.diag([100.0, 1, 1, 1, 1, 1, 1, 0.01])
    assert abs(cka(gram_linear(x @ skew), gram_linear(y)) - base) > 1e-3


def test_unrelated_random_representations_score_low(rng: np.random.Generator) -> None:
    values = [
        cka(gram_linear(rng.normal(size=(500, 10))), gram_linear(rng.normal(size=(500, 10))))
        for _ in range(5)
    ]
    assert max(values) < 0.1
    related = rng.normal(size=(500, 10))
    assert cka(gram_linear(related), gram_linear(related + 0.1 * rng.normal(size=(500, 10)))) > 0.9


def test_equals_a_direct_computation_and_the_feature_form(rng: np.random.Generator) -> None:
    for n, p, q in [(6, 3, 4), (12, 20, 2), (30, 5, 5)]:
        x, y = rng.normal(size=(n, p)), rng.normal(size=(n, q)) ** 2
        expected = direct_cka(x, y)
        assert cka(gram_linear(x), gram_linear(y)) == pytest.approx(expected, rel=1e-10)
        assert cka_features(x, y) == pytest.approx(expected, rel=1e-10)
        assert 0.0 <= expected <= 1.0


def test_centering_is_the_gram_of_centered_features(rng: np.random.Generator) -> None:
    x = rng.normal(size=(9, 4)) + 5.0
    xc = x - x.mean(axis=0)
    np.testing.assert_allclose(center_gram(gram_linear(x)), xc @ xc.T, atol=1e-10)


def test_packed_float16_grams_give_the_same_cka(rng: np.random.Generator) -> None:
    n = 128
    acts = [rng.normal(size=(n, 16))]
    for _ in range(3):
        acts.append(np.maximum(acts[-1] @ rng.normal(size=(acts[-1].shape[1], 16)), 0))
    other = [
        a @ ortho_group.rvs(16, random_state=i) + 0.5 * rng.normal(size=a.shape)
        for i, a in enumerate(acts)
    ]
    blobs_a = [pack_gram(gram_linear(a)) for a in acts]
    blobs_b = [pack_gram(gram_linear(b)) for b in other]
    assert all(len(blob) == packed_bytes(n) for blob in blobs_a)
    m = cka_matrix([unpack_gram(b, n) for b in blobs_a], [unpack_gram(b, n) for b in blobs_b])
    exact = np.array([[cka_features(a, b) for b in other] for a in acts])
    assert m.shape == (4, 4)
    np.testing.assert_allclose(m, exact, atol=1e-3)


def test_a_constant_layer_is_nan_not_a_number_pretending(rng: np.random.Generator) -> None:
    n = 10
    const = pack_gram(gram_linear(np.ones((n, 3))))
    real = pack_gram(gram_linear(rng.normal(size=(n, 3))))
    m = cka_matrix([unpack_gram(const, n)], [unpack_gram(real, n)])
    assert np.isnan(m[0, 0])
    assert np.isnan(cka(gram_linear(np.ones((n, 3))), gram_linear(rng.normal(size=(n, 3)))))
    with pytest.raises(ValueError):
        unpack_gram(real, n + 1)
