"""Official weights from the Hugging Face hub: download, cache, verify, list.

Each variant names its original repository first and the newer organisation repositories after
it; the first one that lists the file wins and is reported. Only the files asked for are fetched
(exact names or globs matched against the repository's file list), into the standard hub cache
(or ``--dest``), by :mod:`biofound_cli.hub_files`: a failed or interrupted transfer is kept and
resumed by the next run, and the content is checked against the sha256 the hub publishes for LFS
files. ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``HF_HOME``/``HF_HUB_CACHE`` and ``HF_TOKEN`` are
honoured at call time.

Every file is then checked against ``biofound_cli/data/manifests.json`` (key → shape per variant,
built from the upstream key lists): the safetensors header must parse and the keys and shapes
must match, with or without the Lightning ``model.`` prefix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import json
import logging
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from biofound_cli.download_retries import BUSY_STATUSES, TIMEOUT_VARIABLE, connect_timeout, download_timeout
from biofound_cli.errors import (
    CheckpointError,
    DownloadError,
    UsageError,
    asked_wait,
    first_line,
    rate_limited,
)  # DownloadError: also imported from here
from biofound_cli.hub_files import (
    INCOMPLETE_SUFFIX,
    HubFile,
    NotTheHubsAnswer,
    connect_timeout_errors,
    fetch_file,
    http_status,
    matching_files,
    recorded,
    silent_host_errors,
    timeout_errors,
    transport_errors,
)
from biofound_cli.models.checkpoints import PREFIX, key_problems, read_layout
from biofound_cli.models.registry import FAMILIES, VARIANTS, ModelVariant, get_variant, variants_of
from biofound_cli.server_address import server_address
from biofound_cli.store.output_folder import unwritable

logger = logging.getLogger(__name__)

MODEL_NAMES = tuple(FAMILIES)
_PRETRAIN = ("pretrain", "pretrained", "pre-train")
_MAX_LISTED = 5
_RATE_ADVICE = "wait as asked, then re-run (the hub allows more requests with a token: set HF_TOKEN or run `hf auth login`)"
_LATER_ADVICE = "try again later (or check HF_ENDPOINT)"
_TOKEN_ADVICE = "if the repository is private or gated, accept its terms on the hub and set HF_TOKEN or run `hf auth login`"


class NotDownloaded(DownloadError):
    """The weights asked for are not in the hub cache (or ``dest``) and may not be fetched (``HF_HUB_OFFLINE``, ``local_only``).

    Kept apart from the other download errors so that a ``hub:`` reference says "not downloaded
    yet" only then, not for a copy that is there but damaged. ``partial`` says what a download
    stopped earlier left there (:func:`_partial_download`), for the advice to say the same command
    finishes it; ``None`` when nothing was left.
    """

    def __init__(self, request: WeightsRequest, dest: str | os.PathLike[str] | None) -> None:
        self.partial = _partial_download(request, dest)
        place = dest if dest is not None else "the hub cache"
        advice = "run the same command once with network access"
        advice = f"{self.partial}: {advice} to finish it" if self.partial else advice
        super().__init__(
            f"{_weights_named(request)} are not in {place} and HF_HUB_OFFLINE is set; {advice}, or unset HF_HUB_OFFLINE"
        )


class DamagedCopy(DownloadError):
    """A copy of the weights already in the hub cache (or ``dest``) that cannot be read; ``--force`` fetches it again.

    ``problem`` is what is wrong with it, without the advice, for a caller that words the advice
    otherwise (a ``hub:`` reference names the command that fetches the file).
    """

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}; re-run the download with --force to fetch it again and replace it")
        self.problem = problem


@dataclasses.dataclass(frozen=True)
class WeightsRequest:
    """What to fetch for one variant: exact file names or glob patterns inside the repository."""

    variant: ModelVariant
    task: str | None
    patterns: tuple[str, ...]
    repos: tuple[str, ...]

    @property
    def description(self) -> str:
        """``luna-base pre-trained weights``: how a message names the weights asked for."""
        return f"{self.variant.name} {self.task or 'pre-trained'} weights"


@dataclasses.dataclass
class WeightsResult:
    """Where the verified files are and which repository served them."""

    variant: str
    task: str | None
    repo: str
    revision: str
    files: list[Path]
    tried: list[str]
    verification: list[dict[str, Any]]
    sha256: list[str | None] = dataclasses.field(default_factory=list)
    """Per file, the published sha256 its content was checked against (``None``: not checked, e.g. offline)."""
    copy_note: str | None = None
    """Why a copy already there was used without the hub's word on it (unreachable, a cache that cannot be written)."""

    def recipe_lines(self) -> list[str]:
        """The recipe snippet that uses each file, e.g. ``[model] checkpoint = "..."``."""
        return [f'[model]\nvariant = "{self.variant}"\ncheckpoint = "{path}"' for path in self.files]

    def summary(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "task": self.task or "pretrain",
            "repo": self.repo,
            "revision": self.revision,
            "files": [str(path) for path in self.files],
            "verified": [entry["n_tensors"] for entry in self.verification],
            "sha256": self.sha256,
            "recipe": self.recipe_lines(),
        }


