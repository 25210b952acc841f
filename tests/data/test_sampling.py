from collections import Counter

import pytest

from bpgrid.data.sampling import sample_per_class

GROUPS = {f"c{i}": [f"c{i}/{j}" for j in range(5 + i)] for i in range(10)}


def draw(seed=0, **options):
    settings = {"n_classes": 4, "n_train": 3, "n_test": 2, "seed": seed, "where": "here"}
    return sample_per_class(GROUPS, **(settings | options))


def test_counts_labels_and_no_overlap():
    sample = draw()
    assert len(sample.classes) == 4 and sample.classes == sorted(sample.classes)
    assert Counter(label for _, label in sample.train) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert Counter(label for _, label in sample.test) == {0: 2, 1: 2, 2: 2, 3: 2}
    for item, label in sample.train + sample.test:
        assert item.startswith(sample.classes[label] + "/")
    assert not {i for i, _ in sample.train} & {i for i, _ in sample.test}
    assert sample.info()["per_class"] == {c: [3, 2] for c in sample.classes}


def test_seeded():
    assert draw(seed=5) == draw(seed=5)
    assert len({tuple(draw(seed=s).classes) for s in range(6)}) > 1


def test_all_classes_when_n_classes_is_none():
    sample = draw(n_classes=None)
    assert sample.classes == sorted(GROUPS)


def test_short_classes_are_skipped_when_sampling_and_errors_when_all_are_used():
    sample = draw(n_classes=3, n_train=8, n_test=4)  # only c7, c8, c9 have 12+ items
    assert sample.classes == ["c7", "c8", "c9"]
    with pytest.raises(ValueError, match=r"here: class 'c0' has 5 items, 12 needed \(and 6 more"):
        draw(n_classes=None, n_train=8, n_test=4)
    with pytest.raises(ValueError, match=r"4 classes needed, 3 of 10 have enough"):
        draw(n_classes=4, n_train=8, n_test=4)
    with pytest.raises(ValueError, match=r"11 classes needed, 10 of 10 have enough"):
        draw(n_classes=11)


def test_allow_short_test_gives_the_rest_to_test():
    counts = draw(n_classes=None, n_train=4, n_test=5, allow_short_test=True).info()["per_class"]
    assert counts["c0"] == [4, 1] and counts["c1"] == [4, 2] and counts["c9"] == [4, 5]
    with pytest.raises(ValueError, match=r"class 'c0' has 5 items, 6 needed"):
        draw(n_classes=None, n_train=5, n_test=5, allow_short_test=True)
