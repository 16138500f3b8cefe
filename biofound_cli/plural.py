"""Counts and lists in messages: ``1 recording``, ``3 recordings``; ``channels O1, O2``; ``a.edf, b.edf and 4 more``.

Messages built as ``f"{n} recordings"`` said "1 recordings found"; every user-facing count
with a noun goes through :func:`counted` instead. A message that names what it is about names
a few and counts the rest, in one wording: :func:`first_few`.
"""

from __future__ import annotations

from typing import Sequence


def counted(n: int, noun: str, many: str | None = None) -> str:
    """``n`` and ``noun``, the noun in the plural unless ``n`` is 1.

    Parameters
    ----------
    n : int
        The count.
    noun : str
        The noun in the singular, e.g. ``"recording"``.
    many : str | None
        Its plural where it is not ``noun + "s"`` (``"classes"``, ``"shards' values"``).

    Examples
    --------
    >>> counted(1, "recording"), counted(0, "recording"), counted(2, "class", "classes")
    ('1 recording', '0 recordings', '2 classes')
    """
    return f"{n} {plural(n, noun, many)}"


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``noun`` in the number of ``n``, without the count: for a message that names what it counts.

    Parameters
    ----------
    n : int
        How many there are (or the length of the list named after the noun).
    noun : str
        The noun in the singular, e.g. ``"channel"``.
    many : str | None
        Its plural where it is not ``noun + "s"``.

    Examples
    --------
    >>> f"missing {plural(1, 'channel')} O2", f"missing {plural(2, 'channel')} O1, O2"
    ('missing channel O2', 'missing channels O1, O2')
    """
    return noun if n == 1 else many or noun + "s"


def first_few(names: Sequence[str], limit: int) -> str:
    """The first ``limit`` of ``names``, comma-separated, and how many more there are.

    Parameters
    ----------
    names : sequence of str
        What the message names (files, channels, keys), in the order to name them.
    limit : int
        How many are named; the rest are counted.

    Examples
    --------
    >>> first_few(["a.edf", "b.edf"], 3), first_few(["a", "b", "c", "d", "e"], 3)
    ('a.edf, b.edf', 'a, b, c and 2 more')
    """
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
