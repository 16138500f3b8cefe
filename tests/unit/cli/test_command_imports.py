"""`biofound preprocess`, `pack` and `predict`, run as users run them, import only what they use.

Start-up and imports are a large share of a short run (see docs/performance.md): MNE alone costs
about a quarter of a second of CPU, torch more. The TUH readers read plain EDF files without
MNE, and pack needs neither MNE, SciPy nor torch. Predicting with a TinyMyo or LUNA checkpoint
imports no FEMBA code: its scan imports torch's compiler, about 1.5 s of CPU.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.export_models import save_small
from fixtures.tuh import build_tuab

from biofound_cli.signals.chain import ChainConfig

HEAVY = ("torch", "mne", "scipy", "matplotlib", "pandas")


def _imported_modules(arguments: list[str], listing: Path) -> set[str]:
    """Modules a ``python -m biofound_cli`` run held at its exit, written to ``listing`` as it exits.

    ``-X importtime``'s lines of such a run do not list the model's module, so the run's own
    ``sys.modules`` is read.
    """
    dump = f"import atexit, runpy, sys; atexit.register(lambda: open({str(listing)!r}, 'w').write('\\n'.join(sys.modules)))"
    command = [sys.executable, "-c", f"{dump}; sys.argv[0] = 'biofound'; runpy.run_module('biofound_cli', run_name='__main__')"]
    result = subprocess.run([*command, *arguments, "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(listing.read_text().split())


def _imported(arguments: list[str]) -> set[str]:
    """Top-level packages a ``python -m biofound_cli`` run imported, from ``-X importtime``."""
    command = [sys.executable, "-X", "importtime", "-m", "biofound_cli", *arguments, "--json"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", result.stderr, flags=re.MULTILINE)
    return {name.split(".")[0] for name in names}


def test_preprocess_and_pack_of_a_tuh_corpus_import_neither_mne_nor_torch(tmp_path):
    edf = build_tuab(tmp_path / "raw")
    shards, packed = tmp_path / "shards", tmp_path / "packed"
    # One worker: the recordings are read and processed in the CLI process itself.
    preprocess = _imported(["preprocess", "tuab", "--root", str(edf), "--out", str(shards), "--workers", "1"])
    assert sorted(set(HEAVY) & preprocess) == ["scipy"]  # scipy.fft, for the resampling
    assert len(list((shards / "tuab").glob("*.h5"))) == 5
    pack = _imported_modules(["pack", str(shards), "--out", str(packed)], tmp_path / "modules")
    assert sorted(set(HEAVY) & {name.split(".")[0] for name in pack}) == []
    # The chain's filters and resampling (~30 ms): pack reads shards and reports, not recordings.
    assert "biofound_cli.signals.chain" not in pack
    assert Path(packed / "train.h5").is_file()


def test_predict_with_a_tinymyo_checkpoint_imports_no_femba_code(tmp_path):
    channels = [f"EMG{index}" for index in range(1, 5)]
    config = ChainConfig(window_seconds=0.2, stride_seconds=0.1, l_freq=None, h_freq=None, notch_hz=(), units="native")
    chain = {"corpus": "emg-csv", "options": {"sfreq": 200.0}, **config.to_json_dict()}
    checkpoint = save_small(
        tmp_path / "model.safetensors", "tinymyo", ch_names=channels, sfreq=200.0, preprocessing=chain, n_times=40
    )
    recording = tmp_path / "R_0_C_0_EMG.csv"
    np.savetxt(recording, np.random.default_rng(0).normal(size=(90, len(channels))), delimiter=",", fmt="%.5f")
    imported = _imported_modules(
        ["predict", str(checkpoint), str(recording), "--out", str(tmp_path / "out")], tmp_path / "modules"
    )
    assert "biofound_cli.models.tinymyo" in imported
    assert sorted(imported & {"biofound_cli.models.femba", "biofound_cli.models.selective_scan", "torch._dynamo"}) == []
    assert (tmp_path / "out" / "R_0_C_0_EMG.csv").is_file()


def test_validate_of_a_recipe_without_model_overrides_imports_no_torch_compiler(tmp_path):
    # The override check built the variant on the meta device even with no override to check, and
    # meta arithmetic imports torch._dynamo (about 1 s of CPU): validate, and evaluate's own start, paid it.
    from biofound_cli.recipes.shipped import shipped_recipe

    imported = _imported_modules(["validate", str(shipped_recipe("luna_tuab"))], tmp_path / "modules")
    assert "biofound_cli.training.setup" in imported
    assert sorted(imported & {"torch._dynamo", "biofound_cli.models.femba"}) == []


@pytest.mark.parametrize(
    ("name", "family", "options"),
    [("luna_scp1", "luna", []), ("tinymyo_myo", "tinymyo", ["--set", "model.overrides.n_layer=2"])],
)
def test_validate_of_a_recipe_with_model_overrides_imports_no_torch_compiler(tmp_path, name, family, options):
    # Checking model.overrides builds the model on the meta device, where the embeddings' initialisers and the
    # rotary tables' arithmetic ran torch's Python reference kernels, which import torch._dynamo (~1 s of CPU).
    from biofound_cli.recipes.shipped import shipped_recipe

    recipe = shipped_recipe(name)
    assert "overrides" in recipe.read_text() or options
    imported = _imported_modules(["validate", str(recipe), *options], tmp_path / "modules")
    assert f"biofound_cli.models.{family}" in imported
    assert sorted(imported & {"torch._dynamo", "biofound_cli.models.femba"}) == []


def test_download_of_a_data_set_imports_no_torch(tmp_path, monkeypatch):
    """`biofound download DATASET` on a login node: requests and pooch, no torch, numpy or the model code."""
    import io
    import zipfile

    from fixtures.fake_hub import FakeHub

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("EMG_data_for_gestures-master/01/1_raw.txt", "time\tch1\tclass\n")
    hub = FakeHub().start()
    try:
        hub.files["static/public/481/emg+data+for+gestures.zip"] = buffer.getvalue()
        monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{hub.url}/files")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        imported = _imported(["download", "uci-emg", "--dest", str(tmp_path / "data")])
    finally:
        hub.stop()
    assert sorted(set(HEAVY) & imported) == []
    assert "numpy" not in imported and {"pooch", "requests"} <= imported
    assert (tmp_path / "data" / "uci-emg" / "EMG_data_for_gestures-master" / "01" / "1_raw.txt").is_file()
