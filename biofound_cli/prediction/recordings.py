"""``RECORDINGS...`` → the recordings to predict: files, folders and glob patterns, through the corpus reader.

A folder is listed by the corpus's own discovery (the files ``preprocess`` would take from it);
a file is looked up among its folder's recordings, so it keeps what discovery knows about it,
and read as it is when discovery does not list it. Ids are made unique as in ``preprocess``: a
file whose id another one has is returned apart, for the run to count as skipped (``duplicate_id``).
The files of a folder that are not recordings of the reader, nor files a recording is read from, are
counted by suffix, with one warning per folder, as ``preprocess`` counts them (:mod:`~biofound_cli.corpora.not_read`).
Predict's own output folders among the recordings (this run's ``--out``, and earlier runs' ones, known by
their summary or journal: :class:`~biofound_cli.corpora.not_read.EarlierOutputs`) are neither read nor counted.
"""

from __future__ import annotations

import glob
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from biofound_cli.corpora.base import Corpus, RecordingRef, file_pattern, files_under, one_walk_per_folder
from biofound_cli.corpora.not_read import EarlierOutputs, count_not_read
from biofound_cli.errors import UsageError, discovering
from biofound_cli.store.recording_ids import Duplicate, unique_recording_ids

GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class FoundRecordings:
    """What :func:`find_recordings` found."""

    refs: list[RecordingRef]
    """The recordings, each once, with unique ids, sorted by id."""
    duplicates: list[Duplicate]
    """Those left out because another one has their id (:func:`~biofound_cli.store.recording_ids.unique_recording_ids`)."""
    not_read: dict[str, int] = field(default_factory=dict)
    """The files of the folders given that are not recordings of the reader, by suffix (``.txt``;
    :data:`~biofound_cli.corpora.not_read.NO_SUFFIX`)."""


def find_recordings(inputs: list[str], corpus: Corpus, *, output: Path | None = None, other_reader: str = "") -> FoundRecordings:
    """The recordings named by ``inputs``, and the files of its folders that are not recordings, each folder's named in a warning.

    No file inside ``output``, nor inside the output folder of an earlier predict run
    (:class:`~biofound_cli.corpora.not_read.EarlierOutputs`), is a recording or counted among a folder's files not read.

    Parameters
    ----------
    inputs : list of str
        Files, folders or glob patterns (``**`` matches folders at any depth).
    corpus : Corpus
        The reader of the model's chain.
    output : Path | None
        The run's ``--out`` (a re-run took its own CSV tables for recordings, through a pattern
        matching any ``.csv``).
    other_reader : str
        Added to the refusal of folders holding files but no recording of the reader: how the model reads
        recordings of another format (:attr:`~biofound_cli.prediction.model.PredictionModel.advice`).

    Raises
    ------
    UsageError
        For a path that does not exist, a pattern that matches nothing, an ``output`` that is or holds
        a path given, or no recording at all.
    """
    refs: dict[Path, RecordingRef] = {}
    listed: dict[Path, list[RecordingRef]] = {}
    not_read: Counter[str] = Counter()
    earlier = EarlierOutputs(output)
    holding_files = []  # the inputs with a file outside the outputs: an empty folder is not a misnamed one
    for item in inputs:
        if output is not None:
            _check_apart(item, output.resolve(), output)
        for path in _expand(item):
            if path.is_dir():
                with one_walk_per_folder(), discovering(path):  # the files not read are counted from discovery's walk
                    found = corpus.discover(path)
                    outputs = earlier.below(path)
                    not_read.update(count_not_read(path, found, corpus, outputs=outputs))
                    if any(not any(o == f or o in f.parents for o in outputs) for f in files_under(path)):
                        holding_files.append(item)
            else:
                earlier.look_into(path.parent)  # a file named, or matched by a pattern
                found = [_file_ref(path, corpus, listed)]
                holding_files.append(item)
            for ref in found:
                if not earlier.holds(ref.path):
                    refs.setdefault(ref.path.resolve(), ref)
    if not refs:
        # --out is named where it holds files the folders given would have had read.
        outside = [f"--out {output}"] if output is not None and output.exists() and any(_below(output, i) for i in inputs) else []
        outside += [f"the earlier predict output {', '.join(map(str, earlier.named))}"] if earlier.named else []
        if not holding_files:
            raise UsageError(
                f"RECORDINGS {' '.join(inputs)}: no file there"
                + (f" outside {' and '.join(outside)}" if outside else "")
                + f"; check the path (see docs/corpora/{corpus.name}.md for the files the reader takes)"
            )
        pattern = file_pattern(corpus)  # a folder of the right files, named otherwise than the chain's pattern takes
        raise UsageError(
            f"RECORDINGS {' '.join(inputs)}: no {'file' if pattern else f'{corpus.name} recording'} there"
            + (f" outside {' and '.join(outside)}" if outside else "")
            + (
                f" matches {pattern} (matched against each file's path below the folder); rename the files to match it, or "
                f"pass --set 'preprocess.options.{corpus.file_option}=...' with one that matches them "
                f"(see docs/corpora/{corpus.name}.md)"
                if pattern
                else f"; check the paths (see docs/corpora/{corpus.name}.md for the files the reader takes)"
            )
            + other_reader
        )
    unique, duplicates = unique_recording_ids(list(refs.values()))
    return FoundRecordings(unique, duplicates, dict(sorted(not_read.items())))


