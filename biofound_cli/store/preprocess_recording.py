"""One recording of the ``preprocess`` stage: read it, run the signal chain, write its shard.

:func:`process_recording` runs in a worker process and never raises for bad data: a recording
that cannot be used comes back as a skipped :class:`~biofound_cli.store.preprocess_plan.RecordingResult`
with its reason. A full disk (or quota) is not the recording's fault: it raises, and stops the run;
so does a bug of ours, an error no reading library raises for a bad file (:func:`skipped_result`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from biofound_cli.atomic import disk_full_error
from biofound_cli.corpora import get_corpus
from biofound_cli.corpora.base import Corpus, RecordingRef, UnusableRecording
from biofound_cli.errors import DataError, is_reading_error, reading_bug
from biofound_cli.signals.chain import ChainConfig, run_chain
from biofound_cli.store.preprocess_plan import RecordingResult, label_attr
from biofound_cli.store.shards import ShardMeta, ShardWriter, shard_path
from biofound_cli.store.source_stamp import SOURCE_STAMP, file_stamp

NAME_NOT_UTF8 = "name_not_utf8"
"""A recording whose path is not UTF-8 text, which its shard (HDF5 strings are UTF-8), predict's table and figure cannot hold."""

WINDOW_TOO_SHORT = "window_too_short"
"""A recording at a native rate (``sfreq = 0``) too low for one sample per window: a recipe error."""

WORKER_DIED = "worker_died"
"""The reason of a recording whose worker process died with it alone (:func:`worker_died`)."""


def process_recording(
    corpus_name: str, options: dict[str, Any] | None, ref: RecordingRef, config: ChainConfig, out: str
) -> RecordingResult:
    """Read, run the chain on and write the shard of one recording; never raises for bad data.

    A module-level function of picklable arguments, so it runs under the ``spawn`` start method.

    Parameters
    ----------
    corpus_name : str
        The corpus's key in ``CORPORA``.
    options : dict | None
        The corpus's ``[preprocess.options]``, validated again in the worker; None when it takes none.
    ref : RecordingRef
        The recording, as the corpus's ``discover`` listed it.
    config : ChainConfig
        The signal chain to run.
    out : str
        The shard folder; the shard goes to ``out/<corpus>/<recording_id>.h5``.
    """
    corpus = open_corpus(corpus_name, options, config)
    source = str(ref.path)
    path = shard_path(Path(out), corpus_name, ref.recording_id)
    # The chain hands each channel's windows to the writer, so a worker never holds them all;
    # leaving this block without commit() deletes the partial file.
    with ShardWriter(path) as writer:
        try:
            check_name(ref)
            # Before reading: a file rewritten meanwhile is processed again by a re-run.
            stamp = file_stamp(corpus.source_files(ref))
            recording = corpus.read(ref)
            too_short = _window_below_one_sample(config, recording.sfreq, source)
            if too_short:
                return RecordingResult(ref.recording_id, source, "skipped", WINDOW_TOO_SHORT, too_short)
            windowed = run_chain(recording, config, source=source, sink=writer)
        except Exception as error:  # noqa: BLE001 - skipped_result says which errors are the file's
            _raise_if_disk_full(error, path)
            return skipped_result(ref, error)
        label_names = recording.meta.get("label_names") or corpus.label_names
        del recording
        extra = {key: _attr_value(value) for key, value in windowed.meta.items() if key != "label_names"}
        extra.update(zip(SOURCE_STAMP, stamp, strict=True))
        # Compared by a re-run with what discovery then says (a corrected labels CSV row).
        extra.update({key: _attr_value(value) for key, value in label_attr(ref).items()})
        meta = ShardMeta(
            corpus=corpus_name,
            subject=ref.subject,
            session=ref.session,
            source_path=source,
            sfreq=windowed.sfreq,
            channel_names=windowed.ch_names,
            label_names=[str(name) for name in label_names],
            task=corpus.task,
            window_seconds=config.window_seconds,
            stride_seconds=config.step_seconds,
            preprocess_config={"corpus": corpus_name, "options": options or {}, **config.to_json_dict()},
            split=ref.split,
            extra=extra,
        )
        try:
            writer.commit(windowed.y, meta, split=windowed.split)
        except OSError as error:
            _raise_if_disk_full(error, path)
            raise
    return RecordingResult(
        ref.recording_id,
        source,
        "written",
        windows=windowed.n_windows,
        clipped_values=windowed.n_clipped,
        shard=str(path),
        notes=dict(windowed.notes),
        flat_channels_kept=list(windowed.flat_channels_kept),
        sfreq=float(windowed.sfreq),
    )


