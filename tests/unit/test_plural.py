"""``counted``: a count and its noun in the number the count asks for."""

from __future__ import annotations

import pytest

from biofound_cli.plural import counted


@pytest.mark.parametrize(("n", "expected"), [(0, "0 recordings"), (1, "1 recording"), (2, "2 recordings"), (-1, "-1 recordings")])
def test_the_noun_is_singular_for_one_only(n, expected):
    assert counted(n, "recording") == expected


def test_an_irregular_plural_is_given():
    assert counted(1, "class", "classes") == "1 class" and counted(3, "class", "classes") == "3 classes"
