"""models/attention.py's layers against torch.nn's: the same state-dict keys, the same outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from biofound_cli.models.attention import TransformerDecoderLayer, TransformerEncoderLayer


@pytest.mark.parametrize("ours_class", [TransformerEncoderLayer, TransformerDecoderLayer])
def test_a_layer_loads_torch_nn_weights_strictly_and_computes_what_torch_nn_computes(ours_class):
    decoder = ours_class is TransformerDecoderLayer
    torch_class = nn.TransformerDecoderLayer if decoder else nn.TransformerEncoderLayer
    torch.manual_seed(0)
    reference = torch_class(16, 4, 32, dropout=0.1, activation="gelu", batch_first=True, norm_first=True).eval()
    with torch.no_grad():  # every norm its own weights, so one used in another's place shows
        for parameter in reference.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    ours = ours_class(16, 4, 32, dropout=0.1).eval()
    assert list(ours.state_dict()) == list(reference.state_dict())  # keys in torch.nn's order too
    ours.load_state_dict(reference.state_dict(), strict=True)
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
    with torch.no_grad():
        expected = reference(x, memory) if decoder else reference(x)
        got = ours(x, memory) if decoder else ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
