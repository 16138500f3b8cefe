"""Overhead of the training loop: ``fit`` against a bare PyTorch loop on the same model and data.

Run ``python benchmarks/train.py`` (``--quick`` for a smoke run). Prints a markdown table;
asserts nothing.

For each model and precision (fp32, bf16 autocast), on the CPU at batch 8:

* **bare**: pre-stacked batches in memory; per step ``zero_grad``, forward, cross-entropy,
  backward, ``AdamW.step`` (fused, as ``fit``'s optimiser); nothing else;
* **ours**: :func:`biofound_cli.training.loop.fit` on an in-memory dataset of the same windows
  with the same objective, no validation split, no gradient clipping and no checkpoint before
  the last step, so what it adds is what every step of a run pays: the DataLoader and sampler,
  the objective, the NaN check, the schedule, metrics logging and the progress bookkeeping.

A step's time is measured from the end of the previous step (``fit``'s ``on_step`` callback),
so the first step of every call (setup, warm-up) and the checkpoint ``fit`` writes after its
last step are left out. The two loops run in alternating rounds on the same model so that
load from other processes hits both alike; rates come from the fastest step, since on a
shared machine interference only ever adds time. The overhead is given in wall time and in
the process's CPU time, which other processes disturb less. A third figure takes the noise
out: fit's fixed cost per step, measured with a linear model on the same windows (where the
step is almost all loop), divided by the bare loop's step time for the real model.

``--fast-paths`` prints another table instead: the bare step of each model in other ways against
the **reference** step in the same run: eager fp32 with torch's default AdamW (the ``foreach``
implementation, as the upstream training code uses it). Our ways use the fused AdamW that
``fit`` builds (:func:`biofound_cli.training.optim.build_optimizer`): eager fp32, eager bf16
autocast and, unless ``--no-compile``, :func:`biofound_cli.models.compiled.compile_model` (what
``train.compile = true`` gives) in fp32 and bf16. Each way trains its own copy of the same
initial weights; the ways take turns, one step each per round, and a way's time is its fastest
step. The first step's loss of every way is compared with the reference's on the same batch and
seed (compiled ways use inductor's ``fallback_random``, so their dropout draws are eager's and
the losses comparable).

The FEMBA default is ``femba-tiny`` (2 blocks): a training step of femba-base takes several
seconds on two cores, and the loop's cost per step is the same whatever the model, so the
smaller model gives the larger (stricter) overhead. ``--models femba-base,...`` measures it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

DEFAULT_MODELS = ("femba-tiny", "luna-base", "tinymyo")
PRECISIONS = ("fp32", "bf16")
N_CLASSES = 2


class WindowDataset(Dataset):
    """Windows and labels held in memory, in the ``{"x", "y"}`` form the packed dataset gives."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "y": self.y[index]}


class Setup:
    """One model with a classification head, its windows and how to call it."""

    def __init__(self, name: str, batch_size: int, n_batches: int) -> None:
        from biofound_cli.models import create_model, get_variant
        from biofound_cli.training.objectives import Objective

        variant = get_variant(name)
        torch.manual_seed(0)
        self.name, self.batch_size = name, batch_size
        self.model = create_model(name, task="mcc", num_classes=N_CLASSES)
        n_channels = variant.n_channels or 22
        self.x = torch.randn(batch_size * n_batches, n_channels, variant.n_times)
        self.y = torch.arange(batch_size * n_batches) % N_CLASSES
        self.locations = None
        if variant.family == "luna":
            from biofound_cli.signals.electrodes import channel_positions
            from biofound_cli.signals.montage import TCP_PAIRS

            ch_names = [f"{anode}-{cathode}" for anode, cathode in TCP_PAIRS]
            self.locations = torch.as_tensor(channel_positions(ch_names), dtype=torch.float32)
        self.objective = Objective(variant.family, "mcc", channel_locations=self.locations)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        # The call the objective makes in training: an all-False mask (LUNA: jitter on).
        mask = torch.zeros_like(x, dtype=torch.bool)
        if self.locations is not None:
            return self.model(x, mask, self.locations.expand(x.shape[0], -1, -1))[0]
        return self.model(x, mask)[0]


def _clock() -> tuple[float, float]:
    """Wall time and this process's CPU time (all threads), in seconds."""
    return time.perf_counter(), time.process_time()


