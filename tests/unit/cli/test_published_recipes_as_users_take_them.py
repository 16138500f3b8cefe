"""Every published recipe as users take it: `recipes cp NAME DEST`, `validate DEST`, then each `--set` of the docs.

The copies lie in a folder whose path has a space and accents (a Windows or macOS home folder).
Every ``--set`` the docs show (inline or in a code block) is run through ``validate``, so a page
naming a field that was renamed, or a value a field no longer takes, fails here.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora import CORPORA
from biofound_cli.errors import ExitStatus
from biofound_cli.recipes.schema import Recipe

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[3]
PAGES = sorted([*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"])

# Shown by the docs as refused, in prose: the words of the refusal each must print.
REFUSED_IN_PROSE = {
    "train.compile=yes": "expected true or false",
    "data.train=": "expected a path, not an empty string",
    "model.checkpoint=": "expected a path, not an empty string",
}


def _code(text: str) -> list[str]:
    """The lines of a page's code blocks and its inline code spans."""
    blocks = re.compile(r"^```\w*\n(.*?)^```", flags=re.S | re.M)
    lines = [line for block in blocks.findall(text) for line in block.replace("\\\n", " ").splitlines()]
    return lines + re.findall(r"`([^`\n]+)`", blocks.sub("", text))


def _documented_settings() -> dict[tuple[str, ...], tuple[str, str]]:
    """The ``--set`` arguments of one command or refusal the docs show → (the first page showing them, the code)."""
    found: dict[tuple[str, ...], tuple[str, str]] = {}
    for page in PAGES:
        for code in _code(page.read_text(encoding="utf-8")):
            words = shlex.split(code, comments=True) if "--set" in code else []
            arguments = tuple(
                argument.removesuffix("]") if argument.count("[") < argument.count("]") else argument
                for word, argument in zip(words, words[1:], strict=False)
                if word.lstrip("[") == "--set" and re.match(r"[A-Za-z_]+\.\w", argument)
            )
            if arguments:
                found.setdefault(arguments, (str(page.relative_to(ROOT)), code))
    return found


SETTINGS = _documented_settings()


def _placeholder(argument: str) -> bool:
    """``download.KEY=VALUE``, ``data.SPLIT=...``, ``model.checkpoint=PATH``: a name the reader puts in."""
    return bool(re.search(r"[A-Z]{3,}|\.\.\.", argument)) or argument.startswith("section.key")


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> dict[str, Path]:
    """Every recipe `recipes ls` lists, copied by `recipes cp` into a folder named with a space and accents."""
    listed = runner.invoke(app, ["recipes", "ls", "--json"])
    assert listed.exit_code == 0, listed.output
    folder = tmp_path_factory.mktemp("recipes") / "mes recettes é"
    names = [entry["name"] for entry in json.loads(listed.stdout)["recipes"]]
    for name in names:
        copied = runner.invoke(app, ["recipes", "cp", name, str(folder)])
        assert copied.exit_code == 0, copied.output
    return {name: folder / f"{name}.toml" for name in names}


def _validate(recipe: Path, *arguments: str):
    return runner.invoke(app, ["validate", str(recipe), *arguments, "--json"])


def test_the_docs_show_settings_of_every_section_people_set():
    shown = {argument for arguments in SETTINGS for argument in arguments}
    assert len(shown) >= 30
    assert {"optim.lr=1e-4", "preprocess.resample_method=grid", "pack.layout=virtual", "train.epochs=2"} <= shown


@pytest.mark.slow
def test_every_published_recipe_copied_by_recipes_cp_passes_validate(copies):
    assert len(copies) >= 20
    for name, recipe in copies.items():
        result = _validate(recipe)
        assert result.exit_code == 0, f"{name}: {result.output}"
        assert json.loads(result.stdout.strip().splitlines()[-1])["valid"] is True


def test_a_copy_saved_by_a_windows_editor_validates_as_the_published_one(copies):
    """A byte-order mark and CRLF line ends (Notepad), in a folder with a space and accents."""
    recipe = copies["luna_scp1"]
    windows = recipe.with_name("luna_scp1 (Windows).toml")
    windows.write_bytes(b"\xef\xbb\xbf" + recipe.read_bytes().replace(b"\n", b"\r\n"))
    checked = [json.loads(_validate(path).stdout.strip().splitlines()[-1])["checked"] for path in (recipe, windows)]
    assert checked[0] == checked[1] and len(checked[0]) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("arguments", sorted(SETTINGS), ids=" ".join)
def test_every_set_the_docs_show_does_what_they_say_with_a_published_recipe(copies, arguments):
    """Values the docs show pass with a published recipe (or one of a corpus the docs name); refusals read as shown.

    A placeholder value (``PATH``) names a field that must exist, a placeholder field
    (``data.SPLIT``) a section; the docs' refusals (``--set optim.lr=abc: optim.lr = "abc":
    expected a number``) must be printed as they show them, by ``validate`` or, for a file the
    recipe names (which ``validate`` does not read), by ``finetune``.
    """
    page, code = SETTINGS[arguments]
    settings = [argument.removesuffix(":") for argument in arguments]
    options = [word for setting in settings for word in ("--set", setting)]
    refusal = next(
        (code.partition(f"{argument} ")[2].split("...")[0].strip() for argument in arguments if argument.endswith(":")),
        next((REFUSED_IN_PROSE[setting] for setting in settings if setting in REFUSED_IN_PROSE), None),
    )
    if refusal is not None:
        command = "finetune" if "does not exist" in refusal else "validate"
        result = runner.invoke(app, [command, str(copies["luna_tuab"]), *options])
        assert result.exit_code == ExitStatus.USAGE, f"{page}: {code}: {result.output}"
        assert refusal in " ".join(result.stderr.split()), f"{page}: {code}: {result.stderr}"
        return
    names = [setting.partition("=")[0] for setting in settings]
    if any(_placeholder(name) for name in names):  # data.SPLIT, download.KEY: a section to name rightly
        assert {name.split(".")[0] for name in names} <= {*Recipe.model_fields, "section"}, f"{page}: {code}"
        return
    corpus_recipes = copies["luna_tuab"].parent / "one corpus each"
    corpus_recipes.mkdir(exist_ok=True)
    for corpus in CORPORA:
        (corpus_recipes / f"{corpus}.toml").write_text(f'[preprocess]\ncorpus = "{corpus}"\n', encoding="utf-8")
    refusals = []
    for recipe in [*copies.values(), *sorted(corpus_recipes.iterdir())]:
        result = _validate(recipe, *options)
        if result.exit_code == 0 or _placeholder(" ".join(settings)) and "unknown field" not in result.stderr:
            return
        refusals.append(result.stderr)
    pytest.fail(f"{page}: {code}: refused with every published recipe and every corpus: {refusals[0]}")
