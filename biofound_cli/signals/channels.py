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
from biofound_cli.plural import plural

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


def same_channels(given: Sequence[str] | None, ch_names: Sequence[str]) -> bool:
    """Whether ``given`` names the channels ``ch_names`` does, in that order, in any spelling.

    Parameters
    ----------
    given : sequence of str | None
        Channel names in any spelling (``None``: not known, so not the same).
    ch_names : sequence of str
        The channels to compare with, e.g. those a model takes.
    """
    return given is not None and [normalize_channel_name(name) for name in given] == [
        normalize_channel_name(name) for name in ch_names
    ]


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


def numbered_advice(names_option: str) -> str:
    """What to do about channels a reader numbered because it read no name from the file (a CSV without a header row).

    Parameters
    ----------
    names_option : str
        The option that names them, as a recipe and ``--set`` spell it (``preprocess.options.channel_names``).
    """
    return f"no channel name was read from the file, so they are numbered: name them in file order with {names_option}"


def channel_rows(
    ch_names: Sequence[str], wanted: Sequence[str] | None, *, source: str = "recording", names_option: str | None = None
) -> list[int]:
    """Row indices of the ``wanted`` channels, in that order, looked up by normalised name.

    A wanted name spelled exactly as one channel of the file (``EEG FP1-REF``) takes that channel;
    any other spelling takes the one channel whose normalised name it has. Two channels of the
    file with that normalised name (``Fp1`` and ``EEG FP1-REF``) are ambiguous: the file is
    refused rather than one of them taken quietly.

    Parameters
    ----------
    ch_names : sequence of str
        Names of the rows of the data, in any spelling.
    wanted : sequence of str | None
        Names to pick, in any spelling; the result follows this order. ``None`` picks every row
        (and refuses two rows with one normalised name, which would name one electrode twice).
    source : str
        The file the data came from, named in the error.
    names_option : str | None
        The option that names the channels where the reader numbered them (:func:`numbered_advice`); the
        advice for a missing channel names it first.

    Raises
    ------
    UnusableRecording
        (reason ``missing_channels``) if any wanted channel is missing, listing all of them;
        (reason ``ambiguous_channels``) if a picked name belongs to two channels, naming both.
    """
    normals = [normalize_channel_name(name) for name in ch_names]
    if wanted is None:
        for normal in dict.fromkeys(normals):
            _refuse_ambiguous(ch_names, normals, normal, source, listed=False)
        return list(range(len(ch_names)))
    rows: list[int] = []
    missing: list[str] = []
    for name in wanted:
        spelled = [row for row, raw in enumerate(ch_names) if raw.strip() == name.strip()]
        if len(spelled) == 1:
            rows.append(spelled[0])
            continue
        normal = normalize_channel_name(name)
        if normal not in normals:
            missing.append(normal)
            continue
        _refuse_ambiguous(ch_names, normals, normal, source, listed=True)
        rows.append(normals.index(normal))
    if missing:
        fix = (
            'use preprocess.montage = "tcp20" for recordings without ear electrodes'
            if set(missing) <= set(EAR_ELECTRODES)
            else "set preprocess.channels (or preprocess.montage) to channels it has"
        )
        if names_option is not None:
            fix = f"{numbered_advice(names_option)}, or {fix}"
        raise UnusableRecording(
            f"{source}: missing required {plural(len(missing), 'channel')} {', '.join(missing)}; "
            f"the file has {', '.join(normalize_channel_names(ch_names)) or 'no channels'}; {fix}, or leave this file out",
            "missing_channels",
        )
    return rows


def _refuse_ambiguous(ch_names: Sequence[str], normals: Sequence[str], normal: str, source: str, *, listed: bool) -> None:
    """Raise ``ambiguous_channels`` when more than one of ``ch_names`` normalises to ``normal``."""
    spellings = [raw for raw, name in zip(ch_names, normals, strict=True) if name == normal]
    if len(spellings) < 2:
        return
    both = " and ".join(repr(raw) for raw in spellings)
    pick = (
        "list the one to use by its exact name in preprocess.channels"
        if listed
        else "set preprocess.channels to the channels to keep, naming that one exactly"
    )
    raise UnusableRecording(
        f"{source}: channels {both} both name the electrode {normal}; {pick}, or rename or drop the other in the recording",
        "ambiguous_channels",
    )
