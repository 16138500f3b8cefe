"""``counted`` and ``plural``: a count and its noun, or the noun alone, in the number the count asks for."""

from __future__ import annotations

import pytest

from biofound_cli.plural import counted


@pytest.mark.parametrize(("n", "expected"), [(0, "0 recordings"), (1, "1 recording"), (2, "2 recordings"), (-1, "-1 recordings")])
def test_the_noun_is_singular_for_one_only(n, expected):
    assert counted(n, "recording") == expected


def test_an_irregular_plural_is_given():
    assert counted(1, "class", "classes") == "1 class" and counted(3, "class", "classes") == "3 classes"


def test_the_noun_alone_is_in_the_number_of_what_it_lists():
    # journey28: "missing required channel(s) O2" where a message names what it counts.
    from biofound_cli.plural import plural

    assert (plural(1, "channel"), plural(2, "channel"), plural(0, "class", "classes")) == ("channel", "channels", "classes")
