"""``hub:MODEL/FOLDER`` references and ``download --recipe``: the file fetched is the file read."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from fixtures.fake_hub import TINY_MANIFESTS, safetensors_bytes
from fixtures.packed import write_packed
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import DownloadError, ExitStatus, UsageError
from biofound_cli.hub import weights_request
from biofound_cli.hub_reference import hub_request, local_checkpoint, reference_of
from biofound_cli.models.registry import FAMILIES, VARIANTS

runner = CliRunner()
LUNA_FILE = "Base/LUNA_base.safetensors"


def every_request():
    for variant in VARIANTS.values():
        if variant.hub_file is not None:
            yield weights_request(variant.name, None, None)
        for task in FAMILIES[variant.family].hub_task_folders.values():
            yield weights_request(variant.name, None, task)


@pytest.mark.parametrize("request_", list(every_request()), ids=lambda r: f"{r.variant.name}-{r.task}")
def test_every_published_checkpoint_has_a_reference_that_names_it_back(request_):
    again = hub_request(reference_of(request_), "R.toml: model.checkpoint")
    assert (again.variant.name, again.task, again.patterns) == (request_.variant.name, request_.task, request_.patterns)


def test_the_readme_spelling_names_luna_base_pretrained():
    request = hub_request("hub:luna/Base", "R.toml: model.checkpoint")
    assert request.variant.name == "luna-base" and request.task is None and request.patterns == (LUNA_FILE,)
    assert hub_request("hub:tinymyo/DB5", "w").task == "db5"


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        ("hub:luna", "write hub:MODEL/FOLDER"),
        ("hub:luna/Base/extra", "write hub:MODEL/FOLDER"),
        ("hub:mnist/Base", "unknown model 'mnist'"),
        ("hub:luna/Gigantic", "FOLDER is a size or one of TUAB, TUAR, TUSL"),
        ("hub:luna-base/Large", "already names a size"),
        ("hub:luna/DB5", "FOLDER is a size or one of"),
    ],
)
def test_a_bad_reference_is_one_sentence_naming_the_field(reference, words):
    with pytest.raises(UsageError) as caught:
        hub_request(reference, "R.toml: model.checkpoint")
    assert caught.value.message.startswith(f"R.toml: model.checkpoint = {reference!r}") and words in caught.value.message
    assert "\n" not in caught.value.message


def luna_recipe(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "luna.toml"
    path.write_text(f'[data]\ntrain = "train.h5"\n[model]\nvariant = "luna-base"\ncheckpoint = "hub:luna/Base"\n{extra}')
    return path


def test_download_recipe_fetches_what_model_checkpoint_then_reads_offline(fake_hub, tmp_path):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    recipe = luna_recipe(tmp_path)
    with pytest.raises(UsageError, match=r"not in the hub cache yet; fetch them with `biofound download --recipe"):
        local_checkpoint("hub:luna/Base", f"{recipe}: model.checkpoint")

    result = runner.invoke(app, ["download", "--recipe", str(recipe), "--json"])
    assert result.exit_code == 0, result.output
    fetched = json.loads(result.stdout.strip().splitlines()[-1])["weights"]
    assert fetched["reference"] == "hub:luna/Base" and fetched["variant"] == "luna-base"

    fake_hub.stop()  # resolving a reference never touches the network
    path = local_checkpoint("hub:luna/Base", f"{recipe}: model.checkpoint")
    assert [str(path)] == fetched["files"]


def test_download_dest_is_where_the_reference_is_read(fake_hub, tmp_path):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    recipe = luna_recipe(tmp_path, f'[download]\ndest = "{tmp_path / "checkpoints"}"\n')
    result = runner.invoke(app, ["download", "--recipe", str(recipe), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "checkpoints" / LUNA_FILE).is_file()
    fake_hub.stop()
    path = local_checkpoint("hub:luna/Base", "w", dest=tmp_path / "checkpoints")
    assert path == tmp_path / "checkpoints" / LUNA_FILE


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (
            '[download]\nmodel = "luna"\nvariant = "large"\n',
            "download.model fetches luna-large pre-trained weights but model.checkpoint",
        ),
        ('[download]\ntask = "TUAB"\n', "download.task is set but download.model is not"),
        ('[download]\ndataset = "mnist"\n', "download.dataset = 'mnist' is not a data set biofound fetches"),
        ('[download]\nmodel = "luna"\nvariant = "gigantic"\n', "{recipe}: download.variant 'gigantic' is not a luna variant"),
    ],
)
def test_validate_and_download_refuse_a_bad_download_section(fake_hub, tmp_path, extra, words):
    recipe = luna_recipe(tmp_path, extra)
    for command in (["validate", str(recipe)], ["download", "--recipe", str(recipe)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and words.format(recipe=recipe) in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not fake_hub.requests  # refused before any transfer


def test_validate_refuses_a_reference_of_another_variant(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\ntrain = "train.h5"\n[model]\nvariant = "luna-large"\ncheckpoint = "hub:luna/Base"\n')
    result = runner.invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 2
    assert "holds luna-base weights but model.variant = 'luna-large'" in result.stderr


def test_a_recipe_with_local_data_and_weights_has_nothing_to_fetch(tmp_path):
    from biofound_cli.recipes.shipped import shipped_recipe

    result = runner.invoke(app, ["download", "--recipe", str(shipped_recipe("tinymyo_myo.toml")), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["fetched"] == []


LUNA_TINY = {"patch_size": 32, "embed_dim": 32, "num_queries": 2, "depth": 1, "num_heads": 2}
CHANNELS = ["FP1-F7", "F7-T3", "T3-T5", "T5-O1", "FP2-F8"]
# A TUAB-like split of LUNA_TINY's windows: 64 samples of the bipolar channels at 256 Hz, normal or abnormal.
write_tuab = functools.partial(
    write_packed, channels=CHANNELS, n_times=64, sfreq=256.0, label_names=["normal", "abnormal"], task="bc"
)


def test_a_reference_given_to_evaluate_is_fetched_by_flags_not_by_the_recipe(fake_hub, tmp_path):
    """`evaluate R.toml --checkpoint hub:luna/TUAB` advised `biofound download --recipe R.toml`, which
    fetches the recipe's own model.checkpoint (hub:luna/Base), not the weights asked for."""
    recipe = tmp_path / "luna.toml"
    recipe.write_text(f'[data]\ntest = "{tmp_path / "test.h5"}"\n[model]\nvariant = "luna-base"\ncheckpoint = "hub:luna/Base"\n')
    (tmp_path / "test.h5").touch()
    result = runner.invoke(app, ["evaluate", str(recipe), "--checkpoint", "hub:luna/TUAB", "--split", "test"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert result.stderr.strip().endswith("fetch them with `biofound download luna --variant luna-base --task tuab`")


def test_finetune_starts_from_the_weights_download_recipe_fetched(fake_hub, tmp_path, monkeypatch):
    """The README pipeline without copying a path: download --recipe, then finetune the same recipe."""
    import torch
    from safetensors.torch import save

    import biofound_cli.hub as hub
    from biofound_cli.models import registry

    variant = registry.get_variant("luna-base")
    torch.manual_seed(0)
    official = registry.build_model("luna", {**variant.constructor_kwargs("reconstruction", None), **LUNA_TINY})
    weights = {key: value.contiguous() for key, value in official.state_dict().items()}
    monkeypatch.setattr(
        hub,
        "_manifests",
        lambda: {"luna-base": {"pretrain": {key: list(value.shape) for key, value in weights.items()}, "finetune": {}}},
    )
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: save(weights)}
    write_tuab(tmp_path / "train.h5", 8, 0)
    write_tuab(tmp_path / "val.h5", 4, 1)
    recipe = tmp_path / "luna.toml"
    overrides = ", ".join(f"{key} = {value}" for key, value in LUNA_TINY.items())
    recipe.write_text(f"""
name = "from-hub"
[data]
train = "{tmp_path / "train.h5"}"
val = "{tmp_path / "val.h5"}"
batch_size = 4
[model]
variant = "luna-base"
checkpoint = "hub:luna/Base"
overrides = {{{overrides}}}
[train]
max_steps = 2
device = "cpu"
[output]
runs_dir = "{tmp_path / "runs"}"
""")
    before = runner.invoke(app, ["finetune", str(recipe), "--no-progress"])
    assert before.exit_code == 2 and "fetch them with `biofound download --recipe" in before.stderr, before.output

    assert runner.invoke(app, ["download", "--recipe", str(recipe), "--no-progress"]).exit_code == 0
    fake_hub.stop()
    result = runner.invoke(app, ["finetune", str(recipe), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    cached = local_checkpoint("hub:luna/Base", "w")
    assert f"tensors from {cached}; " in result.stderr  # the file download put in the hub cache
    assert json.loads(result.stdout.strip().splitlines()[-1])["steps"] == 2


def test_without_a_recipe_the_advice_is_a_download_command_that_fetches_the_file(fake_hub, tmp_path):
    """`predict hub:luna/Base` has no recipe to name: the advice is the flags, and running them works."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    with pytest.raises(UsageError, match=r"fetch them with `biofound download luna --variant luna-base`$") as caught:
        local_checkpoint("hub:luna/Base", "MODEL")
    command = caught.value.message.rsplit("`", 2)[-2]
    result = runner.invoke(app, [*command.split()[1:], "--json"])
    assert result.exit_code == 0, result.output
    assert local_checkpoint("hub:luna/Base", "MODEL").is_file()


@pytest.mark.parametrize("into", ["cache", "dest"])
def test_a_damaged_copy_is_named_with_the_command_that_fetches_it_again(fake_hub, tmp_path, into):
    """A copy cut short (a blob damaged on disk, a --dest folder whose copy to a cluster broke off).

    Every stage reading the reference said "not in the hub cache yet; fetch them with `biofound
    download --recipe R.toml`" (status 2), and that command then refused the copy as damaged.
    """
    content = safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: content}
    dest = tmp_path / "checkpoints"
    recipe = luna_recipe(tmp_path, f'[download]\ndest = "{dest}"\n' if into == "dest" else "")
    assert runner.invoke(app, ["download", "--recipe", str(recipe), "--no-progress"]).exit_code == 0
    [copy] = [dest / LUNA_FILE] if into == "dest" else list(tmp_path.rglob("blobs/*"))
    copy.write_bytes(content[:100])

    result = runner.invoke(app, ["info", "hub:luna/Base", "--json"], env={"HF_HUB_OFFLINE": "1"})
    if into == "cache":  # info names no recipe: the flags that fetch the file again
        assert result.exit_code == ExitStatus.FAILED, result.output
        error = json.loads(result.stdout)["error"]
        assert error.startswith("PATH = 'hub:luna/Base': ") and f"(its cached blob is {copy})" in error
        assert error.endswith(
            "fetch the luna-base pre-trained weights again with `biofound download luna --variant luna-base --force`"
        )
    with pytest.raises(DownloadError) as caught:
        local_checkpoint("hub:luna/Base", f"{recipe}: model.checkpoint", dest=dest if into == "dest" else None)
    message = caught.value.message
    assert "is not a safetensors file (or its header is cut off)" in message and "not in" not in message
    command = message.rsplit("`", 2)[-2]
    assert command == f"biofound download --recipe {recipe} --force"

    result = runner.invoke(app, [*command.split()[1:], "--no-progress"])
    assert result.exit_code == 0, result.output
    assert local_checkpoint("hub:luna/Base", "w", dest=dest if into == "dest" else None).read_bytes() == content


def test_a_cached_link_whose_blob_was_deleted_is_not_a_copy(fake_hub, tmp_path):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    assert runner.invoke(app, ["download", "luna", "--no-progress"]).exit_code == 0
    [blob] = list(tmp_path.rglob("blobs/*"))
    blob.unlink()
    with pytest.raises(
        UsageError, match=r"not in the hub cache yet; fetch them with `biofound download luna --variant luna-base`$"
    ):
        local_checkpoint("hub:luna/Base", "MODEL")


@pytest.mark.parametrize(
    ("given", "flags"),
    [
        (["--set", "model.checkpoint=hub:luna/TUAB"], ""),
        (["--set", "model={variant = 'luna-base', checkpoint = 'hub:luna/TUAB'}"], ""),
        (["--set", "model.checkpoint=hub:luna/TUAB", "--set", "download.dest=DEST"], " --dest DEST"),
    ],
)
def test_a_reference_given_by_set_is_fetched_by_the_command_advised(fake_hub, tmp_path, given, flags):
    """`finetune R.toml --set model.checkpoint=hub:luna/TUAB` advised `biofound download --recipe R.toml`, which
    fetches the recipe file's own model.checkpoint (hub:luna/Base): the advice, run, left the same refusal."""
    fake_hub.repos["thorir/LUNA"] = {"TUAB/base.safetensors": safetensors_bytes(TINY_MANIFESTS["luna-base"]["finetune"])}
    write_tuab(tmp_path / "train.h5", 8, 0)
    recipe = luna_recipe(tmp_path, f'[output]\nruns_dir = "{tmp_path / "runs"}"\n')
    recipe.write_text(recipe.read_text().replace('"train.h5"', f'"{tmp_path / "train.h5"}"'))
    given = [word.replace("DEST", str(tmp_path / "weights")) for word in given]
    result = runner.invoke(app, ["finetune", str(recipe), *given, "--no-progress"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    advice = f"biofound download luna --variant luna-base --task tuab{flags.replace('DEST', str(tmp_path / 'weights'))}"
    assert result.stderr.strip().endswith(f"fetch them with `{advice}`")
    assert runner.invoke(app, [*advice.split()[1:], "--quiet"]).exit_code == 0
    after = runner.invoke(app, ["finetune", str(recipe), *given, "--no-progress"])
    assert "not in" not in after.output and "fetch them with" not in after.output


def test_offline_a_hub_task_not_downloaded_says_to_unset_hf_hub_offline_or_give_a_local_file(fake_hub, tmp_path):
    """journey28: `HF_HUB_OFFLINE=1 biofound predict luna:TUAB ...` said to fetch the weights with a `download`
    command, which then refused because HF_HUB_OFFLINE was set; the line now says what lets it run or what else does."""
    samples = Path(__file__).resolve().parents[3] / "biofound_cli" / "data" / "samples" / "eeg" / "scp1"
    predict = ["predict", "luna:TUAB", str(samples), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, predict, env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert " ".join(result.stderr.split()) == (
        "error: MODEL = 'hub:luna/TUAB': the luna-base tuab weights are not in the hub cache yet; HF_HUB_OFFLINE is "
        "set, so nothing is fetched: unset it and fetch them with `biofound download luna --variant luna-base --task "
        "tuab` where there is network access, or give the path of a checkpoint file instead"
    )
    # Online the command named runs as it is.
    assert "fetch them with `biofound download luna --variant luna-base --task tuab`" in " ".join(
        runner.invoke(app, predict).stderr.split()
    )
