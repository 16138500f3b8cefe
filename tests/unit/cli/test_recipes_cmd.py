"""``biofound recipes ls | show | cp``, the shipped recipes themselves, and their citations.

The recipes ship as package data (``biofound_cli/data/recipes/``, linked as ``recipes/`` in the
repository); the command finds them through ``importlib.resources``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[3]
PACKAGE_FOLDER = Path(str(resources.files("biofound_cli").joinpath("data", "recipes")))
NAMES = sorted(path.stem for path in PACKAGE_FOLDER.glob("*.toml"))

runner = CliRunner()


@pytest.fixture(autouse=True)
def _not_a_terminal(monkeypatch):
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


def assert_one_error_line(result) -> str:
    """Exit status 2 after exactly one ``error:`` line and no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def test_the_package_ships_every_recipe():
    assert (REPO / "biofound_cli" / "data" / "recipes").resolve() == PACKAGE_FOLDER.resolve()
    assert {"luna_tuab", "femba_pretrain", "tinymyo_db5", "luna_scp1", "tinymyo_myo", "preprocess_tueg"} <= set(NAMES)


def test_ls_lists_every_shipped_recipe_with_its_description():
    result = invoke("recipes", "ls")
    assert result.exit_code == 0, result.output
    for name in NAMES:
        assert re.search(rf"\b{name}\b", result.stdout), name
    assert "LUNA-base fine-tuned on TUAB" in result.stdout


def test_ls_json_is_one_object_listing_name_description_path():
    # It printed a bare list: the one --json that was not an object, so `jq .exit_status` failed on it.
    result = invoke("recipes", "ls", "--json")
    assert result.exit_code == 0, result.output
    (listed,) = json.loads(result.stdout).values()
    assert isinstance(listed, list) and list(json.loads(result.stdout)) == ["recipes"]
    assert [row["name"] for row in listed] == NAMES
    for row in listed:
        assert set(row) == {"name", "description", "path"}
        path = Path(row["path"])
        assert path.is_file() and path.resolve() == (PACKAGE_FOLDER / f"{row['name']}.toml").resolve()
        assert row["description"] == tomllib.loads(path.read_text()).get("description", "")
        assert row["description"], f"{row['name']}.toml has no description"


@pytest.mark.parametrize("name", ["luna_tuab", "tinymyo_myo.toml"])
def test_show_prints_the_toml_text(name):
    result = invoke("recipes", "show", name)
    assert result.exit_code == 0, result.output
    stem = name.removesuffix(".toml")
    assert result.stdout == (PACKAGE_FOLDER / f"{stem}.toml").read_text()
    assert tomllib.loads(result.stdout)["name"] == stem.replace("_", "-")


def test_cp_into_a_folder_keeps_the_file_name(tmp_path):
    result = invoke("recipes", "cp", "luna_tuab", tmp_path)
    assert result.exit_code == 0, result.output
    copied = tmp_path / "luna_tuab.toml"
    assert copied.read_bytes() == (PACKAGE_FOLDER / "luna_tuab.toml").read_bytes()
    assert str(copied) in result.stdout


