"""The sections read by ``biofound pretrain`` and ``biofound finetune``.

``[data]`` names the packed files, ``[model]`` the variant and where its weights come from,
``[optim]`` the optimiser and learning-rate schedule, ``[train]`` the loop itself and
``[output]`` where the run folder goes. Defaults are the published fine-tuning setup
(AdamW, warm-up then cosine); the shipped recipes set the published values per model.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from biofound_cli.recipes.base import MAX_SEED, FolderName, Section, Seed
from biofound_cli.stop_signals import PREEMPTION_SIGNALS
from biofound_cli.tasks import TaskName, normalise_task


class DataSection(Section):
    """Packed split files and how batches are read from them."""

    train: Path | None = Field(None, description="Packed training split (train.h5 written by `biofound pack`).")
    val: Path | None = Field(None, description="Packed validation split; evaluated every train.eval_every steps.")
    test: Path | None = Field(None, description="Packed test split, read by `biofound evaluate`.")
    transform: Literal["femba-affine", "zscore", "minmax", "none"] | None = Field(
        None, description="Input normalisation; unset means the model family's published one."
    )
    batch_size: int = Field(32, ge=1, description="Windows per batch on each process.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per training process.")


class ModelSection(Section):
    """Which model is trained, with which head, starting from which weights."""

    variant: str | None = Field(None, description="Model variant, e.g. femba-tiny, luna-base, tinymyo (see `biofound models`).")
    task: TaskName | None = Field(None, description="Head type; unset means the task stored in the training file.")
    num_classes: int | None = Field(
        None,
        ge=1,
        description="Outputs of the head; unset means the number stored in the training file "
        "(for regression, the size of the targets' last axis).",
    )
    checkpoint: Path | None = Field(
        None,
        description="Weights to start from (.safetensors, a checkpoint folder, or a run folder's best): pretrained or official.",
    )
    finetune: Literal["full", "frozen", "lora"] = Field(
        "full",
        description="full: train every weight; frozen: train the head only (linear probe); "
        "lora: low-rank adapters plus the head.",
    )
    lora_rank: int = Field(8, ge=1, description="Rank of the LoRA adapters (finetune = 'lora').")
    lora_alpha: float = Field(16.0, gt=0, description="LoRA scale numerator: adapters are scaled by alpha / rank.")
    lora_targets: list[str] = Field(
        default_factory=lambda: ["qkv", "qkv_proj", "proj", "in_proj", "out_proj", "fc1", "fc2", "linear1", "linear2"],
        description="Last name parts of the layers whose weights get LoRA adapters "
        "(in_proj also matches attention's in_proj_weight).",
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Constructor arguments replacing the variant's published ones, "
        "e.g. {in_chans = 8, img_size = 200}: from scratch, or as the model.checkpoint's model was built.",
    )

    @model_validator(mode="after")
    def _lora_has_targets(self) -> "ModelSection":
        # An empty list passed `validate` and was refused only once the model was built, as matching "no layer".
        if self.finetune == "lora" and not self.lora_targets:
            raise ValueError(
                "model.lora_targets is empty, so model.finetune = 'lora' would adapt no layer; name the layers to "
                "adapt, or leave model.lora_targets out for its defaults"
            )
        return self

    @field_validator("task", mode="before")
    @classmethod
    def _one_spelling(cls, task: Any) -> Any:
        # An older recipe may spell the pre-training task "pretrain".
        return normalise_task(task) if isinstance(task, str) else task


class OptimSection(Section):
    """AdamW with layer-wise learning-rate decay and a warm-up then cosine schedule."""

    lr: float = Field(5e-4, gt=0, description="Peak learning rate (reached at the end of warm-up).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    weight_decay: float = Field(0.05, ge=0, description="Decoupled weight decay; never applied to norms, biases and embeddings.")
    layer_decay: float = Field(1.0, gt=0, le=1, description="Layer-wise LR decay: block i of n gets lr * layer_decay**(n - i).")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="After warm-up: cosine down to min_lr, or constant.")
    warmup_steps: int | None = Field(None, ge=0, description="Warm-up length in optimiser steps; overrides warmup_epochs.")
    warmup_epochs: float = Field(0.0, ge=0, description="Warm-up length in epochs (converted to steps).")
    warmup_lr_init: float = Field(2.5e-7, ge=0, description="Learning rate at step 0 of the warm-up.")
    min_lr: float = Field(2.5e-6, ge=0, description="Learning rate at the end of the cosine; at most lr.")
    grad_clip: float | None = Field(
        1.0, gt=0, description="Clip the global gradient norm to this value; unset disables clipping."
    )
    accumulation_steps: int = Field(1, ge=1, description="Micro-batches summed into one optimiser step.")

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError("each beta must be in [0, 1), e.g. [0.9, 0.999]")
        return betas

    @model_validator(mode="after")
    def _cosine_goes_down(self) -> "OptimSection":
        # A min_lr above lr makes the cosine rise after warm-up, the opposite of a decay.
        if self.schedule == "cosine" and self.min_lr > self.lr:
            raise ValueError(
                f"optim.min_lr = {self.min_lr:g} is above optim.lr = {self.lr:g}, so the cosine schedule would rise; "
                "set min_lr at most lr (or schedule = 'constant')"
            )
        return self


class TrainSection(Section):
    """The training loop: length, precision, evaluation, checkpoints and preemption."""

    epochs: int | None = Field(10, ge=1, description="Passes over the training split; ignored when max_steps is set.")
    max_steps: int | None = Field(None, ge=1, description="Optimiser steps to run; overrides epochs.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="fp32, bf16 autocast (CPU or CUDA) or fp16 with loss scaling (CUDA only)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto picks CUDA when available.")
    seed: Seed = Field(42, description=f"Seed of weights, masks, dropout and data order (offset by the rank; 0 to {MAX_SEED}).")
    eval_every: int | None = Field(
        None, ge=1, description="Evaluate every this many optimiser steps; unset means once per epoch."
    )
    log_every: int = Field(
        10,
        ge=1,
        description="Write the training loss to metrics.jsonl every this many steps (and at each epoch's end and evaluation).",
    )
    checkpoint_every: int | None = Field(
        None, ge=1, description="Write a resumable checkpoint every this many steps; unset means at each evaluation."
    )
    keep_checkpoints: int = Field(
        2, ge=1, description="Resumable checkpoints kept in the run folder (the best one is kept apart)."
    )
    early_stopping_metric: str = Field(
        "val_loss", description="Metric watched for the best checkpoint and early stopping, e.g. val_loss, val_balanced_accuracy."
    )
    early_stopping_mode: Literal["min", "max"] | None = Field(
        None,
        description="Whether a smaller or a larger metric is better; unset: the metric's own "
        "(min for val_loss, val_mae, val_rmse; max for the others), and the other one is refused.",
    )
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="Stop after this many evaluations without improvement (one where the watched metric is undefined "
        "counts neither way); unset never stops early.",
    )
    compile: bool = Field(
        False,
        description=(
            "Run the model through torch.compile (inductor) in training and evaluation: the first batch compiles "
            "(a minute or more on a few CPU cores), later ones run faster; if compiling fails, one warning is "
            "logged and the model runs uncompiled."
        ),
    )
    preemption_signals: list[str] = Field(
        default_factory=lambda: list(PREEMPTION_SIGNALS),
        description="Signals that make the run finish its step, write a resumable checkpoint and exit with status 75.",
    )
    mask_ratio: float | None = Field(None, gt=0, lt=1, description="Pretraining mask ratio; unset means the published one.")
    loss: Literal["auto", "ce", "bce", "mse", "smooth_l1"] = Field(
        "auto",
        description="auto: the loss of how the head's output is read: BCE-with-logits for mc and a single-logit bc head, "
        "CE for bc with 2 logits and mcc/ml, per-channel CE for mmc, MSE for regression.",
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy losses.")
    class_weights: list[float] | None = Field(
        None,
        min_length=1,
        description="Per-class loss weights, one per class (2 for a single-logit bc head); none for regression.",
    )

    @field_validator("preemption_signals")
    @classmethod
    def _known_signals(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name.startswith("SIG") or not hasattr(signal, name) or name in ("SIGKILL", "SIGSTOP"):
                raise ValueError(f"{name!r} is not a signal that can be handled; use names such as SIGTERM, SIGUSR1")
        return names

    @field_validator("early_stopping_metric")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        from biofound_cli.metrics import HEADLINE_CLASSIFICATION, HEADLINE_REGRESSION

        known = ("val_loss", *(f"val_{metric}" for metric in HEADLINE_CLASSIFICATION + HEADLINE_REGRESSION))
        if name not in known:
            raise ValueError(f"{name!r} is not a validation metric; use one of {', '.join(known)}")
        return name

    @property
    def early_stopping_direction(self) -> Literal["min", "max"]:
        """Whether the best checkpoint has the smallest or the largest watched metric."""
        from biofound_cli.metrics import better_when

        return self.early_stopping_mode or better_when(self.early_stopping_metric)

    @model_validator(mode="after")
    def _mode_fits_the_metric(self) -> "TrainSection":
        # A recipe that watched an accuracy with the mode at "min" kept its worst checkpoint as the best.
        from biofound_cli.metrics import better_when

        better = better_when(self.early_stopping_metric)
        if self.early_stopping_mode not in (None, better):
            worst = "smallest" if self.early_stopping_mode == "min" else "largest"
            raise ValueError(
                f"train.early_stopping_mode = {self.early_stopping_mode!r} keeps the checkpoint of the {worst} "
                f"{self.early_stopping_metric}, the worst one; set {better!r} or leave early_stopping_mode out"
            )
        return self

    @model_validator(mode="after")
    def _has_length(self) -> "TrainSection":
        if self.epochs is None and self.max_steps is None:
            raise ValueError("set train.epochs or train.max_steps")
        return self


class OutputSection(Section):
    """Where the run folder is written."""

    runs_dir: Path = Field(Path("runs"), description="Folder holding one sub-folder per run.")
    run_name: FolderName | None = Field(None, description="Name of the run folder; unset means the recipe's name.")
