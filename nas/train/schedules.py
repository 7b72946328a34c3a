"""Which subnets each training step trains: pure functions of (space, epoch, total epochs, rng).

``step_archs`` returns a list whose first element is the teacher when the list has more than one
element: the largest subnet, trained on the labels; the others learn from its soft labels
(in-place distillation). Schedules:

- ``sandwich``: largest, smallest and ``n`` uniform random subnets every step (BigNAS).
- ``delayed``: the largest alone for the first ``delay_fraction`` of the epochs, then sandwich
  (delayed shrinking).
- ``progressive``: OFA's progressive shrinking, four phases split at ``phase_fractions``:

  ===========  ============================================================================
  ``largest``  the largest subnet alone
  ``operator`` + elastic resolution, kernel size, squeeze-excite and layer kind (conv, attention
               or mixer in hybrid stages); depth, width and every hidden ratio at their maximum
  ``depth``    + elastic depth
  ``width``    + elastic width, expand ratio, heads and MLP/token/channel ratios (the full space)
  ===========  ============================================================================

  The layer kind joins the kernel phase because it is an operator choice, like the kernel: it does
  not change how many channels later layers see, while heads and ratios are hidden sizes, which
  OFA shrinks last (with the expand ratio). Each phase samples its smallest and random subnets
  from a restricted space (the full space with some choices pinned to their maximum); the teacher
  is the full space's largest subnet, which every restricted space contains.
- ``fixed``: one given architecture alone, no distillation (a from-scratch baseline).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from nas.arch import Architecture
from nas.blocks.base import BlockSpec
from nas.errors import UserError
from nas.spaces.schema import SearchSpace, StageSpec

PHASES: tuple[str, ...] = ("largest", "operator", "depth", "width")


@lru_cache(maxsize=64)
def largest(space: SearchSpace) -> Architecture:
    return space.largest()


@lru_cache(maxsize=64)
def smallest(space: SearchSpace) -> Architecture:
    return space.smallest()


def sandwich(
    space: SearchSpace, rng: np.random.Generator, n: int, *, teacher: Architecture | None = None
) -> list[Architecture]:
    """``[teacher or largest, smallest, n random]`` of ``space``."""
    return [teacher or largest(space), smallest(space)] + [space.sample(rng) for _ in range(n)]


def progressive_phase(epoch: int, total: int, fractions: tuple[float, ...]) -> int:
    """Index into :data:`PHASES` of ``epoch`` (0-based) out of ``total``: the number of phase
    boundaries (fractions of ``total``) at or before the epoch's start."""
    return sum(epoch >= f * total for f in fractions)


def _max(values: tuple) -> tuple:
    return (max(values),)


def _restrict_block(block: BlockSpec, phase: int) -> BlockSpec:
    """Before the width phase, every hidden-size option (``choices(hidden_size=True)`` in the
    kind's spec) at its maximum."""
    return block if phase >= 3 else block.restricted()


def _restrict_stage(stage: StageSpec, phase: int) -> StageSpec:
    return dataclasses.replace(
        stage,
        widths=stage.widths if phase >= 3 else _max(stage.widths),
        depths=stage.depths if phase >= 2 else _max(stage.depths),
        blocks=tuple(_restrict_block(b, phase) for b in stage.blocks),
    )


@lru_cache(maxsize=64)
def restricted_space(space: SearchSpace, phase: int) -> SearchSpace:
    """The sub-space the progressive ``phase`` (1: operator, 2: depth, 3: width) samples from."""
    if not 1 <= phase <= 3:
        raise ValueError(f"phase {phase}: restricted spaces exist for phases 1..3")
    if phase == 3:
        return space
    return dataclasses.replace(space, stages=tuple(_restrict_stage(s, phase) for s in space.stages))


def phase_of(
    schedule: str,
    epoch: int,
    total: int,
    *,
    delay_fraction: float = 0.5,
    phase_fractions: tuple[float, ...] = (0.25, 0.5, 0.75),
) -> str:
    """A short name of what ``epoch`` trains: ``largest``, ``sandwich``, ``fixed`` or a phase."""
    if schedule == "sandwich":
        return "sandwich"
    if schedule == "fixed":
        return "fixed"
    if schedule == "delayed":
        return "largest" if epoch < delay_fraction * total else "sandwich"
    if schedule == "progressive":
        return PHASES[progressive_phase(epoch, total, phase_fractions)]
    raise UserError(f"unknown schedule {schedule!r}")


def step_archs(
    schedule: str,
    space: SearchSpace,
    epoch: int,
    total: int,
    rng: np.random.Generator,
    *,
    sandwich_n: int = 2,
    delay_fraction: float = 0.5,
    phase_fractions: tuple[float, ...] = (0.25, 0.5, 0.75),
    arch: Architecture | None = None,
) -> list[Architecture]:
    """The subnets one step of ``epoch`` (0-based, of ``total``) trains; ``archs[0]`` is the teacher.

    Random subnets are drawn from ``rng`` only; the result depends on nothing else.
    """
    phase = phase_of(
        schedule, epoch, total, delay_fraction=delay_fraction, phase_fractions=phase_fractions
    )
    if phase == "fixed":
        if arch is None:
            raise UserError("schedule 'fixed' needs an architecture")
        return [arch]
    if phase == "largest":
        return [largest(space)]
    if phase == "sandwich":
        return sandwich(space, rng, sandwich_n)
    sub = restricted_space(space, PHASES.index(phase))
    return sandwich(sub, rng, sandwich_n, teacher=largest(space))
