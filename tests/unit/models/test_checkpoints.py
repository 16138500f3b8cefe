from __future__ import annotations

import pytest
import torch
from fixtures.official import official_release
from safetensors.torch import load_file, save_file

import biofound_cli.models as models
from biofound_cli.errors import CheckpointError
from biofound_cli.models.checkpoints import (
    describe_checkpoint,
    load_state_dict_file,
    load_weights,
    read_metadata,
    save_checkpoint,
    transfer_pretrained,
)
from biofound_cli.models.registry import create_model

SMALL = dict(img_size=200, in_chans=4, embed_dim=48, n_layer=2)


def small(task="reconstruction", num_classes=None, **overrides):
    return create_model("tinymyo", task=task, num_classes=num_classes, **{**SMALL, **overrides})


def saved(model, path, task="reconstruction"):
    kwargs = {**models.get_variant("tinymyo").constructor_kwargs(task, getattr(model, "num_classes", None) or None), **SMALL}
    return save_checkpoint(
        model, path, variant="tinymyo", model_name="TinyMyo", constructor_kwargs=kwargs, extra_metadata={"task": task, "step": 12}
    )


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = small("ml", 5).eval()
    path = saved(model, tmp_path / "ckpt" / "model.safetensors", task="ml")
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temp file left behind
    metadata = read_metadata(path)
    assert metadata.model == "TinyMyo" and metadata.variant == "tinymyo" and metadata.task == "ml"
    assert metadata.extra["step"] == 12 and metadata.biofound_version
    assert metadata.constructor_kwargs["num_classes"] == 5
    rebuilt = models.load(path).eval()
    x = torch.randn(2, 4, 200)
    with torch.no_grad():
        assert torch.equal(rebuilt(x)[0], model(x)[0])


def test_load_without_metadata_says_what_to_do(test_data):
    with pytest.raises(CheckpointError, match="has no biofound metadata .*create_model and use load_weights"):
        models.load(test_data / "golden" / "tinymyo_small_recon.weights.safetensors")


def test_file_errors_name_the_file(tmp_path):
    path = saved(small(), tmp_path / "m.safetensors")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors is truncated"):
        load_state_dict_file(truncated)
    text = tmp_path / "notes.safetensors"
    text.write_text("these are not weights, just some notes\n")
    with pytest.raises(CheckpointError, match=r"notes\.safetensors is not a safetensors file"):
        load_state_dict_file(text)
    with pytest.raises(CheckpointError, match=r"absent\.safetensors: no such checkpoint file"):
        load_weights(small(), tmp_path / "absent.safetensors")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty or truncated"):
        describe_checkpoint(empty)


def test_prefixed_keys_load_and_give_golden_outputs(tmp_path, test_data):
    golden = test_data / "golden"
    weights = load_file(golden / "tinymyo_small_cls.weights.safetensors")
    prefixed = tmp_path / "lightning.safetensors"
    official_release(weights, prefixed)
    model = small("ml", 5).eval()
    report = load_weights(model, prefixed)
    assert report.missing == [] and report.unexpected == [] and len(report.loaded) == len(weights)
    io = load_file(golden / "tinymyo_small_cls.io.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(model(io["in.x"])[0], io["out.out0"], atol=1e-4, rtol=1e-4)
    lightning = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"model.{key}": value for key, value in weights.items()}}, lightning)
    assert load_weights(small("ml", 5), lightning).missing == []


def test_mismatch_lists_missing_unexpected_and_misshaped(tmp_path):
    path = saved(small(), tmp_path / "pretrain.safetensors")
    with pytest.raises(CheckpointError) as caught:
        load_weights(small("ml", 5), path)
    message = caught.value.message
    assert "2 missing keys (model_head.classifier.weight, model_head.classifier.bias)" in message
    assert "2 unexpected keys (model_head.decoder_pred.bias, model_head.decoder_pred.weight)" in message
    other = saved(small("ml", 3), tmp_path / "three.safetensors", task="ml")
    with pytest.raises(CheckpointError, match=r"model_head\.classifier\.weight: checkpoint \[3, 192\] vs model \[5, 192\]"):
        load_weights(small("ml", 5), other, strict=False)
    report = load_weights(small("ml", 5), path, strict=False)
    assert report.missing == ["model_head.classifier.weight", "model_head.classifier.bias"]


def test_long_key_lists_are_shortened():
    junk = {f"extra.{i}": torch.zeros(1) for i in range(20)}
    with pytest.raises(CheckpointError, match=r"20 unexpected keys \(extra\.0, .*extra\.5 and 14 more\)"):
        load_weights(small(), {**small().state_dict(), **junk})


