"""Reading a shard's windows as raw HDF5 chunks, past h5py's selection machinery.

Shards store ``x`` channel-major (a chunk is one channel of a run of windows, as the preprocess
workers write it); a copied packed split stores whole windows one after another, so packing
transposes every byte. Through ``x[block]`` HDF5 gathers the windows chunk by chunk through its
chunk cache and conversion buffers; reading each chunk as bytes (``read_direct_chunk``) and
placing it with one numpy copy reads the same values with less CPU (measured with
``benchmarks/pack_layout.py``: see ``docs/performance.md``). Anything else (compressed or
differently chunked datasets, a chunk never written) is read by plain indexing, with the same
result (``tests/unit/store/test_raw_chunks.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _channel_chunks(x: Any) -> int | None:
    """Windows per chunk when ``x`` is stored as raw channel-major chunks ``(rows, 1, n_times)``; else ``None``."""
    chunks = x.chunks
    filtered = x.compression is not None or x.shuffle or x.fletcher32 or x.scaleoffset is not None
    if chunks is None or filtered or chunks[1:] != (1, x.shape[2]) or not x.dtype.isnative:
        return None
    return int(chunks[0])


def read_shard_windows(x: Any, block: slice) -> np.ndarray:
    """``x[block]`` (windows ``block.start`` to ``block.stop`` of a shard's ``x``), read chunk by chunk as bytes.

    Parameters
    ----------
    x : h5py.Dataset
        A shard's ``x``, (n_windows, n_channels, n_times).
    block : slice
        The windows to read, with explicit ``start`` and ``stop`` (step 1).

    Returns
    -------
    np.ndarray
        (block.stop - block.start, n_channels, n_times) in ``x``'s dtype.
    """
    rows = _channel_chunks(x)
    if rows is None:
        return x[block]
    n_channels, n_times = x.shape[1:]
    out = np.empty((block.stop - block.start, n_channels, n_times), dtype=x.dtype)
    try:
        for first in range(block.start - block.start % rows, block.stop, rows):
            lo, hi = max(first, block.start), min(first + rows, block.stop)
            for channel in range(n_channels):
                mask, raw = x.id.read_direct_chunk((first, channel, 0))
                if mask:  # a filter was applied to this chunk after all
                    return x[block]
                data = np.frombuffer(raw, dtype=x.dtype).reshape(rows, n_times)
                out[lo - block.start : hi - block.start, channel] = data[lo - first : hi - first]
    except (KeyError, ValueError, OSError, RuntimeError):  # e.g. a chunk never written: HDF5 reads its fill value
        return x[block]
    return out
