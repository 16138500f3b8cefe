"""Masks (shape, ratio, granularity, determinism) and losses of each model family."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from biofound_cli.models.registry import FAMILIES
from biofound_cli.tasks import score_rule
from biofound_cli.training.objectives import (
    Objective,
    default_loss,
    masked_smooth_l1,
    patch_mask,
    query_specialisation_loss,
    supervised_loss,
    unfitting_loss,
)


def test_femba_mask_masks_528_of_880_rectangles_of_2x16():
    scheme = FAMILIES["femba"].masking
    mask = patch_mask(22, 1280, scheme.patch, scheme.ratio, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (22, 1280)
    assert int(mask.sum()) == 528 * 2 * 16
    blocks = mask.view(11, 2, 80, 16)
    # Each 2x16 rectangle is either fully masked or fully visible.
    assert torch.all(blocks.all(dim=(1, 3)) == blocks.any(dim=(1, 3)))


def test_tinymyo_mask_is_drawn_per_sample():
    scheme = FAMILIES["tinymyo"].masking
    mask = patch_mask(16, 1000, scheme.patch, scheme.ratio, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 16, 1000)
    assert mask.view(3, -1).sum(dim=1).tolist() == [400 * 20] * 3
    assert not torch.equal(mask[0], mask[1])


def test_masks_are_reproducible_with_a_seed_and_leftover_samples_stay_visible():
    first = patch_mask(5, 100, (1, 40), 0.5, generator=torch.Generator().manual_seed(3))
    second = patch_mask(5, 100, (1, 40), 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    assert int(first.sum()) == int(10 * 0.5) * 40
    assert not first[:, 80:].any()


def test_masked_smooth_l1_splits_masked_and_visible_means():
    target = torch.zeros(1, 2, 4)
    prediction = torch.tensor([[[3.0, 3.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]])
    mask = torch.tensor([[[True, True, False, False], [False, False, False, False]]])
    masked, visible = masked_smooth_l1(prediction, target, mask)
    assert masked.item() == pytest.approx(2.5)
    assert visible.item() == pytest.approx(2 * 0.125 / 6)


def test_query_specialisation_is_zero_for_disjoint_queries_and_positive_for_shared_ones():
    disjoint = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    shared = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]])
    assert query_specialisation_loss(disjoint).item() == 0.0
    # A A^T = 0.5 everywhere; two off-diagonal entries of 0.25 over four entries.
    assert query_specialisation_loss(shared).item() == pytest.approx(2 * 0.25 / 4)


def test_supervised_losses_by_task():
    logits = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    # A 2-logit bc head is read by a softmax (evaluate, predict, export): auto trains it with cross-entropy.
    assert supervised_loss(logits, labels, "bc").item() == pytest.approx(nn.functional.cross_entropy(logits, labels).item())
    one_hot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    bce = supervised_loss(logits, labels, "bc", loss="bce")
    assert bce.item() == pytest.approx(nn.functional.binary_cross_entropy_with_logits(logits, one_hot).item())
    single = logits[:, 1:]  # a single-logit bc head is read by a sigmoid: auto trains it with BCE
    assert supervised_loss(single, labels, "bc").item() == pytest.approx(
        nn.functional.binary_cross_entropy_with_logits(single, labels[:, None].float()).item()
    )
    smoothed = supervised_loss(logits, labels, "bc", label_smoothing=0.2)
    assert smoothed.item() == pytest.approx(nn.functional.cross_entropy(logits, labels, label_smoothing=0.2).item())
    per_channel = torch.randn(2, 3, 4)
    channel_labels = torch.randint(0, 4, (2, 3))
    assert supervised_loss(per_channel, channel_labels, "mmc").item() == pytest.approx(
        nn.functional.cross_entropy(per_channel.reshape(6, 4), channel_labels.reshape(6)).item()
    )
    multi = torch.randn(2, 3)
    targets = torch.tensor([[0, 1, 1], [1, 0, 0]])
    assert supervised_loss(multi, targets, "mc").item() == pytest.approx(
        nn.functional.binary_cross_entropy_with_logits(multi, targets.float()).item()
    )
    weights = torch.tensor([1.0, 3.0])
    weighted = supervised_loss(logits, labels, "mcc", class_weights=weights)
    assert weighted.item() == pytest.approx(nn.functional.cross_entropy(logits, labels, weight=weights).item())
    assert supervised_loss(torch.ones(2, 5, 3), torch.zeros(2, 5, 3), "regression").item() == pytest.approx(1.0)


class RecordingLuna(nn.Module):
    """Records how LUNA is called."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = []
        self.head = nn.Linear(1, 2)

    def forward(self, x, mask, channel_locations, channel_names=None, channel_location_noise=None):
        self.calls.append((mask, channel_locations, channel_names, channel_location_noise))
        if channel_names is not None:
            attention = torch.full((x.shape[0] * 2, 2, x.shape[1]), 1.0 / x.shape[1])
            return x * 0.5, x, attention
        return self.head(x.mean(dim=(1, 2))[:, None]), x


