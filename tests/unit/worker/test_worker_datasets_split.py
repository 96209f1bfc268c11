"""worker.datasets.make_split: the split designs, example ids and the probe set."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from worker.datasets import Dataset, DatasetError, Split, clear_caches, make_split


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    clear_caches()


def indexed(n: int = 600, classes: int = 6) -> Dataset:
    """A dataset whose every sample holds its own index, to trace where it lands."""
    x = np.arange(n, dtype=np.float32).reshape(n, 1)
    y = np.arange(n, dtype=np.int64) % classes
    return Dataset("indexed", x, y, classes, (1,))


def ids(x: np.ndarray) -> set[int]:
    return set(x[:, 0].astype(int).tolist())


def _old_split(
    ds: Dataset, test: float, val: float, split_seed: int, max_samples: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Today's fixed split, written out with sklearn directly (the pre-1.1 algorithm)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ds.y))
    if max_samples is not None and max_samples < len(idx):
        _, idx = train_test_split(
            idx, test_size=max_samples, stratify=ds.y[idx], random_state=split_seed
        )
    rest, test_idx = train_test_split(
        idx, test_size=round(len(idx) * test), stratify=ds.y[idx], random_state=split_seed
    )
    train_idx, val_idx = train_test_split(
        rest, test_size=round(len(idx) * val), stratify=ds.y[rest], random_state=split_seed
    )
    return train_idx, val_idx, test_idx


@pytest.mark.parametrize("max_samples", [None, 300])
def test_fixed_reproduces_the_old_split_exactly(max_samples: int | None) -> None:
    ds = indexed()
    train_idx, val_idx, test_idx = _old_split(ds, 0.2, 0.1, 7, max_samples)
    for probe_size in (0, 40):
        clear_caches()
        s = make_split(
            ds,
            test_split=0.2,
            validation_split=0.1,
            split_seed=7,
            max_samples=max_samples,
            probe_size=probe_size,
        )
        np.testing.assert_array_equal(s.x_train[:, 0].astype(int), train_idx)
        np.testing.assert_array_equal(s.x_val[:, 0].astype(int), val_idx)
        np.testing.assert_array_equal(s.x_test[:, 0].astype(int), test_idx)
        np.testing.assert_array_equal(s.test_index, test_idx)
        assert s.test_index.dtype == np.int64
    # The seed does not change a fixed split.
    a = make_split(ds, test_split=0.2, validation_split=0.1, split_seed=7, seed=0)
    b = make_split(ds, test_split=0.2, validation_split=0.1, split_seed=7, seed=5)
    assert a is b


def test_fixed_probe_is_a_stratified_subset_of_the_test_set() -> None:
    ds = indexed()
    s = make_split(ds, test_split=0.2, validation_split=0.1, split_seed=0, probe_size=60)
    assert len(s.probe_index) == 60
    assert set(s.probe_index.tolist()) <= set(s.test_index.tolist())
    np.testing.assert_array_equal(s.x_probe[:, 0].astype(int), s.probe_index)
    np.testing.assert_array_equal(s.y_probe, s.probe_index % 6)
    assert np.bincount(s.y_probe, minlength=6).tolist() == [10] * 6
    assert not ids(s.x_probe) & (ids(s.x_train) | ids(s.x_val))
    # Asking for more than the test set gives the whole test set.
    big = make_split(ds, test_split=0.2, validation_split=0.1, split_seed=0, probe_size=10_000)
    assert sorted(big.probe_index.tolist()) == sorted(big.test_index.tolist())


def test_no_probe_by_default_has_the_right_shapes() -> None:
    s = make_split(indexed(), test_split=0.2, validation_split=0.1, split_seed=0)
    assert s.x_probe.shape == (0, 1)
    assert s.y_probe.shape == (0,)
    assert s.probe_index.shape == (0,)
    assert s.probe_index.dtype == np.int64
    s2 = make_split(
        indexed(), test_split=0.2, validation_split=0.1, split_seed=0, design="per_seed"
    )
    assert s2.x_probe.shape == (0, 1)


@pytest.mark.parametrize("max_samples", [None, 300])
def test_per_seed_splits_are_disjoint_stratified_and_differ_by_seed(
    max_samples: int | None,
) -> None:
    ds = indexed()
    tests = []
    pools = []
    for seed in range(4):
        s = make_split(
            ds,
            test_split=0.25,
            validation_split=0.15,
            split_seed=3,
            max_samples=max_samples,
            design="per_seed",
            seed=seed,
            probe_size=48,
        )
        tr, va, te, pr = ids(s.x_train), ids(s.x_val), ids(s.x_test), ids(s.x_probe)
        assert not tr & va
        assert not tr & te
        assert not va & te
        assert not pr & (tr | va | te)
        pool = len(ds.y) if max_samples is None else max_samples
        assert len(tr) + len(va) + len(te) + len(pr) == pool
        rest = pool - 48
        assert (len(te), len(va)) == (round(rest * 0.25), round(rest * 0.15))
        for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
            np.testing.assert_array_equal(x[:, 0].astype(int) % 6, y)
            counts = np.bincount(y, minlength=6)
            assert counts.max() - counts.min() <= 1, counts
        # Example ids are the dataset row of each example.
        np.testing.assert_array_equal(s.test_index, s.x_test[:, 0].astype(int))
        np.testing.assert_array_equal(s.probe_index, s.x_probe[:, 0].astype(int))
        tests.append(te)
        pools.append(tr | va | te | pr)
    assert len({frozenset(t) for t in tests}) == 4, "each seed draws its own test set"
    assert all(p == pools[0] for p in pools), "the pool is the same for every seed"


def test_per_seed_probe_is_the_same_for_every_seed_and_never_trained_on() -> None:
    ds = indexed()
    probes = []
    seen_in_training: set[int] = set()
    for seed in range(6):
        s = make_split(
            ds,
            test_split=0.2,
            validation_split=0.1,
            split_seed=0,
            design="per_seed",
            seed=seed,
            probe_size=30,
        )
        probes.append(s.probe_index.tolist())
        seen_in_training |= ids(s.x_train) | ids(s.x_val)
        assert np.bincount(s.y_probe, minlength=6).tolist() == [5] * 6
    assert all(p == probes[0] for p in probes)
    assert not set(probes[0]) & seen_in_training
    # A larger probe is capped at the test fraction of the pool.
    s = make_split(
        ds, test_split=0.2, validation_split=0.1, split_seed=0, design="per_seed", probe_size=9999
    )
    assert len(s.probe_index) == 120


def test_per_seed_is_reproducible_and_depends_on_split_seed() -> None:
    ds = indexed()
    split = partial(make_split, ds, test_split=0.2, validation_split=0.1, design="per_seed", seed=2)
    a = split(split_seed=0)
    clear_caches()
    b = split(split_seed=0)
    assert a is not b
    for name in ("x_train", "y_train", "x_val", "x_test", "test_index", "probe_index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = split(split_seed=1)
    assert not np.array_equal(np.sort(a.test_index), np.sort(c.test_index))


def test_ids_are_stable_across_designs_and_seeds() -> None:
    """The same dataset row has the same id whichever design or seed put it in a test set."""
    ds = indexed()
    rows: dict[int, float] = {}
    for design in ("fixed", "per_seed"):
        for seed in range(3):
            s = make_split(
                ds,
                test_split=0.2,
                validation_split=0.1,
                split_seed=0,
                design=design,
                seed=seed,
                probe_size=12,
            )
            for i, x in zip(s.test_index.tolist(), s.x_test[:, 0].tolist(), strict=True):
                assert rows.setdefault(i, x) == x
                np.testing.assert_array_equal(ds.x[i], s.x_test[s.test_index.tolist().index(i)])


def test_provided_test_set_ids_follow_the_pool() -> None:
    base = indexed()
    ds = Dataset("t", base.x, base.y, 6, (1,), x_test=base.x[:12] + 1000, y_test=base.y[:12])
    s = make_split(ds, test_split=0.5, validation_split=0.1, split_seed=0, probe_size=6)
    np.testing.assert_array_equal(s.test_index, 600 + np.arange(12))
    assert set(s.probe_index.tolist()) <= set(range(600, 612))
    p = make_split(
        ds, test_split=0.2, validation_split=0.1, split_seed=0, design="per_seed", seed=1
    )
    for i, x in zip(p.test_index.tolist(), p.x_test[:, 0].tolist(), strict=True):
        assert x == (i if i < 600 else i - 600 + 1000)


def test_per_seed_too_small_is_a_clear_error() -> None:
    with pytest.raises(DatasetError, match="stratified test split"):
        make_split(
            indexed(),
            test_split=0.2,
            validation_split=0.1,
            split_seed=0,
            max_samples=20,
            design="per_seed",
        )


def test_unknown_design_is_refused() -> None:
    with pytest.raises(DatasetError, match="split design"):
        make_split(indexed(), test_split=0.2, validation_split=0.1, split_seed=0, design="x")


def test_split_built_by_hand_numbers_its_test_rows() -> None:
    x = np.zeros((5, 2, 2, 1), dtype=np.float32)
    y = np.arange(5)
    s = Split(x, y, x[:0], y[:0], x, y)
    np.testing.assert_array_equal(s.test_index, np.arange(5))
    assert s.x_probe.shape == (0, 2, 2, 1)


def test_only_the_newest_per_seed_splits_stay_cached() -> None:
    """Each split is a copy of the data: a worker keeps two per-seed ones, not one per seed."""
    ds = indexed()
    per_seed = partial(
        make_split, ds, test_split=0.2, validation_split=0.1, split_seed=0, design="per_seed"
    )
    splits = [per_seed(seed=s) for s in range(4)]
    assert per_seed(seed=3) is splits[3]
    assert per_seed(seed=2) is splits[2]
    assert per_seed(seed=0) is not splits[0]
    fixed = make_split(ds, test_split=0.2, validation_split=0.1, split_seed=0)
    for s in range(5, 9):
        per_seed(seed=s)
    assert make_split(ds, test_split=0.2, validation_split=0.1, split_seed=0) is fixed