# -- resolving what to fetch -------------------------------------------------------------------
def resolve_variant(model: str, variant: str | None = None) -> ModelVariant:
    """The registry variant for ``model`` (``femba``/``luna``/``tinymyo`` or a full variant name).

    ``variant`` may be a size (``base``) or a full name (``luna-base``); unset gives the family's default.

    Parameters
    ----------
    model : str
        A family (``femba``, ``luna``, ``tinymyo``) or a full variant name, in any case.
    variant : str | None
        A size or a full variant name of that family; None gives the family's default.
    """
    name = model.lower()
    if name in VARIANTS and variant is None:
        return VARIANTS[name]
    family = name.split("-", 1)[0]
    if family not in FAMILIES:
        raise UsageError(f"unknown model {model!r}; choose one of: {', '.join(MODEL_NAMES)} or a data set")
    if variant is None:
        return VARIANTS[FAMILIES[family].default_variant]
    chosen = variant.lower()
    candidate = chosen if chosen.startswith(family) else f"{family}-{chosen}"
    if candidate not in VARIANTS and chosen in VARIANTS:
        candidate = chosen
    if candidate not in variants_of(family):
        raise UsageError(f"--variant {variant!r} is not a {family} variant; choose one of: {', '.join(variants_of(family))}")
    return VARIANTS[candidate]


def task_folder(variant: ModelVariant, task: str) -> tuple[str, str]:
    """``(task key, hub folder)`` for a downstream task name such as ``TUAB`` or ``uci_emg``.

    Parameters
    ----------
    variant : ModelVariant
        The variant whose family's task folders are looked up.
    task : str
        The downstream data set, in any case, ``_`` or ``-`` alike.
    """
    key = task.lower().replace("_", "-")
    # Fine-tuned checkpoints live in one folder per downstream data set (upstream README).
    folders = FAMILIES[variant.family].hub_task_folders
    if key not in folders:
        raise UsageError(
            f"--task {task!r} has no {variant.model_name} checkpoint; choose one of: "
            f"{', '.join(folders.values())} (or leave --task out for the pre-trained weights)"
        )
    return key, folders[key]


def candidate_repos(variant: ModelVariant) -> tuple[str, ...]:
    """The original repository first, then the organisation mirrors, without repeats.

    Parameters
    ----------
    variant : ModelVariant
        The variant whose ``hub_repo`` and ``hub_mirrors`` are listed.
    """
    return tuple(dict.fromkeys((variant.hub_repo, *variant.hub_mirrors)))


