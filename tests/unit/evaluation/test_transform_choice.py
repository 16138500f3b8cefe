"""Which input normalisation evaluate scores with."""

from __future__ import annotations

from types import SimpleNamespace

from biofound_cli.evaluation.evaluate import _transform_name
from biofound_cli.models.checkpoints import CheckpointMetadata
from biofound_cli.output import Output
from biofound_cli.recipes.training import DataSection


def head(transform: str | None) -> SimpleNamespace:
    return SimpleNamespace(metadata=CheckpointMetadata(transform=transform), variant="tinymyo", task="ml")


def test_the_checkpoints_normalisation_is_used_when_the_recipe_sets_none(capsys):
    recipe = SimpleNamespace(data=DataSection())
    assert _transform_name(recipe, head("minmax"), "r.toml", Output()) == "minmax"
    assert capsys.readouterr().err == ""


def test_a_recipe_that_contradicts_the_checkpoint_is_followed_with_a_warning(capsys):
    recipe = SimpleNamespace(data=DataSection(transform="none"))
    assert _transform_name(recipe, head("zscore"), "r.toml", Output()) == "none"
    warning = capsys.readouterr().err
    assert "data.transform = 'none'" in warning and "'zscore'" in warning
