"""Where each step's batch comes from: drawn at the step (the plain loop), or one step ahead (opt-in).

:class:`Batches` draws step k's batch when step k starts. :class:`DrawAhead` is for methods whose random
draws do not depend on the weights and that gain from working on them early (``Method.lookahead``: OT solves
its assignment in a background thread while the previous step trains; docs/defaults.md#ot-on-2d). It draws
step k + 1's batch and draws right after step k's, in the same order on the RNG, so the random stream and the
trained weights are those of the plain loop. A checkpoint stores the RNG state from before the pending draws,
so a resumed run draws them again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch import Tensor

from cmtutor.training.rng import rng_states, set_rng_states


class Run(Protocol):
    """What a batch source needs of a :class:`cmtutor.training.run.Run` (which holds its source, so the
    source names the run by this shape rather than by import)."""

    step: int
    device: torch.device
    method: Any

    def draw_batch(self) -> Tensor: ...


class Batches:
    """The plain source: step k's batch is drawn when step k starts, with no draws made ahead."""

    def next(self, run: Run, until: int) -> tuple[Tensor, Any]:
        """(batch, drawn): the batch of step ``run.step``; ``drawn`` is None (the method draws in its loss)."""
        return run.draw_batch(), None

    def checkpoint_rng(self) -> dict[str, Any] | None:
        """The RNG state a checkpoint must store instead of the current one (None: the current one)."""
        return None

    @contextlib.contextmanager
    def running(self, run: Run) -> Iterator[None]:
        """The context of a stretch of training steps (nothing to set up here)."""
        yield


class DrawAhead(Batches):
    """Draws step k + 1's batch and method draws right after step k's (``Method.lookahead``)."""

    def __init__(self) -> None:
        #: the next step's (step, batch, draws), made early
        self.pending: tuple[int, Tensor, Any] | None = None
        #: the RNG states from before ``pending`` was drawn: what a checkpoint saves
        self.rng_before_pending: dict[str, Any] | None = None

    def next(self, run: Run, until: int) -> tuple[Tensor, Any]:
        if self.pending is not None and self.pending[0] == run.step:
            _, x, drawn = self.pending
        else:
            if self.pending is not None and self.rng_before_pending is not None:  # made for another step: rewind
                set_rng_states(self.rng_before_pending, run.device)
            x = run.draw_batch()
            drawn = run.method.draw(x, run.step)
        self.pending = self.rng_before_pending = None
        if run.step + 1 < until:
            self.rng_before_pending = rng_states(run.device)
            x_next = run.draw_batch()
            self.pending = (run.step + 1, x_next, run.method.draw(x_next, run.step + 1))
        return x, drawn

    def checkpoint_rng(self) -> dict[str, Any] | None:
        return self.rng_before_pending

    @contextlib.contextmanager
    def running(self, run: Run) -> Iterator[None]:
        """Torch gets one thread fewer meanwhile: a core for the method's thread (2D OT: 20.9 → 9.0 ms a step)."""
        threads = torch.get_num_threads()
        if run.device.type == "cpu" and threads > 1:
            torch.set_num_threads(threads - 1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def batch_source(lookahead: bool, images: bool) -> Batches:
    """:class:`DrawAhead` for a lookahead method on vector data, else the plain :class:`Batches`.

    Image networks use dropout inside the step, which would move their masks on the stream: no lookahead.
    """
    return DrawAhead() if lookahead and not images else Batches()
