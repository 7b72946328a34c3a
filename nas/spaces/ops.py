"""Operations on a space: enumerate choices, sample, mutate, cross over, count, validate.

All randomness comes from a passed ``numpy.random.Generator``. A genome is a fixed-length int vector
``[resolution, (width, depth, slot_0 .. slot_{D-1}) per stage]`` of choice indices; slots beyond the
stage's depth are inactive (ignored by :func:`decode`, zeroed by :func:`canonical`). A space with
precision genes (``space.searches_precision``) appends ``[stem, (slot_0 .. slot_{D-1}) per stage,
head]`` indices into ``space.precisions``, so the layout before them (and every genome of an
fp32-only space) is unchanged; a slot's precision is active when the slot is.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from nas.arch import Architecture, Layer, Stage, make_layer
from nas.errors import SpaceError

if TYPE_CHECKING:  # the schema's methods call this module: typed against its shape, no import back
    from nas.spaces.shape import SpaceShape, StageShape


@lru_cache(maxsize=256)
def stage_layer_choices(stage: StageShape) -> tuple[Layer, ...]:
    """Every layer value a slot of ``stage`` can take, in canonical order (kind, then options)."""
    out: list[Layer] = []
    for block in stage.blocks:
        choices = block.option_choices()
        names = list(choices)
        for combo in itertools.product(*(choices[n] for n in names)):
            out.append(make_layer(block.kind, **dict(zip(names, combo))))
    return tuple(out)


def _kind_groups(stage: StageShape) -> list[list[int]]:
    choices = stage_layer_choices(stage)
    return [[i for i, c in enumerate(choices) if c.kind == b.kind] for b in stage.blocks]


def _sample_layer(stage: StageShape, rng: np.random.Generator) -> Layer:
    """Uniform over kinds, then uniform over that kind's options."""
    groups = _kind_groups(stage)
    group = groups[int(rng.integers(len(groups)))]
    return stage_layer_choices(stage)[group[int(rng.integers(len(group)))]]


def sample(space: SpaceShape, rng: np.random.Generator) -> Architecture:
    """A random architecture: uniform resolution, width, depth; per layer a uniform kind then options;
    then, where the space has precision genes, a uniform precision per gene (drawn after the
    architecture, so an fp32-only space draws exactly what it drew before precision genes)."""
    resolution = space.resolutions[int(rng.integers(len(space.resolutions)))]
    stages = []
    for stage in space.stages:
        width = stage.widths[int(rng.integers(len(stage.widths)))]
        depth = stage.depths[int(rng.integers(len(stage.depths)))]
        stages.append(
            Stage(width=width, layers=tuple(_sample_layer(stage, rng) for _ in range(depth)))
        )
    arch = Architecture(resolution=resolution, stages=tuple(stages))
    if space.searches_precision:
        n = len(arch.precisions())
        arch = arch.with_precisions(
            [space.precisions[int(i)] for i in rng.integers(len(space.precisions), size=n)])
    return arch


# ----- genome -----
def cardinalities(space: SpaceShape) -> np.ndarray:
    """Number of choices of each genome position."""
    card = [len(space.resolutions)]
    for stage in space.stages:
        card += [len(stage.widths), len(stage.depths)]
        card += [len(stage_layer_choices(stage))] * stage.max_depth
    if space.searches_precision:
        card += [len(space.precisions)] * n_precision_genes(space)
    return np.array(card, dtype=np.int64)


def n_precision_genes(space: SpaceShape) -> int:
    """Precision positions of the genome: stem, every slot of every stage, head (0 without them)."""
    if not space.searches_precision:
        return 0
    return 2 + sum(stage.max_depth for stage in space.stages)


def precision_offset(space: SpaceShape) -> int:
    """Index of the stem's precision gene (the first after the architecture genes)."""
    return 1 + sum(2 + stage.max_depth for stage in space.stages)


def encode(space: SpaceShape, arch: Architecture) -> np.ndarray:
    """Architecture -> genome (inactive slots are 0)."""
    validate(space, arch)
    genes = [space.resolutions.index(arch.resolution)]
    for spec, stage in zip(space.stages, arch.stages):
        choices = stage_layer_choices(spec)
        genes += [spec.widths.index(stage.width), spec.depths.index(stage.depth)]
        slots = [choices.index(layer) for layer in stage.layers]
        genes += slots + [0] * (spec.max_depth - len(slots))
    if space.searches_precision:
        index = space.precisions.index
        genes.append(index(arch.stem_precision))
        for spec, stage in zip(space.stages, arch.stages):
            slots = [index(p) for p in stage.precisions]
            genes += slots + [0] * (spec.max_depth - len(slots))
        genes.append(index(arch.head_precision))
    return np.array(genes, dtype=np.int64)


