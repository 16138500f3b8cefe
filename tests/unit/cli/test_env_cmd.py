from __future__ import annotations

import json

from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


def test_env_json_has_what_a_bug_report_needs(tmp_path):
    result = runner.invoke(app, ["env", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    for name in ("biofound", "torch", "mne", "h5py", "numpy"):
        assert name in facts["versions"]
    torch_facts = facts["torch"]
    assert torch_facts["threads"] >= 1
    assert isinstance(torch_facts["cuda_devices"], list)
    assert "bf16_cuda" in torch_facts
    assert torch_facts["mamba_ssm"].startswith(("importable", "not importable"))
    assert torch_facts["cpu_scan_kernel"].startswith(("built", "unavailable", "switched off"))
    assert torch_facts["distributed_backends"]["gloo"] is True
    assert facts["huggingface"]["cache"]
    assert isinstance(facts["huggingface"]["offline"], bool)
    assert facts["writable"] == {str(tmp_path): True}


def test_env_table_mentions_mamba_and_backends():
    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0
    assert "mamba-ssm" in result.stdout
    assert "distributed backends" in result.stdout
