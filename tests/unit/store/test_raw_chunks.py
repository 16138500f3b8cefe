"""read_shard_windows gives exactly x[block], by raw chunks where it can and by indexing elsewhere."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from biofound_cli.store.raw_chunks import read_shard_windows


def _shard_x(path, n_windows=30, n_channels=3, n_times=16, rows=7, dtype=np.float32, **options):
    values = np.random.default_rng(0).normal(size=(n_windows, n_channels, n_times)).astype(dtype)
    handle = h5py.File(path, "w")
    x = handle.create_dataset("x", data=values, chunks=(rows, 1, n_times) if rows else None, **options)
    return handle, x, values


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_blocks_across_chunk_boundaries_equal_plain_indexing(tmp_path, dtype):
    handle, x, values = _shard_x(tmp_path / "s.h5", dtype=dtype)
    with handle:
        for block in (slice(0, 30), slice(0, 10), slice(10, 20), slice(20, 30), slice(6, 8), slice(29, 30)):
            got = read_shard_windows(x, block)
            assert got.dtype == values.dtype
            np.testing.assert_array_equal(got, values[block])


@pytest.mark.parametrize(
    "options",
    [{"rows": None}, {"compression": "gzip"}, {"shuffle": True}, {"rows": 5, "n_times": 16, "chunk_channels": 3}],
    ids=["contiguous", "compressed", "shuffled", "window-major chunks"],
)
def test_other_layouts_are_read_by_indexing(tmp_path, options):
    options = dict(options)
    if options.pop("chunk_channels", None):
        values = np.arange(30 * 3 * 16, dtype=np.float32).reshape(30, 3, 16)
        with h5py.File(tmp_path / "s.h5", "w") as handle:
            x = handle.create_dataset("x", data=values, chunks=(5, 3, 16))
            np.testing.assert_array_equal(read_shard_windows(x, slice(3, 17)), values[3:17])
        return
    rows = options.pop("rows", 7)
    handle, x, values = _shard_x(tmp_path / "s.h5", rows=rows, **options)
    with handle:
        np.testing.assert_array_equal(read_shard_windows(x, slice(3, 17)), values[3:17])


def test_a_chunk_never_written_reads_as_its_fill_value(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as handle:
        x = handle.create_dataset("x", (14, 2, 4), dtype=np.float32, chunks=(7, 1, 4), fillvalue=np.nan)
        x[0:7, 0] = 1.0  # one of the four chunks
        got = read_shard_windows(x, slice(0, 14))
        np.testing.assert_array_equal(got, x[0:14])
        assert np.isnan(got[:, 1]).all() and (got[:7, 0] == 1).all()