def decode(space: SpaceShape, genes: np.ndarray) -> Architecture:
    """Genome -> architecture (inactive slots ignored)."""
    genes = np.asarray(genes)
    card = cardinalities(space)
    if genes.shape != card.shape or (genes < 0).any() or (genes >= card).any():
        raise SpaceError(
            f"genome {genes.tolist()} does not fit {space.name}: cardinalities {card.tolist()}"
        )
    pos = 1
    stages = []
    for spec in space.stages:
        choices = stage_layer_choices(spec)
        width = spec.widths[genes[pos]]
        depth = spec.depths[genes[pos + 1]]
        slots = genes[pos + 2 : pos + 2 + depth]
        stages.append(Stage(width=width, layers=tuple(choices[int(g)] for g in slots)))
        pos += 2 + spec.max_depth
    arch = Architecture(resolution=space.resolutions[genes[0]], stages=tuple(stages))
    if space.searches_precision:
        names = [space.precisions[int(genes[pos])]]
        pos += 1
        for spec, stage in zip(space.stages, stages):
            names += [space.precisions[int(g)] for g in genes[pos : pos + stage.depth]]
            pos += spec.max_depth
        arch = arch.with_precisions([*names, space.precisions[int(genes[pos])]])
    return arch


def active_mask(space: SpaceShape, genes: np.ndarray) -> np.ndarray:
    """Boolean mask (n, g) of genome positions that matter (slots within the chosen depth)."""
    genes = np.atleast_2d(genes)
    mask = np.ones_like(genes, dtype=bool)
    pos = 1
    slot_masks = []
    for spec in space.stages:
        depth = np.asarray(spec.depths)[genes[:, pos + 1]]
        slot = np.arange(spec.max_depth)
        slot_masks.append(slot[None, :] < depth[:, None])
        mask[:, pos + 2 : pos + 2 + spec.max_depth] = slot_masks[-1]
        pos += 2 + spec.max_depth
    if space.searches_precision:
        pos += 1  # the stem's precision gene (always active, as the head's, the last gene)
        for spec, slots in zip(space.stages, slot_masks):
            mask[:, pos : pos + spec.max_depth] = slots
            pos += spec.max_depth
    return mask


def canonical(space: SpaceShape, genes: np.ndarray) -> np.ndarray:
    """Zero the inactive slots so that equal architectures have equal genomes."""
    genes = np.atleast_2d(np.asarray(genes))
    return np.where(active_mask(space, genes), genes, 0)


def mutate(
    space: SpaceShape, arch: Architecture, rng: np.random.Generator, prob: float = 0.1
) -> Architecture:
    """Resample each genome position with probability ``prob``; at least one active position changes."""
    genes = encode(space, arch)
    card = cardinalities(space)
    # Fill inactive slots with random values so that a depth increase brings fresh layers.
    inactive = ~active_mask(space, genes)[0]
    genes[inactive] = rng.integers(card[inactive])
    flips = (rng.random(len(genes)) < prob) & (card > 1)
    active = active_mask(space, genes)[0] & (card > 1)
    if not (flips & active).any() and active.any():
        flips[rng.choice(np.flatnonzero(active))] = True
    for i in np.flatnonzero(flips):
        genes[i] = (genes[i] + 1 + rng.integers(card[i] - 1)) % card[i]
    child = decode(space, genes)
    return child


def crossover(
    space: SpaceShape, a: Architecture, b: Architecture, rng: np.random.Generator
) -> Architecture:
    """Uniform crossover of the two genomes (inactive slots of a parent are filled at random)."""
    card = cardinalities(space)
    ga, gb = encode(space, a), encode(space, b)
    for g in (ga, gb):
        inactive = ~active_mask(space, g)[0]
        g[inactive] = rng.integers(card[inactive])
    take_b = rng.random(len(ga)) < 0.5
    return decode(space, np.where(take_b, gb, ga))


