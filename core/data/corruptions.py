"""Corrupted copies of a test set, generated, never downloaded (MNIST-C and CIFAR-10-C style).

Fifteen corruptions that keep the label, each at five severities, after Mu and Gilmer's MNIST-C
(2019) and Hendrycks and Dietterich's CIFAR-10-C (ICLR 2019). Where albumentations has the
transform it does the work (noise, blur, the affine ones, brightness and contrast, fog,
spatter); fog and spatter are defined on colour images, so a grey image goes through them as
three equal channels and comes back as their mean. ``stripe`` and ``dotted_line`` (MNIST-C's
own) are written here.

Determinism: the copy of a test set under (corruption, severity) depends only on the data seed,
the corruption and the severity (``corruption_seed``), and on nothing else, so every variant of
a seed is scored on identical corrupted examples and the pairs stay paired. ``iter_corrupted``
yields the copy in chunks of bounded memory with one random stream across chunks, so the chunk
size never changes the result. Images are (N, H, W, C), float32 in [0, 1] or uint8 in
[0, 255]; the copy has the same shape, dtype and range.

albumentations and OpenCV are imported inside functions: the api reads the names and defaults
from here without them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

__all__ = [
    "CORRUPTIONS",
    "DEFAULT_CORRUPTIONS",
    "DEFAULT_SEVERITIES",
    "SEVERITIES",
    "Corruption",
    "corrupt",
    "corruption_seed",
    "default_corruptions",
    "iter_corrupted",
]

Corruption = Literal[
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "motion_blur",
    "glass_blur",
    "rotate",
    "shear",
    "scale",
    "translate",
    "brightness",
    "contrast",
    "fog",
    "spatter",
    "stripe",
    "dotted_line",
]
CORRUPTIONS: tuple[Corruption, ...] = get_args(Corruption)
"""Every corruption, in the order of the list above (MNIST-C's families, then its own)."""
SEVERITIES = (1, 2, 3, 4, 5)

DEFAULT_SEVERITIES = (3,)
"""The severities scored when a comparison names none: the middle one. Each severity is one
more forward pass over the test set per corruption; with six corruptions at one severity the
scoring adds under a quarter to the article's trial time (bench/robustness_cost.py), at two it
would add about a third."""

DEFAULT_CORRUPTIONS: dict[str, tuple[Corruption, ...]] = {
    # Digits and other grey images on a dark ground: MNIST-C's families (noise, blur, geometry,
    # occlusion); fog and brightness wash out a white-on-black digit less informatively.
    "grey": ("gaussian_noise", "impulse_noise", "motion_blur", "rotate", "translate", "stripe"),
    # Colour photographs: CIFAR-10-C's families (noise, blur, weather, digital).
    "colour": ("gaussian_noise", "shot_noise", "motion_blur", "fog", "brightness", "contrast"),
}

# Per severity 1..5. Noise and photometric levels follow CIFAR-10-C's tables on [0, 1] images;
# the geometric ones MNIST-C's ranges (rotations up to 40 degrees keep a 6 a 6).
_GAUSS_STD = (0.04, 0.06, 0.08, 0.10, 0.14)
_SHOT_SCALE = (0.05, 0.1, 0.2, 0.35, 0.5)
_IMPULSE_AMOUNT = (0.03, 0.06, 0.09, 0.17, 0.27)
_MOTION_KERNEL = (3, 5, 7, 9, 11)
_GLASS = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 2, 1))
_ROTATE_DEG = (8.0, 16.0, 24.0, 32.0, 40.0)
_SHEAR_DEG = (6.0, 12.0, 18.0, 24.0, 30.0)
_SCALE = (0.9, 0.8, 0.7, 0.6, 0.5)
_TRANSLATE = (0.05, 0.1, 0.15, 0.2, 0.25)
_BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
_CONTRAST = (0.4, 0.5, 0.6, 0.7, 0.8)
_FOG = (0.2, 0.35, 0.5, 0.65, 0.8)  # the haze's peak, added before rescaling to [0, 1]
_SPATTER = (0.75, 0.7, 0.65, 0.6, 0.55)  # cutout threshold: lower leaves more drops
_STRIPE_SHARE = (0.04, 0.08, 0.12, 0.16, 0.2)  # the stripe's width, as a share of the width
_DOTTED_LINES = (1, 2, 3, 4, 5)