def _below(output: Path, item: str) -> bool:
    """Whether ``output`` lies inside the folder ``item`` names (so its files were passed over there)."""
    path = Path(item)
    return path.is_dir() and path.resolve() in output.resolve().parents


def _check_apart(item: str, own: Path, output: Path | None) -> None:
    """Refuse an ``--out`` that is, or holds, a file or folder given: its tables would lie among the recordings.

    There a table named as a recording (``s0.csv`` of ``s0.csv``) is written over it, and a re-run
    would read the tables as recordings; files inside ``--out`` are never read, so the recordings
    there would be passed over in silence. A pattern's matches inside ``--out`` are passed over.
    """
    path = Path(item)
    if path.exists() and (path.resolve() == own or own in path.resolve().parents):
        raise UsageError(
            f"--out {output} is, or holds, RECORDINGS {item}: predict would write its tables among the recordings "
            f"(over one of the same name) and a re-run would read them as recordings; give a folder of its own, e.g. "
            f"--out {Path(item) / 'predictions' if path.is_dir() else path.parent / 'predictions'}"
        )


def _expand(item: str) -> list[Path]:
    path = Path(item)
    if path.exists():
        return [path]
    if any(character in item for character in GLOB_CHARACTERS):
        matched = sorted(Path(match) for match in glob.glob(item, recursive=True))
        if matched:
            return matched
        raise UsageError(
            f"RECORDINGS {item}: the pattern matches no file; check it (quote it so the shell leaves it to biofound)"
        )
    raise UsageError(f"RECORDINGS {item}: no such file or folder; check the path")


def _file_ref(path: Path, corpus: Corpus, listed: dict[Path, list[RecordingRef]]) -> RecordingRef:
    """The file as its folder's discovery lists it, else a plain reference named after the file.

    ``listed`` keeps each folder's discovery, so many files of one folder list it once.
    """
    folder = path.parent.resolve()
    if folder not in listed:
        try:
            with discovering(path.parent):
                listed[folder] = corpus.discover(path.parent)
        except UsageError:
            listed[folder] = []  # the folder does not fit the corpus's layout; the file is read on its own
    for ref in listed[folder]:
        if ref.path.resolve() == path.resolve():
            return ref
    stem = path.name.split(".")[0] or path.name
    return RecordingRef(path=path, recording_id=stem, subject="")
