"""Per-window reconstruction error of a pre-training model (no classifier head).

A pre-trained model predicts the masked patches of a window from the visible ones. Its error on
new windows says how far they are from what it was trained on (a recording unlike the
pre-training data, a broken electrode). Every window gets the **same mask**: the family's
published masking scheme (rectangles of the model's own patch) drawn once from a fixed seed, so a
window's error does not depend on the windows batched with it or on the run. The error is the mean
Smooth-L1 (β = 1, the pre-training loss) over the masked elements of the normalised window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import torch

MASK_SEED = 0


def reconstruction_scorer(
    model: torch.nn.Module,
    family: str,
    transform: Callable[[torch.Tensor], torch.Tensor],
    *,
    locations: torch.Tensor | None,
    channel_indices: torch.Tensor | None,
    device: str,
) -> Callable[[np.ndarray], np.ndarray]:
    """``(n, C, T)`` windows → ``(n, 1)`` reconstruction errors.

    Parameters
    ----------
    model : torch.nn.Module
        The pre-training model, in eval mode on ``device``.
    family : str
        Its family key (the masking scheme and how it is called).
    transform : callable
        The input normalisation it was pre-trained with.
    locations, channel_indices : Tensor | None
        LUNA's electrode positions ``(C, 3)`` and channel-vocabulary indices ``(C,)``.
    device : str
        Where the model runs.
    """
    import torch

    from biofound_cli.models.registry import family_of
    from biofound_cli.training.objectives import patch_mask, reconstruction_errors

    model_family = family_of(family)
    scheme = model_family.masking_of(model)
    masks: dict[tuple[int, int], torch.Tensor] = {}

    def score(x: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(x).float().to(device)
        n, n_channels, n_times = batch.shape
        if (n_channels, n_times) not in masks:
            generator = torch.Generator().manual_seed(MASK_SEED)
            masks[(n_channels, n_times)] = patch_mask(n_channels, n_times, scheme.patch, scheme.ratio, generator=generator)
        mask = masks[(n_channels, n_times)].to(device).expand(n, -1, -1)
        with torch.no_grad():
            normalised = transform(batch)
            where = locations.to(device).expand(n, -1, -1) if locations is not None else None
            indices = channel_indices.to(device) if channel_indices is not None else None
            output, _ = model_family.reconstruct(
                model, normalised, mask, locations=where, channel_indices=indices, training=False
            )
            elementwise = reconstruction_errors(output.reshape(normalised.shape), normalised)
            weights = mask.expand_as(elementwise).float()
            errors = (elementwise * weights).sum(dim=(1, 2)) / weights.sum(dim=(1, 2)).clamp(min=1.0)
        return errors.float().cpu().numpy().reshape(n, 1)  # float32 under bf16 autocast too

    return score
