"""Every recipe shipped in biofound_cli/data/recipes/ (linked as recipes/) loads and validates in full.

Beyond the schema (`biofound validate`), each stage's own checks run without any data: the
corpus and its options, the resolved signal chain, the model variant, its task, and the
constructor overrides against the model's signature.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import pytest

from biofound_cli.corpora import get_corpus
from biofound_cli.models import registry
from biofound_cli.recipes import load_recipe
from biofound_cli.store.preprocess_config import resolve_chain_config, resolve_options

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "biofound_cli" / "data" / "recipes"
ALL_RECIPES = sorted(SHIPPED.glob("*.toml"))

PUBLISHED = [
    "femba_pretrain",
    "femba_tuab",
    "femba_tuar",
    "femba_tusl",
    "luna_pretrain",
    "luna_tuab",
    "luna_tuar",
    "luna_tusl",
    "luna_seedv",
    "tinymyo_pretrain",
    "tinymyo_db5",
    "tinymyo_uci_emg",
    "tinymyo_epn612",
]
PIPELINE_SECTIONS = ("preprocess", "pack", "data", "model", "optim", "train", "output")


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("path", ALL_RECIPES, ids=_id)
def test_recipe_validates_stage_by_stage(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recipe = load_recipe(path)
    if recipe.preprocess is not None:
        corpus_cls = get_corpus(recipe.preprocess.corpus)
        resolve_options(recipe.preprocess, corpus_cls, str(path))
        with caplog.at_level(logging.WARNING):
            resolve_chain_config(recipe.preprocess, corpus_cls, str(path))
        # A shipped recipe (the quick start runs two) warns about nothing its user could only fix by editing it.
        assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    if recipe.model is not None:
        variant = registry.get_variant(recipe.model.variant)
        family = registry.FAMILIES[variant.family]
        if recipe.model.task is not None:
            assert recipe.model.task in family.tasks, f"{path}: task {recipe.model.task} not in {family.tasks}"
        parameters = inspect.signature(registry.family_of(variant.family).model_class).parameters
        unknown = set(recipe.model.overrides) - set(parameters)
        assert not unknown, f"{path}: model.overrides names no constructor argument: {sorted(unknown)}"
    if recipe.pack is not None and recipe.preprocess is not None:
        # The stages chain: pack reads what preprocess wrote, training reads what pack wrote.
        assert recipe.pack.shards == recipe.preprocess.out
    if recipe.data is not None and recipe.pack is not None:
        assert recipe.data.train == recipe.pack.out / "train.h5"


def test_every_published_setup_has_a_whole_pipeline_recipe() -> None:
    for name in PUBLISHED:
        recipe = load_recipe(REPO / "recipes" / f"{name}.toml")
        missing = [section for section in PIPELINE_SECTIONS if getattr(recipe, section) is None]
        assert not missing, f"{name}.toml lacks {missing}"
        assert recipe.name == name.replace("_", "-")


@pytest.mark.parametrize(
    ("name", "variant", "lr", "weight_decay", "layer_decay", "epochs", "batch_size", "transform"),
    [
        ("femba_tuab", "femba-large", 5e-4, 0.5, 0.75, 30, 256, "femba-affine"),
        ("luna_tusl", "luna-base", 5e-4, 0.05, 0.75, 30, 256, "zscore"),
        ("luna_pretrain", "luna-base", 1.25e-4, 0.01, 1.0, 100, 2040, "zscore"),
        ("tinymyo_uci_emg", "tinymyo", 5e-4, 0.01, 1.0, 50, 32, "none"),
        ("tinymyo_pretrain", "tinymyo", 1e-4, 0.01, 1.0, 50, 128, "minmax"),
    ],
)
def test_published_hyperparameters(name, variant, lr, weight_decay, layer_decay, epochs, batch_size, transform) -> None:
    recipe = load_recipe(REPO / "recipes" / f"{name}.toml")
    assert recipe.model.variant == variant
    assert (recipe.optim.lr, recipe.optim.weight_decay, recipe.optim.layer_decay) == (lr, weight_decay, layer_decay)
    assert (recipe.train.epochs, recipe.data.batch_size, recipe.data.transform) == (epochs, batch_size, transform)


def test_finetune_losses_are_cross_entropy_as_published() -> None:
    for name in PUBLISHED:
        recipe = load_recipe(REPO / "recipes" / f"{name}.toml")
        if "pretrain" in name:
            assert recipe.train.loss == "auto"  # the family's masked-reconstruction objective
        else:
            assert recipe.train.loss == "ce", name
    assert load_recipe(REPO / "recipes" / "tinymyo_db5.toml").train.label_smoothing == 0.1


@pytest.mark.parametrize("name", ["tinymyo_myo", "luna_scp1"])
def test_sample_recipes_fit_their_models(name: str) -> None:
    recipe = load_recipe(REPO / "biofound_cli" / "data" / "recipes" / f"{name}.toml")
    sfreq = recipe.preprocess.options.get("sfreq", 200.0)
    n_times = round(recipe.preprocess.window_seconds * sfreq)
    kwargs = {**registry.get_variant(recipe.model.variant).constructor_kwargs("mcc", 2), **recipe.model.overrides}
    patch = kwargs["patch_size"]
    assert n_times % patch == 0, f"{name}: {n_times} samples is not a multiple of the {patch}-sample patch"
    if "img_size" in kwargs:
        assert kwargs["img_size"] == n_times and kwargs["in_chans"] == 8
    assert (REPO / recipe.preprocess.root).is_dir()


def test_repository_recipes_folder_is_the_package_folder() -> None:
    # One copy of each recipe: recipes/ is a relative link to the package data, so the commands in
    # the docs (`biofound finetune recipes/luna_tuab.toml`) run what `biofound quickstart` and
    # `biofound recipes` ship.
    link = REPO / "recipes"
    assert link.is_symlink() and Path(link.readlink()) == Path("biofound_cli/data/recipes")
    assert link.resolve() == SHIPPED.resolve()
    assert len(ALL_RECIPES) >= len(PUBLISHED) + 2
