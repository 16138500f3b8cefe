"""Weights from a loopback fake hub: success, fallback, verification, 404, refusal, offline, listing."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.fake_hub import TINY_MANIFESTS, safetensors_bytes

from biofound_cli.errors import ExitStatus, UsageError
from biofound_cli.hub import (
    DownloadError,
    download_weights,
    list_available,
    resolve_variant,
    verify_weights,
    weights_request,
)

LUNA_FILE = "Base/LUNA_base.safetensors"
PRETRAIN = TINY_MANIFESTS["luna-base"]["pretrain"]
FINETUNE = TINY_MANIFESTS["femba-base"]["finetune"]


def test_downloads_from_the_original_repo_and_verifies(fake_hub):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: safetensors_bytes(PRETRAIN, prefix="model."), "README.md": b"card"}
    result = download_weights(weights_request("luna"), progress=False)
    assert result.repo == "thorir/LUNA"
    assert result.tried == []
    [path] = result.files
    assert path.is_file() and path.as_posix().endswith(LUNA_FILE)
    assert result.verification[0]["prefixed"] is True
    assert result.recipe_lines() == [f'[model]\nvariant = "luna-base"\ncheckpoint = "{path}"']
    # allow_patterns: the model card was not fetched
    fetched = [p for method, p, _ in fake_hub.requests if "/resolve/" in p and method == "GET"]
    assert fetched and all(p.endswith(LUNA_FILE) for p in fetched)


def test_falls_back_to_the_organisation_repo(fake_hub):
    fake_hub.repos["PulpBio/LUNA"] = {LUNA_FILE: safetensors_bytes(PRETRAIN)}
    result = download_weights(weights_request("luna", "base"), progress=False)
    assert result.repo == "PulpBio/LUNA"
    assert result.tried == ["thorir/LUNA: not found (HTTP 404)"]
    assert result.verification[0]["prefixed"] is False


def test_copies_into_dest(fake_hub, tmp_path):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: safetensors_bytes(PRETRAIN)}
    result = download_weights(weights_request("luna"), dest=tmp_path / "ckpt", progress=False)
    assert result.files == [tmp_path / "ckpt" / LUNA_FILE]
    # Instead of the hub cache, not besides it (the recipe reference once said "also copy"): no blob there.
    assert not list((tmp_path / "hf" / "hub").rglob("*.safetensors"))


def test_fine_tuned_task_file_found_by_pattern_and_head_shape_free(fake_hub):
    head = {**FINETUNE, "classifier.weight": (6, 8)}  # another number of classes than the manifest's
    fake_hub.repos["PulpBio/FEMBA"] = {
        "TUAB/base.safetensors": safetensors_bytes(head, prefix="model."),
        "TUAB/large.safetensors": b"not fetched",
    }
    result = download_weights(weights_request("femba", "base", "TUAB"), progress=False)
    assert [p.name for p in result.files] == ["base.safetensors"]
    assert result.task == "tuab"
    assert result.verification[0]["head_keys"] == ["classifier.weight"]


def test_wrong_keys_fail_verification(fake_hub):
    wrong = {"cross_attn.query_embed": (1, 4, 9), "something.else": (3,)}
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: safetensors_bytes(wrong)}
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False)
    message = caught.value.message
    assert "does not match the pre-trained luna-base manifest" in message
    assert "missing key" in message and "1 unexpected key (something.else)" in message
    assert "cross_attn.query_embed [1, 4, 9] vs [1, 4, 8]" in message
    assert caught.value.status == ExitStatus.FAILED


def test_damaged_file_fails_verification(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(DownloadError, match="is not a safetensors file"):
        verify_weights(path, "luna-base", None)


def test_not_found_anywhere(fake_hub):
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False)
    assert "no repository serves luna-base pre-trained weights" in caught.value.message
    assert "thorir/LUNA: not found (HTTP 404); PulpBio/LUNA: not found (HTTP 404)" in caught.value.message


def test_file_missing_from_repo(fake_hub):
    fake_hub.repos["thorir/LUNA"] = {"README.md": b"card"}
    with pytest.raises(DownloadError, match="no file matching Base/LUNA_base.safetensors"):
        download_weights(weights_request("luna"), progress=False)


def test_refused_access_names_the_token(fake_hub):
    fake_hub.refuse["thorir/LUNA"] = 401
    fake_hub.refuse["PulpBio/LUNA"] = 403
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False)
    assert "refused access" in caught.value.message and "HF_TOKEN" in caught.value.message


def test_offline_mode_uses_the_cache(fake_hub, monkeypatch):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: safetensors_bytes(PRETRAIN)}
    first = download_weights(weights_request("luna"), progress=False)
    fake_hub.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = download_weights(weights_request("luna"), progress=False)
    assert again.files == first.files and again.repo == "thorir/LUNA"
    assert fake_hub.requests == []


def test_offline_mode_without_cache_says_so(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="not in the hub cache and HF_HUB_OFFLINE is set"):
        download_weights(weights_request("luna"), progress=False)
    assert fake_hub.requests == []


def test_unreachable_hub(fake_hub, monkeypatch):
    fake_hub.stop()  # nothing listens on that port any more
    with pytest.raises(DownloadError, match="cannot reach"):
        download_weights(weights_request("luna"), progress=False)


def test_list_reads_the_tree(fake_hub):
    fake_hub.repos["PulpBio/TinyMyo"] = {
        "UCI_EMG/base.safetensors": b"x" * 10,
        "DB5/base.safetensors": b"y" * 20,
        "scripts/prep.py": b"",
    }
    rows, unlisted = list_available(("tinymyo",))
    assert unlisted == {}
    assert {(r["repo"], r["file"], r["task"], r["size"]) for r in rows} == {
        ("PulpBio/TinyMyo", "UCI_EMG/base.safetensors", "uci-emg", 10),
        ("PulpBio/TinyMyo", "DB5/base.safetensors", "db5", 20),
    }


def test_list_names_variants(fake_hub):
    fake_hub.repos["thorir/LUNA"] = {"Base/LUNA_base.safetensors": b"x", "Huge/LUNA_huge.safetensors": b"y"}
    rows = {r["file"]: r for r in list_available(("luna",))[0]}
    assert rows["Huge/LUNA_huge.safetensors"]["variant"] == "luna-huge"
    assert rows["Base/LUNA_base.safetensors"]["task"] == "pretrain"


@pytest.mark.parametrize(
    ("model", "variant", "expected"),
    [
        ("femba", None, "femba-base"),
        ("femba", "huge", "femba-huge"),
        ("luna", "luna-large", "luna-large"),
        ("luna-huge", None, "luna-huge"),
        ("tinymyo", None, "tinymyo"),
    ],
)
def test_resolve_variant(model, variant, expected):
    assert resolve_variant(model, variant).name == expected


def test_request_errors_are_usage_errors():
    with pytest.raises(UsageError, match="not a luna variant"):
        resolve_variant("luna", "tiny")
    with pytest.raises(UsageError, match="pre-trained femba-base weights are not published"):
        weights_request("femba")
    with pytest.raises(UsageError, match="--task 'DB5' has no LUNA checkpoint"):
        weights_request("luna", task="DB5")


def test_request_uses_known_task_file_and_repo_order():
    request = weights_request("tinymyo", task="uci_emg")
    assert request.patterns == ("UCI_EMG/base.safetensors",)
    assert request.repos == ("MatteoFasulo/TinyMyo", "PulpBio/TinyMyo")


def test_real_manifest_matches_the_key_lists(test_data: Path):
    """The packaged manifest was generated from tests/data/keys (scripts/make_manifests.py)."""
    import json

    from biofound_cli import hub

    hub._manifests.cache_clear()
    manifest = hub.manifest_for("luna-base", None)
    keys = json.loads((test_data / "keys" / "LUNA_base_pretrain.json").read_text())
    assert manifest == {key: tuple(shape) for key, shape, _ in keys}
    assert any(key.startswith("model_head.") for key in hub.manifest_for("tinymyo", "uci-emg"))
