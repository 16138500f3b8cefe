"""Which input normalisation evaluate, export and predict feed a checkpoint with (`checkpoint_transform`)."""

from __future__ import annotations

from types import SimpleNamespace

from biofound_cli.models.checkpoints import CheckpointMetadata, checkpoint_transform


def head(transform: str | None) -> SimpleNamespace:
    return SimpleNamespace(metadata=CheckpointMetadata(transform=transform), variant="tinymyo", task="ml")


def test_the_checkpoints_normalisation_is_used_when_the_recipe_sets_none(caplog):
    assert checkpoint_transform(head("minmax"), None, "r.toml", doing="scoring") == "minmax"
    assert caplog.records == []


def test_a_recipe_that_contradicts_the_checkpoint_is_followed_with_a_warning(caplog):
    assert checkpoint_transform(head("zscore"), "none", "r.toml", doing="scoring") == "none"
    [record] = caplog.records
    assert record.levelname == "WARNING" and record.name == "biofound_cli.models.checkpoints"
    assert "data.transform = 'none'" in record.getMessage() and "'zscore'" in record.getMessage()
