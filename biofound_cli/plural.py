"""A count and its noun, in the number the count asks for: ``1 recording``, ``3 recordings``.

Messages built as ``f"{n} recordings"`` said "1 recordings found"; every user-facing count
with a noun goes through :func:`counted` instead.
"""

from __future__ import annotations


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
    return f"{n} {noun if n == 1 else many or noun + 's'}"