def corruption_seed(data_seed: int, corruption: str, severity: int) -> int:
    """The seed of the copy under (corruption, severity) of the test set of ``data_seed``."""
    key = f"archbench-corruption:{data_seed}:{corruption}:{severity}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big")


def default_corruptions(channels: int) -> tuple[Corruption, ...]:
    """The documented default subset for images of ``channels`` channels."""
    return DEFAULT_CORRUPTIONS["grey" if channels == 1 else "colour"]


def _albumentation(corruption: Corruption, severity: int) -> Any | None:
    """The albumentations transform for a corruption it has (None for the ones written here)."""
    import albumentations as A

    i = severity - 1
    if corruption == "gaussian_noise":
        std = _GAUSS_STD[i]
        return A.GaussNoise(std_range=(std, std), mean_range=(0.0, 0.0), p=1.0)
    if corruption == "shot_noise":
        return A.ShotNoise(scale_range=(_SHOT_SCALE[i], _SHOT_SCALE[i]), p=1.0)
    if corruption == "impulse_noise":
        amount = _IMPULSE_AMOUNT[i]
        return A.SaltAndPepper(amount=(amount, amount), salt_vs_pepper=(0.5, 0.5), p=1.0)
    if corruption == "motion_blur":
        k = _MOTION_KERNEL[i]
        return A.MotionBlur(blur_limit=(k, k), p=1.0)
    if corruption == "glass_blur":
        sigma, delta, iterations = _GLASS[i]
        return A.GlassBlur(sigma=sigma, max_delta=delta, iterations=iterations, p=1.0)
    if corruption == "rotate":
        deg = _ROTATE_DEG[i]
        return A.Affine(rotate=(-deg, deg), border_mode=0, fill=0, p=1.0)
    if corruption == "shear":
        deg = _SHEAR_DEG[i]
        return A.Affine(shear=(-deg, deg), border_mode=0, fill=0, p=1.0)
    if corruption == "scale":
        return A.Affine(scale=(_SCALE[i], _SCALE[i]), border_mode=0, fill=0, p=1.0)
    if corruption == "translate":
        t = _TRANSLATE[i]
        return A.Affine(translate_percent=(-t, t), border_mode=0, fill=0, p=1.0)
    if corruption == "brightness":
        b = _BRIGHTNESS[i]
        return A.RandomBrightnessContrast(brightness_limit=(b, b), contrast_limit=(0, 0), p=1.0)
    if corruption == "contrast":
        c = _CONTRAST[i]
        return A.RandomBrightnessContrast(
            brightness_limit=(0, 0), contrast_limit=(-c, -c), brightness_by_max=False, p=1.0
        )
    if corruption == "spatter":
        t = _SPATTER[i]
        return A.Spatter(mode="rain", cutout_threshold=(t, t), p=1.0)
    return None


def _stripe(image: npt.NDArray[np.float32], severity: int, rng: np.random.Generator) -> Any:
    """Invert a vertical band of columns, its width a share of the image's, at a random place
    (MNIST-C's stripe occludes part of the digit and adds a bright bar)."""
    width = image.shape[1]
    band = max(1, round(_STRIPE_SHARE[severity - 1] * width))
    start = int(rng.integers(0, width - band + 1))
    out = image.copy()
    out[:, start : start + band] = 1.0 - out[:, start : start + band]
    return out


