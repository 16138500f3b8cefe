"""The ``[preprocess]`` section: raw recordings → shards.

Every signal-chain field is optional: left out, it takes the chosen corpus's default (the
published preprocessing of that data set, see ``docs/preprocess.md``). ``0`` switches a
frequency step off (``l_freq = 0``: no high-pass; ``notch_hz = 0``: no notch; ``sfreq = 0``:
keep the native rate). ``options`` is checked against the corpus's own options model when
the command starts, and its errors are named ``preprocess.options.<field>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from biofound_cli.recipes.base import Section
from biofound_cli.recipes.shipped import bundled_path


class PreprocessSection(Section):
    """How raw recordings of one corpus become shards."""

    corpus: str | None = Field(
        None, description="Corpus reader: tuab, tuar, tusl, tueg, siena, seedv, edf, db5, uci-emg, epn612, emg-csv, table, ts."
    )
    root: Path | None = Field(None, description="Folder holding the raw recordings.")
    out: Path | None = Field(None, description="Folder the shards are written to.")
    workers: int = Field(1, ge=1, description="Recordings processed in parallel.")
    force: bool = Field(False, description="Rewrite shards that already exist.")
    on_truncated: Literal["skip", "keep"] = Field(
        "skip",
        description="A file shorter than its header declares (EDF/BDF: an interrupted copy): skip it (reason truncated), "
        "or keep the part that is there; either way it is named in a warning.",
    )

    # -- the signal chain; None means "the corpus default" --------------------------------------
    l_freq: float | None = Field(None, ge=0, description="High-pass edge in Hz (0: none).")
    h_freq: float | None = Field(None, ge=0, description="Low-pass edge in Hz (0: none).")
    notch_hz: float | list[float] | None = Field(None, description="Line-noise frequencies to notch out, in Hz (0 or []: none).")
    sfreq: float | None = Field(None, ge=0, description="Output sampling rate in Hz (0: keep the native rate).")
    window_seconds: float | None = Field(None, gt=0, description="Window length in seconds.")
    stride_seconds: float | None = Field(
        None, gt=0, description="Step between window starts in seconds (default: the window length)."
    )
    montage: Literal["tcp", "tcp20", "auto", "none"] | None = Field(
        None, description="tcp (22 bipolar, NEDC order), tcp20 (no ear electrodes), auto (by recording), none (referential)."
    )
    channels: list[str] | None = Field(
        None,
        description="Referential channels to keep, in this order (any spelling, each once; with a bipolar montage, all it uses).",
    )
    units: Literal["uV", "file"] | None = Field(None, description="uV: volts to microvolts (EEG); file: keep the file's units.")
    filter_method: Literal["fir", "iir"] | None = Field(
        None, description="fir: MNE zero-phase FIR; iir: Butterworth + iirnotch with filtfilt."
    )
    resample_method: Literal["mne", "grid"] | None = Field(
        None,
        description="mne: MNE's raw.resample, as the published data; grid: samples exactly on the new rate's grid, "
        "filtered and resampled in one FFT pass (~4x faster per channel; see docs/preprocess.md).",
    )
    iir_order: int | None = Field(None, ge=1, le=10, description="Butterworth order for filter_method = iir.")
    notch_q: float | None = Field(None, gt=0, description="Quality factor of the IIR notch.")
    zscore: bool | None = Field(None, description="Standardise each channel over the whole recording.")
    max_nan_fraction: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Largest tolerated fraction of missing samples: NaN, infinite or beyond ±1e30 (they become 0).",
    )
    flat_std: float | None = Field(
        None, ge=0, description="A channel whose std is below this (output units, µV for EEG) is flat."
    )
    max_flat_fraction: float | None = Field(None, ge=0, le=1, description="Largest tolerated fraction of flat channels.")
    dtype: Literal["float32", "float16"] | None = Field(None, description="Storage type of x (float16 is clipped to its range).")
    options: dict[str, Any] = Field(default_factory=dict, description="Corpus-specific options (see docs/corpora/).")

    @field_validator("root")
    @classmethod
    def _bundled_samples(cls, root: Path | None) -> Path | None:
        # The sample recipes' recordings ship inside the package; see bundled_path.
        return None if root is None else bundled_path(root)
