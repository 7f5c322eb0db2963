"""Paired forget/retain batches with a deterministic, resumable, shardable order.

Each epoch iterates the forget set once in a permutation drawn from ``(seed, epoch)``; every
forget batch is paired with a retain batch drawn from a seeded stream of retain permutations.
Both index streams are pure functions of ``(seed, epoch, rank, world_size)``, so a resumed run
re-creates the same order and skips the batches it already consumed, and every rank of a
distributed run gets a disjoint shard with the same number of batches (so the all-reduce of the
dual step never waits on a rank that ran out of data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["PairedData"]


def _default_collate(examples: list[Any]) -> Any:
    return torch.utils.data.default_collate(examples)


@dataclass
class PairedData:
    """The data of an unlearning run.

    Attributes:
        forget: the forget set D_f (any map-style dataset).
        retain: the retain set D_r.
        batch_size: forget examples per micro-batch and process.
        retain_batch_size: retain examples per micro-batch (default: ``batch_size``).
        collate_fn: turns a list of examples into a batch (default: torch's default collate).
        retain_collate_fn: same for the retain set (default: ``collate_fn``).
        shuffle: draw a fresh forget permutation each epoch (retain is always drawn at random).
        seed: the seed of both index streams.
    """

    forget: Dataset
    retain: Dataset
    batch_size: int = 8
    retain_batch_size: int | None = None
    collate_fn: Callable[[list[Any]], Any] | None = None
    retain_collate_fn: Callable[[list[Any]], Any] | None = None
    shuffle: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("forget", "retain"):
            size = len(getattr(self, name))  # type: ignore[arg-type]
            if size == 0:
                raise ValueError(
                    f"the {name} set is empty; unlearning needs at least one {name} example "
                    f"(check the split name and any filtering)"
                )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer ≥ 1, got {self.batch_size!r}")
        if self.retain_batch_size is not None and self.retain_batch_size < 1:
            raise ValueError(f"retain_batch_size must be ≥ 1, got {self.retain_batch_size!r}")

    @property
    def _retain_bs(self) -> int:
        return self.retain_batch_size or self.batch_size

    def batches_per_epoch(self, world_size: int = 1) -> int:
        """Micro-batches per epoch on every rank (the forget set padded to a multiple of ranks)."""
        per_rank = math.ceil(len(self.forget) / world_size)  # type: ignore[arg-type]
        return math.ceil(per_rank / self.batch_size)

    def _forget_indices(self, epoch: int, rank: int, world_size: int) -> list[int]:
        n = len(self.forget)  # type: ignore[arg-type]
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        total = math.ceil(n / world_size) * world_size
        order = order + order[: total - n]  # wrap around so every rank has as many examples
        return order[rank::world_size]

    def _retain_indices(self, epoch: int, rank: int, world_size: int, count: int) -> list[int]:
        n = len(self.retain)  # type: ignore[arg-type]
        needed = count * world_size
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + 7_919 * (epoch + 1))
        stream: list[int] = []
        while len(stream) < needed:
            stream.extend(torch.randperm(n, generator=generator).tolist())
        return stream[:needed][rank::world_size]

    def epoch_index_batches(
        self, epoch: int, rank: int = 0, world_size: int = 1
    ) -> list[tuple[list[int], list[int]]]:
        """``[(forget indices, retain indices)]`` of one epoch on one rank."""
        forget = self._forget_indices(epoch, rank, world_size)
        batches = [forget[i : i + self.batch_size] for i in range(0, len(forget), self.batch_size)]
        retain = self._retain_indices(epoch, rank, world_size, len(batches) * self._retain_bs)
        rb = self._retain_bs
        return [(fb, retain[i * rb : (i + 1) * rb]) for i, fb in enumerate(batches)]

    def iter_epoch(
        self, epoch: int, rank: int = 0, world_size: int = 1, start: int = 0
    ) -> Iterator[tuple[Any, Any]]:
        """Collated ``(forget_batch, retain_batch)`` pairs, skipping the first ``start``."""
        collate = self.collate_fn or _default_collate
        retain_collate = self.retain_collate_fn or collate
        for forget_idx, retain_idx in self.epoch_index_batches(epoch, rank, world_size)[start:]:
            yield (
                collate(_take(self.forget, forget_idx)),
                retain_collate(_take(self.retain, retain_idx)),
            )


def _take(dataset: Dataset, indices: Sequence[int]) -> list[Any]:
    return [dataset[i] for i in indices]
