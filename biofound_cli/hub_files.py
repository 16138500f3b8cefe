"""The files of a hub repository: what the hub publishes about them, and fetching one resumably.

huggingface_hub does the HTTP (``model_info`` for the listing with each file's size and LFS
sha256, ``get_hf_file_metadata`` for the ETag and download location, ``http_get`` for the bytes
with a Range request) and lays out the cache (``hf_hub_download``). Written here, with the reasons
read in huggingface_hub 2.4's ``file_download.py``:

* **Where an unfinished transfer is kept.** ``_download_to_tmp_and_move`` streams every download
  into a process-unique ``blobs/<etag>.<random>.incomplete`` and deletes it in a ``finally``
  whatever happened, so a failed or interrupted transfer is lost and the next run starts at
  byte 0 (``http_get`` resumes only within one call, on its own retries). Here the bytes go to
  ``<target>.incomplete`` — in the hub cache ``blobs/<etag>.incomplete``, the name
  huggingface_hub's cache tools report as an interrupted download (``hf cache prune`` removes
  them when asked) and that its downloads never write or delete; under ``--dest``
  ``DIR/<path>.incomplete``, with the ETag it was started at in ``DIR/<path>.incomplete.version``,
  so that one of a version since replaced on the hub is dropped (in the cache that record names the
  file instead, which the ETag does not say offline) — and every run continues it
  with ``http_get(resume_size=...)``. (No ``If-Range``: the bytes come from a CDN whose ETag
  need not be the hub's, which would make every resume start again.) ``http_get`` writes 10 MiB at a time
  (``constants.DOWNLOAD_CHUNK_SIZE``), so up to that much received just before a drop is
  fetched again.
* **The sha256 check.** Nothing in huggingface_hub compares a download with the LFS sha256 the
  hub publishes; a blob damaged on disk is linked into every new snapshot, and deleting the
  snapshot file an error names only brings the same blob back. Here the file is hashed once whole,
  before it is renamed to its final name, and a cached copy is hashed before it is used; ``force``
  replaces it.
* **Two runs at once.** huggingface_hub takes a ``WeakFileLock`` around every blob it writes
  (``.locks/<repo folder>/<etag>.lock``; under ``local_dir`` the ``.lock`` beside the file's
  download metadata). Our transfer takes the same lock around the check, the transfer and the
  rename, so a second run (an array job started at the same moment) waits, then finds the file
  whole and only checks it, instead of appending to the same ``.incomplete`` file.
* **A busy hub.** The listing and the metadata are asked once (``retry_on_errors=False``) and
  ``http_get`` retries only 408 and 429, so one 503 failed the download. Here the three are asked
  again by the rule data sets follow (:mod:`biofound_cli.download_retries`), the transfer
  continuing the partial file; the library's own retry warnings become one line of ours each.
* **Ctrl-C.** ``snapshot_download`` runs its transfers in a thread pool, whose workers Ctrl-C does
  not stop: the main thread waits for the transfer to end. Here the transfer runs in the calling
  thread, so Ctrl-C stops it at once and what was written stays for the next run.

Once whole and checked, the file sits where ``hf_hub_download`` looks for it (``blobs/<etag>``,
or ``DIR/<path>``), which then only links the snapshot (or, under ``--dest``, hashes the file
itself and records it), so the cache layout stays huggingface_hub's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from biofound_cli.atomic import read_json_object
from biofound_cli.download_retries import (
    TIMEOUT_VARIABLE,
    MisplacedRange,
    NoProgress,
    asked_again_while_busy,
    connect_timeout,
    library_retries_as_ours,
)
from biofound_cli.errors import DownloadError, asked_wait, first_line, rate_limited
from biofound_cli.models.checkpoints import file_sha256

INCOMPLETE_SUFFIX = ".incomplete"
VERSION_SUFFIX = ".version"
"""Beside a partial download whose name does not say which version of the file it holds
(``DIR/<path>.incomplete``, a data set's ``<file>.part``): a JSON object with the ``ETag`` (and,
for data sets, ``Last-Modified``) of the answer that started it; for weights also the ``file``
(its path in the repository), which a hub cache's ``blobs/<etag>.incomplete`` does not say."""
logger = logging.getLogger(__name__)


