"""Multi-block masking: which patches the context encoder sees and which ones it must predict.

I-JEPA (Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture", CVPR 2023; official code facebookresearch/ijepa, ``src/masks/multiblock.py``)
hides ``n_targets`` rectangular *target* blocks of an image's patch grid and shows the encoder
one large *context* block with every target patch removed, so the prediction task is semantic
(whole object parts) rather than texture in-painting. Official settings: 4 target blocks of
scale 0.15-0.2 and aspect 0.75-1.5, one context block of scale 0.85-1.0 and aspect 1,
``min_keep`` 10 at 224 px / patch 16, no overlap.

Block shape, from one uniform draw ``r`` per block kind per batch (official
``_sample_block_size``)::

    scale    = scale_lo + r * (scale_hi - scale_lo)
    aspect   = aspect_lo + r * (aspect_hi - aspect_lo)          (context: aspect 1)
    max_keep = int(H * W * scale)
    h, w     = round(sqrt(max_keep * aspect)), round(sqrt(max_keep / aspect))

Block *sizes* are drawn once per batch, block *positions* once per image. Indices are into the
row-major flattened grid (``index = row * W + col``); each row of indices is ascending. Every
context is cut to the shortest context of the batch and every target to the shortest target,
keeping the first k sorted indices (as the official collator does), so the batch stacks.

Deliberate differences from the official code, each a fix of an edge case:

* ``h`` is clamped to ``1..H`` and ``w`` to ``1..W``; the official decrements while ``h >= H``,
  so a full-height (or full-width) block can never occur there.
* A corner is drawn uniformly over all valid positions ``0..H-h`` inclusive; the official
  ``randint(0, H - h)`` never picks the last row/column position.
* ``min_keep`` is the fewest patches a *context* may keep (valid with ``>= min_keep``; the
  official requires ``> min_keep`` of every block, targets included). Targets are whole
  h x w blocks, so they need no such floor. On small grids a larger ``min_keep`` is the knob
  that keeps contexts informative: cutting every context to the batch's shortest makes the
  shortest context the one that counts.
* When the context keeps too few patches, its position is re-drawn (20 tries, as the official);
  then that image's target positions are re-drawn and the context tried again. The official
  instead drops the targets' complement constraints one by one, letting the context overlap
  the targets; here the context NEVER overlaps a target (unless ``allow_overlap=True``). After
  50 such rounds the sizes are declared impossible for the grid (ValueError).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import torch

from .checks import int_at_least

CONTEXT_TRIES = 20  # official timeout before it relaxes a constraint
MAX_ROUNDS = 50  # target re-draws before the sizes are declared impossible
# The keyword arguments of sample_multiblock_masks that describe the blocks.
MASK_ARGUMENTS = (
    "n_targets",
    "target_scale",
    "target_aspect",
    "context_scale",
    "min_keep",
    "allow_overlap",
)

Grid = tuple[int, int]


@dataclass(frozen=True)
class MultiBlockMasks:
    """The masks of one batch.

    ``context``: LongTensor [B, Nc], the patches the context encoder sees.
    ``targets``: LongTensor [B, n_targets, Nt], the patches of each target block.
    ``grid``: (H, W) of the patch grid the indices refer to (row-major).
    """

    context: torch.Tensor
    targets: torch.Tensor
    grid: Grid

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def to(self, device: torch.device | str) -> MultiBlockMasks:
        """A copy with both index tensors on ``device``."""
        return MultiBlockMasks(self.context.to(device), self.targets.to(device), self.grid)

    def context_map(self) -> torch.Tensor:
        """BoolTensor [B, H*W]: True where a patch is in the context."""
        return indices_to_map(self.context, self.num_patches)

    def target_maps(self) -> torch.Tensor:
        """BoolTensor [B, n_targets, H*W]: True where a patch is in that target block."""
        return indices_to_map(self.targets, self.num_patches)


def apply_masks(tokens: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The tokens at patch indices: tokens [B, N, D], idx [B, *S] -> [B, *S, D].

    The one token gather of the workbook (the official I-JEPA code's ``apply_masks``,
    ``src/masks/utils.py``): the encoder keeps its context patches with it, the predictor
    places its position embeddings, the targets and the pixel auxiliary pick their blocks.
    """
    flat = idx.reshape(idx.shape[0], -1, 1).expand(-1, -1, tokens.shape[-1])
    return torch.gather(tokens, 1, flat).reshape(*idx.shape, tokens.shape[-1])


