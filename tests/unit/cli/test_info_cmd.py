from __future__ import annotations

import json

import h5py
import numpy as np
import torch
from fixtures.official import official_release
from fixtures.shards import DEFAULT_CHANNELS, write_corpus
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.recipes.pack import PackSection
from biofound_cli.store.packer import pack_shards

runner = CliRunner()


def test_info_packed_file_json_and_table(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=5, windows_per_subject=2)
    pack_shards(tmp_path / "shards", tmp_path / "packed", PackSection(train=1.0, val=0.0, test=0.0))
    path = tmp_path / "packed" / "train.h5"
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["kind"] == "packed" and info["windows"] == 10 and info["n_channels"] == 4
    assert info["ch_names"][0] == "FP1-F7" and info["sfreq"] == 256.0 and info["task"] == "bc"
    assert info["class_counts"] == {"normal": 6, "abnormal": 4}
    assert info["subjects"] == 5 and info["recordings"] == 5 and info["size_bytes"] == path.stat().st_size
    assert info["subject_names"] == [f"subj{i:03d}" for i in range(5)]
    table = runner.invoke(app, ["info", str(path)])
    assert table.exit_code == 0 and "class_counts" in table.stdout and "KiB" in table.stdout


def test_info_shard(tmp_path):
    (path,) = write_corpus(tmp_path / "shards", n_subjects=1, windows_per_subject=3)
    info = json.loads(runner.invoke(app, ["info", str(path), "--json"]).stdout)
    assert info["kind"] == "shard" and info["subject_names"] == ["subj000"] and info["class_counts"] == {"normal": 3}


def test_info_recipe(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[pack]\nseed = 3\ndtype = 'float16'\n")
    info = json.loads(runner.invoke(app, ["info", str(recipe), "--json"]).stdout)
    assert info["kind"] == "recipe" and info["pack"]["seed"] == 3 and info["pack"]["dtype"] == "float16"


def test_info_describes_a_run_s_recipe_json_as_the_recipe_it_records(tmp_path):
    # It was "unknown file type .json", though every command takes it as a recipe.
    from biofound_cli.recipes import load_recipe

    toml = tmp_path / "r.toml"
    toml.write_text("[pack]\nseed = 3\ndtype = 'float16'\n")
    record = tmp_path / "recipe.json"
    record.write_text(json.dumps(load_recipe(toml).model_dump(mode="json")))  # as training writes it
    described = json.loads(runner.invoke(app, ["info", str(record), "--json"]).stdout)
    assert described | {"path": str(toml)} == json.loads(runner.invoke(app, ["info", str(toml), "--json"]).stdout)


def test_info_refuses_a_recipe_validate_refuses(tmp_path):
    # info said "valid": true for a recipe whose variant does not exist; validate and finetune exit 2.
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\ntrain = "train.h5"\n[model]\nvariant = "tinymyo-xl"\n[train]\ndevice = "cpu"\n')
    result = runner.invoke(app, ["info", str(recipe), "--json"])
    assert result.exit_code == 2, result.output
    assert "model.variant" in result.stderr and "tinymyo-xl" in result.stderr


def test_info_checkpoint(test_data):
    path = test_data / "golden" / "femba_small_recon.weights.safetensors"
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["kind"] == "checkpoint" and info["n_tensors"] > 0


def test_info_bad_paths(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "missing.h5")])
    assert result.exit_code == 2 and "file not found" in result.output
    # A misspelt run folder was "unknown file type (none)".
    result = runner.invoke(app, ["info", str(tmp_path / "runs" / "missing")])
    assert result.exit_code == 2 and f"{tmp_path / 'runs' / 'missing'}: no such file or folder; check the path" in result.output
    other = tmp_path / "notes.txt"
    other.write_text("x")
    result = runner.invoke(app, ["info", str(other)])
    assert result.exit_code == 2 and "unknown file type" in result.output
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"junk")
    result = runner.invoke(app, ["info", str(junk)])
    assert result.exit_code == 1 and "not a readable HDF5" in result.output and "Traceback" not in result.output


