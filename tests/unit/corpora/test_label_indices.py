"""``label_indices``: how every corpus turns the labels it reads into class numbers."""

from __future__ import annotations

import pytest

from biofound_cli.corpora.base import label_indices
from biofound_cli.errors import UsageError


def test_whole_numbers_are_the_labels_themselves() -> None:
    assert label_indices(["2", " 0", 1], ("a", "b", "c"), "x.csv") == ({"2": 2, " 0": 0, 1: 1}, ("a", "b", "c"))


def test_names_are_numbered_in_sorted_order_without_label_names() -> None:
    indices, names = label_indices(["rest", "fist", "rest"], (), "x.csv")
    assert names == ("fist", "rest") and indices == {"rest": 1, "fist": 0}


def test_names_follow_the_label_names_given() -> None:
    indices, names = label_indices(["open", "fist"], ("rest", "fist", "open"), "x.csv")
    assert names == ("rest", "fist", "open") and indices == {"open": 2, "fist": 1}


def test_a_name_missing_from_label_names_is_named_with_its_source() -> None:
    with pytest.raises(UsageError, match=r"labels\.csv: labels pinch, wave are not in preprocess.options.label_names"):
        label_indices(["wave", "fist", "pinch"], ("rest", "fist"), "labels.csv")
