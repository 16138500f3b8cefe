"""Electrode names and positions: LUNA's channel vocabulary and 3-D coordinates of the 10-05 system.

LUNA places every channel in space (a NeRF encoding of its xyz position) and, when pre-training,
also gives it a learned embedding indexed by name. Both lookups live here, on names only, so the
model side receives plain tensors.

The positions come from the package file ``data/electrodes.json``: MNE's ``standard_1005``
montage moved to the head frame (metres), frozen once because MNE drops that montage in 1.14.
Names match case-insensitively; a bipolar channel ``"A-B"`` sits at the midpoint of A and B.

Examples
--------
>>> channel_index(["FP1-F7", "C3"])
[47, 5]
>>> channel_positions(["Cz", "C3-CZ"]).shape
(2, 3)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources

import numpy as np

from biofound_cli.errors import DataError


@functools.cache
def _table() -> dict:
    text = resources.files("biofound_cli").joinpath("data", "electrodes.json").read_text("utf-8")
    return json.loads(text)


CHANNEL_VOCABULARY: tuple[str, ...] = tuple(_table()["vocabulary"])
"""The 90 channel names of LUNA's channel embedding; a name's index is its position here."""

ELECTRODE_ALIASES: dict[str, str] = dict(_table()["aliases"])
"""Names used by some data sets for electrodes the 10-05 table spells otherwise (SEED's CB1/CB2)."""

_GIVE_POSITION = (
    "LUNA places every channel by its electrode position: leave such channels out with preprocess.channels (the "
    "channels to keep; ECG, EOG and EMG have no place on the scalp), or give each its head-frame position in "
    "metres (x right, y front, z up) in preprocess.options.channel_positions"
)

_VOCABULARY_INDEX = {name: index for index, name in enumerate(CHANNEL_VOCABULARY)}


@functools.cache
def _standard_positions() -> dict[str, np.ndarray]:
    """Upper-cased electrode name → position (3,) in metres, aliases included."""
    positions = {name.upper(): np.asarray(xyz, dtype=np.float64) for name, xyz in _table()["positions"].items()}
    return {**positions, **{alias.upper(): positions[target.upper()] for alias, target in ELECTRODE_ALIASES.items()}}


def channel_index(ch_names: Sequence[str]) -> list[int]:
    """Return the index of each channel in :data:`CHANNEL_VOCABULARY` (case-insensitive).

    Parameters
    ----------
    ch_names : sequence of str
        Channel names, unipolar (``"C3"``) or bipolar (``"FP1-F7"``), as LUNA's channel embedding
        knows them.

    Returns
    -------
    indices : list of int
        One index per channel, in the order given.

    Raises
    ------
    DataError
        If a channel is not one of the 90 vocabulary names.
    """
    unknown = [repr(ch_name) for ch_name in ch_names if _normalise(ch_name) not in _VOCABULARY_INDEX]
    if unknown:
        raise DataError(
            f"{'Channels' if len(unknown) > 1 else 'Channel'} {', '.join(unknown)} {'are' if len(unknown) > 1 else 'is'} "
            "not in LUNA's 90-name channel vocabulary (the SEED, TUEG bipolar and Siena names), which pre-training "
            "embeds every channel by; leave them out with preprocess.channels (the channels to keep), or rename them "
            "to one of those names in the recordings."
        )
    return [_VOCABULARY_INDEX[_normalise(ch_name)] for ch_name in ch_names]


def channel_positions(ch_names: Sequence[str], positions: Mapping[str, Sequence[float]] | None = None) -> np.ndarray:
    """Return the 3-D position of each channel; a bipolar ``"A-B"`` channel is the midpoint of A and B.

    Parameters
    ----------
    ch_names : sequence of str
        Channel names, unipolar or bipolar, matched case-insensitively.
    positions : mapping of str to (x, y, z), optional
        Head-frame positions in metres for a custom montage. A key may be a whole channel name
        (used as is, even for a name containing ``-``) or an electrode name (used wherever that
        electrode appears); it takes precedence over the 10-05 table.

    Returns
    -------
    xyz : ndarray, shape (n_channels, 3), float32

    Raises
    ------
    DataError
        If a channel or one of its electrodes has no known position.
    """
    custom = _custom_positions(positions)
    xyz = np.empty((len(ch_names), 3), dtype=np.float64)
    unplaced: list[str] = []
    for row, ch_name in enumerate(ch_names):
        key = _normalise(ch_name)
        if key in custom:
            xyz[row] = custom[key]
            continue
        electrodes = key.split("-")
        if len(electrodes) > 2 or not all(electrodes):
            raise DataError(f"Channel {ch_name!r} is neither an electrode name nor a bipolar pair 'A-B'; {_GIVE_POSITION}.")
        # The arrays are the cached table's; channel_positions only reads them.
        found = {name: custom[name] if name in custom else _standard_positions().get(name) for name in electrodes}
        placed = [position for position in found.values() if position is not None]
        if len(placed) < len(found):
            absent = [name for name, position in found.items() if position is None]
            unplaced.append(repr(ch_name) if absent == [key] else f"{ch_name!r} (electrode {', '.join(map(repr, absent))})")
            continue
        xyz[row] = np.mean(placed, axis=0)
    if unplaced:
        raise DataError(
            f"{'Channels' if len(unplaced) > 1 else 'Channel'} {', '.join(unplaced)} "
            f"{'have' if len(unplaced) > 1 else 'has'} no known position in the 10-05 system; {_GIVE_POSITION}."
        )
    return xyz.astype(np.float32)


def _normalise(name: str) -> str:
    return "-".join(part.strip() for part in str(name).strip().upper().split("-"))


def _custom_positions(positions: Mapping[str, Sequence[float]] | None) -> dict[str, np.ndarray]:
    custom = {}
    for name, xyz in (positions or {}).items():
        value = np.asarray(xyz, dtype=np.float64)
        if value.shape != (3,) or not np.all(np.isfinite(value)):
            raise DataError(
                f"The position given for channel {name!r} is {list(np.ravel(value))}; "
                "give three finite numbers (x, y, z) in metres."
            )
        custom[_normalise(name)] = value
    return custom
