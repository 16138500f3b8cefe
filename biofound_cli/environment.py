"""Facts about the machine a run happens on: for bug reports, cluster admins and run folders."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from biofound_cli import __version__
from biofound_cli.errors import typed_first_line

PACKAGES = ("torch", "numpy", "scipy", "mne", "h5py", "safetensors", "huggingface_hub", "pydantic", "typer", "rich")


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``names`` (``None`` where a package is missing).

    Parameters
    ----------
    names : sequence of str
        Distribution names to look up; biofound's own version is always included.
    """
    versions: dict[str, str | None] = {"biofound": __version__}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _mamba_ssm_status() -> str:
    try:
        importlib.import_module("mamba_ssm")
    except Exception as error:  # noqa: BLE001 - any failure means "not usable", and we say why
        return f"not importable ({typed_first_line(error)})"
    return "importable"


def torch_facts() -> dict[str, Any]:
    """Threads, CUDA devices, bf16 support and distributed backends, as torch reports them."""
    import torch
    import torch.distributed as dist

    from biofound_cli.models import scan_kernel

    available = torch.cuda.is_available()
    devices = [torch.cuda.get_device_properties(index) for index in range(torch.cuda.device_count())] if available else []
    cuda_devices = [
        {
            "index": index,
            "name": properties.name,
            "memory_gib": round(properties.total_memory / 2**30, 1),
            "capability": f"{properties.major}.{properties.minor}",
        }
        for index, properties in enumerate(devices)
    ]
    backends = {
        "gloo": dist.is_available() and dist.is_gloo_available(),
        "nccl": dist.is_available() and dist.is_nccl_available(),
        "mpi": dist.is_available() and dist.is_mpi_available(),
    }
    return {
        "threads": torch.get_num_threads(),
        "cuda_available": available,
        "cuda_version": torch.version.cuda,
        "cuda_devices": cuda_devices,
        "bf16_cuda": bool(available and torch.cuda.is_bf16_supported()),
        "bf16_cpu": True,
        "mamba_ssm": _mamba_ssm_status(),
        "cpu_scan_kernel": scan_kernel.kernel_status(),
        "distributed_backends": backends,
    }


def git_commit() -> str | None:
    """The git commit of the folder holding the installed biofound package, if it is a git checkout."""
    folder = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def folder_writable(path: Path) -> bool:
    """Whether a file can be created in ``path`` (or in its nearest existing parent).

    Parameters
    ----------
    path : Path
        The folder, which need not exist yet.
    """
    path = Path(path).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".biofound-write-test-"):
            return True
    except OSError:
        return False


def huggingface_facts() -> dict[str, Any]:
    from huggingface_hub import constants

    return {
        "cache": str(constants.HF_HUB_CACHE),
        "offline": bool(constants.HF_HUB_OFFLINE),
        "endpoint": constants.ENDPOINT,
    }


def collect_environment(check_folders: Sequence[Path] = ()) -> dict[str, Any]:
    """Everything ``biofound env`` prints, as a JSON-serialisable dict.

    Parameters
    ----------
    check_folders : sequence of Path
        Folders to test for writing (see :func:`folder_writable`); none by default.
    """
    return {
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch_facts(),
        "huggingface": huggingface_facts(),
        "git_commit": git_commit(),
        "writable": {str(folder): folder_writable(folder) for folder in check_folders},
    }