def test_luna_feeding_masks_only_in_training_and_no_jitter_in_evaluation():
    locations = torch.rand(3, 3)
    objective = Objective("luna", "mcc", channel_locations=locations)
    model = RecordingLuna()
    batch = {"x": torch.randn(2, 3, 80), "y": torch.tensor([0, 1])}
    objective(model, batch, training=True)
    objective(model, batch, training=False)
    (train_mask, train_locations, _, _), (eval_mask, _, _, _) = model.calls
    assert train_mask is not None and not train_mask.any()
    assert eval_mask is None
    assert train_locations.shape == (2, 3, 3)

    pretrain = Objective("luna", "reconstruction", channel_locations=locations, channel_indices=torch.tensor([4, 5, 6]))
    result = pretrain(model, batch, training=False, mask_seeds=[0, 1])
    mask, _, names, noise = model.calls[-1]
    assert names.tolist() == [[4, 5, 6]] * 2
    assert torch.equal(noise, torch.zeros(2, 3, 3))
    assert mask.view(2, -1).sum(dim=1).tolist() == [120, 120]  # 6 patches of 40, ratio 0.5
    assert result.loss.item() > 0


def test_evaluation_masks_do_not_touch_the_global_rng():
    objective = Objective("femba", "reconstruction")
    model = lambda x, mask: (x * 0, x)  # noqa: E731
    x = torch.randn(1, 4, 32)
    before = torch.get_rng_state()
    objective(model, {"x": x}, training=False, mask_seeds=[1])
    assert torch.equal(before, torch.get_rng_state())
    objective(model, {"x": x}, training=True)
    assert not torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize(
    ("task", "outputs"), [("bc", 1), ("bc", 2), ("mc", 22), ("mcc", 4), ("ml", 3), ("mmc", 5), ("regression", 6)]
)
def test_auto_trains_each_head_for_the_way_its_scores_are_read(task, outputs):
    """One rule: a sigmoid is trained with bce, a softmax with ce, values with mse."""
    expected = {"sigmoid": "bce", "softmax": "ce", "values": "mse"}[score_rule(task, outputs)]
    assert default_loss(task, outputs) == expected
    assert unfitting_loss("auto", task, outputs) is None and unfitting_loss(expected, task, outputs) is None


def test_ce_on_a_single_logit_is_refused_before_it_fails_at_the_first_window_of_class_1():
    with pytest.raises(IndexError):  # the traceback finetune printed at its first batch
        supervised_loss(torch.randn(4, 1), torch.tensor([0, 1, 1, 0]), "bc", loss="ce")
    assert unfitting_loss("ce", "bc", 1) == (
        "train.loss = 'ce' does not fit task 'bc' with a single logit (model.num_classes = 1); use one of auto, bce"
    )
    assert unfitting_loss("ce", "bc", 2) is None and unfitting_loss("ce", "bc") is None
