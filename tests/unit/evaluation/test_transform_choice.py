"""Which input normalisation evaluate scores with."""

from __future__ import annotations

from types import SimpleNamespace

from biofound_cli.evaluation.evaluate import transform_name
from biofound_cli.models.checkpoints import CheckpointMetadata
from biofound_cli.recipes.training import DataSection


def head(transform: str | None) -> SimpleNamespace:
    return SimpleNamespace(metadata=CheckpointMetadata(transform=transform), variant="tinymyo", task="ml")


def test_the_checkpoints_normalisation_is_used_when_the_recipe_sets_none(caplog):
    recipe = SimpleNamespace(data=DataSection())
    assert transform_name(recipe, head("minmax"), "r.toml") == "minmax"
    assert caplog.records == []


def test_a_recipe_that_contradicts_the_checkpoint_is_followed_with_a_warning(caplog):
    recipe = SimpleNamespace(data=DataSection(transform="none"))
    assert transform_name(recipe, head("zscore"), "r.toml") == "none"
    [record] = caplog.records
    assert record.levelname == "WARNING" and record.name == "biofound_cli.evaluation.evaluate"
    assert "data.transform = 'none'" in record.getMessage() and "'zscore'" in record.getMessage()
