"""The ``table`` corpus on small CSV, MATLAB (v5 and v7.3) and NumPy files written here."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from fixtures.matlab import Char, otb_export, write_mat_v5, write_mat_v73
from fixtures.shards import read_shard
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora import get_corpus
from biofound_cli.corpora.base import undecodable_line
from biofound_cli.corpora.table import TableCorpus, TableOptions
from biofound_cli.corpora.table_files import read_text_table
from biofound_cli.errors import DataError, UsageError
from biofound_cli.recipes import load_recipe
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.signals.chain import run_chain
from biofound_cli.store.preprocess_config import resolve_chain_config, resolve_options

REPO = Path(__file__).resolve().parents[3]

GRID = [f"EMG {index}" for index in range(1, 9)]
AUX = ["Force", "Trigger"]
OTB = {"variable": "Data", "sfreq_variable": "SamplingFrequency", "names_variable": "Description"}


def _grid_data(n_samples: int = 300, n_columns: int = 10) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n_samples, n_columns))


def _read_only(root: Path, **options) -> object:
    corpus = TableCorpus(TableOptions(**options))
    (ref,) = corpus.discover(root)
    return corpus.read(ref)


def test_registered_with_valid_defaults() -> None:
    corpus_cls = get_corpus("table")
    assert corpus_cls is TableCorpus and corpus_cls.name == "table"
    PreprocessSection(corpus="table", **corpus_cls.defaults)
    assert TableOptions.model_validate({}).orientation == "auto"
    assert corpus_cls().modality == "emg"


@pytest.mark.parametrize("writer", [write_mat_v5, write_mat_v73], ids=["v5", "v7.3"])
def test_otb_export_keeps_the_grid_named_by_description(tmp_path: Path, writer) -> None:
    data = _grid_data()
    (tmp_path / "s1").mkdir()
    writer(tmp_path / "s1" / "contraction.mat", otb_export(data, GRID + AUX, 2048))
    recording = _read_only(tmp_path, **OTB, columns=["0:8"], pattern=r"(?P<subject>s\d)/.+\.mat")
    assert recording.ch_names == GRID
    assert recording.sfreq == 2048.0
    assert recording.data.shape == (8, 300) and recording.data.flags.c_contiguous
    np.testing.assert_array_equal(recording.data, data[:, :8].T)


def test_v73_and_v5_files_read_the_same(tmp_path: Path) -> None:
    variables = otb_export(_grid_data(), GRID + AUX, 1000)
    variables["Description"] = Char(GRID + AUX)  # a char matrix this time, one name per row
    write_mat_v5(tmp_path / "a.mat", variables)
    write_mat_v73(tmp_path / "b.mat", variables)
    corpus = TableCorpus(TableOptions(**OTB, drop_columns=AUX))
    first, second = (corpus.read(ref) for ref in corpus.discover(tmp_path))
    assert first.ch_names == second.ch_names == GRID
    np.testing.assert_array_equal(first.data, second.data)


def test_missing_variable_lists_the_variables_present(tmp_path: Path) -> None:
    write_mat_v73(tmp_path / "rec.mat", {"EMG": _grid_data(), "fs": 2048.0})
    corpus = TableCorpus(TableOptions(**OTB))
    (ref,) = corpus.discover(tmp_path)
    with pytest.raises(
        DataError,
        match=r"rec\.mat: no variable 'Data' \(preprocess\.options\.variable\); "
        r"the file holds EMG \(300×10 double\), fs \(1×1 double\)",
    ):
        corpus.read(ref)


def test_only_numeric_matrix_is_the_default_variable(tmp_path: Path) -> None:
    data = _grid_data()
    write_mat_v5(tmp_path / "one.mat", {"EMG": data, "fs": 500.0, "t": np.arange(300.0)[:, None]})
    recording = _read_only(tmp_path, sfreq_variable="fs")
    assert recording.sfreq == 500.0 and recording.ch_names == [f"CH{index}" for index in range(1, 11)]
    write_mat_v5(tmp_path / "one.mat", {"EMG": data, "Other": data})
    with pytest.raises(DataError, match=r"several numeric matrices among EMG .*; set preprocess\.options\.variable"):
        _read_only(tmp_path, sfreq=500)
    # Cut after its 128-byte header (an interrupted copy): "no numeric matrices among no variables".
    (tmp_path / "one.mat").write_bytes((tmp_path / "one.mat").read_bytes()[:128])
    for options in ({}, {"variable": "EMG"}):
        with pytest.raises(
            DataError, match=r"one\.mat: the file holds no variable, only its header, as after an interrupted copy"
        ):
            _read_only(tmp_path, sfreq=500, **options)


def test_sampling_rate_variable_falls_back_to_the_option(tmp_path: Path) -> None:
    write_mat_v5(tmp_path / "rec.mat", {"Data": _grid_data()})
    assert _read_only(tmp_path, variable="Data", sfreq_variable="SamplingFrequency", sfreq=250).sfreq == 250.0
    with pytest.raises(DataError, match=r"no variable 'SamplingFrequency' .* the file holds Data \(300×10 double\)"):
        _read_only(tmp_path, variable="Data", sfreq_variable="SamplingFrequency")


def test_csv_header_names_drop_time_and_missing_cells_are_nan(tmp_path: Path) -> None:
    (tmp_path / "rec.csv").write_text("Time,EMG1,EMG2\n0.000,1,2\n0.001,,4\n0.002,NULL,6\n0.003,7,NaN\n0.004,9,null\n")
    recording = _read_only(tmp_path, sfreq=1000, drop_columns=["time"])
    assert recording.ch_names == ["EMG1", "EMG2"]
    expected = [[1, np.nan, np.nan, 7, 9], [2, 4, 6, np.nan, np.nan]]
    np.testing.assert_array_equal(recording.data, expected)


def test_unknown_column_lists_the_channels(tmp_path: Path) -> None:
    (tmp_path / "rec.csv").write_text("Time,EMG1,EMG2\n0,1,2\n1,3,4\n2,5,6\n")
    with pytest.raises(
        DataError,
        match=r"rec\.csv: no channel named 'EMG3' \(preprocess\.options\.columns\); "
        r"the file's channels are Time, EMG1, EMG2",
    ):
        _read_only(tmp_path, sfreq=100, columns=["EMG1", "EMG3"])
    with pytest.raises(DataError, match=r"channel index 3 \(preprocess\.options\.columns\) is out of range; the file has 3"):
        _read_only(tmp_path, sfreq=100, columns=[3])
    with pytest.raises(DataError, match="leave none of its 3 channels"):
        _read_only(tmp_path, sfreq=100, columns=[0], drop_columns=["Time"])


def test_bad_cells_and_ragged_rows_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "rec.csv").write_text("1,2\n3,oops\n")
    with pytest.raises(DataError, match=r"rec\.csv: not a numeric ','-separated table \(line 2, column 2 holds 'oops'"):
        _read_only(tmp_path, sfreq=100)
    (tmp_path / "rec.csv").write_text("1,2\n3,,4\n")
    with pytest.raises(DataError, match=r"rec\.csv: line 2 has 3 cells where the table has 2"):
        _read_only(tmp_path, sfreq=100)


def test_npy_orientation_by_the_longer_axis_or_the_option(tmp_path: Path) -> None:
    data = _grid_data(n_samples=50, n_columns=4)
    np.save(tmp_path / "rec.npy", data.T.astype(np.float32))  # channels × samples
    recording = _read_only(tmp_path, sfreq=100, channel_names=["A", "B", "C", "D"], columns=["D", 0])
    assert recording.ch_names == ["D", "A"] and recording.data.dtype == np.float32
    np.testing.assert_allclose(recording.data, data[:, [3, 0]].T.astype(np.float32))
    # Told that rows are samples, the same file is 50 channels of 4 samples.
    assert _read_only(tmp_path, sfreq=100, orientation="samples_by_channels").data.shape == (50, 4)


def test_channel_names_must_name_every_channel(tmp_path: Path) -> None:
    np.save(tmp_path / "rec.npy", _grid_data(n_samples=20, n_columns=3))
    with pytest.raises(DataError, match=r"has 3 columns but preprocess\.options\.channel_names names 2"):
        _read_only(tmp_path, sfreq=100, channel_names=["A", "B"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rec.mat", b"not a MATLAB file at all", r"rec\.mat: not a readable MATLAB file"),
        ("rec.npy", b"\x93NUMPY garbage", r"rec\.npy: not a readable \.npy array"),
    ],
)
def test_unreadable_files_are_data_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        _read_only(tmp_path, sfreq=100)


@pytest.mark.parametrize("content", ["Time,EMG1,EMG2\n", "Time,EMG1,EMG2\r\n\r\n", "# exported\nTime,EMG1\n"])
def test_a_header_without_rows_is_one_line_not_a_numpy_warning(tmp_path: Path, content: str) -> None:
    (tmp_path / "rec.csv").write_text(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's UserWarning, with its source line, reached the terminal
        with pytest.raises(DataError, match=r"rec\.csv: the file holds no samples"):
            _read_only(tmp_path, sfreq=100)


def test_a_latin1_header_is_read_and_its_names_match(tmp_path: Path) -> None:
    # Acquisition software on Windows writes its header in the local code page; every such file
    # was skipped with Python's "'utf-8' codec can't decode byte 0xb5 in position 7".
    root, out = tmp_path / "raw", tmp_path / "shards"
    (root / "s1").mkdir(parents=True)
    rows = np.random.default_rng(0).normal(0, 1e-4, (1024, 3))
    text = "Temps (µs);EMG1;EMG2\r\n" + "".join(";".join(f"{value:.6f}" for value in row) + "\r\n" for row in rows)
    (root / "s1" / "latin.csv").write_bytes(text.encode("latin-1"))
    (root / "s1" / "utf8.csv").write_bytes(text.encode("utf-8"))
    recipe = tmp_path / "table.toml"
    recipe.write_text(
        '[preprocess]\ncorpus = "table"\nwindow_seconds = 1.0\n\n[preprocess.options]\nsfreq = 512.0\n'
        'delimiter = ";"\ndrop_columns = ["Temps (µs)"]\npattern = \'(?P<subject>s\\d)/.+\\.csv\'\n',
        encoding="utf-8",
    )
    args = ["preprocess", "table", "--recipe", str(recipe), "--root", str(root), "--out", str(out), "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["found"], summary["written"], summary["skipped"]) == (2, 2, 0)
    latin, utf8 = (read_shard(out / "table" / f"s1-{name}.h5") for name in ("latin", "utf8"))
    assert latin["attrs"]["channel_names"] == utf8["attrs"]["channel_names"] == ["EMG1", "EMG2"]
    np.testing.assert_array_equal(latin["x"], utf8["x"])


def test_a_fallback_rate_below_the_band_is_not_the_rate_of_files_that_hold_their_own(tmp_path: Path) -> None:
    # sfreq is the rate of a file without sfreq_variable: preprocess (and validate) took it for every file's rate and
    # refused a 150 Hz band edge "every file would be skipped", though the files at 2048 Hz carry it.
    root, out = tmp_path / "raw", tmp_path / "shards"
    (root / "s1").mkdir(parents=True)
    write_mat_v5(root / "s1" / "rec.mat", otb_export(_grid_data(4096), GRID + AUX, 2048))
    recipe = tmp_path / "table.toml"
    recipe.write_text(
        '[preprocess]\ncorpus = "table"\nh_freq = 150.0\nwindow_seconds = 1.0\n\n[preprocess.options]\nsfreq = 200.0\n'
        'variable = "Data"\nsfreq_variable = "SamplingFrequency"\npattern = \'(?P<subject>s\\d)/.+\\.mat\'\n'
    )
    args = ["preprocess", "table", "--recipe", str(recipe), "--root", str(root), "--out", str(out), "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 1
    assert CliRunner().invoke(app, ["validate", str(recipe)]).exit_code == 0
    # Without sfreq_variable the option is every file's rate, and the band is refused before any file is read.
    result = CliRunner().invoke(app, [*args, "--force", "--unset", "preprocess.options.sfreq_variable"])
    assert result.exit_code == 2 and "preprocess.options.sfreq" in result.stderr, result.output


def test_text_names_must_be_text(tmp_path: Path) -> None:
    write_mat_v73(tmp_path / "rec.mat", {"Data": _grid_data(), "Description": np.arange(10.0)})
    with pytest.raises(DataError, match=r"variable 'Description' is a double, not channel names"):
        _read_only(tmp_path, **OTB, sfreq=100)


def test_discover_needs_a_sampling_rate_and_distinct_ids(tmp_path: Path) -> None:
    (tmp_path / "rec.csv").write_text("1,2\n")
    with pytest.raises(UsageError, match="needs the files' sampling rate"):
        TableCorpus().discover(tmp_path)
    np.save(tmp_path / "rec.npy", np.zeros((2, 2)))
    with pytest.raises(UsageError, match=r"rec\.csv and .*rec\.npy would both be recording rec"):
        TableCorpus(TableOptions(sfreq=100)).discover(tmp_path)


def test_file_names_give_subjects_labels_and_splits(tmp_path: Path) -> None:
    for subject in ("s1", "s2"):
        for repetition in (0, 1):
            (tmp_path / subject).mkdir(exist_ok=True)
            np.save(tmp_path / subject / f"fist_{repetition}.npy", np.zeros((10, 2)))
    options = TableOptions(
        sfreq=100,
        pattern=r"(?P<subject>s\d)/(?P<class>[a-z]+)_(?P<repetition>\d)\.npy",
        split_by_repetition={"train": [0], "test": [1]},
        label_names=["rest", "fist"],
    )
    refs = TableCorpus(options).discover(tmp_path)
    assert [(ref.recording_id, ref.subject, ref.split, ref.extra["label"]) for ref in refs] == [
        ("s1-fist_0", "s1", "train", 1),
        ("s1-fist_1", "s1", "test", 1),
        ("s2-fist_0", "s2", "train", 1),
        ("s2-fist_1", "s2", "test", 1),
    ]


def test_shipped_hdsemg_recipe_reads_an_otb_export(tmp_path: Path) -> None:
    recipe = load_recipe(REPO / "recipes" / "preprocess_hdsemg.toml")
    corpus_cls = get_corpus(recipe.preprocess.corpus)
    corpus = corpus_cls(resolve_options(recipe.preprocess, corpus_cls))
    names = [f"EMG {index}" for index in range(1, 65)] + ["AUX 1", "AUX 2", "Force"]
    (tmp_path / "p01").mkdir()
    write_mat_v73(tmp_path / "p01" / "mvc.mat", otb_export(_grid_data(2048, 67), names, 2048))
    (ref,) = corpus.discover(tmp_path)
    recording = corpus.read(ref)
    assert ref.subject == "p01" and recording.sfreq == 2048.0 and recording.ch_names == names[:64]
    windowed = run_chain(recording, resolve_chain_config(recipe.preprocess, corpus_cls))
    # 1 s resampled to 2 kHz, 0.5 s windows every 0.25 s.
    assert windowed.x.shape == (3, 64, 1000)


def test_docs_examples_are_valid_recipes(tmp_path: Path) -> None:
    text = (REPO / "docs" / "corpora" / "table.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2
    for index, block in enumerate(blocks):
        path = tmp_path / f"example{index}.toml"
        path.write_text(block)
        section = load_recipe(path).preprocess
        corpus_cls = get_corpus(section.corpus)
        resolve_options(section, corpus_cls, str(path))
        assert resolve_chain_config(section, corpus_cls, str(path)).window_seconds > 0


def test_a_text_table_latin1_past_its_start_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    rows = [f"{index}.5,{index}.25" for index in range(9000)]  # about 100 KiB of ASCII
    rows[8000] = "1.5,2.5 # \xe9lectrode"
    path.write_bytes(("EMG1,EMG2\n" + "\n".join(rows) + "\n").encode("latin-1"))
    with pytest.raises(DataError) as caught:
        read_text_table(path, ",", None)
    assert caught.value.message == (
        f"{path}: line 8002 is not UTF-8 text (invalid continuation byte), though the file starts as UTF-8; save it as UTF-8"
    )


def test_the_first_byte_not_utf8_is_found_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "blocks.txt"
    # "é" in UTF-8 split by the 1 MiB block boundary is no error; the lone Latin-1 byte after it is.
    head = b"a\n" * ((1 << 19) - 1) + b"x" + "é".encode()
    assert len(head) == (1 << 20) + 1
    path.write_bytes(head + b"\nok\nbad \xe9\n")
    assert undecodable_line(path) == (1 << 19) + 2
    path.write_bytes(head + b"\n")
    assert undecodable_line(path) == 0
    path.write_bytes(b"a\nb\n\xc3")  # cut inside a character at the very end
    assert undecodable_line(path) == 3


@pytest.mark.parametrize(
    ("corpus", "picked", "where"),
    [
        ("emg-csv", ["--set", 'preprocess.channels=["FDS", "ECU"]'], "missing required channels FDS, ECU"),
        ("table", ["--set", 'preprocess.options.drop_columns=["Time"]'], "no channel named 'Time'"),
    ],
)
def test_a_csv_without_a_header_row_is_told_to_name_its_channels_with_channel_names(
    tmp_path: Path, corpus: str, picked: list[str], where: str
) -> None:
    # Channels picked by name in a header-less CSV (numbered EMG1.. / CH1..) were refused with "set
    # preprocess.channels to channels it has", never naming the option that names the file's columns.
    (tmp_path / "raw").mkdir()
    rows = np.random.default_rng(0).normal(size=(600, 3))
    (tmp_path / "raw" / "R_0_C_0_EMG.csv").write_text("".join(",".join(f"{v:.5f}" for v in row) + "\n" for row in rows))
    args = ["preprocess", corpus, "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "shards"), "--no-progress"]
    args += ["--set", "preprocess.options.sfreq=200", "--set", "preprocess.window_seconds=1", *picked]
    args += ["--set", "preprocess.stride_seconds=0.5"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    (line,) = [line for line in refused.stderr.splitlines() if line.startswith("warning: skipped")]
    assert where in line
    assert "no channel name was read from the file, so they are numbered: name them in file order with " in line
    assert "preprocess.options.channel_names" in line
    named = CliRunner().invoke(app, [*args, "--set", 'preprocess.options.channel_names=["Time", "FDS", "ECU"]'])
    assert named.exit_code == 0, named.output


def test_a_mat_file_scipy_meets_with_a_type_error_is_unreadable_and_a_bug_of_ours_is_not(tmp_path: Path, monkeypatch) -> None:
    """Every exception of scipy's call was called an unreadable file, so a bug of ours was skipped as one."""
    import scipy.io

    from biofound_cli.errors import UnusableRecording

    path = write_mat_v5(tmp_path / "rec.mat", {"emg": _grid_data(n_samples=20, n_columns=3)})
    contents = bytearray(path.read_bytes())
    contents[128] = 9  # the first variable's tag (after the 128-byte header) is no longer miMATRIX: scipy's TypeError
    path.write_bytes(bytes(contents))
    with pytest.raises(
        UnusableRecording, match=r"rec\.mat: not a readable MATLAB file \(TypeError: Expecting miMATRIX"
    ) as caught:
        _read_only(tmp_path, sfreq=100)
    assert caught.value.reason == "unreadable"

    def bug(*args: object, **kwargs: object) -> None:
        raise TypeError("an argument of ours is wrong")

    write_mat_v5(path, {"emg": _grid_data(n_samples=20, n_columns=3)})
    monkeypatch.setattr(scipy.io, "whosmat", bug)
    with pytest.raises(TypeError, match="an argument of ours is wrong"):
        _read_only(tmp_path, sfreq=100)
