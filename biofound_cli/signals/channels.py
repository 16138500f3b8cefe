"""Channel names: one spelling for every electrode, and picking channels by name.

EDF headers spell the same electrode in many ways: ``EEG FP1-REF``, ``EEG Fp1-LE``, ``Fp1.``,
``FP1``. The new 10-20 names T7, T8, P7, P8 are the old T3, T4, T5, T6. Everything in
biofound uses the *normalised* name: upper case, no ``EEG`` prefix, no reference suffix, old
10-20 names (the TCP montage is defined with them).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from biofound_cli.errors import UnusableRecording

EAR_ELECTRODES = ("A1", "A2")
"""The ear electrodes, which some recordings lack (the ``tcp20`` montage does without them)."""

# New 10-20 name -> old name (the TCP montage and the TUH headers use the old ones).
NEW_TO_OLD_1020 = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}

_PREFIX = re.compile(r"^(EEG|EMG|ECG|EOG)[\s_:-]+")
_REFERENCE_SUFFIX = re.compile(r"-(REF|LE|AR|AVG|A1A2|M1M2)$")


def normalize_channel_name(name: str) -> str:
    """The canonical spelling of one referential channel name.

    Parameters
    ----------
    name : str
        A name as found in a file header, e.g. ``"EEG Fp1-REF"``, ``"t7-LE"``, ``"Fz.."``.

    Returns
    -------
    str
        Upper case, without the modality prefix, the reference suffix or trailing dots, with
        T7/T8/P7/P8 mapped to T3/T4/T5/T6 (e.g. ``"FP1"``, ``"T3"``, ``"FZ"``).
    """
    text = name.strip().upper()
    text = _PREFIX.sub("", text)
    text = text.rstrip(".").strip()
    text = _REFERENCE_SUFFIX.sub("", text)
    return NEW_TO_OLD_1020.get(text, text)


def normalize_channel_names(ch_names: Sequence[str]) -> list[str]:
    """Normalise every name; the first of several names that normalise alike keeps the name.

    Later duplicates get a ``#2``, ``#3`` suffix so that picking by name stays unambiguous.

    Parameters
    ----------
    ch_names : sequence of str
        Channel names in any spelling, in the order of the data's rows.
    """
    seen: Counter[str] = Counter()
    result = []
    for name in ch_names:
        normal = normalize_channel_name(name)
        seen[normal] += 1
        result.append(normal if seen[normal] == 1 else f"{normal}#{seen[normal]}")
    return result


def repeated_channels(names: Sequence[str]) -> dict[str, list[str]]:
    """The channels a list names more than once once normalised (``C3`` and ``c3``, ``T3`` and ``T7``).

    Parameters
    ----------
    names : sequence of str
        Channel names in any spelling, e.g. a recipe's ``channels``.

    Returns
    -------
    dict
        Normalised name -> the spellings that name it, in list order; only names used more than once.
    """
    spellings: dict[str, list[str]] = {}
    for name in names:
        spellings.setdefault(normalize_channel_name(name), []).append(name)
    return {normal: spelled for normal, spelled in spellings.items() if len(spelled) > 1}


def channel_rows(ch_names: Sequence[str], wanted: Sequence[str], *, source: str = "recording") -> list[int]:
    """Row indices of the ``wanted`` channels, in that order, looked up by normalised name.

    Parameters
    ----------
    ch_names : sequence of str
        Names of the rows of the data, in any spelling.
    wanted : sequence of str
        Names to pick, in any spelling; the result follows this order.
    source : str
        The file the data came from, named in the error.

    Raises
    ------
    DataError
        If any wanted channel is missing; the message lists all of them.
    """
    index = {name: row for row, name in enumerate(normalize_channel_names(ch_names))}
    wanted_normal = [normalize_channel_name(name) for name in wanted]
    missing = [name for name in wanted_normal if name not in index]
    if missing:
        fix = (
            'use preprocess.montage = "tcp20" for recordings without ear electrodes'
            if set(missing) <= set(EAR_ELECTRODES)
            else "set preprocess.channels (or preprocess.montage) to channels it has"
        )
        raise UnusableRecording(
            f"{source}: missing required channel(s) {', '.join(missing)}; "
            f"the file has {', '.join(normalize_channel_names(ch_names)) or 'no channels'}; {fix}, or leave this file out",
            "missing_channels",
        )
    return [index[name] for name in wanted_normal]