def test_a_foreign_hdf5_file_of_a_shards_shape_is_neither_described_nor_packed_as_one(tmp_path):
    # info titled it "Shard" with empty channel names and "written by an older preprocess"; pack packed its windows.
    write_corpus(tmp_path / "shards", n_subjects=3)
    foreign = tmp_path / "shards" / "fake" / "other.h5"
    with h5py.File(foreign, "w") as handle:
        handle["x"] = np.zeros((5, 4, 16), dtype=np.float32)
        handle.attrs.update({"sfreq": 256.0, "channel_names": list(DEFAULT_CHANNELS), "subject": "other"})
    result = runner.invoke(app, ["info", str(foreign)])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"error: {foreign}: has no 'biofound_version' attribute, which biofound preprocess writes in every shard, so it is "
        "not a biofound shard or packed file; info describes only the .h5 files preprocess and pack write\n"
    )
    assert not result.stdout
    packed = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--json"])
    assert packed.exit_code == 0, packed.output
    summary = json.loads(packed.stdout)
    assert summary["skipped"] == 1 and sum(summary["windows"].values()) == 3 * 4
    assert summary["skipped_by_shard"] == {
        str(foreign): "has no 'biofound_version' attribute, which biofound preprocess writes in every shard, so it is not "
        "a biofound shard; move it out of the shard folder"
    }


def test_info_on_a_folder_of_shards_names_a_file_to_describe(tmp_path):
    # preprocess --out / pack --out folders were refused as "not a run, checkpoint or export folder"
    # with no word on the .h5 files they hold.
    (tmp_path / "a.h5").write_bytes(b"")
    (tmp_path / "b.h5").write_bytes(b"")
    result = runner.invoke(app, ["info", str(tmp_path), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"] == (
        f"{tmp_path}: a folder of 2 .h5 files without preprocess's report or pack's splits.json; "
        f"describe one file at a time, e.g. biofound info {tmp_path / 'a.h5'}"
    )


def test_info_on_the_quickstart_folder_names_what_it_holds(tmp_path):
    # `biofound info biofound-quickstart` (and a runs_dir) was refused with the list of what the
    # folder lacks, though it holds a run folder, shards and packed splits a few levels down.
    out = tmp_path / "quick start"
    write_corpus(out / "tinymyo" / "shards", n_subjects=4)
    pack_shards(out / "tinymyo" / "shards", out / "tinymyo" / "packed", PackSection(train=0.5, val=0.25, test=0.25))
    (out / "tinymyo" / "runs" / "tinymyo-myo" / "checkpoints").mkdir(parents=True)
    (out / "notes").mkdir()  # unrelated folders are not named, nor shards without preprocess's report
    result = runner.invoke(app, ["info", str(out), "--json"])
    assert result.exit_code == 2, result.output
    run = out / "tinymyo" / "runs" / "tinymyo-myo"
    assert json.loads(result.stdout)["error"] == (
        f"{out}: a folder holding what info describes, not one itself: tinymyo/packed (packed splits), "
        "tinymyo/runs/tinymyo-myo (run folder); pass one of them, "
        f"e.g. biofound info '{run}'"
    )
    named = runner.invoke(app, ["info", str(run), "--json"])
    assert named.exit_code == 0 and json.loads(named.stdout)["kind"] == "run_folder", named.output
    # A folder with nothing info describes below it keeps the line saying what info takes.
    empty = runner.invoke(app, ["info", str(out / "notes")])
    assert empty.exit_code == 2 and "not a run, checkpoint, export" in empty.output


def test_info_checkpoint_table_breaks_the_recorded_chain_between_its_fields(tmp_path):
    # A safetensors header holds every metadata value as text: the checkpoint's preprocessing chain was one cell of
    # ~800 characters, so `biofound info CKPT` in a log (or `| less`) printed a table that wide.
    from fixtures.export_models import save_small

    chain = {
        "corpus": "emg-csv",
        "l_freq": 20.0,
        "h_freq": 90.0,
        "notch_hz": [50.0],
        "sfreq": 200.0,
        "window_seconds": 1.0,
        "stride_seconds": 0.25,
        "filter_method": "iir",
        "montage": "none",
        "units": "file",
        "dtype": "float32",
        "options": {"pattern": r"R_(?P<repetition>\d+)_C_(?P<class>\d+)_EMG\.csv", "sfreq": 200.0, "delimiter": ","},
    }
    path = save_small(tmp_path / "model.safetensors", "tinymyo", preprocessing=chain)
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 0, result.output
    widest = max(len(line) for line in result.stdout.splitlines())
    assert widest < 160, f"a table row of {widest} columns:\n{result.stdout}"
    assert "l_freq: 20" in result.stdout and "window_seconds: 1" in result.stdout


def test_a_shard_cut_short_is_one_line_saying_so_and_what_to_do(tmp_path):
    # It was "not a readable HDF5 file (Unable to synchronously open file (truncated file: eof = ...))", HDF5's
    # words and no way out, where pack says the same shard is truncated and what to do.
    (path,) = write_corpus(tmp_path / "shards", n_subjects=1, windows_per_subject=3)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip() == (
        f"error: {path}: is truncated ({len(whole) // 2} of its {len(whole)} bytes are there, as after a copy cut short); "
        "copy it again, or run the preprocess (a shard) or pack (a packed split) that wrote it again"
    )


def test_official_shaped_weights_without_metadata_name_the_official_licence(tmp_path):
    # An official file (no metadata, as the hub serves it) said `license: None`, though `info` had recognised it as
    # the official tinymyo weights, which are CC BY-ND 4.0; a file of unknown keys still says nothing.
    from safetensors.torch import save_file

    from biofound_cli.models.registry import create_model

    official, other = tmp_path / "official.safetensors", tmp_path / "other.safetensors"
    official_release(create_model("tinymyo"), official)
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(other))
    info = json.loads(runner.invoke(app, ["info", str(official), "--json"]).stdout)
    assert (info["variant"], info["guessed"]) == ("tinymyo", True)
    assert info["license"] == "none stated; the official tinymyo weights, whose keys and shapes these match, are CC BY-ND 4.0"
    assert json.loads(runner.invoke(app, ["info", str(other), "--json"]).stdout)["license"] is None


