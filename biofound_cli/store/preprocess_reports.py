"""The preprocess report: what one run writes, and what ``pack`` reads from all of them, merged.

A run of corpus ``C`` writes ``OUT/preprocess_report.C.json`` (:class:`PreprocessReport`, :func:`write_report`);
each slice of an array job (``--shard I/N``) writes ``preprocess_report.C.slice-I-of-N.json``. Several corpora
preprocessed into one ``OUT`` (each into its own sub-folder) so keep a report each; an older biofound wrote
``preprocess_report.json`` (``.slice-I-of-N.json``) whichever the corpus, and those are read as the report of the
corpus they name (:func:`folder_reports`). :func:`read_preprocess_reports` merges them for ``pack``. The settings of
one corpus's reports (signal-chain config, corpus options) are shown as they were, never added up: slices whose
settings differ made shards that must not be packed together, so they are refused with the differing fields and the
two report files. The counts (recordings found, written, skipped and excluded by reason, files not read by suffix,
windows, values clipped to float16) are summed over the reports, of every corpus.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from biofound_cli.atomic import read_json_object, write_json_atomic
from biofound_cli.corpora.base import RecordingRef
from biofound_cli.errors import UsageError
from biofound_cli.plural import counted, first_few, plural
from biofound_cli.store.preprocess_plan import (
    MAX_NAMED,
    SETTING_FIELDS,
    RecordingResult,
    other_settings,
    settings_differences,
    shard_window_count,
    stored_settings,
)
from biofound_cli.store.shard_scan import ShardHeader, SkippedShard, as_str
from biofound_cli.store.shards import shard_path
from biofound_cli.store.slices import per_slice_name

logger = logging.getLogger(__name__)

REPORT_STEM = "preprocess_report"
"""Every report's name starts so (:func:`report_name`); an older biofound's was ``preprocess_report.json`` itself."""
REPORT_GLOB = f"{REPORT_STEM}*.json"
COUNT_FIELDS = ("found", "written", "already_done", "windows", "windows_written", "clipped_values")
TALLY_FIELDS = {"skipped": "reason", "excluded": "reason", "not_read": "suffix"}
"""Counts with their breakdown (``skipped`` and ``skipped_by_reason``; files not read by suffix), summed key by key."""
OLDER_COUNT_FIELDS = {"windows": "n_windows", "windows_written": "n_windows_written", "clipped_values": "n_clipped"}
"""What a report of an older biofound called a count, at its top and in each entry of its ``files`` (and a predict
summary's ``recordings``); it wrote each breakdown under the bare name, ``skipped``."""


def with_breakdown(name: str, by: str, counts: Mapping[str, int]) -> dict[str, Any]:
    """A count as every stage's record says it: the total under ``name``, the breakdown beside it.

    ``preprocess`` (its ``--json`` and report file), ``pack``'s summary, ``predict`` (its ``--json`` and
    ``summary.json``) and ``biofound info`` all write ``skipped`` with ``skipped_by_reason``, ``excluded``
    with ``excluded_by_reason`` and ``not_read`` with ``not_read_by_suffix`` through this function.

    Parameters
    ----------
    name : str
        The count: ``skipped``, ``excluded``, ``not_read``.
    by : str
        What the breakdown is keyed by: ``reason``, ``suffix``.
    counts : Mapping[str, int]
        The count of each key.
    """
    return {name: sum(counts.values()), f"{name}_by_{by}": dict(sorted(counts.items()))}


# -- one run's report ---------------------------------------------------------------------------


def report_name(corpus: str | None, slice_text: str | None) -> str:
    """``preprocess_report.CORPUS.json``, or ``preprocess_report.CORPUS.slice-I-of-N.json`` for one slice.

    One report per corpus, so that several corpora preprocessed into one folder (each into its own
    sub-folder, packed together) keep theirs; ``corpus=None`` gives the name an older biofound wrote
    whichever the corpus (``preprocess_report.json``).

    Parameters
    ----------
    corpus : str | None
        The corpus the run read, or ``None`` for the older name.
    slice_text : str | None
        ``"I/N"`` for one slice of an array job, or ``None`` for a whole run.
    """
    return per_slice_name(REPORT_STEM if corpus is None else f"{REPORT_STEM}.{corpus}", slice_text)


@dataclass
class PreprocessReport:
    """The tally of one run, written to ``OUT/preprocess_report.CORPUS.json``."""

    corpus: str
    root: str
    out: str
    config: dict[str, Any]
    options: dict[str, Any]
    found: int = 0
    written: int = 0
    already_done: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    """Recordings discovery left out on purpose, by reason (``not_in_labels_csv``, TUEG's ``excluded_subject``)."""
    not_read: dict[str, int] = field(default_factory=dict)
    """The files under the root that are not recordings, nor files one is read from, by suffix (``.txt``, ``(none)``)."""
    slice: str | None = None
    """``"I/N"`` when this run was one slice of an array job."""
    n_windows: int = 0
    """Windows in the shards of this run's recordings, written now or already done."""
    n_windows_written: int = 0
    """Windows in the shards this run wrote."""
    n_clipped: int = 0
    notes: dict[str, int] = field(default_factory=dict)
    """Totals of what the chain kept with a warning: ``truncated_kept`` recordings, event
    segments ``events_outside`` the recording, ``events_clipped`` at its end or
    ``events_shorter_than_window`` (they give no window)."""
    unused_fraction: float = 0.0
    """The part of every recording between windows, when the stride is longer than the window."""
    elapsed_seconds: float = 0.0
    interrupted: bool = False
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Every recording found failed: nothing written and nothing already done."""
        return self.found > 0 and self.written == 0 and self.already_done == 0

    def summary(self) -> dict[str, Any]:
        """The run's record, in one vocabulary: the report file (which adds its settings and ``files``) and ``--json``
        alike, in the words of ``predict``'s (:func:`with_breakdown`): ``windows`` in the shards of the run's
        recordings (written now or already done), ``windows_written`` by this run, and what the chain kept with a
        warning under ``notes`` alone."""
        return {
            "corpus": self.corpus,
            "out": self.out,
            "found": self.found,
            "written": self.written,
            "already_done": self.already_done,
            **with_breakdown("skipped", "reason", self.skipped),
            **with_breakdown("excluded", "reason", self.excluded),
            **with_breakdown("not_read", "suffix", self.not_read),
            "windows": self.n_windows,
            "windows_written": self.n_windows_written,
            "clipped_values": self.n_clipped,
            "notes": dict(self.notes),
            "signal_unused_fraction": self.unused_fraction,
            "interrupted": self.interrupted,
            "slice": self.slice,
            "elapsed_seconds": self.elapsed_seconds,
            "report": str(Path(self.out) / self.report_name),
        }

    def record(self) -> dict[str, Any]:
        """What the report file holds: :meth:`summary`, the settings it was run with, and one entry per recording."""
        return {"root": self.root, "config": self.config, "options": self.options, **self.summary(), "files": self.files}

    @property
    def report_name(self) -> str:
        """This run's report: :func:`report_name` of its corpus and slice."""
        return report_name(self.corpus, self.slice)

    def tally(self, results: list[RecordingResult]) -> None:
        """Set the counts and the per-file list from every recording's result.

        Parameters
        ----------
        results : list[RecordingResult]
            One result per source file of the run.
        """
        results = sorted(results, key=lambda result: (result.recording_id, result.source_path))
        self.files = [asdict(result) for result in results]
        self.written = sum(result.status == "written" for result in results)
        self.already_done = sum(result.status == "already_done" for result in results)
        self.n_windows, self.notes, self.skipped = tally_files(self.files)
        self.n_windows_written = sum(result.windows for result in results if result.status == "written")
        self.n_clipped = sum(result.clipped_values for result in results)


def tally_files(files: list[dict[str, Any]]) -> tuple[int, dict[str, int], dict[str, int]]:
    """The windows of the recordings not skipped, the chain's notes summed over them, and the skips by reason.

    ``preprocess`` and ``predict`` count their per-recording lists alike (only a recording the
    chain ran on carries notes).

    Parameters
    ----------
    files : list of dict
        One entry per recording (a :class:`RecordingResult` as a dict): ``status``, ``reason``,
        ``windows`` and ``notes`` (:func:`in_current_names` for an entry an older biofound wrote).
    """
    used = [entry for entry in files if entry["status"] != "skipped"]
    notes: Counter[str] = Counter()
    for entry in used:
        notes.update(entry.get("notes") or {})
    skipped = Counter(entry["reason"] for entry in files if entry["status"] == "skipped")
    return sum(_number(entry.get("windows")) for entry in used), dict(sorted(notes.items())), dict(sorted(skipped.items()))


def write_report(path: Path, report: PreprocessReport) -> None:
    """Write the report atomically (temporary file, then ``os.replace``), and remove the report it replaces that an
    older biofound wrote under the name every corpus shared (``preprocess_report.json`` of this corpus and slice).

    Parameters
    ----------
    path : Path
        ``OUT/preprocess_report.CORPUS.json`` or a slice's report.
    report : PreprocessReport
        The tally to write.
    """
    path = Path(path)
    write_json_atomic(path, report.record())
    older = path.parent / report_name(None, report.slice)
    if (read_json_object(older) or {}).get("corpus") == report.corpus:
        older.unlink(missing_ok=True)


def count_what_is_on_disk(
    results: dict[str, RecordingResult], todo: list[RecordingRef], out: Path, corpus_name: str, started_at: float
) -> int:
    """Make the results say what is on disk: no shard counted that is not there, none there uncounted.

    A run stopped by a signal may have renamed a shard into place an instant before it could
    take the result (in this process, or a submission cut short); such a shard, newer than the
    run, is counted as written. A written or already-done shard that is not there (removed
    meanwhile) is not counted.

    Parameters
    ----------
    results : dict[str, RecordingResult]
        The run's results by source file, changed in place.
    todo : list[RecordingRef]
        The recordings the run set out to process.
    out : Path
        The shard folder.
    corpus_name : str
        The corpus, whose sub-folder holds the shards.
    started_at : float
        When the run started (``time.time()``).

    Returns
    -------
    int
        How many shards were counted here, results the run had not taken.
    """
    found = 0
    for ref in todo:
        source = str(ref.path)
        path = shard_path(out, corpus_name, ref.recording_id)
        if source in results:
            continue
        try:
            # File-system clocks may lag the system clock a little; a second is far more than that.
            newer = path.stat().st_mtime >= started_at - 1.0
        except OSError:
            continue
        if newer:
            results[source] = RecordingResult(
                ref.recording_id, source, "written", windows=shard_window_count(path), shard=str(path)
            )
            found += 1
    for source, result in results.items():
        if result.status in ("written", "already_done") and not Path(result.shard).is_file():
            results[source] = RecordingResult(
                result.recording_id,
                source,
                "skipped",
                "not_on_disk",
                f"{result.shard}: not on disk at the end of the run; re-run to write it",
            )
    return found


# -- pack's reading of them --------------------------------------------------------------------


@dataclass
class PreprocessSummary:
    """The preprocess reports of a shard folder, merged for ``pack``'s summary."""

    report_files: list[str]
    settings_by_corpus: dict[str, dict[str, Any]]
    """The settings of each corpus's reports (``corpus``, ``config``, ``options``), as written."""
    files_by_corpus: dict[str, list[str]]
    """Each corpus's report files."""
    counts: dict[str, int]
    tallies: dict[str, dict[str, int]]
    slices: list[str] = field(default_factory=list)
    clipped_by_recording: dict[str, int] = field(default_factory=dict)
    interrupted: list[str] = field(default_factory=list)
    listed: set[str] | None = None
    """The shards the reports list as written or already done, as ``<corpus>/<recording_id>``;
    ``None`` when a report has no ``files`` list to tell."""

    @property
    def settings(self) -> dict[str, Any]:
        """The settings of the reports when they are of one corpus; ``{}`` for several."""
        return next(iter(self.settings_by_corpus.values())) if len(self.settings_by_corpus) == 1 else {}

    @property
    def n_clipped(self) -> int:
        """Values the preprocessing clipped to the float16 range, summed over the reports."""
        return int(self.counts.get("clipped_values", 0))

    @property
    def excluded(self) -> dict[str, int]:
        """Recordings left out at discovery (e.g. TUEG's exclusions), by reason."""
        return dict(self.tallies.get("excluded", {}))

    def as_dict(self) -> dict[str, Any]:
        """The ``preprocess`` entry of ``pack``'s summary."""
        return {
            "reports": len(self.report_files),
            "report_files": self.report_files,
            "slices": self.slices,
            # Several corpora: each one's settings under its name, as one corpus's are at the top.
            **(self.settings if len(self.settings_by_corpus) == 1 else {"corpora": self.settings_by_corpus}),
            **self.counts,
            **{
                key: value
                for name, by in TALLY_FIELDS.items()
                for key, value in with_breakdown(name, by, self.tallies[name]).items()
            },
            "interrupted": bool(self.interrupted),
        }


def folder_reports(shards: Path, warn: bool = False) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """The preprocess reports of a shard folder, read, by the corpus each names (in name order).

    The one place that finds them: ``pack``, ``info`` and ``preprocess``'s refusal of another chain
    read them through it. A report of an older biofound (``preprocess_report.json``, named for no
    corpus) is one of the corpus it names, as one of today's (:func:`report_name`) is.

    Parameters
    ----------
    shards : Path
        The shard folder (the ``--out`` of ``biofound preprocess``).
    warn : bool
        Whether to warn of a report that cannot be read (``pack`` and ``info``, which leave its counts out);
        otherwise it is passed over without a word.
    """
    by_corpus: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for path in sorted(Path(shards).glob(REPORT_GLOB)):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            if warn:
                logger.warning(f"{path}: not a readable preprocess report ({error}); its counts are left out of the summary")
            continue
        if isinstance(data, dict):
            by_corpus.setdefault(str(data.get("corpus") or ""), []).append((path, data))
    return by_corpus


def read_preprocess_reports(shards: Path) -> PreprocessSummary | None:
    """Merge ``shards/preprocess_report*.json``, of every corpus; ``None`` when there is none.

    Parameters
    ----------
    shards : Path
        The shard folder (the ``--out`` of ``biofound preprocess``).

    Returns
    -------
    PreprocessSummary | None
        The settings as written, the summed counts, and which reports were read.

    Raises
    ------
    UsageError
        When two reports of one corpus were written with different settings: the slices' shards do not
        belong together (exit status 2, before anything is packed).
    """
    by_corpus = folder_reports(shards, warn=True)
    if not by_corpus:
        return None
    for corpus_reports in by_corpus.values():
        _check_same_settings(corpus_reports)
        _warn_about_coverage(Path(shards), corpus_reports)
    reports = sorted((report for corpus_reports in by_corpus.values() for report in corpus_reports), key=lambda r: r[0])
    counts = {name: sum(_number(_count(data, name)) for _, data in reports) for name in COUNT_FIELDS}
    tallies = {name: _sum_tallies(_breakdown(data, name, by) for _, data in reports) for name, by in TALLY_FIELDS.items()}
    clipped = {
        str(entry.get("recording_id", "?")): _number(entry.get("clipped_values"))
        for _, data in reports
        for entry in map(in_current_names, data.get("files") or [])
        if _number(entry.get("clipped_values")) > 0
    }
    return PreprocessSummary(
        report_files=[path.name for path, _ in reports],
        settings_by_corpus={
            corpus: {name: first[name] for name in SETTING_FIELDS if name in first}
            for corpus, ((_, first), *_) in by_corpus.items()
        },
        files_by_corpus={corpus: [path.name for path, _ in found] for corpus, found in by_corpus.items()},
        counts=counts,
        tallies=tallies,
        slices=sorted(
            {str(data["slice"]) for _, data in reports if data.get("slice")},
            key=lambda spec: tuple(int(part) for part in spec.split("/") if part.isdigit()),
        ),
        clipped_by_recording=clipped,
        interrupted=[path.name for path, data in reports if data.get("interrupted")],
        listed=_listed_shards(reports),
    )


def _listed_shards(reports: list[tuple[Path, dict[str, Any]]]) -> set[str] | None:
    """:attr:`PreprocessSummary.listed` of ``reports``."""
    if not all(isinstance(data.get("files"), list) for _, data in reports):
        return None
    return {
        f"{data.get('corpus')}/{entry.get('recording_id')}"
        for _, data in reports
        for entry in data["files"]
        if isinstance(entry, dict) and entry.get("status") in ("written", "already_done")
    }


def shards_no_report_lists(headers: list[ShardHeader], summary: PreprocessSummary) -> str:
    """The warning for shards of the reports' corpora that no report lists (``""`` if none): left by an
    earlier run, of a recording whose file has since been removed, they are packed all the same.

    ``preprocess`` warns of them as it runs; ``pack``, which packs every shard in the folder, says it
    again naming the shards, so windows of a recording the user removed do not go unnoticed. An
    interrupted run lists only the recordings it reached, so nothing is said then.

    Parameters
    ----------
    headers : list of ShardHeader
        The shards to pack.
    summary : PreprocessSummary
        The folder's reports, merged.
    """
    listed = summary.listed
    if summary.interrupted or listed is None:
        return ""
    corpora = {corpus for corpus in summary.settings_by_corpus if corpus}
    unlisted = [h for h in headers if h.recording_id.split("/")[0] in corpora and h.recording_id not in listed]
    if not unlisted:
        return ""
    named = first_few([h.skipped("").named() for h in unlisted], MAX_NAMED)
    return (
        f"{counted(len(unlisted), 'shard')} {'holds' if len(unlisted) == 1 else 'hold'} recordings the last "
        f"preprocess run did not find under its root ({named}); "
        "they are packed: delete them and pack again if their files were removed on purpose"
    )


def set_aside_other_runs(
    headers: list[ShardHeader], summary: PreprocessSummary | None
) -> tuple[list[ShardHeader], list[SkippedShard]]:
    """Set aside the shards of a report's corpus written with other settings than that corpus's reports say.

    ``preprocess --force`` with new settings rewrites the recordings of its run only: a shard of a
    recording it no longer finds (a shorter ``labels_csv``) keeps the settings of an earlier run, and
    the majority rule of :func:`check_compatible` would pack those and skip the run's own. The rule is
    the one ``preprocess`` refuses to count a shard as done by (:func:`settings_differences`).

    Parameters
    ----------
    headers : list of ShardHeader
        The readable shards.
    summary : PreprocessSummary | None
        The folder's reports, merged; ``None`` without a report (nothing is set aside).
    """
    kept: list[ShardHeader] = []
    skipped: list[SkippedShard] = []
    for header in headers:
        stored = stored_settings(as_str(header.attrs.get("preprocess_config", "")))
        # A shard of a corpus no report names, or of an older biofound (no settings stored), is judged by the
        # majority rule alone.
        corpus = str(stored.get("corpus") or "")
        settings = summary.settings_by_corpus.get(corpus, {}) if summary is not None and corpus else {}
        differing = settings_differences(stored, settings) if settings else ""
        if differing:
            assert summary is not None  # settings come from it
            reports = ", ".join(summary.files_by_corpus[corpus])
            reason = (
                f"written with other preprocess settings than {reports} (shard vs report: {differing}), "
                "by an earlier run; delete it, or preprocess its recording again with these settings (--force)"
            )
            skipped.append(header.skipped(reason))
        else:
            kept.append(header)
    return kept, skipped


def refuse_another_chain(out: Path, settings: dict[str, Any], force: bool) -> None:
    """Refuse a run into an ``out`` whose reports say its corpus's shards were made by another chain; the same resumes.

    The same corpus with other options (from another ``--root``) would replace the first run's report
    and leave ``pack`` the shards of two preprocessings under a report naming only the last. ``force``
    lets it rewrite its shards with the new settings (every shard it finds is written again). Another
    corpus goes into its own sub-folder, as ``pack`` expects of several corpora packed together. A
    report that cannot be read is left to ``pack``, which warns of it.

    Parameters
    ----------
    out : Path
        The shard folder (``--out``).
    settings : dict
        This run's ``corpus``, ``config`` and ``options``, as its report will hold them.
    force : bool
        Whether ``--force`` was given.

    Raises
    ------
    UsageError
        Naming the report, the settings that differ and what to do (exit status 2, before any work).
    """
    corpus = str(settings.get("corpus") or "")
    # Several corpora share a shards folder, each in its own sub-folder with its own report, packed together.
    for path, data in folder_reports(out).get(corpus, []):
        if not any((Path(out) / corpus).glob("*.h5")):
            continue  # a run that wrote no shard (each file skipped: a user fixing the options) leaves nothing to mix
        differing = settings_differences(data, settings)
        if differing and not force:
            raise other_settings(path, "report", differing)


def _check_same_settings(reports: list[tuple[Path, dict[str, Any]]]) -> None:
    """Refuse reports whose settings differ (a field absent from an older report is not compared)."""
    reference_path, reference = reports[0]
    for path, data in reports[1:]:
        differing = settings_differences(reference, data)
        if differing:
            raise UsageError(
                f"{reference_path} and {path} were written with different preprocess settings ({differing}); "
                "the shards do not belong together: re-run preprocess with one recipe (--force), or remove the stale report"
            )


def _warn_about_coverage(shards: Path, reports: list[tuple[Path, dict[str, Any]]]) -> None:
    """Warn when the reports cannot add up to one run: missing slices, or slicings mixed."""
    slices = [str(data.get("slice") or "") for _, data in reports]
    counts = {spec.split("/")[1] for spec in slices if "/" in spec}
    if "" in slices and counts or len(counts) > 1:
        logger.warning(
            f"{shards} holds preprocess reports of differently sliced runs ({', '.join(p.name for p, _ in reports)}); "
            "their counts overlap: remove the reports of the older run"
        )
        return
    if len(counts) == 1:
        total = int(next(iter(counts)))
        seen = {int(spec.split("/")[0]) for spec in slices}
        missing = [f"{index}/{total}" for index in range(1, total + 1) if index not in seen]
        if missing:
            logger.warning(
                f"{shards}: no preprocess report of {plural(len(missing), 'slice')} {', '.join(missing)}; their "
                f"recordings are missing "
                "from the packed files unless those tasks are still running (run preprocess --shard for them)"
            )
    for path, data in reports:
        if data.get("interrupted"):
            logger.warning(f"{path}: that preprocess run was interrupted; re-run it to write the remaining shards")


def in_current_names(entry: Any) -> dict[str, Any]:
    """A per-recording entry (of a preprocess report's ``files``, a predict summary's ``recordings``) with its counts
    under today's names: an older biofound wrote ``n_windows`` and ``n_clipped`` there (``{}`` for one not a dict).

    Parameters
    ----------
    entry : Any
        The entry as read from the file.
    """
    if not isinstance(entry, dict):
        return {}
    renamed = dict(entry)
    for name, old in OLDER_COUNT_FIELDS.items():
        if old in renamed and name not in renamed:
            renamed[name] = renamed.pop(old)
    return renamed


def _count(report: dict[str, Any], name: str) -> Any:
    """A count of a report, under its name or the one an older biofound wrote it under (``n_windows``)."""
    return report[name] if name in report else report.get(OLDER_COUNT_FIELDS.get(name, name))


def _breakdown(report: dict[str, Any], name: str, by: str) -> Any:
    """A breakdown of a report (``skipped_by_reason``), or the dict an older biofound wrote under the bare name."""
    return report.get(f"{name}_by_{by}", report.get(name))


def _number(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _sum_tallies(tallies: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for tally in tallies:
        for reason, count in (tally or {}).items() if isinstance(tally, dict) else ():
            total[str(reason)] = total.get(str(reason), 0) + _number(count)
    return dict(sorted(total.items()))
