"""``biofound predict`` of a model whose training recordings were not EDF, given a folder of EDF files.

The refusal named the reader only (`no ts recording there; check the paths`), though ``--recipe`` reads
recordings of another format: it now names the flag and what the recipe sets, for LUNA (the channels the
recordings have) and for the families taking only their own channels (the model's channels and window).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.export_models import LUNA_CHANNELS, N_TIMES, save_small
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus
from biofound_cli.signals.chain import ChainConfig


def _ts_model(path: Path, family: str, channels: list[str]) -> Path:
    """A small checkpoint whose recorded chain reads ``.ts`` files (200 Hz, one window per trial)."""
    seconds = N_TIMES[family] / 200.0
    config = ChainConfig(window_seconds=seconds, stride_seconds=seconds, l_freq=None, h_freq=None, notch_hz=(), units="file")
    chain = {"corpus": "ts", "options": {"sfreq": 200.0, "channel_names": channels}, **config.to_json_dict()}
    return save_small(path, family, ch_names=channels, sfreq=200.0, n_times=N_TIMES[family], preprocessing=chain)


@pytest.mark.parametrize(
    ("family", "channels", "advice"),
    [
        (
            "luna",
            LUNA_CHANNELS,
            "LUNA takes recordings of another format through --recipe: pass one whose [preprocess] "
            'names their reader (corpus, e.g. corpus = "edf") and the channels they have (see docs/predict.md)',
        ),
        (
            "tinymyo",
            [f"EMG{index}" for index in range(1, 5)],
            "the model reads recordings of another format through "
            '--recipe: pass one whose [preprocess] names their reader (corpus, e.g. corpus = "edf") and the model\'s '
            "channels and window (see docs/predict.md)",
        ),
    ],
)
def test_a_folder_of_edf_files_for_a_model_of_ts_data_is_told_to_read_them_through_recipe(
    tmp_path, family, channels, advice
) -> None:
    checkpoint = _ts_model(tmp_path / "model.safetensors", family, channels)
    folder = tmp_path / "edf"
    folder.mkdir()
    (folder / "night1.edf").write_bytes(b"0" * 256)
    command = ["predict", str(checkpoint), str(folder), "--out", str(tmp_path / "out"), "--json", "--no-progress"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == ExitStatus.USAGE, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error.startswith(f"RECORDINGS {folder}: no ts recording there; check the paths") and error.endswith(advice), error
    assert "Traceback" not in result.output