def client_timeout(seconds: float) -> Any:
    """``seconds`` for each answer and next bytes, :func:`connect_timeout` to connect, as huggingface_hub's client takes them.

    huggingface_hub passes the one number it is given (``timeout=``, ``etag_timeout=``,
    ``HF_HUB_DOWNLOAD_TIMEOUT``) to its client as every wait, connecting included: the hub got
    60 s to accept a connection where a data-set host gets 10. Its client takes both waits in one
    value: an ``httpx.Timeout`` (huggingface_hub >= 1.0), or requests' ``(connect, read)`` pair.

    Parameters
    ----------
    seconds : float
        From :func:`~biofound_cli.download_retries.download_timeout`.
    """
    from huggingface_hub.utils import get_session

    client = type(get_session()).__module__.split(".")[0]
    if client == "requests":  # huggingface_hub < 1.0
        return (connect_timeout(seconds), seconds)
    return sys.modules[client].Timeout(seconds, connect=connect_timeout(seconds))


@contextlib.contextmanager
def hub_settings(seconds: float, endpoint: str | None) -> Iterator[None]:
    """Set huggingface_hub's import-time settings that our calls cannot pass, while they run.

    * Its waits: ``http_get`` takes no timeout argument and reads ``HF_HUB_DOWNLOAD_TIMEOUT``, and
      ``hf_hub_download`` takes ``HF_HUB_ETAG_TIMEOUT``, when the user set it, over the
      ``etag_timeout`` passed: both become ``seconds`` (:func:`client_timeout`).
    * With an ``endpoint`` (``HF_ENDPOINT``, a mirror), ``HF_HUB_DISABLE_TELEMETRY``: building
      each request's User-Agent, huggingface_hub 2.4 fetches its agent registry from
      ``/api/agent-harnesses`` at the endpoint it read at import (3 s wait, once a process unless
      it got an answer within a day): huggingface.co when ``HF_ENDPOINT`` was set after the
      import, else a request the mirror may not serve. Telemetry off is the documented way
      to skip it; it also leaves the torch version out of the User-Agent.

    Each is read from the module at each call (the variables themselves only once, at import),
    and given back afterwards, so other code in the process keeps the user's settings.

    Parameters
    ----------
    seconds : float
        From :func:`download_timeout`.
    endpoint : str | None
        The hub's address (``HF_ENDPOINT``); ``None`` for huggingface.co.
    """
    from huggingface_hub import constants

    settings = {"HF_HUB_DOWNLOAD_TIMEOUT": client_timeout(seconds), "HF_HUB_ETAG_TIMEOUT": client_timeout(seconds)}
    if endpoint is not None:
        settings["HF_HUB_DISABLE_TELEMETRY"] = True
    before = {name: getattr(constants, name) for name in settings}
    for name, value in settings.items():
        setattr(constants, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(constants, name, value)


@dataclasses.dataclass(frozen=True)
class HubFile:
    """One file of a repository as the hub lists it; ``sha256`` is ``None`` for a file kept in git (not LFS)."""

    repo: str
    path: str
    size: int | None
    sha256: str | None

    @property
    def name(self) -> str:
        return f"{self.repo} {self.path}"


def matching_files(
    repo: str, revision: str | None, patterns: tuple[str, ...], endpoint: str | None, *, timeout: float
) -> tuple[str, list[HubFile]]:
    """The commit ``revision`` names and the files of ``repo`` matching ``patterns`` (exact names or globs).

    One request, the repository info with file metadata (``model_info(files_metadata=True)``),
    which lists every file with its size and, for LFS files, the sha256 of its content.
    huggingface_hub sends it once, without the retries with back-off of its tree listing.

    Parameters
    ----------
    repo : str
        Repository id, e.g. ``thorir/LUNA``.
    revision : str | None
        Branch, tag or commit; ``None`` means ``main``.
    patterns : tuple of str
        ``fnmatch`` patterns of paths inside the repository.
    endpoint : str | None
        The hub's address (``HF_ENDPOINT``); ``None`` for huggingface.co.
    timeout : float
        Seconds to wait for the answer (:func:`download_timeout`).

    Raises
    ------
    huggingface_hub.errors.HfHubHTTPError
        And the httpx2 transport errors: the caller words them.
    NotTheHubsAnswer
        For an answer that is not the hub's JSON (an HTML login or error page sent with status 200).
    """
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    with hub_settings(timeout, endpoint):
        try:
            info = asked_again_while_busy(
                f"the file list of {repo}",
                urlsplit(api.endpoint).netloc,
                lambda: api.model_info(repo, revision=revision, files_metadata=True, timeout=client_timeout(timeout)),
            )
        except json.JSONDecodeError as error:
            raise _listing_answer(error, api.endpoint) from None
        except (KeyError, TypeError):  # JSON of another shape: ModelInfo(**answer) found no "id", or no object
            host = urlsplit(api.endpoint).netloc
            raise NotTheHubsAnswer(f"{host} answered with JSON that is not a hub's file list") from None
    files = [
        HubFile(repo, sibling.rfilename, sibling.size, sibling.lfs.sha256 if sibling.lfs is not None else None)
        for sibling in info.siblings or []
        if any(fnmatch.fnmatchcase(sibling.rfilename, pattern) for pattern in patterns)
    ]
    return info.sha or (revision or "main"), sorted(files, key=lambda file: file.path)


def fetch_file(
    file: HubFile,
    *,
    commit: str,
    revision: str | None,
    endpoint: str | None,
    cache_dir: str | None,
    dest: str | os.PathLike[str] | None,
    timeout: float,
    force: bool = False,
) -> Path:
    """Fetch ``file`` into the hub cache (or ``dest``), resuming an earlier attempt, and check its sha256.

    Parameters
    ----------
    file : HubFile
        From :func:`matching_files`.
    commit : str
        The commit the listing came from: the bytes are fetched at exactly that commit.
    revision : str | None
        The branch, tag or commit asked for, recorded in the cache's ``refs`` as huggingface_hub does.
    endpoint : str | None
        The hub's address; ``None`` for huggingface.co.
    cache_dir : str | None
        The hub cache; ``None`` for huggingface_hub's default.
    dest : str | os.PathLike | None
        Put the file at ``dest/<path>`` instead of the cache.
    timeout : float
        Seconds to wait for each answer and each next bytes (:func:`download_timeout`).
    force : bool
        Fetch again from byte 0 and replace the copy already there (a damaged cached blob).

    Returns
    -------
    pathlib.Path
        The file: the snapshot path in the cache, or ``dest/<path>``.

    Raises
    ------
    DownloadError
        A transfer that failed (what arrived is kept for the next run), a content that does not
        match the published sha256, or a copy already there that does not (naming it and ``--force``).
    """
    from huggingface_hub import hf_hub_download

    with hub_settings(timeout, endpoint), library_retries_as_ours(file.name, file.size):
        target = _fetch_verified(file, commit, endpoint, cache_dir, dest, force, timeout) if file.sha256 else None
        path = Path(
            hf_hub_download(
                file.repo,
                file.path,
                revision=revision,
                cache_dir=cache_dir,
                local_dir=str(dest) if dest is not None else None,
                endpoint=endpoint,
                force_download=force and target is None,
                etag_timeout=client_timeout(timeout),
            )
        )
    if target is not None and path.resolve() != target.resolve():
        # huggingface_hub named the blob otherwise and fetched it itself: check what it wrote.
        _check_existing(file, path.resolve())
    return path


def _fetch_verified(
    file: HubFile,
    commit: str,
    endpoint: str | None,
    cache_dir: str | None,
    dest: str | os.PathLike[str] | None,
    force: bool,
    timeout: float,
) -> Path:
    """Put the checked bytes of ``file`` where ``hf_hub_download`` will find them; return that path."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(file.repo, file.path, revision=commit, endpoint=endpoint)
    metadata = asked_again_while_busy(
        file.name, urlsplit(url).netloc, lambda: get_hf_file_metadata(url, endpoint=endpoint, timeout=client_timeout(timeout))
    )
    if metadata.commit_hash is None:  # hf_hub_download would fail on it too, after our transfer
        raise _no_hub_headers(file, url, metadata.location)
    etag = metadata.etag or file.sha256 or ""
    target = _target(file, etag, cache_dir, dest)
    with one_writer(file.name, _lock_path(file, etag, cache_dir, dest)):
        location = metadata.location or url
        same_host = urlsplit(location).netloc == urlsplit(url).netloc
        return _fill_target(file, target, location, same_host=same_host, force=force, version=etag)


def _fill_target(file: HubFile, target: Path, url: str, *, same_host: bool, force: bool, version: str) -> Path:
    """Check the copy at ``target``, or transfer the file into ``<target>.incomplete`` and rename it; the lock is held.

    ``version`` (the ETag) and the file's path are recorded beside the partial file
    (:func:`_match_version`): under ``--dest``, whose ``DIR/<path>.incomplete`` does not say the
    version, bytes of another version are dropped before the transfer instead of being continued
    with the new version's tail; in the cache, whose ``blobs/<etag>.incomplete`` does not say the
    file, an offline run names only a partial download of the file it asks for (:func:`recorded`).
    """
    partial = target.with_name(target.name + INCOMPLETE_SUFFIX)
    if force:
        drop_partial(partial)  # the blob itself is replaced only once the new copy checks out
    elif target.is_file():
        _check_existing(file, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _match_version(file, partial, version)
    resumed = partial.stat().st_size if partial.is_file() else 0
    with partial_named_on_stop(partial):
        _transfer(file, url, partial, same_host=same_host)
        sha256 = file_sha256(partial)
    if sha256 != file.sha256:
        page = is_html_page(partial)
        drop_partial(partial)
        if page:
            raise DownloadError(f"{_html_instead(file, url)}; the download was removed, re-run the same command")
        # Bytes from an earlier run are the likelier culprit than the hub: say so, or the user reports a bug.
        earlier = (
            f"the {resumed} bytes an earlier run left in {partial.name} did not belong with the rest (the file changed "
            "on the hub since, or another process wrote to it at the same time); "
            if resumed
            else ""
        )
        advice = "re-run to fetch it from the start" if resumed else "re-run to fetch it again and report it if this repeats"
        raise DownloadError(
            f"{file.name} failed its sha256 check (the hub publishes {file.sha256}); {earlier}the download was removed, {advice}"
        )
    os.replace(partial, target)
    version_record(partial).unlink(missing_ok=True)
    return target


def version_record(partial: Path) -> Path:
    """The :data:`VERSION_SUFFIX` file beside a partial download: the version whose bytes it holds.

    Parameters
    ----------
    partial : Path
        The partial download (``DIR/<path>.incomplete``, a data set's ``<file>.part``).
    """
    return partial.with_name(partial.name + VERSION_SUFFIX)


def drop_partial(partial: Path) -> None:
    """Delete a partial download and its :func:`version_record`, so the next run starts at byte 0.

    Parameters
    ----------
    partial : Path
        The partial download.
    """
    partial.unlink(missing_ok=True)
    version_record(partial).unlink(missing_ok=True)


PARTIAL_ATTRIBUTE = "biofound_partial"
"""The attribute of a ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM as :class:`Terminated`) naming the
partial download it stopped, so the command's line can say which file and how many bytes are kept."""


@contextlib.contextmanager
def partial_named_on_stop(partial: Path) -> Iterator[None]:
    """While the block runs, a Ctrl-C (or SIGTERM) that stops it names ``partial`` for the command's line.

    Around the transfer, its retries and the check of the bytes received: hashing a large file
    takes minutes, and every byte is there, so the re-run only checks it.

    Parameters
    ----------
    partial : Path
        The partial download (``DIR/<path>.incomplete``, a data set's ``<file>.part``).
    """
    try:
        yield
    except KeyboardInterrupt as stop:
        setattr(stop, PARTIAL_ATTRIBUTE, partial)
        raise


STOPPED_ATTRIBUTE = "biofound_stopped"
"""The attribute of a ``KeyboardInterrupt`` saying what it stopped other than a transfer (the wait
for another run's lock, the unpacking of an archive), in the words that follow "stopped by Ctrl-C"."""


def note_stopped(stop: KeyboardInterrupt, what: str) -> None:
    """Record on ``stop`` what it interrupted, what is kept and what to do, where no transfer was under way.

    The line for a stopped transfer ("the bytes received are kept ... to resume the download")
    read wrong there: nothing was being received while the run waited for another's lock, and an
    archive being unpacked is whole. The innermost note wins.

    Parameters
    ----------
    stop : KeyboardInterrupt
        The Ctrl-C (or SIGTERM) on its way out.
    what : str
        The rest of the line, starting ``" while ..."`` or ``"; ..."``.
    """
    if getattr(stop, STOPPED_ATTRIBUTE, None) is None:
        setattr(stop, STOPPED_ATTRIBUTE, what)


def kept_after_stop(stop: KeyboardInterrupt) -> str:
    """What a stopped download kept and what to do, after "stopped by Ctrl-C" in its line.

    Parameters
    ----------
    stop : KeyboardInterrupt
        The stop; :func:`partial_named_on_stop` named the file it left, if the transfer had started, and
        :func:`note_stopped` what it stopped where that was not a transfer.
    """
    noted = getattr(stop, STOPPED_ATTRIBUTE, None)
    if isinstance(noted, str):
        return noted
    partial = getattr(stop, PARTIAL_ATTRIBUTE, None)
    kept = partial.stat().st_size if isinstance(partial, Path) and partial.is_file() else 0
    if not kept:
        # Not started, or stopped before huggingface_hub wrote its first block (10 MiB): nothing is kept.
        return "; nothing of the file was kept yet, so re-run the same command to download it"
    return f"; the {kept} bytes received are kept in {partial}, so re-run the same command to resume the download"


def _match_version(file: HubFile, partial: Path, version: str) -> None:
    """Drop a partial file of another version than ``version``, and record the version and file a new one starts with.

    A partial file without a record (left by an older biofound) is continued as before; the
    sha256 check catches one of another version.
    """
    record = version_record(partial)
    kept = partial.stat().st_size if partial.is_file() else 0
    if kept and recorded(partial, "ETag") not in (None, version):
        logger.info(f"{file.name} changed on the hub since an earlier run left {kept} bytes of it; fetching it from the start")
        partial.unlink()
        kept = 0
    if not kept:
        record.write_text(json.dumps({"ETag": version, "file": file.path}) + "\n")


def recorded(partial: Path, key: str) -> str | None:
    """What the :func:`version_record` of a weights' partial download says: its ``ETag``, or the ``file`` it is for.

    The ``file`` (its path in the repository) is what a hub cache's ``blobs/<etag>.incomplete`` does
    not say. ``None`` where nothing says (a partial file left by huggingface_hub's tools or an older biofound).

    Parameters
    ----------
    partial : Path
        The partial download.
    key : str
        ``"ETag"`` or ``"file"``.
    """
    value = (read_json_object(version_record(partial)) or {}).get(key)
    return str(value) if value else None


def _lock_path(file: HubFile, etag: str, cache_dir: str | None, dest: str | os.PathLike[str] | None) -> Path:
    """The lock file ``hf_hub_download`` takes for the same file, so that its downloads and ours exclude each other too.

    In the cache ``.locks/<repo folder>/<etag>.lock``; under ``dest`` the one beside the file's
    download metadata in ``dest/.cache/huggingface/download/``.
    """
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    if dest is not None:
        from huggingface_hub._local_folder import get_local_download_paths

        return get_local_download_paths(Path(dest), file.path).lock_path
    root = Path(cache_dir or constants.HF_HUB_CACHE)
    return root / ".locks" / repo_folder_name(repo_id=file.repo, repo_type="model") / f"{etag}.lock"


@contextlib.contextmanager
def one_writer(name: str, lock: Path) -> Iterator[None]:
    """Hold ``lock`` while a download is checked or transferred; say so when another process holds it first.

    Two runs at once (two array jobs, two terminals) would otherwise append to the same partial
    file and both fail its check. The second waits here, then finds the file whole and only
    checks it. The lock is huggingface_hub's ``WeakFileLock`` (a ``filelock.FileLock``, an
    ``flock`` on the lock file); a quick try first tells the user why the command pauses.

    The lock file is never removed: a run waiting on it and a run started after it was removed
    would lock two different files and both write the partial file. filelock leaves it in place
    for that reason ("so waiters share the same inode").

    Parameters
    ----------
    name : str
        What is downloaded, for the message (``REPO FILE``, or a data set's file name).
    lock : pathlib.Path
        The lock file; its folder is created when missing.
    """
    from filelock import FileLock, Timeout
    from huggingface_hub.utils import WeakFileLock

    lock.parent.mkdir(parents=True, exist_ok=True)
    # The probe may create the lock file: group-writable as WeakFileLock makes it, or the other
    # users of a shared cache could not take the lock at all.
    probe = FileLock(str(lock), mode=0o664)
    waiting = False
    with contextlib.ExitStack() as held:
        try:
            try:
                probe.acquire(timeout=0)
                probe.release()
            except Timeout:
                waiting = True  # before the line: a stop the line prompted finds it set
                logger.info(f"another download of {name} is under way (lock {lock}); waiting for it to finish")
            except NotImplementedError:  # no flock here: WeakFileLock falls back to a lock file of its own
                pass
            held.enter_context(WeakFileLock(lock))
        except KeyboardInterrupt as stop:
            if waiting:
                note_stopped(
                    stop,
                    f" while waiting for another download of {name} to finish (lock {lock}); this run wrote nothing of "
                    "it: re-run the same command, which waits for that download again or continues what it left",
                )
            raise
        yield


def _target(file: HubFile, etag: str, cache_dir: str | None, dest: str | os.PathLike[str] | None) -> Path:
    """Where ``hf_hub_download`` looks for the file: ``dest/<path>``, or the cache's ``blobs/<etag>``."""
    if dest is not None:
        return Path(dest) / file.path
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    root = Path(cache_dir or constants.HF_HUB_CACHE)
    return root / repo_folder_name(repo_id=file.repo, repo_type="model") / "blobs" / etag


def _check_existing(file: HubFile, path: Path) -> None:
    if file_sha256(path) != file.sha256:
        raise DownloadError(
            f"the copy of {file.name} at {path} does not match the sha256 the hub publishes ({file.sha256}); "
            "it is damaged: re-run the same command with --force to download it again and replace it"
        )


def _transfer(file: HubFile, url: str, partial: Path, *, same_host: bool) -> None:
    """Append the missing bytes of ``file`` to ``partial`` with huggingface_hub's ``http_get``.

    A part longer than the file is dropped first; ``http_get`` sends ``Range: bytes=N-`` for the
    rest and starts again from byte 0 itself when a server ignores the Range. An answer whose bytes
    do not continue the part (:class:`~biofound_cli.download_retries.MisplacedRange`) makes it
    start again from byte 0 here.
    """
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"  # the exact bytes, so sizes and offsets agree
    if not same_host:
        headers.pop("authorization", None)  # a signed CDN address: the token stays with the hub

    def append() -> None:
        # Each attempt continues what the ones before left, a busy server's retry included.
        offset = partial.stat().st_size if partial.exists() else 0
        if file.size is not None and offset > file.size:
            partial.unlink()
            offset = 0
        try:
            with partial.open("ab") as handle:
                http_get(
                    url,
                    handle,
                    resume_size=offset,
                    headers=headers,
                    expected_size=file.size,
                    displayed_filename=file.path.rsplit("/", 1)[-1],
                )
        except MisplacedRange as misplaced:
            logger.info(str(misplaced))
            partial.unlink()  # the ETag recorded beside it under --dest still names the version fetched
            append()
        except HfHubHTTPError as error:
            if http_status(error) != 416 or not offset:
                raise
            # No byte past those kept, though the listing names more: the host's copy is cut short, and
            # "re-run to resume" would meet the same 416 on every run.
            drop_partial(partial)
            raise DownloadError(
                f"{urlsplit(url).netloc} has no bytes of {file.name} past the {offset} kept (HTTP 416), though the "
                f"listing names {file.size}: the copy it serves is cut short; the {offset} bytes were removed, so re-run "
                "the same command later to fetch it from the start, and report it to the repository's owners if this repeats"
            ) from None

    try:
        asked_again_while_busy(file.name, urlsplit(url).netloc, append)
    except BaseException as error:
        if isinstance(error, Exception) and is_html_page(partial):
            drop_partial(partial)  # not the start of the weights: a resume would append the file to it
            raise DownloadError(f"{_html_instead(file, url)}; nothing was saved, re-run the same command") from None
        kept = partial.stat().st_size if partial.exists() else 0
        if not kept:
            drop_partial(partial)
        problem = _transfer_problem(error, file, url, partial)
        if problem is None:
            raise  # Ctrl-C (exit 130, what arrived is kept) or a bug
        rerun = "wait as asked, then re-run" if http_status(error) == 429 else "re-run"
        if kept:
            raise DownloadError(
                f"{problem}; the {kept} bytes received are kept in {partial}, so {rerun} the same command to resume"
            ) from None
        raise DownloadError(f"{problem}; nothing was saved, {rerun} the same command") from None


HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")
"""How an HTML page (a server's, proxy's or network login's error or login page) starts."""


def is_html_page(path: Path) -> bool:
    """Whether ``path`` holds an HTML page, which a server, proxy or network login sent with status 200 in place of a file.

    Parameters
    ----------
    path : pathlib.Path
        The file received; a missing one is no page.
    """
    try:
        with path.open("rb") as handle:
            return looks_like_html(handle.read(512))
    except FileNotFoundError:
        return False


def looks_like_html(start: bytes) -> bool:
    """Whether ``start``, the first bytes of an answer, is an HTML page (:data:`HTML_STARTS`).

    Parameters
    ----------
    start : bytes
        The first bytes received (512 are enough).
    """
    head = start[:512].lstrip().lower()
    return head.startswith(HTML_STARTS) or b"<html" in head


def _no_hub_headers(file: HubFile, url: str, location: str | None) -> NotTheHubsAnswer:
    """The file's metadata came without the hub's ``X-Repo-Commit``: a redirect of the whole address, or no hub.

    An ``HF_ENDPOINT`` that moved (``http://`` redirected to ``https://``, a mirror at a new host)
    answers every address with a redirect; huggingface_hub follows it for the file list, not for
    the file's metadata (only a redirect within the host), so the file list worked and the file
    failed with a paragraph about firewalls and SSL certificates.
    """
    asked, sent_to = urlsplit(url), urlsplit(location or url)
    if (sent_to.scheme, sent_to.netloc) != (asked.scheme, asked.netloc):
        return NotTheHubsAnswer(
            f"{asked.netloc} redirects {file.name} to {sent_to.scheme}://{sent_to.netloc} without the hub's headers; "
            f"if the hub or mirror moved there, set HF_ENDPOINT={sent_to.scheme}://{sent_to.netloc}"
        )
    address = f"{asked.scheme}://{asked.netloc}{asked.path}"
    return NotTheHubsAnswer(
        f"{asked.netloc} answered for {file.name} without the hub's X-Repo-Commit header (a proxy's error or login page "
        f"in its place?); open {address} in a browser to see why"
    )


class NotTheHubsAnswer(Exception):
    """The hub's address answered the file list with something else than the hub's JSON; the message says what it was.

    A network login (a hotel's, a campus's), a proxy's error page or an ``HF_ENDPOINT`` that names
    a web site answers with status 200 and an HTML page, which huggingface_hub's ``model_info``
    parses as JSON and fails on with a bare ``JSONDecodeError``; JSON of another shape (another
    service's API) failed with a ``KeyError`` or ``TypeError``. Also raised for a file's metadata
    without the hub's headers (:func:`_no_hub_headers`).
    """


def _listing_answer(error: json.JSONDecodeError, endpoint: str) -> NotTheHubsAnswer:
    """The :class:`NotTheHubsAnswer` for a file list that did not parse as JSON (``error.doc`` is its text)."""
    host = urlsplit(endpoint).netloc
    if looks_like_html(error.doc.encode("utf-8", "replace")):
        return NotTheHubsAnswer(
            f"{host} sent an HTML page (an error or login page), not the hub's file list; open {endpoint} in a browser to see why"
        )
    return NotTheHubsAnswer(f"{host} sent something that is not the hub's file list (not JSON: {error.doc[:40]!r})")


def _html_instead(file: HubFile, url: str) -> str:
    """The first half of the one-line message for an HTML page received in place of ``file``."""
    parts = urlsplit(url)
    address = f"{parts.scheme}://{parts.netloc}{parts.path}"  # a signed CDN address's query stays out of the message
    return f"{parts.netloc} sent an HTML page (an error or login page), not {file.name}; open {address} in a browser to see why"


def _transfer_problem(error: BaseException, file: HubFile, url: str, partial: Path) -> str | None:
    """The first half of the one-line message for a failed transfer; ``None`` for what is not one."""
    from huggingface_hub.errors import HfHubHTTPError

    host = urlsplit(url).netloc
    if isinstance(error, HfHubHTTPError):
        status = http_status(error)
        if status == 429:
            return f"{host} answered {rate_limited(error.response.headers.get('Retry-After'))} while sending {file.name}"
        asked = asked_wait(error.response.headers.get("Retry-After"))
        later = (
            f" (a server error: try again later{f'; {asked}' if asked else ''})"
            if isinstance(status, int) and status >= 500
            else ""
        )
        return f"{host} answered HTTP {status} while sending {file.name}{later}"
    if isinstance(error, connect_timeout_errors()):
        waited = connect_timeout(hub_timeout_seconds())
        return f"cannot reach {host} for {file.name}: no connection within {waited:g} s, several times over; check the connection"
    if isinstance(error, timeout_errors()):
        # http_get has retried on its own, each attempt waiting the whole timeout: name the setting.
        return (
            f"{host} sent nothing more of {file.name} within {hub_timeout_seconds():g} s, several times over; the host "
            f"may be overloaded: re-run later, or wait longer with {TIMEOUT_VARIABLE}=SECONDS"
        )
    if isinstance(error, transport_errors()):
        return f"the connection to {host} failed while fetching {file.name} ({first_line(error)}); check the network connection"
    if isinstance(error, NoProgress):
        return f"{error} (a server that ignores Range requests, or a link that breaks at the same point); try again later"
    if isinstance(error, _client_classes("TooManyRedirects", "TooManyRedirects")):
        return f"{host} redirected {file.name} in a loop ({first_line(error)}; a server fault: try again later)"
    if isinstance(error, OSError):
        if error.errno == errno.ENOSPC:
            return f"the disk holding {partial.parent} is full while fetching {file.name}; free some space"
        if error.errno is None:  # http_get's size check: fewer bytes than the listing says
            return f"{host} sent {file.name} short of its {file.size} bytes"
        return f"could not write {partial} ({error.strerror or error}); check the folder and its permissions"
    return None


def http_status(error: BaseException) -> int | None:
    """The HTTP status of the answer an error carries (huggingface_hub's and its clients' errors); ``None`` without one.

    Parameters
    ----------
    error : BaseException
        What a request raised.
    """
    return getattr(getattr(error, "response", None), "status_code", None)


def transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-error classes of the HTTP client huggingface_hub uses (it changed across versions)."""
    return _client_classes("TransportError", "ConnectionError")


def timeout_errors() -> tuple[type[BaseException], ...]:
    """Timeout classes of the HTTP client huggingface_hub uses: no answer, or no next bytes, in time."""
    return _client_classes("TimeoutException", "Timeout")


def connect_timeout_errors() -> tuple[type[BaseException], ...]:
    """Timeout classes of the HTTP client huggingface_hub uses for a host that did not accept the connection in time."""
    return _client_classes("ConnectTimeout", "ConnectTimeout")


def silent_host_errors() -> tuple[type[BaseException], ...]:
    """Classes of the HTTP client huggingface_hub uses for a host that took no connection or sent no answer in time.

    Asked for the next file or repository, such a host would make each attempt wait as long again.
    """
    return (*_client_classes("ConnectError", "ConnectTimeout"), *timeout_errors())


def hub_timeout_seconds() -> float:
    """The wait for the next bytes in huggingface_hub's transfers: :func:`download_timeout` while :func:`hub_settings` holds."""
    from huggingface_hub import constants

    waits = constants.HF_HUB_DOWNLOAD_TIMEOUT
    return float(waits[1] if isinstance(waits, tuple) else getattr(waits, "read", waits))


def _client_classes(httpx_name: str, requests_name: str) -> tuple[type[BaseException], ...]:
    named = (("httpx2", httpx_name), ("httpx", httpx_name), ("requests", requests_name))
    classes = [getattr(sys.modules.get(module), name, None) for module, name in named]
    return tuple(cls for cls in classes if isinstance(cls, type) and issubclass(cls, BaseException))
