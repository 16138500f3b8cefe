"""Siena Scalp EEG (PhysioNet ``siena-scalp-eeg`` 1.0.0): 14 patients, 512 Hz, unipolar EEG.

Layout: ``PN<nn>/PN<nn>-<k>.edf`` (plus a ``Seizures-list-PN<nn>.txt`` per patient, not used).
Header names look like ``EEG Fp1``; the signal chain normalises them (``FP1``) and picks the
29 channels LUNA was pretrained on, in :data:`SIENA_CHANNELS` order. Recordings that lack
some of them (PN10) are skipped by the pipeline with the missing names.

Labels: none. LUNA uses Siena for pretraining only, and that is the only use the published
pipeline describes, so the recordings are unlabelled (``reconstruction``).

Defaults follow the LUNA documentation: 0.1–75 Hz band-pass, 50 Hz notch (Italian mains),
256 Hz, unipolar, 5 s windows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from biofound_cli.corpora.base import Corpus, Modality, Recording, RecordingRef
from biofound_cli.corpora.edf_header import read_raw_as_its_header_says, truncation_meta
from biofound_cli.errors import reading_as
from biofound_cli.tasks import RECONSTRUCTION

SIENA_CHANNELS = (
    "FP1", "FP2", "F3", "C3", "P3", "O1", "F7", "T3", "T5", "FC1", "FC5", "CP1", "CP5", "F9", "FZ",
    "CZ", "PZ", "F4", "C4", "P4", "O2", "F8", "T4", "T6", "FC2", "FC6", "CP2", "CP6", "F10",
)  # fmt: skip
_PATIENT = re.compile(r"PN\d+", re.IGNORECASE)


class SienaCorpus(Corpus):
    """Siena Scalp EEG EDF files, one recording each, unlabelled."""

    name: ClassVar[str] = "siena"
    modality: ClassVar[Modality] = "eeg"
    task: str = RECONSTRUCTION
    defaults: ClassVar[dict[str, Any]] = {
        "l_freq": 0.1,
        "h_freq": 75.0,
        "notch_hz": 50.0,
        "sfreq": 256.0,
        "window_seconds": 5.0,
        "stride_seconds": 5.0,
        "montage": None,
        "channels": list(SIENA_CHANNELS),
        "units": "uV",
    }
    reader_modules: ClassVar[tuple[str, ...]] = ("mne.io.edf",)

    def recording_of(self, path: Path, root: Path) -> RecordingRef | None:
        if path.suffix.lower() != ".edf":
            return None
        folder = path.parent.name
        subject = folder.upper() if _PATIENT.fullmatch(folder) else path.stem.split("-")[0].upper()
        return RecordingRef(path=path, recording_id=path.stem, subject=subject)

    def read(self, ref: RecordingRef) -> Recording:
        # A header alone is "empty"; a file cut short is read and flagged for preprocess.on_truncated.
        truncation = truncation_meta(ref.path)
        with reading_as(ref.path, "EDF file"):  # the file's fault; any other error is ours and stops the run
            raw = read_raw_as_its_header_says(ref.path, preload=True, verbose="error")
        return Recording(
            data=np.asarray(raw.get_data(), dtype=np.float64),
            sfreq=float(raw.info["sfreq"]),
            ch_names=list(raw.ch_names),
            meta={"patient": ref.subject, **truncation},
        )
