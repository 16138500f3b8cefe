"""TUAB, the TUH Abnormal EEG Corpus (v3): normal vs abnormal, one label per recording.

Layout: ``edf/{train,eval}/{normal,abnormal}/01_tcp_ar/<subject>_s<NNN>_t<NNN>.edf``; pass the
``edf`` folder (or any folder above the ``train``/``eval`` folders) as the root. The label comes
from the folder (``normal`` → 0, ``abnormal`` → 1); the official ``eval`` folder is the test
split, and ``train`` is left for ``biofound pack`` to split by subject into train and val.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from biofound_cli.corpora.base import Recording, RecordingRef, Split, UnusableRecording
from biofound_cli.corpora.tuh import TUHCorpus

CLASS_FOLDERS = {"normal": 0, "abnormal": 1}
SPLIT_FOLDERS: dict[str, Split | None] = {"train": None, "eval": "test"}


class TUABCorpus(TUHCorpus):
    """Normal/abnormal EEG; the label and the test split come from the folders."""

    name: ClassVar[str] = "tuab"
    task: str = "bc"
    label_names: tuple[str, ...] = ("normal", "abnormal")

    def discover(self, root: Path) -> list[RecordingRef]:
        refs = []
        for ref in super().discover(root):
            parts = [part.lower() for part in ref.path.relative_to(root).parts[:-1]]
            label = next((CLASS_FOLDERS[part] for part in reversed(parts) if part in CLASS_FOLDERS), None)
            split = next((SPLIT_FOLDERS[part] for part in parts if part in SPLIT_FOLDERS), None)
            refs.append(replace(ref, split=split, extra={"label": label}))
        return refs

    def read(self, ref: RecordingRef) -> Recording:
        label = ref.extra.get("label")
        if label is None:
            raise UnusableRecording(
                f"{ref.path}: not below a 'normal' or 'abnormal' folder, so its label is unknown; "
                "point --root at the TUAB 'edf' folder",
                "no_label",
            )
        recording = self.read_signal(ref)
        recording.label = label
        return recording