def test_cp_to_a_folder_that_does_not_exist_yet(tmp_path):
    result = invoke("recipes", "cp", "femba_tuab.toml", f"{tmp_path / 'new' / 'folder'}/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / "folder" / "femba_tuab.toml").read_bytes() == (PACKAGE_FOLDER / "femba_tuab.toml").read_bytes()


def test_cp_to_a_file(tmp_path):
    target = tmp_path / "sub" / "my_run.toml"
    result = invoke("recipes", "cp", "tinymyo_db5", target, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["recipe"] == "tinymyo_db5" and Path(summary["dest"]) == target
    assert target.read_bytes() == (PACKAGE_FOLDER / "tinymyo_db5.toml").read_bytes()


def test_cp_refuses_to_overwrite_unless_asked(tmp_path):
    target = tmp_path / "mine.toml"
    target.write_text("# my edits\n")
    line = assert_one_error_line(invoke("recipes", "cp", "luna_tuab", target))
    assert str(target) in line and "--overwrite" in line
    assert target.read_text() == "# my edits\n"
    # The same through a folder: the file it would write is there already.
    (tmp_path / "luna_tuab.toml").write_text("# mine too\n")
    assert_one_error_line(invoke("recipes", "cp", "luna_tuab", tmp_path))
    assert (tmp_path / "luna_tuab.toml").read_text() == "# mine too\n"

    result = invoke("recipes", "cp", "luna_tuab", target, "--overwrite")
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == (PACKAGE_FOLDER / "luna_tuab.toml").read_bytes()


def test_cp_to_a_dash_prints_the_recipe_as_show_does(tmp_path, monkeypatch):
    # `-` is stdout to every copying tool: it made a folder named "-" holding the copy.
    monkeypatch.chdir(tmp_path)
    for args in ([], ["--json"]):
        copied, shown = invoke("recipes", "cp", "luna_tuab", "-", *args), invoke("recipes", "show", "luna_tuab", *args)
        assert copied.exit_code == 0, copied.output
        assert copied.stdout == shown.stdout
    assert copied.stdout and not any(tmp_path.iterdir())


@pytest.mark.parametrize("dest", ["", " "])
def test_cp_to_an_empty_dest_is_refused_not_read_as_the_working_folder(tmp_path, monkeypatch, dest):
    # `biofound recipes cp luna_tuab "$DIR"` with DIR unset copied into the working folder.
    monkeypatch.chdir(tmp_path)
    line = assert_one_error_line(invoke("recipes", "cp", "luna_tuab", dest))
    assert line == "error: DEST is empty; name a .toml file or a folder (. for the working folder)"
    assert not any(tmp_path.iterdir())


def unknown_name_args(command: str, name: str, tmp_path: Path) -> list[object]:
    return ["recipes", command, name] + ([tmp_path] if command == "cp" else [])


@pytest.mark.parametrize("command", ["show", "cp"])
def test_an_unknown_name_far_from_any_exits_2_with_one_line_listing_the_names(command, tmp_path):
    line = assert_one_error_line(invoke(*unknown_name_args(command, "xyzzy", tmp_path)))
    assert "'xyzzy'" in line and "biofound recipes ls" in line
    for name in NAMES:
        assert name in line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["show", "cp"])
@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("luna_tuabb", "did you mean luna_tuab?"),
        ("Luna_TUAB.tom", "did you mean luna_tuab?"),
        ("luna_tua", "did you mean luna_tuab or luna_tuar?"),
    ],
)
def test_a_misspelt_name_suggests_the_close_recipe_not_all_21(command, typed, meant, tmp_path):
    """The rule recipe fields follow (``optim.lrr: did you mean lr?``): the close name, not the whole list."""
    line = assert_one_error_line(invoke(*unknown_name_args(command, typed, tmp_path)))
    assert line == f"error: unknown recipe {typed!r}; {meant} (`biofound recipes ls` lists them all)"
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["show", "cp"])
@pytest.mark.parametrize("typed", ["recipes/luna_tuab.toml", "./luna_tuab"])
def test_a_name_given_with_its_folder_is_told_the_name(command, typed, tmp_path):
    # The docs run every stage with recipes/luna_tuab.toml; as a NAME it listed all 21 names, luna_tuab among them.
    line = assert_one_error_line(invoke(*unknown_name_args(command, typed, tmp_path)))
    assert line == f"error: unknown recipe {typed!r}; name it without its folder: luna_tuab"
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", NAMES)
def test_every_shipped_recipe_passes_validate(name, monkeypatch):
    # From the repository root, through the recipes/ link, as the docs run them.
    monkeypatch.chdir(REPO)
    result = invoke("validate", f"recipes/{name}.toml", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["valid"] is True


# --- no citations of specs users do not have ------------------------------------------------

# `specs/models.md`, "models.md §3.6", "data.md §7", "``models.md`` §7.12", "spec §7.4", "spec: ..."
CITATION = re.compile(r"specs/|\b(?:models|data)\.md`*\s*§|\bspecs?\b:?\s*§")
SKIPPED_FOLDERS = {".git", ".venv", ".venv-ci", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist", "runs", "out"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".sh", ".sbatch", ".cfg", ".ini", ".yaml", ".yml", ".rst", ".json"}


def _text_files():
    for folder, subfolders, files in os.walk(REPO):  # does not follow links: recipes/ is read once
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_FOLDERS and not name.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            if path.suffix in TEXT_SUFFIXES and path != Path(__file__):
                yield path


def test_no_file_cites_the_specs():
    offenders: dict[str, list[str]] = {}
    for path in _text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        hits = [f"{number}: {line.strip()}" for number, line in enumerate(text.splitlines(), 1) if CITATION.search(line)]
        if hits:
            offenders[path.relative_to(REPO).as_posix()] = hits
    assert not offenders, f"cite a docs/ page instead (or keep the fact alone): {offenders}"


# `DESIGN.md`, ``docs/training.md``: a page named in code quotes; not an output path (`/tmp/x.md`, `OUT/x.md`).
NAMED_PAGE = re.compile(r"`+([\w.-][\w./-]*\.md)`+")


def test_every_page_a_file_names_is_in_the_repository():
    """preprocess.md sent readers to `DESIGN.md` for the shard format, a file the repository never had."""
    pages = {path.name for path in _text_files() if path.suffix == ".md"}
    offenders = {
        f"{path.relative_to(REPO).as_posix()}: {name}"
        for path in _text_files()
        if path.name != "CHANGELOG.md"  # history names files since removed
        for name in NAMED_PAGE.findall(path.read_text(encoding="utf-8", errors="replace"))
        if not name.split("/")[0].isupper()
        and not (REPO / name).exists()
        and not (path.parent / name).exists()
        and not ("/" not in name and name in pages)
    }
    assert not offenders, f"name a page that exists, or the code that holds the fact: {sorted(offenders)}"


def test_recipes_and_docs_have_no_bare_section_numbers():
    # A bare "(§4.6)" in a recipe or a page points into the same spec files.
    folders = (PACKAGE_FOLDER, REPO / "docs")
    hits = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.suffix in (".toml", ".md")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "§" in line
    ]
    hits += [
        f"README.md:{n}" for n, line in enumerate((REPO / "README.md").read_text(encoding="utf-8").splitlines(), 1) if "§" in line
    ]
    assert not hits


def test_cp_to_a_place_that_cannot_be_written_is_one_line():
    # /proc refuses new files even to root; this was a FileNotFoundError traceback.
    result = runner.invoke(app, ["recipes", "cp", "luna_tuab", "/proc/biofound-test.toml"])
    assert result.exit_code == 2 and "cannot be written" in result.output and "Traceback" not in result.output


def test_cp_to_a_new_name_without_a_suffix_makes_a_folder(tmp_path, monkeypatch):
    # `cp luna_tuab my_runs` (the docs' `my_runs/` without its slash) wrote a file named my_runs,
    # and the docs' next step, `biofound validate my_runs/luna_tuab.toml`, found no recipe.
    monkeypatch.chdir(tmp_path)
    result = invoke("recipes", "cp", "luna_tuab", "my_runs")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "my_runs" / "luna_tuab.toml").read_bytes() == (PACKAGE_FOLDER / "luna_tuab.toml").read_bytes()
    assert invoke("validate", "my_runs/luna_tuab.toml").exit_code == 0
    # An existing file without a suffix is still a file: refused without --overwrite, not made a folder.
    (tmp_path / "notes").write_text("mine\n")
    assert_one_error_line(invoke("recipes", "cp", "luna_tuab", "notes"))
    assert (tmp_path / "notes").read_text() == "mine\n"


