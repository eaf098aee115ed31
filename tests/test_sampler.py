"""EpochSampler: every biopsied exam plus as many fresh biopsy-free ones per epoch, each
drawn exam's breasts together (the default); the breast-level option; shrunken epochs."""

from __future__ import annotations

import numpy as np
import pytest

from mvlib.data.sampler import EpochSampler


def _split(n_pos: int, n_neg: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled, non-contiguous data set indices with n_pos biopsied among them."""
    rng = np.random.default_rng(seed)
    indices = rng.choice(10_000, size=n_pos + n_neg, replace=False)
    biopsied = np.zeros(n_pos + n_neg, dtype=bool)
    biopsied[rng.choice(n_pos + n_neg, size=n_pos, replace=False)] = True
    return indices, biopsied


@pytest.mark.parametrize("epoch", [0, 1, 7])
def test_every_biopsied_index_once_and_equal_number_of_negatives(epoch):
    indices, biopsied = _split(n_pos=12, n_neg=50)
    pos, neg = set(indices[biopsied].tolist()), set(indices[~biopsied].tolist())
    drawn = EpochSampler(indices, biopsied, unit="breast", seed=3).epoch_indices(epoch).tolist()
    drawn_pos = [i for i in drawn if i in pos]
    drawn_neg = [i for i in drawn if i in neg]
    assert len(drawn_pos) + len(drawn_neg) == len(drawn)  # nothing from outside the split
    assert sorted(drawn_pos) == sorted(pos)  # every biopsied index, exactly once
    assert len(drawn_neg) == len(pos)
    assert len(set(drawn_neg)) == len(drawn_neg)  # negatives drawn without replacement


def test_fewer_negatives_than_positives_uses_all_negatives():
    indices, biopsied = _split(n_pos=20, n_neg=6)
    drawn = EpochSampler(indices, biopsied, unit="breast", seed=0).epoch_indices(0)
    assert sorted(drawn.tolist()) == sorted(indices.tolist())


def test_no_negatives_gives_just_the_positives():
    indices = np.array([5, 9, 2])
    drawn = EpochSampler(indices, np.ones(3, dtype=bool), unit="breast", seed=0).epoch_indices(4)
    assert sorted(drawn.tolist()) == [2, 5, 9]


def test_negatives_are_drawn_afresh_each_epoch():
    indices, biopsied = _split(n_pos=10, n_neg=200)
    neg = set(indices[~biopsied].tolist())
    sampler = EpochSampler(indices, biopsied, unit="breast", seed=1)
    negative_sets = [frozenset(i for i in sampler.epoch_indices(e).tolist() if i in neg)
                     for e in range(5)]
    # 10 of 200: two epochs drawing the same set is astronomically unlikely.
    assert len(set(negative_sets)) == 5
    # ... and over several epochs many different negatives get seen.
    assert len(frozenset().union(*negative_sets)) > 30


def test_order_is_shuffled_not_positives_first():
    indices, biopsied = _split(n_pos=20, n_neg=100)
    pos = set(indices[biopsied].tolist())
    drawn = EpochSampler(indices, biopsied, unit="breast", seed=2).epoch_indices(0).tolist()
    assert [i in pos for i in drawn] != [True] * 20 + [False] * 20


def test_same_seed_and_epoch_reproduce_the_same_order():
    indices, biopsied = _split(n_pos=15, n_neg=60)
    a = EpochSampler(indices, biopsied, unit="breast", seed=42)
    b = EpochSampler(indices.copy(), biopsied.copy(), unit="breast", seed=42)
    np.testing.assert_array_equal(a.epoch_indices(3), b.epoch_indices(3))
    # Calling other epochs in between does not change the draw (it depends only on seed, epoch).
    a.epoch_indices(0)
    a.epoch_indices(9)
    np.testing.assert_array_equal(a.epoch_indices(3), b.epoch_indices(3))
    # A different seed or a different epoch gives a different order.
    c = EpochSampler(indices, biopsied, unit="breast", seed=43)
    assert not np.array_equal(a.epoch_indices(3), c.epoch_indices(3))
    assert not np.array_equal(a.epoch_indices(3), a.epoch_indices(4))


def test_set_epoch_then_iter_agrees_with_epoch_indices():
    indices, biopsied = _split(n_pos=8, n_neg=40)
    sampler = EpochSampler(indices, biopsied, unit="breast", seed=5)
    assert list(sampler) == sampler.epoch_indices(0).tolist()  # epoch 0 by default
    for epoch in (1, 2, 10):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        assert drawn == sampler.epoch_indices(epoch).tolist()
        assert all(type(i) is int for i in drawn)


@pytest.mark.parametrize(("n_pos", "n_neg"), [(8, 40), (20, 6), (5, 5), (0, 10), (4, 0)])
def test_len_matches_what_iter_yields(n_pos, n_neg):
    indices, biopsied = _split(n_pos, n_neg)
    sampler = EpochSampler(indices, biopsied, unit="breast", seed=0)
    assert len(sampler) == n_pos + min(n_pos, n_neg)
    sampler.set_epoch(3)
    assert len(list(sampler)) == len(sampler)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="same length"):
        EpochSampler(np.arange(5), np.ones(4, dtype=bool), seed=0, unit="breast")
    with pytest.raises(ValueError, match="exam key"):
        EpochSampler(np.arange(4), np.ones(4, dtype=bool), seed=0)  # exams missing
    with pytest.raises(ValueError, match="unit"):
        EpochSampler(np.arange(4), np.ones(4, dtype=bool), seed=0, unit="patient")
    with pytest.raises(ValueError, match="fraction"):
        EpochSampler(np.arange(4), np.ones(4, dtype=bool), seed=0, unit="breast", fraction=0)


def _exams(n_exams: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two breasts per exam (a few exams with one), shuffled data set indices; each breast
    biopsied with probability 0.2."""
    rng = np.random.default_rng(seed)
    keys = np.repeat([f"p{i}/e0" for i in range(n_exams)], 2)
    keys = np.delete(keys, [1, 7])  # exams 0 and 3 have one breast only
    indices = rng.choice(10_000, size=len(keys), replace=False)
    biopsied = rng.random(len(keys)) < 0.2
    return indices, biopsied, keys


@pytest.mark.parametrize("epoch", [0, 3])
def test_an_exams_breasts_are_drawn_together(epoch):
    indices, biopsied, keys = _exams(60)
    exam_of = dict(zip(indices.tolist(), keys.tolist(), strict=True))
    drawn = EpochSampler(indices, biopsied, seed=1, exams=keys).epoch_indices(epoch)
    assert len(set(drawn.tolist())) == len(drawn)
    drawn_exams = {exam_of[i] for i in drawn.tolist()}
    for exam in drawn_exams:  # every breast of every drawn exam, not one side alone
        members = set(indices[keys == exam].tolist())
        assert members <= set(drawn.tolist())
    positive = {k for k, b in zip(keys, biopsied, strict=True) if b}
    # Every biopsied exam, with its biopsy-free other breast; as many biopsy-free exams.
    assert positive <= drawn_exams
    assert len(drawn_exams - positive) == min(len(positive), len(set(keys)) - len(positive))
    # So an epoch holds biopsy-free breasts of biopsied exams: fewer than half biopsied.
    assert biopsied[np.isin(indices, drawn)].mean() < 0.5


def test_exam_epochs_differ_from_breast_epochs():
    indices, biopsied, keys = _exams(60)
    by_exam = EpochSampler(indices, biopsied, seed=1, exams=keys)
    by_breast = EpochSampler(indices, biopsied, seed=1, exams=keys, unit="breast")
    assert len(by_exam) > len(by_breast) == 2 * biopsied.sum()


@pytest.mark.parametrize("unit", ["exam", "breast"])
def test_shrunken_epochs_keep_a_fraction_of_positives_and_of_negatives(unit):
    indices, biopsied, keys = _exams(400, seed=2)
    full = EpochSampler(indices, biopsied, seed=4, exams=keys, unit=unit)
    tenth = EpochSampler(indices, biopsied, seed=4, exams=keys, unit=unit, fraction=0.1)
    assert (tenth.n_pos, tenth.n_neg) == (round(0.1 * full.n_pos), round(0.1 * full.n_neg))
    # The paper's 10% of 970 exams' worth: within one unit of a tenth of each class.
    assert abs(tenth.n_pos - len(full.positives) / 10) <= 0.5
    assert abs(tenth.n_neg - min(len(full.positives), len(full.negatives)) / 10) <= 0.5
    units = tenth.epoch_units(0)
    assert np.isin(units, tenth.positives).sum() == tenth.n_pos
    assert np.isin(units, tenth.negatives).sum() == tenth.n_neg
    # Positive units are sampled afresh too when the epoch is shrunken.
    assert not np.array_equal(np.sort(units), np.sort(tenth.epoch_units(1)))
