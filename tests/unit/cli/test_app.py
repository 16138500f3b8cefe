from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from biofound_cli import __version__
from biofound_cli.cli.app import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"biofound {__version__}"


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "validate" in result.stdout


def test_help_does_not_import_torch_or_mne():
    code = (
        "import sys\n"
        "from biofound_cli.cli.app import app\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(app, ['--help'])\n"
        "print(sorted(m for m in ('torch', 'mne', 'h5py') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_dash_m_runs():
    out = subprocess.run([sys.executable, "-m", "biofound_cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert __version__ in out.stdout


def test_validate_good_recipe_json(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[preprocess]\ncorpus = 'tuab'\n")
    result = runner.invoke(app, ["validate", str(path), "--json"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["valid"] is True
    assert summary["sections"] == ["preprocess"]


def test_validate_bad_recipe_exits_2_without_traceback(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[preprocess]\nworkers = 'sixty'\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "preprocess.workers = \"sixty\": expected a whole number" in result.output
    assert "Traceback" not in result.output
