"""Corrupted test sets: deterministic under their seed, shape, range and dtype kept, stronger at
a higher severity, and each one doing what its description says."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("albumentations")

from core.data.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    Corruption,
    corrupt,
    corruption_seed,
    default_corruptions,
    iter_corrupted,
)

RANDOM = [c for c in CORRUPTIONS if c not in ("scale", "brightness", "contrast")]


def _digits(n: int = 24) -> npt.NDArray[np.float32]:
    from sklearn.datasets import load_digits

    images = load_digits().images[:n] / 16.0  # 8x8 grey digits, white on black
    big = np.kron(images, np.ones((3, 3)))  # 24x24, so kernels and stripes have room
    return big[..., None].astype(np.float32)


DIGITS = _digits()


def _change(corruption: Corruption, severity: int) -> float:
    return float(np.abs(corrupt(DIGITS, corruption, severity, data_seed=1) - DIGITS).mean())


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_shape_range_and_dtype_are_kept_at_every_severity(corruption: Corruption) -> None:
    as_uint8 = np.rint(DIGITS[:6] * 255).astype(np.uint8)
    for severity in SEVERITIES:
        out = corrupt(DIGITS[:6], corruption, severity, data_seed=0)
        assert out.shape == DIGITS[:6].shape
        assert out.dtype == np.float32
        assert 0.0 <= out.min() <= out.max() <= 1.0
        out8 = corrupt(as_uint8, corruption, severity, data_seed=0)
        assert out8.dtype == np.uint8
        assert out8.shape == as_uint8.shape


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_the_copy_depends_only_on_the_data_seed_corruption_and_severity(
    corruption: Corruption,
) -> None:
    a = corrupt(DIGITS, corruption, 3, data_seed=4)
    assert np.array_equal(a, corrupt(DIGITS, corruption, 3, data_seed=4))
    chunks = np.concatenate(list(iter_corrupted(DIGITS, corruption, 3, data_seed=4, chunk=5)))
    assert np.array_equal(a, chunks)  # the chunk size changes nothing
    if corruption in RANDOM:
        assert not np.array_equal(a, corrupt(DIGITS, corruption, 3, data_seed=5))
    assert not np.array_equal(a, DIGITS)


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_higher_severity_changes_the_images_more(corruption: Corruption) -> None:
    changes = [_change(corruption, s) for s in SEVERITIES]
    assert changes[-1] > changes[0]
    assert changes[2] >= changes[0] * 0.95


def test_the_seed_is_a_function_of_its_three_parts() -> None:
    seeds = {corruption_seed(d, c, s) for d in (0, 1) for c in CORRUPTIONS for s in SEVERITIES}
    assert len(seeds) == 2 * len(CORRUPTIONS) * len(SEVERITIES)


GREY = np.full((8, 24, 24, 1), 0.5, np.float32)


def test_gaussian_noise_adds_noise_of_the_tables_deviation() -> None:
    out = corrupt(GREY, "gaussian_noise", 3, data_seed=0)
    assert float((out - GREY).std()) == pytest.approx(0.08, rel=0.1)
    assert abs(float((out - GREY).mean())) < 0.01


def test_impulse_noise_sets_the_tables_share_of_pixels_to_black_or_white() -> None:
    out = corrupt(GREY, "impulse_noise", 4, data_seed=0)
    hit = (out == 0.0) | (out == 1.0)
    assert float(hit.mean()) == pytest.approx(0.17, abs=0.04)
    assert np.array_equal(out[~hit], GREY[~hit])


def test_brightness_raises_and_contrast_flattens() -> None:
    brighter = corrupt(DIGITS, "brightness", 2, data_seed=0)
    assert float(brighter.mean()) > float(DIGITS.mean()) + 0.1
    flatter = corrupt(DIGITS, "contrast", 4, data_seed=0)
    assert float(flatter.std()) < 0.6 * float(DIGITS.std())


def test_stripe_inverts_one_band_of_columns_and_nothing_else() -> None:
    out = corrupt(DIGITS, "stripe", 5, data_seed=0)
    for before, after in zip(DIGITS, out, strict=True):
        changed = np.flatnonzero(np.any(before != after, axis=(0, 2)))
        band = np.arange(changed.min(), changed.max() + 1)
        assert len(band) <= round(0.2 * 24)
        assert np.allclose(after[:, band], 1.0 - before[:, band])


def test_dotted_lines_only_light_pixels() -> None:
    out = corrupt(DIGITS, "dotted_line", 3, data_seed=0)
    changed = out != DIGITS
    assert changed.any()
    assert np.all(out[changed] == 1.0)


def test_geometry_moves_the_digit_but_keeps_most_of_its_ink() -> None:
    ink = float(DIGITS.sum())
    for corruption in ("rotate", "shear", "translate"):
        out = corrupt(DIGITS, corruption, 2, data_seed=0)
        assert float(out.sum()) == pytest.approx(ink, rel=0.2)
    smaller = corrupt(DIGITS, "scale", 5, data_seed=0)
    assert float(smaller.sum()) < 0.5 * ink  # half the size: about a quarter of the ink


def test_blur_spreads_the_ink_and_lowers_its_peaks() -> None:
    for corruption in ("motion_blur", "glass_blur"):
        out = corrupt(DIGITS, corruption, 5, data_seed=0)
        assert float((out > 0.05).mean()) > float((DIGITS > 0.05).mean())


def test_fog_lifts_the_dark_ground() -> None:
    out = corrupt(DIGITS, "fog", 4, data_seed=0)
    ground = DIGITS == 0.0
    assert float(out[ground].mean()) > 0.1


def test_the_default_subset_suits_the_images() -> None:
    assert "stripe" in default_corruptions(1)
    assert "fog" in default_corruptions(3)
    assert set(default_corruptions(1)) <= set(CORRUPTIONS)
    assert set(default_corruptions(3)) <= set(CORRUPTIONS)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(DIGITS, "snow", 1, data_seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="severity"):
        corrupt(DIGITS, "rotate", 6, data_seed=0)
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        corrupt(DIGITS[0], "rotate", 1, data_seed=0)