# ----- checks and counts -----
def validate(space: SpaceShape, arch: Architecture) -> None:
    """Raise SpaceError naming the first part of ``arch`` outside ``space``."""
    if not isinstance(arch, Architecture):
        raise SpaceError(f"expected an Architecture, got {type(arch).__name__}")
    if arch.resolution not in space.resolutions:
        raise SpaceError(
            f"resolution {arch.resolution} not in {space.name}: allowed {list(space.resolutions)}"
        )
    for name in ("stem", "head"):
        precision = getattr(arch, f"{name}_precision")
        if precision not in space.precisions:
            raise SpaceError(
                f"{name} precision {precision!r} not allowed in {space.name}; "
                f"allowed {list(space.precisions)}"
            )
    if len(arch.stages) != len(space.stages):
        raise SpaceError(f"{len(arch.stages)} stages; {space.name} has {len(space.stages)}")
    for i, (spec, stage) in enumerate(zip(space.stages, arch.stages)):
        if stage.width not in spec.widths:
            raise SpaceError(
                f"stage {i}: width {stage.width} not allowed; allowed {list(spec.widths)}"
            )
        if stage.depth not in spec.depths:
            raise SpaceError(
                f"stage {i}: depth {stage.depth} not allowed; allowed {list(spec.depths)}"
            )
        for j, (layer, precision) in enumerate(zip(stage.layers, stage.precisions)):
            if precision not in space.precisions:
                raise SpaceError(
                    f"stage {i} layer {j}: precision {precision!r} not allowed in {space.name}; "
                    f"allowed {list(space.precisions)}"
                )
            if layer.kind not in spec.kinds:
                raise SpaceError(
                    f"stage {i} layer {j}: kind {layer.kind!r} not allowed; allowed {list(spec.kinds)}"
                )
            choices = spec.block(layer.kind).option_choices()
            for name, value in layer.options().items():
                if value not in choices[name]:
                    raise SpaceError(
                        f"stage {i} layer {j} ({layer.kind}): {name}={value!r} not allowed; "
                        f"allowed {list(choices[name])}"
                    )


def contains(space: SpaceShape, arch: Architecture) -> bool:
    try:
        validate(space, arch)
    except SpaceError:
        return False
    return True


# sizes with more decimal digits than this are not computed exactly (see size())
EXACT_SIZE_DIGITS = 4000


def log10_size(space: SpaceShape) -> float:
    """log10 of the number of distinct subnets, in float arithmetic: time polynomial in the
    number of listed choices whatever the depths (a depth of 10**30 costs one multiplication)."""
    n_prec = len(space.precisions)
    total = math.log10(len(space.resolutions)) + 2 * math.log10(n_prec)  # stem and head genes
    for stage in space.stages:
        step = math.log10(len(stage_layer_choices(stage)) * n_prec)  # log10 of choices per slot
        terms = [d * step for d in stage.depths]  # log10(n**d) for each allowed depth
        top = max(terms)
        total += math.log10(len(stage.widths)) + top + math.log10(
            sum(10 ** (t - top) for t in terms)
        )
    return total


def size(space: SpaceShape) -> int | float:
    """Exact number of distinct subnets; ``math.inf`` when it has more than
    :data:`EXACT_SIZE_DIGITS` digits (it would take long to compute and cannot be printed in
    decimal; :func:`log10_size` and :func:`format_size` still describe it)."""
    if log10_size(space) > EXACT_SIZE_DIGITS:
        return math.inf
    n_prec = len(space.precisions)
    total = len(space.resolutions) * n_prec**2  # stem and head precision genes
    for stage in space.stages:
        n_layer = len(stage_layer_choices(stage)) * n_prec
        total *= len(stage.widths) * sum(n_layer**d for d in stage.depths)
    return total


def format_size(space: SpaceShape, *, exact: bool = True) -> str:
    """The subnet count for people: exact with thousands separators up to 10**15 (when
    ``exact``), else in scientific notation computed from :func:`log10_size` (never a huge int to
    decimal); beyond 10**(10**15) as ``10^<exponent>``."""
    exponent = log10_size(space)
    if exact and exponent < 15:
        return f"{int(size(space)):,}"
    if exponent >= 1e15:  # the exponent itself is only known to float precision
        return f"10^{exponent:.4e}"
    whole = math.floor(exponent)
    mantissa = 10 ** (exponent - whole)
    if mantissa >= 9.9995:  # rounding would print 10.000e+N
        mantissa, whole = mantissa / 10, whole + 1
    return f"{mantissa:.3f}e{whole:+03d}"


def _extreme(space: SpaceShape, pick: str) -> Architecture:
    """The max- or min-MACs architecture: extreme resolution, width and depth, per slot the layer
    choice with the extreme MACs at the stage's extreme width."""
    from nas.costs import layer_macs

    big = pick == "max"
    choose = max if big else min
    res = choose(space.resolutions)
    stages = []
    c_in = space.stem.width
    for i, spec in enumerate(space.stages):
        width = choose(spec.widths)
        depth = choose(spec.depths)
        layers = []
        for j in range(depth):
            cin = c_in if j == 0 else width
            layers.append(
                choose(
                    stage_layer_choices(spec),
                    key=lambda layer: layer_macs(space, res, i, j, layer, cin, width),
                )
            )
        stages.append(Stage(width=width, layers=tuple(layers)))
        c_in = width
    return Architecture(resolution=res, stages=tuple(stages))


def largest(space: SpaceShape) -> Architecture:
    return _extreme(space, "max")


def smallest(space: SpaceShape) -> Architecture:
    return _extreme(space, "min")

