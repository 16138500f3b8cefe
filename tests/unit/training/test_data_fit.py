"""How build_checked_job checks that packed data fit the model before training starts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from biofound_cli.errors import DataError
from biofound_cli.models.registry import get_variant
from biofound_cli.recipes.training import DataSection, ModelSection
from biofound_cli.training.setup import _check_data_fits, _check_same_layout, _warn_other_rate


def info(n_channels: int, n_times: int, sfreq: float) -> SimpleNamespace:
    return SimpleNamespace(n_channels=n_channels, n_times=n_times, sfreq=sfreq)


def test_other_sampling_rate_with_pretrained_weights_warns_like_the_published_downstream_setups(caplog):
    variant = get_variant("tinymyo")
    model = ModelSection(variant="tinymyo", checkpoint=Path("pretrained.safetensors"))
    _warn_other_rate(info(16, 1000, 200.0), model, DataSection(train=Path("train.h5")), variant.sfreq, variant.name)
    [record] = caplog.records
    assert record.levelname == "WARNING"
    warning = record.getMessage()
    assert "200 Hz" in warning and "2000 Hz" in warning and "resample" in warning


def test_other_sampling_rate_from_scratch_is_a_note_naming_the_published_weights_not_starting_ones(caplog):
    caplog.set_level("INFO", logger="biofound_cli")
    variant = get_variant("tinymyo")
    model = ModelSection(variant="tinymyo")  # no checkpoint: from scratch, as the quick start trains
    _warn_other_rate(info(16, 1000, 200.0), model, DataSection(train=Path("train.h5")), variant.sfreq, variant.name)
    [record] = caplog.records
    assert record.levelname == "INFO"
    note = record.getMessage()
    assert "tinymyo's published weights at 2000 Hz" in note and "starting weights" not in note


def test_wrong_channel_count_is_an_error():
    variant = get_variant("tinymyo")
    kwargs = variant.constructor_kwargs("ml", 6)
    with pytest.raises(DataError, match="has 8 channels but tinymyo expects 16"):
        _check_data_fits(variant, kwargs, info(8, 1000, 2000.0), DataSection(train=Path("train.h5")))


def test_the_advice_names_the_override_that_builds_the_model_for_the_data():
    # A TUAB pack with 7 s windows (1792 samples at 256 Hz): the message said "set model.overrides"
    # without the key (FEMBA's seq_length), so the user had to read the model's source to find it.
    variant = get_variant("femba-large")
    kwargs = variant.constructor_kwargs("bc", 2)
    with pytest.raises(DataError) as raised:
        _check_data_fits(variant, kwargs, info(22, 1792, 256.0), DataSection(train=Path("t.h5")))
    assert raised.value.message == (
        "t.h5 has windows of 1792 samples but femba-large takes 1280-sample windows (5 s); re-run preprocess with "
        "preprocess.window_seconds = 5, or set model.overrides.seq_length = 1792 to train from scratch"
    )
    # EMG has no montage to re-run preprocess with (the advice was "the model's montage"): from fewer
    # channels the one way is a model built for them, from more picking as many.
    tinymyo = get_variant("tinymyo")
    with pytest.raises(DataError) as fewer:
        _check_data_fits(tinymyo, tinymyo.constructor_kwargs("mcc", 6), info(8, 1000, 200.0), DataSection(train=Path("t.h5")))
    assert fewer.value.message == (
        "t.h5 has 8 channels but tinymyo expects 16; set model.overrides.in_chans = 8 to train from scratch"
    )
    with pytest.raises(DataError) as more:
        _check_data_fits(tinymyo, tinymyo.constructor_kwargs("mcc", 6), info(64, 1000, 200.0), DataSection(train=Path("t.h5")))
    assert more.value.message == (
        "t.h5 has 64 channels but tinymyo expects 16; re-run preprocess picking 16 of them (preprocess.channels), "
        "or set model.overrides.in_chans = 64 to train from scratch"
    )
    with pytest.raises(DataError, match=r"expects 22; re-run preprocess with the model's montage, or set model.overrides"):
        femba = get_variant("femba-base")
        _check_data_fits(femba, femba.constructor_kwargs("bc", 2), info(20, 1280, 256.0), DataSection(train=Path("t.h5")))


def test_an_override_the_model_refuses_is_not_the_advice():
    # 19 channels (a 10-20 montage): the advice was model.overrides.num_channels = 19, which FEMBA's
    # patches of two channels cannot tile, so following it gave the next refusal.
    femba = get_variant("femba-base")
    with pytest.raises(DataError) as raised:
        _check_data_fits(femba, femba.constructor_kwargs("bc", 2), info(19, 1280, 256.0), DataSection(train=Path("t.h5")))
    assert raised.value.message == (
        "t.h5 has 19 channels but femba-base expects 22; re-run preprocess with the model's montage, not "
        "model.overrides.num_channels = 19, which is refused: its patches of 2 channels every 2 cover 18 of the 19 "
        "channels, so the last 1 would never be seen; give it 18 or 20 channels (preprocess.channels)"
    )


def test_a_window_no_multiple_of_the_patch_names_the_window_seconds_that_fit():
    # 2.5 s at 200 Hz for LUNA: the message said "re-run preprocess with the model's montage and window length".
    variant = get_variant("luna-base")
    with pytest.raises(DataError) as raised:
        _check_data_fits(variant, variant.constructor_kwargs("bc", 2), info(8, 500, 200.0), DataSection(train=Path("t.h5")))
    assert raised.value.message == (
        "t.h5 has windows of 500 samples but luna-base takes windows of a multiple of 40 samples (its patch); "
        "re-run preprocess with preprocess.window_seconds = 2.4, or 2.6 if the recordings and their labelled events last "
        "that long"
    )


def test_a_val_split_pack_left_empty_is_named_with_the_recipe_field(tmp_path):
    # One subject: pack writes train.h5 alone; finetune said "run the stage that writes it", which pack had just run.
    from fixtures.shards import write_corpus

    from biofound_cli.errors import UsageError
    from biofound_cli.recipes.loading import load_recipe
    from biofound_cli.recipes.pack import PackSection
    from biofound_cli.store.packer import pack_shards
    from biofound_cli.training.setup import build_checked_job, check_training

    write_corpus(tmp_path / "shards", n_subjects=1)
    pack_shards(tmp_path / "shards", tmp_path / "packed", PackSection())
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f"[data]\ntrain = '{tmp_path}/packed/train.h5'\nval = '{tmp_path}/packed/val.h5'\n"
        "[model]\nvariant = 'tinymyo'\ntask = 'bc'\nnum_classes = 2\n"
    )
    with pytest.raises(UsageError) as missing:
        check_training(loaded := load_recipe(recipe), "finetune", str(recipe))
        build_checked_job(loaded, stage="finetune", source=str(recipe))
    assert missing.value.message.startswith(
        f"{recipe}: data.val = '{tmp_path}/packed/val.h5' does not exist: pack left split 'val' empty"
    )


def _layout(path: str, ch_names: tuple[str, ...], n_times: int, sfreq: float) -> SimpleNamespace:
    # A split that holds windows: PackedInfo.check_holds_windows passes.
    return SimpleNamespace(
        path=Path(path), ch_names=ch_names, n_times=n_times, sfreq=sfreq, check_holds_windows=lambda *args: None
    )


def test_a_val_split_of_other_windows_names_what_differs():
    """A val file packed from other shards: the refusal says which of channels, length and rate differ."""
    train = _layout("train.h5", ("C3", "Cz", "C4"), 800, 200.0)
    with pytest.raises(DataError) as raised:
        _check_same_layout(train, _layout("val.h5", ("C3", "Cz", "C4"), 1000, 250.0), "reconstruction", None)
    assert raised.value.message == (
        "val.h5 has 1000-sample windows (train: 800) and windows at 250 Hz (train: 200 Hz); "
        "pack it and train.h5 from the same shards"
    )
    with pytest.raises(DataError) as raised:
        _check_same_layout(train, _layout("val.h5", ("C3", "Pz", "C4"), 800, 200.0), "reconstruction", None)
    assert raised.value.message == "val.h5 has channel 2 'Pz' (train: 'Cz'); pack it and train.h5 from the same shards"
    with pytest.raises(DataError) as raised:
        _check_same_layout(train, _layout("val.h5", ("C3", "Cz"), 800, 200.0), "reconstruction", None)
    assert raised.value.message.startswith("val.h5 has 2 channels (train: 3);")