@pytest.mark.parametrize("dest", ["x.yaml", "x.json", "sub/x.txt"])
def test_cp_refuses_a_file_that_is_not_toml(tmp_path, monkeypatch, dest):
    # `cp luna_scp1 /tmp/x.yaml` wrote TOML into a .yaml file.
    monkeypatch.chdir(tmp_path)
    line = assert_one_error_line(invoke("recipes", "cp", "luna_scp1", dest))
    assert line == f"error: {dest}: a recipe is TOML; name the copy x.toml or pass a folder"
    assert not (tmp_path / dest).exists()
    assert invoke("recipes", "cp", "luna_scp1", Path(dest).with_suffix(".toml")).exit_code == 0


def test_cp_and_show_take_the_toml_suffix_in_capitals(tmp_path, monkeypatch):
    """`validate`, `info` and every stage read My_Study.TOML as a recipe; `cp` refused it as "not TOML", `show` as unknown."""
    monkeypatch.chdir(tmp_path)
    result = invoke("recipes", "cp", "luna_tuab.TOML", "My_Study.TOML")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "My_Study.TOML").read_bytes() == (PACKAGE_FOLDER / "luna_tuab.toml").read_bytes()
    assert invoke("validate", "My_Study.TOML").exit_code == 0
    assert invoke("recipes", "show", "luna_tuab.TOML").stdout == (PACKAGE_FOLDER / "luna_tuab.toml").read_text()


@pytest.mark.parametrize("name", ["tinymyo_myo", "preprocess_scp1"])
def test_a_copied_sample_recipe_runs_from_any_folder(name, tmp_path, monkeypatch):
    # The sample recipes read recordings shipped in the package, written as in a checkout
    # (biofound_cli/data/samples/...); copied elsewhere, they still find them.
    monkeypatch.chdir(tmp_path)
    assert invoke("recipes", "cp", name, "my.toml").exit_code == 0
    assert invoke("validate", "my.toml").exit_code == 0
    result = invoke("preprocess", "--recipe", "my.toml", "--workers", 2, "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    samples = Path(str(resources.files("biofound_cli").joinpath("data", "samples")))
    report = json.loads(Path(summary["report"]).read_text())
    assert Path(report["root"]).is_relative_to(samples)
    assert summary["written"] == summary["found"] > 0 and not summary.get("warnings")


def test_a_sample_path_that_exists_here_is_read_here(tmp_path, monkeypatch):
    from biofound_cli.recipes.preprocess import PreprocessSection

    monkeypatch.chdir(tmp_path)
    here = Path("biofound_cli/data/samples/emg/myo")
    assert PreprocessSection(root=here).root != here  # not here: the package's samples
    here.mkdir(parents=True)
    assert PreprocessSection(root=here).root == here
