"""DataModule: packed token windows -> objective transform -> batches, in a data order that is a
pure function of (seed, sample number), so a resumed run continues exactly where it stopped and
data parallel runs see the same global batches as a single process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from santa import registry
from santa.data.shards import PackedDataset, TokenShard
from santa.data.tokenizer import load_tokenizer
from santa.errors import SantaError


def permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """An endless stream of micro-batches of (sample number, window index).

    Sample numbers count sequences consumed by the whole job; optimizer step ``s`` consumes
    numbers ``[s*G, (s+1)*G)`` with ``G`` the global batch. Within a step, micro-batch ``a`` of
    rank ``r`` takes the slice ``(a*world + r)*micro`` of it, so any world size and accumulation
    that multiply to the same ``G`` train on the same sequences. Each pass over the data is a new
    permutation. Endless on purpose: Lightning stops at ``max_steps``.
    """

    def __init__(
        self, n: int, *, seed: int, start_step: int, micro: int, accumulate: int, rank: int, world: int
    ) -> None:
        self.n, self.seed, self.start_step = n, seed, start_step
        self.micro, self.accumulate, self.rank, self.world = micro, accumulate, rank, world

    @property
    def global_batch(self) -> int:
        return self.micro * self.accumulate * self.world

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        perm_epoch, perm = -1, np.empty(0, dtype=np.int64)
        while True:
            base = step * self.global_batch
            for a in range(self.accumulate):
                first = base + (a * self.world + self.rank) * self.micro
                batch = []
                for number in range(first, first + self.micro):
                    epoch = number // self.n
                    if epoch != perm_epoch:
                        perm_epoch, perm = epoch, permutation(self.n, self.seed, epoch)
                    batch.append((number, int(perm[number % self.n])))
                yield batch
            step += 1


class ObjectiveDataset(torch.utils.data.Dataset[dict[str, np.ndarray]]):
    """Window ``index`` transformed by the objective with an RNG keyed by the sample number, so
    FIM's draws do not depend on worker count, world size or resumption."""

    def __init__(self, windows: PackedDataset, objective: Any, seed: int, stream: int) -> None:
        self.windows, self.objective, self.seed, self.stream = windows, objective, seed, stream

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, np.ndarray]:
        number, index = key if isinstance(key, tuple) else (key, key)
        rng = np.random.default_rng([self.seed, self.stream, number])
        return self.objective(self.windows[index], rng)


def collate(samples: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([s[k] for s in samples])) for k in samples[0]}


class BatchSizeError(SantaError, ValueError):
    """The global batch cannot be split into micro-batches over the devices."""


@dataclass
class DataFiles:
    """What the data stages produced: token shards and the tokenizer that made them."""

    train: list[str]
    val: list[str]
    tokenizer_dir: str
    pipeline_dir: str | None = None  # the data pipeline's output (report.json) these were made from


class SantaDataModule(pl.LightningDataModule):
    def __init__(
        self,
        files: DataFiles,
        *,
        objective: str,
        objective_params: dict[str, Any],
        seq_len: int,
        micro_batch_size: int,
        global_batch_size: int,
        val_windows: int,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.files = files
        self.objective_name, self.objective_params = objective, dict(objective_params)
        # A misspelt objective.params key fails here, before the trainer starts, not at setup().
        registry.resolve("santa.objectives", objective, self.objective_params)
        self.seq_len, self.micro, self.global_batch = seq_len, micro_batch_size, global_batch_size
        self.val_windows, self.num_workers, self.seed = val_windows, num_workers, seed
        self.train_windows: PackedDataset | None = None
        self.val_set: PackedDataset | None = None

    def accumulation(self, world: int) -> int:
        per_step = self.micro * world
        if self.global_batch % per_step:
            raise BatchSizeError(
                f"data.global_batch_size={self.global_batch} is not a multiple of "
                f"data.micro_batch_size x devices = {self.micro} x {world}; choose sizes that divide"
            )
        return self.global_batch // per_step

    def setup(self, stage: str | None = None) -> None:
        if self.train_windows is not None:
            return
        tokenizer = load_tokenizer(self.files.tokenizer_dir)
        self.objective = registry.build(
            "santa.objectives", self.objective_name, self.objective_params, tokenizer=tokenizer
        )
        self.train_windows = PackedDataset([TokenShard(p) for p in self.files.train], self.seq_len)
        self.val_set = PackedDataset([TokenShard(p) for p in self.files.val], self.seq_len)

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader[dict[str, np.ndarray]]:
        assert self.train_windows is not None, "setup() first"
        rank, world = self._world()
        start = self.trainer.global_step if self.trainer is not None else 0
        sampler = StepBatchSampler(
            len(self.train_windows),
            seed=self.seed,
            start_step=start,
            micro=self.micro,
            accumulate=self.accumulation(world),
            rank=rank,
            world=world,
        )
        return self._loader(ObjectiveDataset(self.train_windows, self.objective, self.seed, 0), sampler)

    def val_dataloader(self) -> DataLoader[dict[str, np.ndarray]]:
        assert self.val_set is not None, "setup() first"
        rank, world = self._world()
        n = min(self.val_windows, len(self.val_set))
        # Evenly spaced windows cover the whole held-out set; each rank scores its share.
        picks = np.linspace(0, len(self.val_set) - 1, n).astype(np.int64) if n else np.empty(0, np.int64)
        mine = [(int(i), int(i)) for i in picks[rank::world]]
        batches = [mine[i : i + self.micro] for i in range(0, len(mine), self.micro)]
        return self._loader(ObjectiveDataset(self.val_set, self.objective, self.seed, 1), batches)

    def _loader(
        self, dataset: torch.utils.data.Dataset[dict[str, np.ndarray]], batch_sampler: Any
    ) -> DataLoader[dict[str, np.ndarray]]:
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=False,
            # Its own generator: creating iterators must not draw from the global RNG that
            # dropout uses, or a resumed run would diverge from an uninterrupted one.
            generator=torch.Generator().manual_seed(self.seed),
        )