def check_name(ref: RecordingRef) -> None:
    """Skip a recording whose path is not UTF-8 text (bytes Python keeps as surrogates), in ``preprocess`` and ``predict``.

    A name written on an older system (Latin-1 ``café.edf``) read and filtered fine, then writing
    the shard's ``source_path`` raised ``UnicodeEncodeError`` and stopped the whole run with a
    traceback; ``predict`` stopped the same way at the recording's table or figure title.

    Parameters
    ----------
    ref : RecordingRef
        The recording, as discovery listed it.

    Raises
    ------
    UnusableRecording
        With reason :data:`NAME_NOT_UTF8`, naming the path with its odd bytes as ``\\xe9``.
    """
    try:
        str(ref.path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(ref.path).decode("utf-8", "backslashreplace")
        raise UnusableRecording(
            f"{shown}: the file's name (or its folder's) is not UTF-8 text, as after a copy from an older system; "
            "rename it (convmv -f latin1 -t utf8 -r --notest FOLDER renames Latin-1 names) and run the same command again",
            NAME_NOT_UTF8,
        ) from None


def open_corpus(corpus_name: str, options: dict[str, Any] | None, config: ChainConfig) -> Corpus:
    """The corpus reader of a worker, with its options validated and told which channels the chain uses.

    Parameters
    ----------
    corpus_name : str
        The corpus's key in ``CORPORA``.
    options : dict | None
        The corpus's ``[preprocess.options]``, validated here (in the worker).
    config : ChainConfig
        The chain the recordings go through.
    """
    corpus_cls = get_corpus(corpus_name)
    corpus = corpus_cls(corpus_cls.Options.model_validate(options) if corpus_cls.Options is not None else None)
    if hasattr(corpus, "read_channels"):
        # Readers that can read a subset of channels (EDF) skip the ones the chain drops.
        corpus.read_channels = config.input_channels()
    if hasattr(corpus, "auto_montage"):
        # The corpus picks each recording's montage, and reads only its electrodes.
        corpus.auto_montage = config.montage == "auto"
    return corpus


def worker_died(call: tuple[Any, ...], how: str) -> RecordingResult:
    """The skip of a recording whose worker process died while it ran alone (``pool_results``'s ``died``).

    Parameters
    ----------
    call : tuple
        The arguments of the work on it (``process_recording``'s, ``predict``'s), the recording among them.
    how : str
        How the worker died: ``"killed by SIGSEGV"``.
    """
    ref = next(arg for arg in call if isinstance(arg, RecordingRef))
    message = (
        f"{ref.path}: the worker process reading it was {how}, also alone in a fresh worker: a reading library "
        "crashed on the file (check it, or copy it again), or it needs more memory than this machine has"
    )
    return RecordingResult(ref.recording_id, str(ref.path), "skipped", WORKER_DIED, message)


def skipped_result(ref: RecordingRef, error: Exception) -> RecordingResult:
    """The skip a recording gets for an error raised while reading it or running the chain.

    Parameters
    ----------
    ref : RecordingRef
        The recording.
    error : Exception
        What reading or the chain raised: unusable data keeps its reason, a reading library's
        error (:func:`~biofound_cli.errors.is_reading_error`) is ``error`` and memory running out
        ``out_of_memory``, so one odd file never stops a run.

    Raises
    ------
    ReadingBug
        For any other error: a bug of ours, which a skip would hide among the bad files.
    """
    source = str(ref.path)
    if isinstance(error, UnusableRecording):
        return RecordingResult(ref.recording_id, source, "skipped", error.reason, error.message)
    if isinstance(error, DataError):
        return RecordingResult(ref.recording_id, source, "skipped", "unusable", error.message)
    if isinstance(error, MemoryError):
        return RecordingResult(
            ref.recording_id, source, "skipped", "out_of_memory", f"{source}: ran out of memory; use fewer --workers"
        )
    if is_reading_error(error):
        return RecordingResult(ref.recording_id, source, "skipped", "error", f"{source}: {type(error).__name__}: {error}")
    raise reading_bug(source, error) from error


def _raise_if_disk_full(error: Exception, path: Path) -> None:
    """Raise the ``OSError`` (ENOSPC or EDQUOT, naming the shard) when writing ``path`` failed for want of space.

    Skipped as an ``error``, a full disk turned every later recording into a skip of its own and
    the run still ended with status 0; raised, it stops the run with one line (the CLI's handling
    of a full disk), the finished shards kept and the report written.
    """
    full = disk_full_error(error, path) if isinstance(error, OSError) else None
    if full is not None:
        raise full from None


def _window_below_one_sample(config: ChainConfig, native_sfreq: float, source: str) -> str:
    """The recipe error when the windows of a native-rate recording would hold no sample; ``""`` otherwise.

    With ``sfreq`` set, :func:`resolve_chain_config` refused such a window before any work; both count its samples as
    the chain cuts them (:meth:`~biofound_cli.signals.chain.ChainConfig.window_samples`, rounded).
    """
    if config.sfreq is not None or config.window_samples(native_sfreq) >= 1:
        return ""
    return (
        f"preprocess.window_seconds = {config.window_seconds:g} s is shorter than one sample of {source} at its "
        f"native {native_sfreq:g} Hz; use at least {1 / native_sfreq:g} s or set preprocess.sfreq"
    )


def _attr_value(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    return json.dumps(value, default=str, sort_keys=True)