def indices_to_map(indices: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Scatter patch indices [..., K] into a boolean map [..., num_patches]."""
    patch_map = torch.zeros(
        *indices.shape[:-1], num_patches, dtype=torch.bool, device=indices.device
    )
    return patch_map.scatter_(-1, indices, True)


def indices_cut_to_shortest(maps: torch.Tensor) -> torch.Tensor:
    """Boolean maps [..., N] -> LongTensor [..., k] of each map's first k True indices, ascending.

    k is the smallest number of True entries over all maps (official batching rule: every mask
    of a kind is cut to the shortest one of the batch, keeping its first k sorted indices).
    """
    if maps.dtype != torch.bool:
        raise TypeError(f"maps must be a bool tensor, got dtype {maps.dtype}")
    k = int(maps.sum(-1).min()) if maps.numel() else 0
    # a stable sort of "not selected" puts the selected indices first, still in ascending order
    order = torch.sort((~maps).to(torch.uint8), dim=-1, stable=True).indices
    return order[..., :k].contiguous()


# ---------------------------------------------------------------- argument checking


def _as_grid(grid: Any) -> Grid:
    if isinstance(grid, Integral) and not isinstance(grid, bool):
        grid = (grid, grid)
    if not isinstance(grid, Sequence) or len(grid) != 2:
        raise TypeError(f"grid must be an int or a pair (H, W) of ints >= 1, got {grid!r}")
    return int_at_least("grid height", grid[0], 1), int_at_least("grid width", grid[1], 1)


def _as_range(name: str, value: Any, *, scale: bool) -> tuple[float, float]:
    accepted = "0 < low <= high <= 1" if scale else "0 < low <= high (finite)"
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or not all(isinstance(v, Real) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(
            f"{name} must be a pair (low, high) of numbers with {accepted}, got {value!r}"
        )
    low, high = float(value[0]), float(value[1])
    in_range = 0 < low <= high and (high <= 1 if scale else math.isfinite(high))
    if not in_range:  # also rejects NaN
        raise ValueError(f"{name} must be a pair (low, high) with {accepted}, got {value!r}")
    return low, high


def _check_generator(generator: Any) -> torch.Generator:
    if generator is None:
        # seeded from torch's global RNG, so torch.manual_seed still makes masks reproducible
        seed = int(torch.randint(0, 2**62, (1,)).item())
        return torch.Generator().manual_seed(seed)
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got device {generator.device}")
    return generator


def _check_multiblock_args(
    grid: Any,
    batch_size: Any,
    n_targets: Any,
    target_scale: Any,
    target_aspect: Any,
    context_scale: Any,
    min_keep: Any,
    allow_overlap: Any,
) -> dict[str, Any]:
    height, width = _as_grid(grid)
    args = {
        "grid": (height, width),
        "batch_size": int_at_least("batch_size", batch_size, 1),
        "n_targets": int_at_least("n_targets", n_targets, 1),
        "target_scale": _as_range("target_scale", target_scale, scale=True),
        "target_aspect": _as_range("target_aspect", target_aspect, scale=False),
        "context_scale": _as_range("context_scale", context_scale, scale=True),
        "min_keep": int_at_least("min_keep", min_keep, 1),
    }
    if not isinstance(allow_overlap, bool):
        raise TypeError(f"allow_overlap must be a bool, got {allow_overlap!r}")
    args["allow_overlap"] = allow_overlap
    num_patches, min_keep = height * width, args["min_keep"]
    if num_patches < min_keep:
        raise ValueError(
            f"min_keep={min_keep} is more than the {height}x{width} grid's "
            f"{num_patches} patches; lower min_keep or use a finer grid"
        )
    smallest = int(num_patches * args["context_scale"][0])
    if smallest < min_keep:
        raise ValueError(
            f"min_keep={min_keep}: the smallest block of context_scale="
            f"{args['context_scale']} on the {height}x{width} grid holds only "
            f"int({num_patches} * {args['context_scale'][0]}) = {smallest} patches; "
            f"lower min_keep or raise context_scale"
        )
    return args


# ---------------------------------------------------------------- sampling


def _block_size(
    r: float, scale: tuple[float, float], aspect: tuple[float, float], grid: Grid
) -> tuple[int, int]:
    """Official block-size formula; h, w clamped to 1..H and 1..W (see module docstring)."""
    height, width = grid
    max_keep = int(height * width * (scale[0] + r * (scale[1] - scale[0])))
    ratio = aspect[0] + r * (aspect[1] - aspect[0])
    h = round(math.sqrt(max_keep * ratio))
    w = round(math.sqrt(max_keep / ratio))
    return min(max(h, 1), height), min(max(w, 1), width)


def _random_blocks(
    shape: tuple[int, ...], size: tuple[int, int], grid: Grid, generator: torch.Generator
) -> torch.Tensor:
    """BoolTensor [*shape, H, W] of h x w blocks with corners uniform over all valid positions."""
    (h, w), (height, width) = size, grid
    tops = torch.randint(0, height - h + 1, (*shape, 1), generator=generator)
    lefts = torch.randint(0, width - w + 1, (*shape, 1), generator=generator)
    rows, cols = torch.arange(height), torch.arange(width)
    in_rows = (rows >= tops) & (rows < tops + h)
    in_cols = (cols >= lefts) & (cols < lefts + w)
    return in_rows[..., :, None] & in_cols[..., None, :]


def sample_multiblock_masks(
    grid: int | tuple[int, int],
    batch_size: int,
    *,
    n_targets: int = 4,
    target_scale: tuple[float, float] = (0.15, 0.2),
    target_aspect: tuple[float, float] = (0.75, 1.5),
    context_scale: tuple[float, float] = (0.85, 1.0),
    min_keep: int = 4,
    allow_overlap: bool = False,
    generator: torch.Generator | None = None,
) -> MultiBlockMasks:
    """I-JEPA multi-block masks for a batch (see the module docstring for the formulas).

    Per batch: one target block size (h, w) and one context block size (aspect 1). Per image:
    ``n_targets`` target blocks at uniform positions (they may overlap each other, as in the
    official code) and one context block minus every target patch (unless ``allow_overlap``).

    Guarantees: every context holds ``>= min_keep`` patches (the official: ``> min_keep``) and
    none of a target's patches (unless ``allow_overlap``); every target is a full h x w
    rectangle. A crowded image first re-draws its context position (20 tries), then its target
    positions; after 50 rounds ValueError says the sizes are impossible for the grid. All
    randomness comes from ``generator`` (None: a fresh one seeded from torch's global RNG).
    """
    args = _check_multiblock_args(
        grid,
        batch_size,
        n_targets,
        target_scale,
        target_aspect,
        context_scale,
        min_keep,
        allow_overlap,
    )
    generator = _check_generator(generator)
    grid = args["grid"]
    height, width = grid

    r_target, r_context = torch.rand(2, generator=generator).tolist()
    target_size = _block_size(r_target, args["target_scale"], args["target_aspect"], grid)
    context_size = _block_size(r_context, args["context_scale"], (1.0, 1.0), grid)

    targets = _random_blocks((batch_size, n_targets), target_size, grid, generator)
    context = torch.zeros(batch_size, height, width, dtype=torch.bool)
    pending = torch.arange(batch_size)  # images still without a valid context
    for round_ in range(MAX_ROUNDS):
        if round_ > 0:  # relax: move this image's targets, keep the no-overlap guarantee
            targets[pending] = _random_blocks(
                (len(pending), n_targets), target_size, grid, generator
            )
        allowed = (
            torch.ones(len(pending), height, width, dtype=torch.bool)
            if allow_overlap
            else ~targets[pending].any(dim=1)
        )
        for _ in range(CONTEXT_TRIES):
            candidate = _random_blocks((len(pending),), context_size, grid, generator) & allowed
            valid = candidate.sum(dim=(-2, -1)) >= min_keep
            context[pending[valid]] = candidate[valid]
            pending, allowed = pending[~valid], allowed[~valid]
            if len(pending) == 0:
                return MultiBlockMasks(
                    context=indices_cut_to_shortest(context.flatten(1)),
                    targets=indices_cut_to_shortest(targets.flatten(2)),
                    grid=grid,
                )
    raise ValueError(
        f"no context with >= min_keep={min_keep} patches outside the targets after "
        f"{MAX_ROUNDS} rounds of {CONTEXT_TRIES} tries: target_scale={args['target_scale']} "
        f"(blocks {target_size[0]}x{target_size[1]}) x n_targets={n_targets}, "
        f"context_scale={args['context_scale']} (block {context_size[0]}x{context_size[1]}) "
        f"and min_keep={min_keep} are impossible for the {height}x{width} grid; lower "
        f"target_scale, n_targets or min_keep, raise context_scale, or set allow_overlap=True"
    )


def sample_random_masks(
    grid: int | tuple[int, int],
    batch_size: int,
    *,
    n_targets: int = 4,
    target_scale: tuple[float, float] = (0.15, 0.2),
    context_scale: tuple[float, float] = (0.85, 1.0),
    generator: torch.Generator | None = None,
) -> MultiBlockMasks:
    """Random-patch masks with the shapes of :func:`sample_multiblock_masks`, for contrast.

    Per batch: r_t, r_c ~ U(0, 1); every target holds ``int(H*W*scale_t)`` patches chosen
    uniformly at random (scale_t from target_scale, like a block's scale); targets may overlap
    each other. Per image, the context is ``max(1, int(n_free * scale_c))`` patches drawn
    uniformly from the ``n_free`` patches in no target, so it keeps about the share of the
    free patches that a context block of scale_c would. Contexts are cut to the shortest.
    A context can never be empty: an image whose targets cover the grid re-draws them
    (50 rounds, then ValueError).
    """
    args = _check_multiblock_args(
        grid, batch_size, n_targets, target_scale, (1.0, 1.0), context_scale, 1, False
    )
    generator = _check_generator(generator)
    grid = args["grid"]
    num_patches = grid[0] * grid[1]
    r_target, r_context = torch.rand(2, generator=generator).tolist()
    lo, hi = args["target_scale"]
    target_count = int(num_patches * (lo + r_target * (hi - lo)))  # >= 1, checked above
    lo, hi = args["context_scale"]
    context_share = lo + r_context * (hi - lo)

    def random_subsets(shape: tuple[int, ...]) -> torch.Tensor:
        ranks = torch.rand(*shape, num_patches, generator=generator).argsort(-1).argsort(-1)
        return ranks < target_count

    targets = random_subsets((batch_size, n_targets))
    for _ in range(MAX_ROUNDS):
        covered = targets.any(dim=1).all(dim=-1)
        if not covered.any():
            break
        targets[covered] = random_subsets((int(covered.sum()), n_targets))
    else:
        raise ValueError(
            f"target_scale={args['target_scale']} x n_targets={n_targets} covers "
            f"the whole {grid[0]}x{grid[1]} grid; lower target_scale or n_targets"
        )

    free = ~targets.any(dim=1)
    context_count = (free.sum(-1) * context_share).long().clamp(min=1)
    # random order among free patches (targets pushed to the end), keep the first context_count
    scores = torch.rand(batch_size, num_patches, generator=generator) + (~free).float() * 2
    ranks = scores.argsort(-1).argsort(-1)
    context = ranks < context_count[:, None]
    return MultiBlockMasks(
        context=indices_cut_to_shortest(context),
        targets=indices_cut_to_shortest(targets),
        grid=grid,
    )
