"""TUEG, the TUH EEG Corpus: unlabelled recordings for pretraining.

Layout: any tree of ``<subject>_s<NNN>_t<NNN>.edf`` files whose parent folder names the montage
(``01_tcp_ar``, ``02_tcp_le``: 22 TCP channels; ``03_tcp_ar_a``, ``04_tcp_le_a``: no ear
electrodes, 20 channels). With the default ``montage = "auto"`` each recording gets the montage
its folder allows. Subjects of the evaluation corpora are excluded so that pretraining never
sees a fine-tuning test patient: every subject id found under ``options.exclude_roots`` (e.g.
the TUAB, TUAR and TUSL roots) and every id in ``options.exclude_subjects`` is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Sequence

from pydantic import Field

from biofound_cli.corpora.base import Recording, RecordingRef
from biofound_cli.corpora.tuh import TUH_DEFAULTS, TUHCorpus, discover_edfs, montage_folder, parse_tuh_name
from biofound_cli.errors import UsageError
from biofound_cli.recipes.base import Section
from biofound_cli.signals.montage import MONTAGES, montage_electrodes
from biofound_cli.tasks import RECONSTRUCTION

NO_EAR_FOLDERS = ("03_tcp_ar_a", "04_tcp_le_a")


class TUEGOptions(Section):
    """``[preprocess.options]`` of the ``tueg`` corpus."""

    exclude_roots: list[Path] = Field(
        default_factory=list, description="Folders of evaluation corpora (TUAB, TUAR, TUSL); their subjects are skipped."
    )
    exclude_subjects: list[str] = Field(default_factory=list, description="Subject ids to skip.")


class TUEGCorpus(TUHCorpus):
    """Unlabelled TUH EEG; 22- or 20-channel TCP montage chosen by the montage folder."""

    name: ClassVar[str] = "tueg"
    training_data_options: ClassVar[tuple[str, ...]] = ("exclude_roots", "exclude_subjects")
    task: str = RECONSTRUCTION
    defaults: ClassVar[dict[str, Any]] = {**TUH_DEFAULTS, "montage": "auto"}
    Options: ClassVar[type[Section]] = TUEGOptions
    auto_montage: bool = False
    """Set by the pipeline for ``montage = "auto"``: without ``read_channels``, only the electrodes
    of the montage each recording gets are read."""

    def excluded_subjects(self) -> set[str]:
        """Subject ids to leave out: those named in the options and those found under ``exclude_roots``."""
        options = self.options_as(TUEGOptions)
        subjects = set(options.exclude_subjects)
        for root in options.exclude_roots:
            if not Path(root).is_dir():
                raise UsageError(
                    f"preprocess.options.exclude_roots: {root} is not a folder; give the root of an evaluation corpus, "
                    "or leave it out of the list (--set 'preprocess.options.exclude_roots=[]' leaves no patient out)"
                )
            subjects.update(parse_tuh_name(path.stem).subject for path in discover_edfs(Path(root)))
        return subjects

    def discover(self, root: Path) -> list[RecordingRef]:
        excluded = self.excluded_subjects()
        refs = super().discover(root)
        self.left_out = {"excluded_subject": [ref for ref in refs if ref.subject in excluded]}
        return [ref for ref in refs if ref.subject not in excluded]

    def channels_read(self, ref: RecordingRef) -> Sequence[str] | None:
        # Only the montage's electrodes: a file's other signals (photic, IBI) may be stored at other rates.
        if self.read_channels is None and self.auto_montage:
            return tuple(montage_electrodes(MONTAGES[_montage(ref)]))
        return self.read_channels

    def read_signal(self, ref: RecordingRef) -> Recording:
        # The montage is the signal's, not a label: predict reads TUEG files through this alone.
        recording = super().read_signal(ref)
        recording.meta["montage"] = _montage(ref)
        return recording

    def read(self, ref: RecordingRef) -> Recording:
        return self.read_signal(ref)  # unlabelled: the recording is its signal


def _montage(ref: RecordingRef) -> str:
    """The montage a recording's folder allows: ``tcp20`` without ear electrodes, else ``tcp``."""
    return "tcp20" if montage_folder(ref.path) in NO_EAR_FOLDERS else "tcp"
