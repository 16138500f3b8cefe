"""Open data sets over HTTP (resumable, verified, extracted) and the TUH corpora over rsync.

Every download goes to ``<name>.part`` beside its final name; an interrupted transfer keeps the
part file and the next run continues it with an HTTP Range request. Only a file whose size (and,
where a checksum is published, sha256) checks out is renamed to its final name, so a corrupt
file never sits there. Archives are then unpacked, refusing any member that would land outside
the destination folder.

The URL table records only published facts. Where no checksum is published the size announced
by the server is checked instead, and the command says so.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

from biofound_cli import __version__
from biofound_cli.errors import UsageError
from biofound_cli.hub import DownloadError
from biofound_cli.output import Output

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60.0
BASE_URL_VARIABLE = "BIOFOUND_DATA_BASE_URL"
"""Environment variable that replaces every data-set URL's scheme and host (a local mirror)."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: where it is and what is known about it.

    ``size`` and ``sha256`` are ``None`` where the publisher does not state them; the download then
    checks the size the server announces.
    """

    url: str
    filename: str
    size: int | None = None
    sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class OpenDataset:
    """An openly downloadable data set."""

    name: str
    title: str
    files: tuple[RemoteFile, ...]
    terms: str
    citation: str
    page: str


def _db5_files() -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(f"https://ninapro.hevs.ch/files/DB5_Preproc/s{subject}.zip", f"s{subject}.zip")
        for subject in range(1, 11)
    )


OPEN_DATASETS: dict[str, OpenDataset] = {
    dataset.name: dataset
    for dataset in (
        OpenDataset(
            name="siena",
            title="Siena Scalp EEG Database 1.0.0 (PhysioNet)",
            files=(
                RemoteFile(
                    "https://physionet.org/static/published-projects/siena-scalp-eeg/"
                    "siena-scalp-eeg-database-1.0.0.zip",
                    "siena-scalp-eeg-database-1.0.0.zip",
                ),
            ),
            terms="Creative Commons Attribution 4.0 International, as stated on the PhysioNet project page",
            citation="Detti P. (2020), Siena Scalp EEG Database (version 1.0.0), PhysioNet; and the PhysioNet citation",
            page="https://physionet.org/content/siena-scalp-eeg/1.0.0/",
        ),
        OpenDataset(
            name="uci-emg",
            title="EMG data for gestures (UCI Machine Learning Repository #481)",
            files=(
                RemoteFile("https://archive.ics.uci.edu/static/public/481/emg+data+for+gestures.zip",
                           "emg+data+for+gestures.zip"),
            ),
            terms="Creative Commons Attribution 4.0 International, as stated on the UCI data set page",
            citation="Lobov S., Krilova N., Kastalskiy I., Kazantsev V., Makarov V. (2018), UCI ML Repository #481",
            page="https://archive.ics.uci.edu/dataset/481/emg+data+for+gestures",
        ),
        OpenDataset(
            name="epn612",
            title="EMG-EPN-612 (Zenodo record 4421500)",
            files=(
                RemoteFile("https://zenodo.org/records/4421500/files/EMG-EPN612%20Dataset.zip?download=1",
                           "EMG-EPN612 Dataset.zip"),
            ),
            terms="the licence shown on the Zenodo record; read it there before use",
            citation="Benalcázar M. et al., EMG-EPN-612 dataset, Zenodo, doi:10.5281/zenodo.4421500",
            page="https://zenodo.org/records/4421500",
        ),
        OpenDataset(
            name="db5",
            title="NinaPro DB5, pre-processed files of 10 subjects",
            files=_db5_files(),
            terms="the NinaPro terms of use (research use, cite the data set paper); read them on the NinaPro site",
            citation="Pizzolato S. et al. (2017), PLoS ONE 12(10): e0186132",
            page="https://ninapro.hevs.ch/instructions/DB5.html",
        ),
    )
}


# -- one file, resumable -----------------------------------------------------------------------
def _effective_url(url: str) -> str:
    base = os.environ.get(BASE_URL_VARIABLE)
    if not base:
        return url
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


def fetch_file(
    remote: RemoteFile,
    folder: str | os.PathLike[str],
    *,
    output: Output | None = None,
    retries: int = 2,
    timeout: float = TIMEOUT_SECONDS,
) -> Path:
    """Download ``remote`` into ``folder``, resuming a ``.part`` file left by an earlier run.

    Parameters
    ----------
    remote : RemoteFile
        What to fetch; its ``sha256`` and ``size`` are checked where known.
    folder : str | os.PathLike
        Destination folder; the file keeps ``remote.filename``.
    output : Output | None
        Progress is reported here.
    retries : int
        Extra attempts, each resuming where the last stopped, after a dropped connection.
    timeout : float
        Seconds to wait for the server before giving up on an attempt.

    Returns
    -------
    pathlib.Path
        The verified file under its final name.

    Raises
    ------
    DownloadError
        Network failure (the part file is kept), HTTP 401/403/404, a full disk, or a size or
        checksum mismatch (the part file is removed).
    """
    folder = Path(folder)
    final = folder / remote.filename
    if final.is_file() and _matches(final, remote):
        return final
    folder.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    attempt = 0
    while True:
        try:
            total = _transfer(remote, part, output, timeout)
            break
        except _Dropped as dropped:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"the connection to {_host(remote.url)} was lost after {part.stat().st_size} bytes of "
                    f"{remote.filename} ({dropped}); {part} is kept, so re-run the same command to resume"
                ) from None
    _check_complete(part, remote, total)
    os.replace(part, final)
    return final


class _Dropped(Exception):
    """A transfer that stopped part way; the part file holds what arrived."""


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(_effective_url(url)).netloc


def _transfer(remote: RemoteFile, part: Path, output: Output | None, timeout: float) -> int | None:
    """Append the missing bytes to ``part``; return the full size the server announced, if any."""
    import urllib.error
    import urllib.request

    url = _effective_url(remote.url)
    offset = part.stat().st_size if part.exists() else 0
    if remote.size is not None and offset > remote.size:
        part.unlink()
        offset = 0
    headers = {"User-Agent": f"biofound/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # The part file already holds every byte (or more): check it as it is.
            return remote.size if remote.size is not None else offset
        raise _http_error(error.code, remote, url) from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        kept = f"; {part} is kept for resuming" if offset else ""
        raise DownloadError(
            f"cannot reach {_host(remote.url)} for {remote.filename} ({reason}); check the network connection "
            f"and re-run{kept}"
        ) from None
    with response:
        total = _announced_total(response, offset)
        if response.status == 200 and offset:
            offset = 0  # the server ignored the Range header: start again from byte 0
        mode = "ab" if offset else "wb"
        try:
            with part.open(mode) as handle, _progress(output, total, offset, remote.filename) as advance:
                while True:
                    try:
                        chunk = response.read(CHUNK_BYTES)
                    except (http.client.IncompleteRead, ConnectionError, socket.timeout, OSError) as error:
                        handle.flush()
                        raise _Dropped(type(error).__name__) from None
                    if not chunk:
                        break
                    handle.write(chunk)
                    advance(len(chunk))
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise DownloadError(
                    f"the disk holding {part.parent} is full; free some space and re-run to resume {remote.filename}"
                ) from None
            raise DownloadError(f"could not write {part} ({error.strerror or error}); check the folder") from None
    if total is not None and part.stat().st_size < total:
        raise _Dropped(f"{part.stat().st_size} of {total} bytes")
    return total


def _announced_total(response: Any, offset: int) -> int | None:
    content_range = response.headers.get("Content-Range")
    if response.status == 206 and content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    if length is None or not length.isdigit():
        return None
    return int(length) + (offset if response.status == 206 else 0)


def _http_error(status: int, remote: RemoteFile, url: str) -> DownloadError:
    if status == 404:
        return DownloadError(f"{url} was not found (HTTP 404); the data set may have moved, see {remote.url}")
    if status in (401, 403):
        return DownloadError(
            f"{_host(remote.url)} refused {remote.filename} (HTTP {status}); the data set may need a login "
            "or acceptance of its terms on its web page"
        )
    return DownloadError(f"{_host(remote.url)} answered HTTP {status} for {remote.filename}; try again later")


class _progress:
    """Byte progress on ``output`` (a no-op without one)."""

    def __init__(self, output: Output | None, total: int | None, done: int, name: str) -> None:
        self._context = output.progress(total, f"downloading {name}", unit="bytes") if output else None
        self._done = done
        self._task: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if self._context is None:
            return lambda amount: None
        self._task = self._context.__enter__()
        if self._done:
            self._task.advance(self._done)
        return self._task.advance

    def __exit__(self, *exc: Any) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _matches(path: Path, remote: RemoteFile) -> bool:
    """Whether an existing final file checks out (size and sha256 where known)."""
    if remote.size is not None and path.stat().st_size != remote.size:
        return False
    return remote.sha256 is None or _sha256(path) == remote.sha256.lower()


def _check_complete(part: Path, remote: RemoteFile, announced: int | None) -> None:
    size = part.stat().st_size
    expected = remote.size if remote.size is not None else announced
    if expected is not None and size != expected:
        part.unlink()
        raise DownloadError(
            f"{remote.filename} has {size} bytes, not the expected {expected}; the partial file was removed, "
            "re-run to download it again"
        )
    if remote.sha256 is not None and _sha256(part) != remote.sha256.lower():
        part.unlink()
        raise DownloadError(
            f"{remote.filename} failed its sha256 check (expected {remote.sha256}); the file was removed, "
            "re-run to download it again and report it if this repeats"
        )


# -- extraction --------------------------------------------------------------------------------
def extract(archive: Path, folder: Path) -> Path:
    """Unpack a zip or tar archive into ``folder`` once; a marker file records that it is done.

    Raises
    ------
    DownloadError
        For an archive that is damaged or holds a member outside ``folder``.
    """
    marker = folder / f".{archive.name}.extracted"
    if marker.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.namelist():
                    _inside(root, member, archive)
                bundle.extractall(folder)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as bundle:
                for member in bundle.getmembers():
                    _inside(root, member.name, archive)
                bundle.extractall(folder, filter="data")
        else:
            return folder  # not an archive: the file itself is the data
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
        raise DownloadError(f"{archive} is damaged ({error}); delete it and download again") from None
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise DownloadError(f"the disk holding {folder} is full while unpacking {archive.name}; free space and re-run") from None
        raise
    marker.write_text("done\n")
    return folder


def _inside(root: Path, member: str, archive: Path) -> None:
    if not (root / member).resolve().is_relative_to(root):
        raise DownloadError(f"{archive} holds {member!r}, which points outside {root}; the archive is not safe to unpack")


def download_dataset(
    name: str,
    dest: str | os.PathLike[str],
    *,
    output: Output | None = None,
    keep_archives: bool = True,
    retries: int = 2,
) -> dict[str, Any]:
    """Download, verify and unpack the open data set ``name`` into ``dest/<name>``.

    Returns
    -------
    dict
        ``dataset``, ``folder``, ``files``, ``checks`` (per file: ``sha256`` or ``size only``), ``terms``,
        ``citation`` and ``page``.
    """
    dataset = OPEN_DATASETS.get(name)
    if dataset is None:
        raise UsageError(f"unknown data set {name!r}; choose one of: {', '.join(OPEN_DATASETS)}, {', '.join(TUH_CORPORA)}")
    folder = Path(dest) / dataset.name
    archives = folder / "archives"
    files, checks = [], []
    for remote in dataset.files:
        path = fetch_file(remote, archives, output=output, retries=retries)
        extract(path, folder)
        files.append(str(path))
        checks.append("sha256" if remote.sha256 else "size only (no published checksum)")
    if not keep_archives:
        shutil.rmtree(archives, ignore_errors=True)
    return {"dataset": dataset.name, "folder": str(folder), "files": files, "checks": checks,
            "terms": dataset.terms, "citation": dataset.citation, "page": dataset.page}


# -- TUH corpora over rsync --------------------------------------------------------------------
TUH_HOST = "www.isip.piconepress.com"
TUH_USER = "nedc-tuh-eeg"
TUH_REGISTRATION = "https://isip.piconepress.com/projects/nedc/html/tuh_eeg/"
TUH_KEY_VARIABLE = "BIOFOUND_TUH_SSH_KEY"
TUH_USER_VARIABLE = "BIOFOUND_TUH_USER"

TUH_CORPORA: dict[str, tuple[str, str]] = {
    "tuab": ("TUH Abnormal EEG Corpus", "tuh_eeg_abnormal/v3.0.1"),
    "tuar": ("TUH Artifact Corpus", "tuh_eeg_artifact/v3.0.1"),
    "tusl": ("TUH Slowing Corpus", "tuh_eeg_slowing/v2.0.1"),
    "tueg": ("TUH EEG Corpus", "tuh_eeg/v2.0.2"),
}


def tuh_rsync_command(corpus: str, dest: str | os.PathLike[str], ssh_key: str | None = None,
                      user: str = TUH_USER) -> list[str]:
    """The NEDC-documented ``rsync -auxvL`` command for ``corpus``, as an argument list."""
    if corpus not in TUH_CORPORA:
        raise UsageError(f"unknown TUH corpus {corpus!r}; choose one of: {', '.join(TUH_CORPORA)}")
    command = ["rsync", "-auxvL"]
    if ssh_key:
        command += ["-e", f"ssh -i {ssh_key}"]
    command += [f"{user}@{TUH_HOST}:data/tuh_eeg/{TUH_CORPORA[corpus][1]}/", str(Path(dest) / corpus) + "/"]
    return command


def tuh_registration_steps(corpus: str) -> list[str]:
    title = TUH_CORPORA[corpus][0]
    return [
        f"The {title} is free for research but needs NEDC credentials.",
        f"1. Fill in and sign the data-sharing form linked from {TUH_REGISTRATION} and email it as the page says.",
        "2. NEDC registers your SSH public key (or sends a password) and the rsync user name.",
        f"3. Set {TUH_KEY_VARIABLE}=~/.ssh/<your key> (and {TUH_USER_VARIABLE} if NEDC gave another user name),",
        "   then run this command again; or run the rsync command below yourself.",
    ]


def download_tuh(
    corpus: str,
    dest: str | os.PathLike[str],
    *,
    environ: dict[str, str] | None = None,
    run: Callable[[Sequence[str]], int] | None = None,
) -> dict[str, Any]:
    """Run the documented rsync for a TUH corpus when credentials are in the environment.

    Without ``BIOFOUND_TUH_SSH_KEY`` nothing runs: the result carries the registration steps and
    the command to run by hand. ``run`` (for tests) replaces :func:`subprocess.call`.

    Raises
    ------
    DownloadError
        If rsync is missing or exits with an error.
    """
    environ = dict(os.environ if environ is None else environ)
    key = environ.get(TUH_KEY_VARIABLE)
    user = environ.get(TUH_USER_VARIABLE) or TUH_USER
    command = tuh_rsync_command(corpus, dest, ssh_key=key, user=user)
    result = {"dataset": corpus, "folder": str(Path(dest) / corpus), "command": command,
              "steps": tuh_registration_steps(corpus), "ran": False}
    if not key:
        return result
    if not Path(key).expanduser().is_file():
        raise UsageError(f"{TUH_KEY_VARIABLE}={key} is not a file; point it at the SSH key registered with NEDC")
    if run is None and shutil.which("rsync") is None:
        raise DownloadError("rsync is not installed; install it (e.g. apt install rsync) and re-run")
    Path(dest, corpus).mkdir(parents=True, exist_ok=True)
    status = (run or subprocess.call)(command)
    if status != 0:
        raise DownloadError(
            f"rsync from {TUH_HOST} exited with status {status}; check the SSH key in {TUH_KEY_VARIABLE} and "
            "the network, then re-run (rsync resumes)"
        )
    result["ran"] = True
    return result
