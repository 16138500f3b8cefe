"""The scan kernel builds with a C compiler alone: why it is not built with ``torch.utils.cpp_extension``.

``cpp_extension.load`` needs ninja and a C++ compiler (see ``biofound_cli/models/scan_kernel.py``);
a laptop with only ``gcc`` has neither, and the kernel must build there all the same.
"""

from __future__ import annotations

import shutil
import sys

import pytest

from biofound_cli.models import scan_kernel


@pytest.fixture
def fresh_kernel(monkeypatch, tmp_path):
    """No kernel loaded yet in this process, and an empty build cache."""
    monkeypatch.setattr(scan_kernel, "_library", scan_kernel._UNSET)
    monkeypatch.setenv("BIOFOUND_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BIOFOUND_SCAN_KERNEL", raising=False)
    return tmp_path / "cache" / "kernels"


@pytest.mark.skipif(scan_kernel.find_compiler() is None, reason="needs a C compiler")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a PATH of cc, as and ld is a GNU toolchain's layout")
def test_builds_with_only_a_c_compiler_on_path(fresh_kernel, monkeypatch, tmp_path):
    from torch.utils import cpp_extension

    compiler = scan_kernel.find_compiler()
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "cc").symlink_to(compiler)
    for name in ("as", "ld"):  # binutils, which the compiler driver runs; part of any C toolchain
        found = shutil.which(name)
        if found:
            (tools / name).symlink_to(found)
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tools))
    assert shutil.which("ninja") is None and shutil.which("c++") is None
    assert not cpp_extension.is_ninja_available()  # cpp_extension.load would stop here
    assert scan_kernel.load_kernel() is not None
    assert scan_kernel.kernel_status().startswith(f"built ({fresh_kernel}")