def weights_request(model: str, variant: str | None = None, task: str | None = None) -> WeightsRequest:
    """Work out which files of which repositories hold the weights asked for.

    Parameters
    ----------
    model : str
        A family (``femba``, ``luna``, ``tinymyo``) or a full variant name.
    variant : str | None
        A size (``base``) or full variant name; None gives the family's default.
    task : str | None
        The downstream data set of fine-tuned weights; None (or ``pretrain``) asks for the
        pre-trained weights.

    Raises
    ------
    UsageError
        For an unknown model, variant or task, or pre-trained weights that are not published.
    """
    chosen = resolve_variant(model, variant)
    repos = candidate_repos(chosen)
    if task is None or task.lower() in _PRETRAIN:
        if chosen.hub_file is None:
            tasks = ", ".join(FAMILIES[chosen.family].hub_task_folders.values())
            raise UsageError(
                f"the pre-trained {chosen.name} weights are not published under a known file name; "
                f"pick a fine-tuned checkpoint with --task ({tasks}) or see `biofound download {chosen.family} --list`"
            )
        return WeightsRequest(chosen, None, (chosen.hub_file,), repos)
    key, folder = task_folder(chosen, task)
    if key in chosen.hub_task_files:
        return WeightsRequest(chosen, key, (chosen.hub_task_files[key],), repos)
    # File names inside the task folders are not all published: match the variant's size in the name.
    size = chosen.name.split("-", 1)[1] if "-" in chosen.name else ""
    spellings = dict.fromkeys((size, size.capitalize(), size.upper()))  # one "" when the name has no size
    patterns = tuple(f"{folder}/*{spelling}*.safetensors" for spelling in spellings)
    return WeightsRequest(chosen, key, patterns, repos)


# -- environment -------------------------------------------------------------------------------
HUB_ADDRESS = "https://huggingface.co"
"""The hub's address when ``HF_ENDPOINT`` names no mirror."""


def hub_endpoint() -> str | None:
    """``HF_ENDPOINT`` as set now (huggingface_hub reads it only once, at import); ``None`` when unset.

    Raises
    ------
    UsageError
        For a value that is not an ``http(s)://HOST`` address (:func:`~biofound_cli.server_address.server_address`).
    """
    return server_address("HF_ENDPOINT", "a hub or mirror", f"for {HUB_ADDRESS}")