def _durations(stamps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [
        (later[0] - earlier[0], later[1] - earlier[1]) for earlier, later in zip(stamps, stamps[1:], strict=False)
    ]  # pairs: one fewer


def bare_steps(setup: Setup, precision: str, n_steps: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each step of a minimal loop, the first (warm-up) left out."""
    model = setup.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=True)
    batches = list(zip(setup.x.split(setup.batch_size), setup.y.split(setup.batch_size), strict=True))
    stamps = []
    for step in range(n_steps + 1):
        x, y = batches[step % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(setup.logits(x).float(), y)
        loss.backward()
        optimizer.step()
        stamps.append(_clock())
    return _durations(stamps)


def fit_steps(setup: Setup, precision: str, n_steps: int, folder: Path) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each step of :func:`fit`, from one ``on_step`` call to the next."""
    from biofound_cli.recipes.training import OptimSection, TrainSection
    from biofound_cli.training.distributed import DistributedContext
    from biofound_cli.training.loop import TrainingJob, fit
    from biofound_cli.training.run_folder import RunFolder

    total = n_steps + 1
    job = TrainingJob(
        model=setup.model,
        objective=setup.objective,
        train_set=WindowDataset(setup.x, setup.y),
        val_set=None,
        optim=OptimSection(lr=1e-4, weight_decay=0.05, warmup_steps=0, grad_clip=None),
        train=TrainSection(max_steps=total, precision=precision, device="cpu", checkpoint_every=total, keep_checkpoints=1),
        batch_size=setup.batch_size,
    )
    stamps: list[tuple[float, float]] = []
    fit(job, RunFolder(folder), context=DistributedContext(), on_step=lambda step: stamps.append(_clock()))
    return _durations(stamps)


class LinearProbe(nn.Module):
    """A model that costs almost nothing, so a step's time is the loop's own."""

    def __init__(self, n_times: int) -> None:
        super().__init__()
        self.head = nn.Linear(n_times, N_CLASSES)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(x.mean(dim=1)), x


def loop_cost(setup: Setup, n_steps: int = 30, rounds: int = 2) -> float:
    """Seconds ``fit`` adds to each step over the bare loop, on the same windows but a linear model.

    With the model's own work gone, what is left is the loop's fixed cost per step (batching
    windows from a Dataset, the objective, the NaN check, the schedule, bookkeeping); the median
    step of each loop is taken per round and the quietest round kept.
    """
    from biofound_cli.training.objectives import Objective

    probe = copy.copy(setup)
    probe.model, probe.locations = LinearProbe(setup.x.shape[-1]), None
    probe.objective = Objective("femba", "mcc")  # the plain model(x, mask) call
    bare, ours = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="biofound-bench-train-") as folder:
            bare.append(statistics.median(wall for wall, _ in bare_steps(probe, "fp32", n_steps)))
            ours.append(statistics.median(wall for wall, _ in fit_steps(probe, "fp32", n_steps, Path(folder) / "run")))
    return max(min(ours) - min(bare), 0.0)


def compare(name: str, args: argparse.Namespace) -> None:
    setup = Setup(name, args.batch, n_batches=4)
    fixed_cost = loop_cost(setup)
    for precision in PRECISIONS:
        bare: list[tuple[float, float]] = []
        ours: list[tuple[float, float]] = []
        try:
            for round_index in range(args.rounds):
                with tempfile.TemporaryDirectory(prefix="biofound-bench-train-") as folder:
                    bare += bare_steps(setup, precision, args.steps)
                    ours += fit_steps(setup, precision, args.steps, Path(folder) / f"run{round_index}")
        except RuntimeError as error:
            # A model that cannot train in this precision is a finding to report, not a crash.
            message = str(error).splitlines()[0].replace("|", "/")
            print(f"| {name} | {precision} | failed: {message} | - | - | - | - | 0 |", flush=True)
            continue
        bare_wall, bare_cpu = (min(times) for times in zip(*bare, strict=True))
        ours_wall, ours_cpu = (min(times) for times in zip(*ours, strict=True))
        print(
            f"| {name} | {precision} | {args.batch / bare_wall:.2f} | {args.batch / ours_wall:.2f} | "
            f"{ours_wall / bare_wall - 1:+.1%} | {ours_cpu / bare_cpu - 1:+.1%} | {fixed_cost * 1e3:.2f} ms = "
            f"{fixed_cost / bare_wall:.2%} | {len(ours)} |",
            flush=True,
        )


REFERENCE = "reference fp32"
FAST_WAYS = (REFERENCE, "eager fp32", "eager bf16", "compiled fp32", "compiled bf16")


def _fast_way(setup: Setup, way: str) -> tuple[Setup, torch.optim.Optimizer]:
    """A copy of ``setup`` whose model runs ``way`` (its own weights, copied from the same start), and its optimiser."""
    from biofound_cli.models.compiled import compile_model

    copied = copy.copy(setup)
    copied.model = copy.deepcopy(setup.model).train()
    # The reference keeps torch's default (foreach) AdamW; our ways the fused one fit builds.
    fused = way != REFERENCE
    optimizer = torch.optim.AdamW(copied.model.parameters(), lr=1e-4, weight_decay=0.05, fused=fused)
    if way.startswith("compiled"):
        torch._inductor.config.fallback_random = True  # eager's dropout draws, for the loss check
        copied.model = compile_model(copied.model)
    return copied, optimizer


def _one_step(setup: Setup, optimizer: torch.optim.Optimizer, way: str, batch: int) -> tuple[float, float]:
    """(seconds, loss) of one bare step on batch ``batch`` of the setup's windows."""
    x = setup.x.split(setup.batch_size)[batch % 4]
    y = setup.y.split(setup.batch_size)[batch % 4]
    torch.manual_seed(batch)
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=way.endswith("bf16")):
        loss = F.cross_entropy(setup.logits(x).float(), y)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start, loss.item()