def test_keys_of_no_family_are_said_unrecognised_naming_each_familys_marker_key(tmp_path):
    # A file of a bare classifier.* said `head: null` (plain: None) and nothing else: no word of why or what to do.
    from safetensors.torch import save_file

    from biofound_cli.models.registry import FAMILIES

    bare = tmp_path / "bare.safetensors"
    save_file({"classifier.weight": torch.zeros(2, 2)}, str(bare))
    info = json.loads(runner.invoke(app, ["info", str(bare), "--json"]).stdout)
    assert (info["model"], info["head"]) == (None, None)
    assert info["unrecognised"].startswith("its keys match no model family's, so its model and head are unknown")
    assert all(f"{FAMILIES[name].name} {FAMILIES[name].key_marker}*" in info["unrecognised"] for name in FAMILIES)
    plain = " ".join(runner.invoke(app, ["info", str(bare)]).output.split())
    assert "unrecognised" in plain and "renamed to the upstream model's" in plain.replace("│ ", "")
    official = tmp_path / "official.safetensors"
    from biofound_cli.models.registry import create_model

    official_release(create_model("tinymyo"), official)
    assert "unrecognised" not in json.loads(runner.invoke(app, ["info", str(official), "--json"]).stdout)


def test_a_value_the_file_does_not_state_reads_none_in_the_table_and_null_in_json(tmp_path):
    """The summary table printed Python's `None` for `model`, `head` and `fine_tuning` a file states none of (and for
    a chain's switched-off `l_freq` within a cell); every null now reads `none` there, and `--json` keeps null."""
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file({"classifier.weight": torch.zeros(2, 2)}, str(bare))
    info = json.loads(runner.invoke(app, ["info", str(bare), "--json"]).stdout)
    assert info["model"] is None and info["head"] is None and info["fine_tuning"] is None
    table = runner.invoke(app, ["info", str(bare)]).output
    rows = {cells[1]: cells[2] for line in table.splitlines() if len(cells := [c.strip() for c in line.split("│")]) == 4}
    assert (rows["model"], rows["head"], rows["fine_tuning"], rows["license"]) == ("none", "none", "none", "none stated")
    assert "None" not in table
