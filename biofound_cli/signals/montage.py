"""Bipolar montages: the one canonical TCP order, used everywhere and stored in every file.

The order is the NEDC temporal central parasagittal (TCP) order that the TUH annotation files
and the published FEMBA/LUNA fine-tuning data use, with A1-T3 at index 8 and T4-A2 at 13.
Upstream's pretraining script put the two ear channels last instead; biofound does not, so
pretraining and fine-tuning see the same order. The 20-channel variant (for recordings without
ear electrodes, TUH ``03_tcp_ar_a`` / ``04_tcp_le_a``) is the same list without the two ear
channels.
"""

from __future__ import annotations

from typing import Sequence

from biofound_cli.signals.channels import EAR_ELECTRODES, channel_rows, normalize_channel_name

TCP_PAIRS: tuple[tuple[str, str], ...] = (
    ("FP1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1"),
    ("FP2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2"),
    ("A1", "T3"), ("T3", "C3"), ("C3", "CZ"), ("CZ", "C4"), ("C4", "T4"), ("T4", "A2"),
    ("FP1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"),
    ("FP2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
)  # fmt: skip
"""The 22 TCP pairs (anode, cathode) in NEDC order."""

TCP20_PAIRS: tuple[tuple[str, str], ...] = tuple(pair for pair in TCP_PAIRS if not set(pair) & set(EAR_ELECTRODES))
"""The 20 TCP pairs without ear electrodes, in the same relative order."""

MONTAGES: dict[str, tuple[tuple[str, str], ...]] = {"tcp": TCP_PAIRS, "tcp20": TCP20_PAIRS}
"""Montage names accepted by the ``montage`` recipe field (``"none"`` keeps referential channels)."""


def bipolar_names(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Channel names of a bipolar montage, e.g. ``["FP1-F7", "F7-T3", ...]``.

    Parameters
    ----------
    pairs : sequence of (str, str)
        The ``(anode, cathode)`` electrode pairs of the montage.
    """
    return [f"{anode}-{cathode}" for anode, cathode in pairs]


def montage_electrodes(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """The referential electrodes a montage needs, in first-use order.

    Parameters
    ----------
    pairs : sequence of (str, str)
        The ``(anode, cathode)`` electrode pairs of the montage.
    """
    # dict keys keep the first occurrence of each name, in order.
    return list(dict.fromkeys(name for pair in pairs for name in pair))


def electrodes_not_listed(channels: Sequence[str], montage: str) -> list[str]:
    """The electrodes of a named montage that a ``channels`` list leaves out, in montage order.

    Parameters
    ----------
    channels : sequence of str
        Referential channel names in any spelling (a recipe's ``channels``).
    montage : str
        A key of ``MONTAGES``.
    """
    listed = {normalize_channel_name(name) for name in channels}
    return [name for name in montage_electrodes(MONTAGES[montage]) if name not in listed]


def channels_lack_message(missing: Sequence[str], montage: str) -> str:
    """What to say when ``preprocess.channels`` leaves out electrodes a montage needs.

    Parameters
    ----------
    missing : sequence of str
        The electrodes left out, from :func:`electrodes_not_listed`.
    montage : str
        The montage that needs them.
    """
    # The third fix is for recordings that lack the electrodes (LUNA on another montage): they can neither add
    # them nor keep a montage that needs them.
    return (
        f"preprocess.channels lacks {', '.join(missing)}, which montage {montage} needs; "
        "add them to preprocess.channels, leave it unset to keep the montage's electrodes, or, for recordings "
        'without them, set preprocess.montage = "none" to keep the listed channels referential'
    )


def bipolar_rows(ch_names: Sequence[str], montage: str, *, source: str = "recording") -> list[tuple[int, int]]:
    """``(anode_row, cathode_row)`` in ``ch_names`` for every pair of a named montage, in montage order.

    Parameters
    ----------
    ch_names : sequence of str
        Names of the rows of the recording, in any spelling.
    montage : str
        A key of ``MONTAGES`` (e.g. ``tcp``).
    source : str
        The file the recording came from, named in the error.

    Raises
    ------
    DataError
        If an electrode of the montage is missing; the message lists all of them.
    """
    pairs = MONTAGES[montage]
    electrodes = montage_electrodes(pairs)
    row = dict(zip(electrodes, channel_rows(ch_names, electrodes, source=source), strict=True))
    return [(row[anode], row[cathode]) for anode, cathode in pairs]
