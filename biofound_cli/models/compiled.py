"""``torch.compile`` with a fallback: a model that cannot be compiled here runs eagerly, with one warning.

Compilation is lazy: ``torch.compile`` returns at once and the graph is traced and built (with
a C++ compiler on a CPU) on the first call, so a missing compiler or an operator inductor cannot
lower shows up only then. :func:`compile_model` wraps the model so that such a failure logs one
warning and that call and every later one run the plain model; errors of the model itself
(bad input shapes) still reach the caller, raised by the eager rerun.

For inference the wrapper turns on inductor's ``freezing`` around each call rather than through
``torch.compile(options=...)``: with torch 2.13 the option passed that way never reached the
freezing pass (the weights stayed graph inputs and every linear ran as a plain ``addmm``), while
``torch._inductor.config.patch(freezing=True)`` around the call that compiles folds them and
prepacks the linears (``tests/unit/models/test_compiled.py`` checks the packed operators run).

An inference graph takes any batch size: the first dimension of every tensor argument is marked
dynamic, so a recording's short last batch reuses the graph instead of compiling another (as fast
as a graph built for one size, measured on TinyMyo at batch 64, 32 and 17). Dynamo would give a
dimension of size one a graph of its own (another 15-40 s of compiling on two cores for a
recording or split whose last batch holds one window), so the wrapper sends a batch of one as two
copies and returns the first: an inference model's outputs are per example.
Training keeps graphs of fixed shapes (``dynamic=False``).

The wrapper keeps the model under ``_orig_mod``, as ``torch.compile``'s own wrapper does, so its
state-dict keys are the model's own behind that prefix.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map

from biofound_cli.errors import first_line

logger = logging.getLogger(__name__)


class CompiledModel(nn.Module):
    """Runs ``_orig_mod`` through ``torch.compile``, or eagerly once compiling has failed.

    Parameters
    ----------
    model : nn.Module
        The model to compile.
    inference : bool
        Compile for inference only: inductor's ``freezing`` folds the weights into the graph as
        constants (prepacked matrix layouts), which is faster but ties the graph to the weights
        of the first call, and the batch dimension is dynamic (a batch of one runs as two copies);
        use ``False`` for training.
    """

    def __init__(self, model: nn.Module, inference: bool = False) -> None:
        super().__init__()
        self._orig_mod = model
        self.failed = False
        self.inference = inference
        # Not a registered submodule (it holds the same parameters under other keys).
        self.__dict__["_compiled"] = torch.compile(model, dynamic=None if inference else False)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Call the compiled model; after a compilation failure, the plain one."""
        if not self.failed:
            try:
                if self.inference:
                    return self._call_inference(args, kwargs)
                return self.__dict__["_compiled"](*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - any failure to compile must fall back
                # The eager rerun tells the model's own errors (they raise again, to the caller)
                # from compilation failures (the eager call succeeds).
                output = self._orig_mod(*args, **kwargs)
                self.failed = True
                logger.warning(
                    "torch.compile could not compile %s (%s); running it without compiling",
                    type(self._orig_mod).__name__,
                    first_line(error)[:300],
                )
                return output
        return self._orig_mod(*args, **kwargs)

    def _call_inference(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The frozen graph, with a dynamic batch; a batch of one goes through it as two copies."""
        lone = bool(args) and isinstance(args[0], torch.Tensor) and args[0].dim() > 0 and args[0].shape[0] == 1
        if lone:
            args, kwargs = tree_map(_twice, (args, kwargs))
        for value in [*args, *kwargs.values()]:
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] > 1:
                torch._dynamo.maybe_mark_dynamic(value, 0)
        from torch._inductor import config as inductor_config

        # Read when the first call compiles; a fresh patch each call, as a patch is single-use.
        with inductor_config.patch(freezing=True):
            output = self.__dict__["_compiled"](*args, **kwargs)
        return tree_map(_first, output) if lone else output


def _twice(value: Any) -> Any:
    is_single = isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == 1
    return torch.cat([value, value]) if is_single else value


def _first(value: Any) -> Any:
    return value[:1] if isinstance(value, torch.Tensor) and value.dim() > 0 else value


def compile_model(model: nn.Module, *, inference: bool = False) -> nn.Module:
    """``model`` wrapped to run through ``torch.compile``, falling back to eager with one warning.

    Parameters
    ----------
    model : nn.Module
        The model to compile; its state-dict keys are unchanged under ``_orig_mod``.
    inference : bool
        Compile for inference (``freezing``: weights become constants of the graph; one graph
        for every batch size).

    Returns
    -------
    nn.Module
        A :class:`CompiledModel`; the first call compiles (a minute or more on two cores).
    """
    return CompiledModel(model, inference=inference)