def test_transfer_pretrained_reports_keys(tmp_path):
    torch.manual_seed(0)
    pretrained = small()
    path = saved(pretrained, tmp_path / "pretrain.safetensors")
    finetune = small("ml", 5)
    fresh_head = finetune.model_head.classifier.weight.detach().clone()
    report = transfer_pretrained(finetune, path)
    assert sorted(report.dropped) == ["model_head.decoder_pred.bias", "model_head.decoder_pred.weight"]
    assert report.initialised == ["model_head.classifier.weight", "model_head.classifier.bias"]
    assert len(report.loaded) == len(pretrained.state_dict()) - 2
    assert torch.equal(finetune.blocks[1].attn.qkv.weight, pretrained.blocks[1].attn.qkv.weight)
    assert torch.equal(finetune.model_head.classifier.weight, fresh_head)
    assert report.summary()["loaded"] == len(report.loaded)


def test_transfer_drops_even_a_matching_head(tmp_path):
    source = small("ml", 5)
    path = saved(source, tmp_path / "ft.safetensors", task="ml")
    report = transfer_pretrained(small("ml", 5), path)
    assert report.initialised == ["model_head.classifier.weight", "model_head.classifier.bias"]
    assert sorted(report.dropped) == ["model_head.classifier.bias", "model_head.classifier.weight"]


def test_transfer_refuses_other_body_or_model(tmp_path):
    path = saved(small(), tmp_path / "pretrain.safetensors")
    with pytest.raises(CheckpointError, match=r"mis-shaped keys \(mask_token: checkpoint \[1, 1, 48\] vs model \[1, 1, 60\]"):
        transfer_pretrained(small("ml", 5, embed_dim=60), path)
    with pytest.raises(CheckpointError, match=r"missing keys? \(blocks\.2\.norm1\.weight"):
        transfer_pretrained(small("ml", 5, n_layer=3), path)
    foreign = tmp_path / "luna.safetensors"
    save_file(small().state_dict(), str(foreign), metadata={"model": "LUNA"})
    with pytest.raises(CheckpointError, match="holds a LUNA model, not TinyMyo"):
        transfer_pretrained(small("ml", 5), foreign)


def test_transfer_names_the_family_of_an_official_file_of_another_model(tmp_path):
    # An official release carries no metadata: its keys tell which model it holds.
    femba = create_model("femba-tiny", task="mcc", num_classes=3)
    official = tmp_path / "femba_official.safetensors"
    official_release(femba, official)
    with pytest.raises(CheckpointError, match=r"femba_official\.safetensors holds a FEMBA model \(by its keys\), not TinyMyo"):
        transfer_pretrained(small("ml", 5), official)
    with pytest.raises(CheckpointError, match=r"the state dict holds a FEMBA model \(by its keys\), not TinyMyo"):
        transfer_pretrained(small("ml", 5), femba.state_dict())


def test_describe_checkpoint(tmp_path, test_data):
    path = saved(small("ml", 5), tmp_path / "m.safetensors", task="ml")
    info = describe_checkpoint(path)
    assert info["model"] == "TinyMyo" and info["variant"] == "tinymyo" and not info["guessed"]
    assert info["head"] == "classification" and info["metadata"]["task"] == "ml"
    assert info["n_parameters"] == models.count_parameters(small("ml", 5))
    official = tmp_path / "official.safetensors"
    save_file({f"model.{k}": v for k, v in create_model("tinymyo").state_dict().items()}, str(official))
    info = describe_checkpoint(official)
    assert (info["model"], info["variant"], info["guessed"], info["prefixed"]) == ("TinyMyo", "tinymyo", True, True)
    assert info["head"] == "reconstruction" and info["n_parameters"] == 3_567_380
    info = describe_checkpoint(test_data / "golden" / "tinymyo_small_reg.weights.safetensors")
    assert (info["model"], info["variant"], info["head"]) == ("TinyMyo", None, "regression")


def test_metadata_record_round_trips_through_the_header(tmp_path):
    from biofound_cli.models.checkpoints import CheckpointMetadata, read_header

    record = CheckpointMetadata(
        model="LUNA",
        variant="luna-base",
        constructor_kwargs={"patch_size": 40},
        task="bc",
        num_classes=2,
        n_chans=22,
        n_times=880,
        sfreq=256.0,
        ch_names=["FP1-F7", "F7-T3"],
        label_names=["normal", "abnormal"],
        transform="zscore",
        extra={"step": 7, "note": "plain text"},
    )
    header = record.to_header()
    assert header["model"] == "LUNA" and header["note"] == "plain text" and header["n_times"] == "880"
    assert CheckpointMetadata.from_header(header) == record
    torch.manual_seed(0)
    model = small("ml", 5)
    kwargs = {**models.get_variant("tinymyo").constructor_kwargs("ml", 5), **SMALL}
    path = save_checkpoint(
        model,
        tmp_path / "m.safetensors",
        variant="tinymyo",
        model_name="TinyMyo",
        constructor_kwargs=kwargs,
        extra_metadata={"ch_names": ["a", "b"], "n_times": 200},
    )
    assert read_metadata(path).ch_names == ["a", "b"] and read_metadata(path).n_times == 200
    assert read_header(path)["n_times"] == "200"
