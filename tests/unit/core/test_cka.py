"""Linear CKA (debiased HSIC) against its defining properties and a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from core.report.cka import (
    center_gram,
    cka,
    cka_features,
    cka_matrix,
    gram_linear,
    pack_gram,
    packed_bytes,
    unpack_gram,
)


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


def unbiased_hsic(k: np.ndarray, lg: np.ndarray) -> float:
    """Song et al.'s (2012) unbiased HSIC estimator written out from its definition:
    [tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~ L~ 1] / (n (n-3)), K~ = K with a
    zero diagonal (the estimator Nguyen, Raghu and Kornblith's minibatch CKA uses)."""
    n = len(k)
    kt, lt = k - np.diag(np.diag(k)), lg - np.diag(np.diag(lg))
    one = np.ones(n)
    return float(
        (
            np.trace(kt @ lt)
            + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ kt @ lt @ one)
        )
        / (n * (n - 3))
    )


def test_wide_unrelated_representations_score_low_on_a_small_probe(
    rng: np.random.Generator,
) -> None:
    """The plug-in (biased) HSIC makes two independent random representations with many more
    units than probe examples score near 1 (1000 units on 256 examples: about 0.8); a conv
    layer has tens of thousands of units and the probe a few hundred examples. The debiased
    estimator stays near 0, through the stored float16 form too."""
    n, p = 256, 1000
    x, y = rng.normal(size=(n, p)), rng.normal(size=(n, p))
    assert abs(cka(gram_linear(x), gram_linear(y))) < 0.05
    assert abs(cka_features(x, y)) < 0.05
    stored = cka_matrix(
        [unpack_gram(pack_gram(gram_linear(x)), n)], [unpack_gram(pack_gram(gram_linear(y)), n)]
    )
    assert stored[0, 0] < 0.05


def test_equals_the_debiased_definition(rng: np.random.Generator) -> None:
    for n, p, q in [(6, 3, 4), (12, 20, 2), (30, 5, 5)]:
        x, y = rng.normal(size=(n, p)) + 2.0, rng.normal(size=(n, q)) ** 2
        k, lg = x @ x.T, y @ y.T
        expected = unbiased_hsic(k, lg) / np.sqrt(unbiased_hsic(k, k) * unbiased_hsic(lg, lg))
        expected = min(1.0, max(0.0, expected))
        assert cka(k, lg) == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert cka_features(x, y) == pytest.approx(expected, rel=1e-9, abs=1e-12)
