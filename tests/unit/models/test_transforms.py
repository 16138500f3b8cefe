from __future__ import annotations

import pytest
import torch

from biofound_cli.errors import UsageError
from biofound_cli.models.transforms import TRANSFORMS, get_transform


def test_femba_affine_is_fixed_constants():
    x = torch.tensor([[[-20.0, 0.0, 20.0]]])
    out = get_transform("femba-affine")(x)
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.5, 1.0]]]), atol=1e-6, rtol=0)


def test_zscore_per_sample_per_channel():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 100) * torch.arange(1, 5).view(1, 4, 1) + 7
    out = get_transform("zscore")(x)
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(-1), torch.ones(3, 4), atol=1e-5, rtol=0)


def test_minmax_upstream_formula():
    x = torch.tensor([[[2.0, 4.0, 6.0], [0.0, -1.0, 1.0]]])
    out = get_transform("minmax")(x)
    expected = ((x - x.amin(-1, True)) / (x.amax(-1, True) - x.amin(-1, True) + 1e-8) - 0.5) * 2
    torch.testing.assert_close(out, expected)
    assert out.min() >= -1 and out.max() <= 1


def test_single_window_and_none():
    x = torch.randn(4, 50)
    assert get_transform("minmax")(x).shape == (4, 50)
    assert torch.equal(get_transform("none")(x), x)
    assert set(TRANSFORMS) == {"femba-affine", "zscore", "minmax", "none"}


def test_unknown_transform_lists_names():
    with pytest.raises(UsageError, match="choose one of: femba-affine, zscore, minmax, none"):
        get_transform("robust")
