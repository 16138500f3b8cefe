from __future__ import annotations

import json
import subprocess
import sys

import pytest

from biofound_cli.errors import UsageError
from biofound_cli.models import count_parameters, create_model, get_variant, list_models
from biofound_cli.models.registry import LICENSE, VARIANTS

ALL = ["femba-tiny", "femba-base", "femba-large", "femba-huge", "luna-base", "luna-large", "luna-huge", "tinymyo"]


def test_list_models_with_wildcards():
    assert list_models() == ALL
    assert list_models("luna*") == ["luna-base", "luna-large", "luna-huge"]
    assert list_models("*-base") == ["femba-base", "luna-base"]
    assert list_models("nothing*") == []


def test_unknown_variant_lists_names():
    with pytest.raises(UsageError, match="unknown model 'mnist-small'; choose one of: femba-tiny, .*tinymyo"):
        get_variant("mnist-small")


@pytest.mark.parametrize(("typed", "meant"), [("luna_bas", "luna-base"), ("FEMBA-TINI", "femba-tiny"), ("tinymio", "tinymyo")])
def test_a_misspelt_variant_names_the_close_one(typed, meant):
    with pytest.raises(UsageError) as raised:
        get_variant(typed)
    assert raised.value.message == f"unknown model {typed!r}; did you mean {meant}? (`biofound models` lists them all)"


def test_variants_carry_published_facts(test_data):
    summary = json.loads((test_data / "keys" / "_summary.json").read_text())
    for variant in VARIANTS.values():
        assert variant.license == LICENSE == "CC BY-ND 4.0"
        assert variant.hub_repo in ("thorir/FEMBA", "thorir/LUNA", "MatteoFasulo/TinyMyo")
    size = {"femba-tiny": "tiny", "femba-base": "base", "femba-large": "large", "femba-huge": "huge"}
    for name, label in size.items():
        assert get_variant(name).kwargs == summary[f"FEMBA_{label}_pretrain"]["kwargs"]
    for label in ("base", "large", "huge"):
        assert get_variant(f"luna-{label}").kwargs == summary[f"LUNA_{label}_pretrain"]["kwargs"]
    assert get_variant("tinymyo").kwargs == summary["TinyMyo_pretrain"]["kwargs"]
    assert (get_variant("luna-base").n_channels, get_variant("luna-base").n_times) == (None, 1280)
    assert get_variant("tinymyo").default_transform("reconstruction") == "minmax"
    assert get_variant("femba-tiny").default_transform("bc") == "femba-affine"


def test_create_tinymyo_for_each_task_matches_published_counts():
    assert count_parameters(create_model("tinymyo", device="meta")) == 3_567_380
    assert count_parameters(create_model("tinymyo", task="ml", num_classes=6, device="meta")) == 3_581_958
    model = create_model("tinymyo", task="regression", num_classes=5, device="meta")
    assert count_parameters(model) == 4_352_517
    assert model.task == "regression"


def test_constructor_kwargs_per_task():
    assert get_variant("luna-base").constructor_kwargs("bc", 2)["drop_path"] == 0.1
    assert get_variant("luna-base").constructor_kwargs("reconstruction")["drop_path"] == 0.0
    femba = get_variant("femba-tiny").constructor_kwargs("mmc", 6)
    assert femba["classification_type"] == "mmc" and femba["num_classes"] == 6
    tinymyo = get_variant("tinymyo").constructor_kwargs("ml", 6)
    assert tinymyo["task"] == "classification" and tinymyo["classification_type"] == "ml"


def test_create_model_overrides_and_real_tensors():
    model = create_model("tinymyo", task="bc", num_classes=2, in_chans=8, n_layer=1)
    assert model.in_chans == 8 and len(model.blocks) == 1
    assert not next(model.parameters()).is_meta


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "bc"}, "needs num_classes"),
        ({"task": "reconstruction", "num_classes": 3}, "drop num_classes=3"),
        ({"task": "mmc", "num_classes": 3}, "cannot be built for task 'mmc'"),
        ({"task": "segmentation"}, "unknown task 'segmentation'"),
        ({"depth": 3}, "TinyMyo has no argument"),
    ],
)
def test_create_model_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        create_model("tinymyo", device="meta", **kwargs)


def test_regression_only_for_tinymyo():
    with pytest.raises(UsageError, match="luna-base cannot be built for task 'regression'"):
        create_model("luna-base", task="regression", num_classes=3, device="meta")


def test_importing_models_and_listing_needs_no_torch():
    code = (
        "import sys\n"
        "from biofound_cli.models import list_models\n"
        "assert list_models('tiny*') == ['tinymyo']\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["femba-tiny", "luna-base", "tinymyo"])
def test_each_family_names_the_head_tensor_its_class_count_sizes(name):
    """An official file's class count is read where the family says (``class_count_tensors``): a head's tensors
    differ between 2 and 3 classes exactly there, and where the family names none (FEMBA's ``mc``) nowhere."""
    from biofound_cli.models.registry import FAMILIES

    variant = get_variant(name)
    family = FAMILIES[variant.family]
    overrides = {"num_channels": 6} if variant.family == "femba" else {}  # a per-channel head scales by the channels
    for task in sorted(set(family.tasks) - {"reconstruction"}):
        shapes = [
            {
                key: tuple(value.shape)
                for key, value in create_model(name, task=task, num_classes=n, device="meta", **overrides).state_dict().items()
            }
            for n in (2, 3)
        ]
        sized = {key for key, shape in shapes[0].items() if shape != shapes[1][key]}
        declared = family.class_count_tensors.get(task)
        assert {declared[0]} <= sized if declared else not sized, (task, sized)
        counts = [family.head_size(task, each, {**variant.kwargs, **overrides}) for each in shapes]
        assert counts == ([2, 3] if declared else [None, None]), task