def compare_fast_paths(name: str, args: argparse.Namespace) -> None:
    """One table row per way: its fastest bare step against the reference's, same run, and its first loss."""
    setup = Setup(name, args.batch, n_batches=4)
    ways = [way for way in FAST_WAYS if not (args.no_compile and way.startswith("compiled"))]
    runs = {way: _fast_way(setup, way) for way in ways}
    first: dict[str, tuple[float, float]] = {way: _one_step(*runs[way], way, 0) for way in ways}
    best = {way: float("inf") for way in ways}
    for step in range(1, args.steps * args.rounds + 1):
        for way in ways:
            best[way] = min(best[way], _one_step(*runs[way], way, step)[0])
    for way in ways:
        loss_gap = abs(first[way][1] - first[REFERENCE][1])
        failed = getattr(runs[way][0].model, "failed", False)
        check = "compile failed, ran eagerly" if failed else f"{loss_gap:.1e}"
        print(
            f"| {name} | {way} | {args.batch / best[way]:.2f} | **{best[REFERENCE] / best[way]:.2f}×** | "
            f"{check} | {first[way][0]:.1f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated registry names")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per loop per round (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of the two loops")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 2, one round of 2 steps")
    parser.add_argument(
        "--fast-paths",
        action="store_true",
        help=("time our bare steps (fused AdamW; bf16, compiled) against the reference step (eager fp32, default AdamW) instead"),
    )
    parser.add_argument("--no-compile", action="store_true", help="with --fast-paths: leave out the compiled ways")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.steps, args.rounds = 2, 2, 1
    torch.set_num_threads(args.threads)

    if args.fast_paths:
        print(f"Bare training step by way, fastest of {args.steps * args.rounds} alternating steps after one untimed step\n")
        print("| model | way | samples/s | × reference, same run | first-step loss vs reference | first step (s) |")
        print("|---|---|---|---|---|---|")
        for name in args.models.split(","):
            compare_fast_paths(name, args)
        return
    print(
        f"Training step, CPU, batch {args.batch}, {args.threads} threads, {args.rounds} alternating "
        f"rounds of {args.steps} timed steps per loop, fastest step\n"
    )
    print(
        "| model | precision | bare loop samples/s | fit samples/s | overhead, wall | overhead, CPU time "
        "| loop's fixed cost per step / bare step | steps timed |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        compare(name, args)
    print(
        "\noverhead: fit's fastest step time / the bare loop's - 1 (target at most 5 %), in wall time and "
        "in process CPU time; on a shared machine the CPU-time figure is the steadier one, and "
        "differences of a few percent either way are noise. The fixed cost is what fit adds per step "
        "when the model is a linear probe on the same windows: the overhead left once noise is taken out."
    )


if __name__ == "__main__":
    main()