def hub_cache_dir() -> str | None:
    """``HF_HUB_CACHE``, else ``HF_HOME/hub``, as set now; ``None`` leaves huggingface_hub's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for cache-only operation."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if not enabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()


# -- downloading -------------------------------------------------------------------------------
def download_weights(
    request: WeightsRequest,
    *,
    revision: str | None = None,
    dest: str | os.PathLike[str] | None = None,
    progress: bool = True,
    local_only: bool = False,
    force: bool = False,
) -> WeightsResult:
    """Fetch and verify the files of ``request``, trying each candidate repository in turn.

    Parameters
    ----------
    request : WeightsRequest
        From :func:`weights_request`.
    revision : str | None
        Branch, tag or commit; ``None`` means ``main``.
    dest : str | os.PathLike | None
        Put the files into this folder (keeping the repository layout) instead of the hub cache.
    progress : bool
        Show huggingface_hub's progress bars.
    local_only : bool
        Only look in the cache (or ``dest``), as under ``HF_HUB_OFFLINE``: how a ``hub:``
        reference in a recipe is resolved.
    force : bool
        Download again and replace the copy already there (a damaged cached blob).

    Raises
    ------
    DownloadError
        If no repository serves the files (naming each one's HTTP status), access is refused, the
        network is down and the cache does not hold them, a transfer fails (what arrived is kept
        for the next run), or a file fails verification.
    UsageError
        If ``dest`` (else the hub cache) cannot be created or written; checked only when the
        files may be fetched: offline or with ``local_only`` a read-only folder is read as it is.
    """
    if hub_offline() or local_only:
        if force:
            raise UsageError("--force downloads the weights again, which HF_HUB_OFFLINE forbids; unset it or drop --force")
        cached = _from_cache(request, revision, dest)
        if cached is None:
            raise NotDownloaded(request, dest)
        return cached
    timeout = download_timeout()
    hub_endpoint()  # a mistyped HF_ENDPOINT is refused before anything else
    unwritable_copy = _unwritable_but_cached(request, revision, dest, force)
    if unwritable_copy is not None:
        return unwritable_copy
    tried: list[str] = []
    kinds: list[str] = []
    for repo in request.repos:
        where = repo
        try:
            commit, listed = matching_files(repo, revision, request.patterns, hub_endpoint(), timeout=timeout)
            if not listed:
                tried.append(f"{repo}: no file matching {', '.join(request.patterns)}")
                kinds.append("missing")
                continue
            files = []
            with _progress_bars(progress):
                for entry in listed:
                    where = entry.name
                    files.append(
                        fetch_file(
                            entry,
                            commit=commit,
                            revision=revision,
                            endpoint=hub_endpoint(),
                            cache_dir=hub_cache_dir(),
                            dest=dest,
                            timeout=timeout,
                            force=force,
                        )
                    )
        except DownloadError:
            raise
        except Exception as error:
            kind, note = _failure(error, where, revision)
            if kind == "missing" and where != repo:  # listed, yet not served: a mirror half synced, not a file that is gone
                kind, note = "server", f"{note} though the file list names it"
            if kind is None and isinstance(error, OSError):
                raise _os_error(error, dest) from None
            if kind is None:
                raise
            tried.append(note)
            kinds.append(kind)
            if _host_down(error):
                break
            continue
        return _verified(request, repo, revision, files, tried, [entry.sha256 for entry in listed])
    if {"unreachable", "server", "rate-limited"} & set(kinds) and not force:
        cached = _from_cache(request, revision, dest)  # what an earlier run fetched still serves
        if cached is not None:
            cached.tried, cached.copy_note = tried, _cached_note(cached.files, dest)
            return cached
    raise DownloadError(_nothing_served(request, tried, kinds))


def _cached_note(files: list[Path], dest: str | os.PathLike[str] | None) -> str:
    """The note for weights an earlier run fetched, used because the hub could not be asked: which copy, and that it may be old.

    The copy is the cache's ``refs/<revision>`` of that run: the hub's ``main`` may have moved on
    since (new weights), which nothing here can know while it is unreachable; the commit lets the
    user compare with the hub's once it answers.
    """
    if dest is not None:
        return f"using the copy already in {dest}; whether the hub holds newer files could not be checked"
    parts = files[0].parts
    commit = parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None
    at = f" (commit {commit[:12]}, fetched by an earlier run)" if commit else ""
    return f"using the copy already in the hub cache{at}; whether the hub holds newer files could not be checked"


def _unwritable_but_cached(
    request: WeightsRequest, revision: str | None, dest: str | os.PathLike[str] | None, force: bool
) -> WeightsResult | None:
    """The copy already there when ``dest`` (else the hub cache) cannot be written; ``None`` when it can.

    A shared cache filled on a login node is often read-only where jobs run (or belongs to another
    user): what it holds serves as it is, and nothing could be fetched into it anyway.

    Raises
    ------
    UsageError
        When the folder cannot be written and does not hold the files (or ``force`` asks to replace them).
    """
    problem = _unwritable(dest)
    if problem is None:
        return None
    cached = None if force else _from_cache(request, revision, dest)
    if cached is None:
        raise UsageError("; ".join(problem))
    cached.copy_note = f"{problem[0]}; {_cached_note(cached.files, dest)}"
    return cached


def _unwritable(dest: str | os.PathLike[str] | None) -> tuple[str, str] | None:
    """Why ``dest`` (else the hub cache) cannot be written, and what to do (:func:`unwritable`); ``None`` when it can."""
    if dest is not None:
        return unwritable(Path(dest), "--dest")
    from huggingface_hub import constants

    return unwritable(Path(hub_cache_dir() or constants.HF_HUB_CACHE), "HF_HUB_CACHE")


def _from_cache(request: WeightsRequest, revision: str | None, dest: str | os.PathLike[str] | None) -> WeightsResult | None:
    """The request's files from the hub cache (or ``dest``) alone, without the network; ``None`` if absent.

    ``dest`` is read directly, with the repository layout: huggingface_hub's ``snapshot_download``
    learns nothing more about it offline (it returns any folder that is not empty) and logs a
    warning past our one-line messages while doing so.
    """
    for repo in request.repos:
        folder = Path(dest) if dest is not None else _cached_snapshot(repo, revision, request.patterns)
        files = _matching_files(folder, request.patterns) if folder is not None and folder.is_dir() else []
        if files:
            return _verified(request, repo, revision, files, [], [None] * len(files))
    return None


def _verified(
    request: WeightsRequest, repo: str, revision: str | None, files: list[Path], tried: list[str], sha256: list[str | None]
) -> WeightsResult:
    """The result of ``files`` served by ``repo``, each checked against the variant's key manifest."""
    verification = [verify_weights(path, request.variant, request.task) for path in files]
    return WeightsResult(request.variant.name, request.task, repo, revision or "main", files, tried, verification, sha256)


def _cached_snapshot(repo: str, revision: str | None, patterns: tuple[str, ...]) -> Path | None:
    """The snapshot folder of ``repo`` at ``revision`` in the hub cache; ``None`` when not cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    try:
        folder = snapshot_download(
            repo_id=repo,
            revision=revision,
            allow_patterns=list(patterns),
            cache_dir=hub_cache_dir(),
            local_files_only=True,  # no request, so no HF_ENDPOINT: offline, a mistyped one is no obstacle
        )
    except (EntryNotFoundError, HfHubHTTPError):  # LocalEntryNotFoundError: not cached
        return None
    except OSError as error:
        raise _os_error(error, None) from None
    return Path(folder)


def _failure(error: Exception, where: str, revision: str | None) -> tuple[str | None, str]:
    """``(kind, note)`` for a repository or file that could not be fetched; kind ``None``: not a hub failure.

    Kinds: ``unreachable`` (no connection, or a page in the hub's place), ``refused`` (401/403), ``missing`` (404),
    ``rate-limited`` (429), ``server`` (5xx, or an answer that is not the hub's).
    """
    from huggingface_hub.errors import (
        FileMetadataError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RevisionNotFoundError,
    )

    # A login or error page in the hub's place (NotTheHubsAnswer) is in the way of every repository alike.
    if isinstance(error, (*transport_errors(), LocalEntryNotFoundError, OfflineModeIsEnabled, NotTheHubsAnswer)):
        return "unreachable", f"{where}: unreachable {_unreachable_reason(error)}"
    if isinstance(error, FileMetadataError):
        return "server", f"{where}: the answer is not a Hugging Face hub's (no X-Repo-Commit or ETag header)"
    if not isinstance(error, HfHubHTTPError):
        return None, ""
    status = http_status(error)
    # The hub answers 401 (not 404) for a missing repository when no token is sent, so a refusal
    # cannot be told from absence: note it and try the next repository.
    if isinstance(error, GatedRepoError) or status in (401, 403):
        return "refused", f"{where}: access refused (HTTP {status})"
    if isinstance(error, RevisionNotFoundError):
        return "missing", f"{where}: revision {revision} not found (HTTP {status})"
    if status == 404:
        return "missing", f"{where}: not found (HTTP 404)"
    if status == 429:
        return "rate-limited", f"{where}: {rate_limited(error.response.headers.get('Retry-After'))}"
    if status is not None and status >= 500:
        asked = asked_wait(error.response.headers.get("Retry-After"))
        return "server", f"{where}: HTTP {status} (a server error{f'; {asked}' if asked else ''})"
    return "server", f"{where}: HTTP {status}"


def _host_down(error: Exception) -> bool:
    """Whether the hub failed rather than the repository: no connection or answer in time, busy through every
    retry, or rate-limiting this address.

    The next repositories are on the same host: each would wait as long, or be asked as many times, for the same
    answer; a rate-limited address asking them would only add to the requests the hub counts against it.
    """
    cause = _cause(error)
    return isinstance(cause, silent_host_errors()) or http_status(cause) in (*BUSY_STATUSES, 429)


def _unreachable_reason(error: Exception) -> str:
    """Why the hub could not be reached, in parentheses: the wait and its setting for a silent hub."""
    cause = _cause(error)
    if isinstance(cause, connect_timeout_errors()):
        return f"(no connection within {connect_timeout(download_timeout()):g} s)"
    if isinstance(cause, timeout_errors()):
        return (
            f"(no answer within {download_timeout():g} s; the hub may be overloaded: wait longer with {TIMEOUT_VARIABLE}=SECONDS)"
        )
    return f"({first_line(cause)})"


def _cause(error: Exception) -> BaseException:
    """The transport error behind ``error``: huggingface_hub wraps one met on a file's metadata in LocalEntryNotFoundError."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    return error.__cause__ if isinstance(error, LocalEntryNotFoundError) and error.__cause__ else error


def _cannot_reach(doing: str, reason: str) -> str:
    """The message for a hub that could not be reached at all, by a download or by ``--list``."""
    endpoint = hub_endpoint() or HUB_ADDRESS
    return f"cannot reach {endpoint} to {doing} {reason}; check the network connection (or HF_ENDPOINT) and re-run"


def _os_error(error: OSError, dest: str | os.PathLike[str] | None) -> DownloadError:
    import errno

    where = dest if dest is not None else (hub_cache_dir() or "the hub cache")
    if error.errno == errno.ENOSPC:
        return DownloadError(f"the disk holding {where} is full; free some space and re-run (the download resumes)")
    return DownloadError(f"could not write to {where} ({error.strerror or error}); check the folder and its permissions")


def _nothing_served(request: WeightsRequest, tried: list[str], kinds: list[str]) -> str:
    what = _weights_named(request)
    endpoint = hub_endpoint() or HUB_ADDRESS
    if kinds and all(kind == "unreachable" for kind in kinds):
        return _cannot_reach(f"fetch {what}", tried[0].split(": unreachable ", 1)[-1])  # "(the first connection error)"
    if "rate-limited" in kinds:
        return f"{endpoint} could not serve {what}: {'; '.join(tried)}; {_RATE_ADVICE}"
    if "refused" in kinds:
        refused = [note.split(":", 1)[0] for note, kind in zip(tried, kinds, strict=True) if kind == "refused"]
        return f"the hub refused access to {', '.join(refused)} for {what} ({'; '.join(tried)}); {_TOKEN_ADVICE}"
    if "server" in kinds or "unreachable" in kinds:
        return f"{endpoint} could not serve {what}: {'; '.join(tried)}; {_LATER_ADVICE}"
    return f"no repository serves {what}: {'; '.join(tried)}; see `biofound download {request.variant.family} --list`"


def _weights_named(request: WeightsRequest) -> str:
    """``luna-base pre-trained weights (Base/LUNA_base.safetensors)``: what a message says is missing."""
    return f"{request.description} ({', '.join(request.patterns)})"


def _partial_download(request: WeightsRequest, dest: str | os.PathLike[str] | None) -> str | None:
    """What a download of ``request`` stopped earlier left (its ``.incomplete`` file), in words; ``None`` when nothing.

    Under ``dest`` the partial file bears the name of the file it becomes. In the hub cache it is a
    candidate repository's ``blobs/<etag>.incomplete``, of any file of that repository: only one whose
    record says it is for a file asked is named (:func:`~biofound_cli.hub_files.recorded`).
    """
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    if dest is not None:
        kept = _matching_files(Path(dest), request.patterns, INCOMPLETE_SUFFIX)
    else:
        root = Path(hub_cache_dir() or constants.HF_HUB_CACHE)
        folders = [root / repo_folder_name(repo_id=repo, repo_type="model") / "blobs" for repo in request.repos]
        files = {path: recorded(path, "file") for folder in folders for path in sorted(folder.glob(f"*{INCOMPLETE_SUFFIX}"))}
        kept = [
            path
            for path, name in files.items()
            if name and any(fnmatch.fnmatchcase(name, pattern) for pattern in request.patterns)
        ]
    sizes = {path: path.stat().st_size for path in kept if path.is_file()}
    path = next((path for path, size in sizes.items() if size), None)  # an empty one holds nothing to finish
    return None if path is None else f"a partial download is there ({sizes[path]} bytes in {path})"


def _matching_files(folder: Path, patterns: tuple[str, ...], suffix: str = "") -> list[Path]:
    """The weights in ``folder`` (a snapshot, or ``dest`` with the repository layout) that ``patterns`` match.

    With a ``suffix`` (``.incomplete``), the files named as the weights and that suffix instead.
    """
    # A snapshot link whose blob was deleted (by hand, or `hf cache delete`) is no copy.
    relative = {
        path: path.relative_to(folder).as_posix().removesuffix(suffix)
        for path in sorted(folder.rglob(f"*.safetensors{suffix}"))
        if path.is_file()
    }
    # .cache/ under a --dest holds huggingface_hub's download bookkeeping, not finished weights.
    return [
        path
        for path, name in relative.items()
        if not name.startswith(".cache/") and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    ]


# -- verification ------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _manifests() -> dict[str, Any]:
    return json.loads(resources.files("biofound_cli").joinpath("data/manifests.json").read_text())["variants"]


def manifest_for(variant: str, task: str | None) -> dict[str, tuple[int, ...]]:
    """Key → shape of ``variant``'s pre-training model (``task`` None) or fine-tuning model.

    Parameters
    ----------
    variant : str
        A registered variant name.
    task : str | None
        None for the pre-training model; any task name for the fine-tuning model.
    """
    entry = _manifests().get(variant)
    if entry is None:
        raise UsageError(f"no key manifest for {variant}; known: {', '.join(_manifests())}")
    shapes = entry["pretrain" if task is None else "finetune"]
    return {key: tuple(shape) for key, shape in shapes.items()}


def read_safetensors_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Key → shape of every tensor in a safetensors file, reading only its header.

    Parameters
    ----------
    path : str | os.PathLike
        The safetensors file (in the hub cache, often a link to its blob).

    Raises
    ------
    DamagedCopy
        If the header does not parse or the file is shorter than the header says.
    """
    try:
        return read_layout(path)[1]
    except CheckpointError as error:
        # In the hub cache the path is a link to a blob that huggingface_hub links again after
        # the link is deleted: name the blob, and --force, which replaces it.
        blob = Path(path).resolve()
        where = f" (its cached blob is {blob})" if blob != Path(path).absolute() else ""
        raise DamagedCopy(f"{error.message.split(';')[0]}{where}") from None


def verify_weights(path: str | os.PathLike[str], variant: ModelVariant | str, task: str | None) -> dict[str, Any]:
    """Check a checkpoint's keys and shapes against the variant's manifest.

    Pre-trained weights must match the pre-training model exactly. Fine-tuned weights must match
    the fine-tuning model's body exactly; their head (whose shape depends on the number of classes)
    is only required to be present. A leading ``model.`` on every key is accepted.

    Parameters
    ----------
    path : str | os.PathLike
        The downloaded safetensors file.
    variant : ModelVariant | str
        The variant the weights should belong to, or its name.
    task : str | None
        None for pre-trained weights; the downstream task key for fine-tuned ones.

    Returns
    -------
    dict
        ``path``, ``n_tensors``, ``prefixed`` and ``head_keys`` (the head tensors found).

    Raises
    ------
    DownloadError
        Listing the missing, unexpected and mis-shaped keys (the first few of each).
    """
    chosen = get_variant(variant) if isinstance(variant, str) else variant
    shapes = read_safetensors_shapes(path)
    prefixed = bool(shapes) and all(key.startswith(PREFIX) for key in shapes)
    if prefixed:
        shapes = {key[len(PREFIX) :]: shape for key, shape in shapes.items()}
    expected = manifest_for(chosen.name, task)
    head_prefixes = FAMILIES[chosen.family].head_prefixes
    head_keys = sorted(key for key in shapes if key.startswith(head_prefixes))
    if task is not None:
        expected = {key: shape for key, shape in expected.items() if not key.startswith(head_prefixes)}
        shapes = {key: shape for key, shape in shapes.items() if not key.startswith(head_prefixes)}
    missing = [key for key in expected if key not in shapes]
    unexpected = [key for key in shapes if key not in expected]
    misshaped = [
        f"{key} {list(shapes[key])} vs {list(shape)}" for key, shape in expected.items() if key in shapes and shapes[key] != shape
    ]
    problems = key_problems(missing, unexpected, misshaped, most=_MAX_LISTED)
    if task is not None and not head_keys:
        problems.append(f"no head tensors ({', '.join(head_prefixes)})")
    if problems:
        kind = "pre-trained" if task is None else f"fine-tuned ({task})"
        raise DownloadError(
            f"{path} does not match the {kind} {chosen.name} manifest: {'; '.join(problems)}; "
            "it is not the expected checkpoint, so do not use it (try another --revision or report it)"
        )
    return {
        "path": str(path),
        "n_tensors": len(shapes) + (len(head_keys) if task is not None else 0),
        "prefixed": prefixed,
        "head_keys": head_keys,
    }


# -- listing -----------------------------------------------------------------------------------
def list_available(
    models: tuple[str, ...] = MODEL_NAMES, *, revision: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """What the hub holds per model: one row per ``.safetensors`` file, read from the file listing.

    Each row has ``model``, ``repo``, ``file``, ``size`` (bytes), ``task`` and ``variant`` (guessed
    from the folder and file names; ``None`` where the name does not say). A model none of whose
    repositories lists its files is left out with a warning when other models are listed, as a
    batch skips a bad file.

    Parameters
    ----------
    models : tuple of str
        Families to list (``femba``, ``luna``, ``tinymyo``).
    revision : str | None
        Branch, tag or commit; ``None`` means ``main``.

    Returns
    -------
    rows : list of dict
        The files of every model listed.
    unlisted : dict
        Model family → why none of its repositories listed its files.

    Raises
    ------
    DownloadError
        If the hub cannot be reached, or offline mode is on, or no model could be listed (each
        repository's refusal, absence or error named).
    """
    if hub_offline():
        raise DownloadError("--list reads the hub's file listing, which HF_HUB_OFFLINE forbids; unset it and re-run")
    endpoint = hub_endpoint() or HUB_ADDRESS
    timeout = download_timeout()
    rows: list[dict[str, Any]] = []
    unlisted: dict[str, str] = {}
    for model in models:
        family = resolve_variant(model).family
        family_rows, problem = _list_family(family, endpoint, revision, timeout)
        rows.extend(family_rows)
        if problem is not None:
            unlisted[family] = problem
            logger.warning(problem)
    if not rows:
        raise DownloadError("; ".join(unlisted.values()))
    return rows, unlisted


def _list_family(family: str, endpoint: str, revision: str | None, timeout: float) -> tuple[list[dict[str, Any]], str | None]:
    """The first listing of ``family``'s candidate repositories, or why none listed its files."""
    problems: list[str] = []
    kinds: set[str] = set()
    for repo in candidate_repos(VARIANTS[FAMILIES[family].default_variant]):
        try:
            _, files = matching_files(repo, revision, ("*.safetensors",), hub_endpoint(), timeout=timeout)
        except Exception as error:
            kind, note = _failure(error, repo, revision)
            if kind is None:
                raise
            if kind == "unreachable":
                raise DownloadError(_cannot_reach(f"list the {family} weights", _unreachable_reason(error))) from None
            if _host_down(error):
                advice = _listing_advice({kind}, [note], revision)
                raise DownloadError(f"{endpoint} could not list the {family} weights: {note}; {advice}") from None
            # A refusal may be a repository that is gone (see _failure): try the next one, as a download does.
            problems.append(note)
            kinds.add(kind)
            continue
        return _listing_rows(family, repo, files), None
    advice = _listing_advice(kinds, problems, revision)
    return [], f"no repository at {endpoint} lists {family} weights: {'; '.join(problems)}; {advice}"


def _listing_advice(kinds: set[str], problems: list[str], revision: str | None) -> str:
    """What to do when no repository of a family lists its files, by what the repositories answered."""
    if "rate-limited" in kinds:
        return _RATE_ADVICE
    if "refused" in kinds:
        return _TOKEN_ADVICE
    if "server" in kinds:
        return _LATER_ADVICE
    if revision is not None and any(f"revision {revision} not found" in problem for problem in problems):
        return f"check --revision {revision} (a branch, tag or commit of these repositories)"
    if hub_endpoint():
        return f"check HF_ENDPOINT={hub_endpoint()}: the hub or mirror there holds none of them"
    return "the repositories may have moved: update biofound (pip install -U biofound) or report it"


def _listing_rows(family: str, repo: str, files: list[HubFile]) -> list[dict[str, Any]]:
    folders = {folder.lower(): task for task, folder in FAMILIES[family].hub_task_folders.items()}
    family_variants = variants_of(family)
    sizes = {name.split("-", 1)[1]: name for name in family_variants if "-" in name}
    only = family_variants[0] if len(family_variants) == 1 else None  # a family of one published size (TinyMyo)
    rows = []
    for entry in files:
        parts = entry.path.split("/")
        task = folders.get(parts[0].lower()) if len(parts) > 1 else None
        stem = parts[-1].lower()
        variant = only or next((name for size, name in sizes.items() if size in stem or size == parts[0].lower()), None)
        rows.append(
            {
                "model": FAMILIES[family].name,
                "repo": repo,
                "file": entry.path,
                "size": entry.size,
                "task": task or "pretrain",
                "variant": variant,
            }
        )
    return rows