def _fog(image: npt.NDArray[np.float32], severity: int, rng: np.random.Generator) -> Any:
    """Add a smooth haze and rescale into [0, 1], as CIFAR-10-C's fog does with a plasma
    fractal: the haze is a sum of random fields at halving scales (coarse ones weigh more),
    each a 4x4 to 16x16 grid of uniform noise resized to the image with bicubic interpolation.
    (albumentations' RandomFog draws circles meant for road scenes: 20 to 200 ms per digit,
    and no stronger at a higher level on a 28-pixel image.)"""
    import cv2

    height, width = image.shape[:2]
    haze = np.zeros((height, width), np.float32)
    for octave, cells in enumerate((4, 8, 16)):
        grid = rng.random((cells, cells), dtype=np.float32)
        haze += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) / 2**octave
    haze = (haze - haze.min()) / max(float(haze.max() - haze.min()), 1e-6)
    peak = _FOG[severity - 1]
    out = image + peak * haze[:, :, None]
    top = float(out.max())
    return out * (float(image.max()) / top if top > 0 else 1.0)


def _dotted_line(image: npt.NDArray[np.float32], severity: int, rng: np.random.Generator) -> Any:
    """Draw ``severity`` dotted lines at full intensity, each between two random points on
    opposite borders, one pixel lit in every three along it (MNIST-C's dotted line)."""
    height, width = image.shape[:2]
    out = image.copy()
    for _ in range(_DOTTED_LINES[severity - 1]):
        if rng.random() < 0.5:  # left border to right border
            r0, r1 = rng.integers(0, height, size=2)
            start, end = (float(r0), 0.0), (float(r1), float(width - 1))
        else:  # top to bottom
            c0, c1 = rng.integers(0, width, size=2)
            start, end = (0.0, float(c0)), (float(height - 1), float(c1))
        steps = max(height, width)
        rows = np.rint(np.linspace(start[0], end[0], steps)).astype(int)
        cols = np.rint(np.linspace(start[1], end[1], steps)).astype(int)
        out[rows[::3], cols[::3]] = 1.0
    return out


_WRITTEN: dict[str, Callable[[Any, int, np.random.Generator], Any]] = {
    "fog": _fog,
    "stripe": _stripe,
    "dotted_line": _dotted_line,
}


def iter_corrupted(
    images: npt.NDArray[Any],
    corruption: Corruption,
    severity: int,
    *,
    data_seed: int,
    chunk: int = 512,
) -> Iterator[npt.NDArray[Any]]:
    """The corrupted copy of ``images`` in chunks of at most ``chunk`` images, in order; the
    same for any chunk size (one random stream runs across chunks)."""
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 1 to 5, got {severity}")
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    seed = corruption_seed(data_seed, corruption, severity)
    transform = _albumentation(corruption, severity)
    if transform is not None:
        import albumentations as A

        compose = A.Compose([transform], seed=seed)
    rng = np.random.default_rng(seed)
    grey_for_colour = images.shape[-1] == 1 and corruption == "spatter"
    uint8 = images.dtype == np.uint8
    for begin in range(0, len(images), chunk):
        part = images[begin : begin + chunk]
        out = np.empty_like(part)
        for j, image in enumerate(part):
            x = image.astype(np.float32) / 255.0 if uint8 else image.astype(np.float32)
            if transform is None:
                y = _WRITTEN[corruption](x, severity, rng)
            elif grey_for_colour:
                rgb = np.repeat(x, 3, axis=-1)
                y = compose(image=rgb)["image"].mean(axis=-1, keepdims=True)
            else:
                y = compose(image=x)["image"].reshape(x.shape)
            y = np.clip(y, 0.0, 1.0)
            out[j] = np.rint(y * 255.0).astype(np.uint8) if uint8 else y.astype(images.dtype)
        yield out


def corrupt(
    images: npt.NDArray[Any], corruption: Corruption, severity: int, *, data_seed: int
) -> npt.NDArray[Any]:
    """The whole corrupted copy of ``images`` (``iter_corrupted`` joined)."""
    parts = list(iter_corrupted(images, corruption, severity, data_seed=data_seed))
    return np.concatenate(parts) if parts else images.copy()
