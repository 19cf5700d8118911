"""Running on several processes with ``torchrun``: process group, samplers, gathering, the main rank.

``actcli train`` and ``actcli test`` read torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and, when ``WORLD_SIZE > 1``, join a process
group: NCCL when every process has a GPU, gloo on CPU. Then:

* training shards each epoch with ``DistributedSampler`` (same seed on every rank,
  ``set_epoch`` per epoch), so a global batch is ``world_size x --batch-size`` clips; with
  ``--repeated-aug N`` the N copies of a clip go to different ranks (:class:`EpochSampler`);
* evaluation shards with :class:`ShardSampler` (``indices[rank::world_size]``, no padding) and
  :func:`gather_predictions` collects every rank's predictions in index order, so each sample
  counts exactly once whatever the dataset size;
* only rank 0 (:func:`is_main`) writes logs, checkpoints, TensorBoard and reports and shows
  progress; the others compute.

Nothing here is hand-rolled that PyTorch ships: the launcher is torchrun, the model wrapper
DistributedDataParallel; only batch-norm synchronisation on CPU is actcli's own
(:mod:`actcli.engine.sync_batchnorm`, because ``torch.nn.SyncBatchNorm`` runs on GPUs only).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler

from actcli.data.datasets import make_loader
from actcli.engine.evaluate import Predictions, predict_loader


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0


_world = World()


def world() -> World:
    """This process's :class:`World` (one process unless :func:`start` joined a group)."""
    return _world


def is_main() -> bool:
    """Whether this process writes files and shows progress (rank 0)."""
    return _world.rank == 0


def launched_by_torchrun() -> bool:
    """Whether torchrun (or srun with the same variables) started several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (no-op for one process); returns this rank's device.

    NCCL with one GPU per process (``cuda:LOCAL_RANK``) when ``device`` is CUDA, gloo otherwise.
    """
    global _world
    if not launched_by_torchrun() or dist.is_initialized():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            from actcli.errors import UserError

            raise UserError(f"{os.environ.get('LOCAL_WORLD_SIZE', local_rank + 1)} processes per machine need as many "
                            f"GPUs; this machine has {torch.cuda.device_count()}. Lower --nproc or use --device cpu")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    # Channels-last convolution weights (actcli's CPU layout) make DDP copy their gradients into its
    # contiguous buckets; the copy is small next to the convolutions, the warning says nothing actionable.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    _world = World(dist.get_rank(), dist.get_world_size(), local_rank)
    return device


def stop(barrier: bool = True) -> None:
    """Leave the process group; after a barrier (so no rank exits while others still talk)
    unless this rank failed, when waiting for the others could hang."""
    global _world
    if dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()
    _world = World()


def rank_seed(seed: int) -> int:
    """This rank's seed for augmentation and dropout, derived from the run's ``seed`` (rank 0: ``seed``)."""
    return seed + 1_000_003 * _world.rank


def broadcast(value: object) -> object:
    """Rank 0's ``value`` on every rank (e.g. the run folder it created)."""
    if _world.size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over ranks (float64)."""
    if _world.size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_lists(values: list) -> list:
    """The concatenation of every rank's ``values``, in rank order."""
    if _world.size == 1:
        return values
    parts: list[list] = [[] for _ in range(_world.size)]
    dist.all_gather_object(parts, values)
    return [v for part in parts for v in part]


class ShardSampler(Sampler[int]):
    """Evaluation order for this rank: ``rank, rank + size, ...`` (no padding, no sample twice)."""

    def __init__(self, dataset: Dataset) -> None:
        self.length = len(dataset)  # type: ignore[arg-type]
        self.rank, self.size = _world.rank, _world.size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.size))


class EpochSampler(DistributedSampler):
    """``DistributedSampler`` that can leave out the first :attr:`skip` indices of this rank's
    epoch, so a run interrupted mid-epoch resumes with the clips it had not trained on yet.

    With ``repeats`` N > 1 (repeated augmentation, DeiT's ``RASampler`` in
    github.com/facebookresearch/deit ``samplers.py``; VideoMAE's ``--num_sample``) every index appears N
    times per epoch: the epoch's permutation with each index repeated N times in a row
    (``[a, a, b, b, ...]``), padded like ``DistributedSampler`` to a multiple of the processes, and
    rank ``r`` takes positions ``r, r + size, ...``, so the N copies of a clip go to N different
    processes when there are at least N (one process: they are neighbours in a batch), each
    augmented on its own. Unlike DeiT's, the epoch is not cut back to the dataset's length: it is N
    times as long. The order of the full list does not depend on the number of processes, which is
    what the trainer's skip-on-resume relies on (:meth:`actcli.engine.train.Trainer.fit`).
    """

    skip = 0

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, shuffle: bool = True, seed: int = 0,
                 repeats: int = 1) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.repeats = repeats
        if repeats > 1:
            self.num_samples = math.ceil(len(dataset) * repeats / num_replicas)  # type: ignore[arg-type]
            self.total_size = self.num_samples * num_replicas

    def shard(self) -> list[int]:
        """This rank's indices for the epoch (``set_epoch``), before :attr:`skip`."""
        if self.repeats == 1:
            return list(super().__iter__())
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.dataset), generator=generator).tolist()  # type: ignore[arg-type]
        else:
            order = list(range(len(self.dataset)))  # type: ignore[arg-type]
        indices = [i for i in order for _ in range(self.repeats)]
        padding = self.total_size - len(indices)
        if padding > 0:
            indices += (indices * math.ceil(padding / len(indices)))[:padding]
        return indices[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard()[self.skip:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


def train_sampler(dataset: Dataset, seed: int, repeats: int = 1) -> EpochSampler:
    """Shuffled shards of ``dataset``, the same permutation on every rank for a given epoch
    (call ``set_epoch``); with one process, the whole dataset in that order; ``repeats`` > 1: every
    index that many times per epoch (repeated augmentation, see :class:`EpochSampler`)."""
    return EpochSampler(dataset, num_replicas=_world.size, rank=_world.rank, shuffle=True, seed=seed, repeats=repeats)


def gather_predictions(out: Predictions) -> Predictions:
    """Every rank's predictions on every rank, sorted by sample index (one process: unchanged)."""
    if _world.size == 1:
        return out
    parts: list[Predictions | None] = [None] * _world.size
    dist.all_gather_object(parts, out)
    filled = [p for p in parts if p is not None and len(p.labels)]
    skipped = [s for p in parts if p is not None for s in p.skipped]
    if not filled:
        return Predictions(out.logits[:0], out.labels[:0], out.indices[:0], skipped)
    indices = torch.cat([p.indices for p in filled])
    order = indices.argsort()
    views = [p.view_logits for p in filled]
    return Predictions(torch.cat([p.logits for p in filled])[order], torch.cat([p.labels for p in filled])[order],
                       indices[order], skipped,
                       view_logits=torch.cat(views)[order] if all(v is not None for v in views) else None)


def predict_dataset(model: torch.nn.Module, dataset: Dataset, batch_size: int, workers: int, device: torch.device,
                    progress=None, description: str = "evaluate") -> Predictions:
    """Predictions for every sample of ``dataset``: each rank predicts its shard, all ranks get all
    (each sample exactly once, in index order); one process predicts everything."""
    sampler = ShardSampler(dataset) if _world.size > 1 else None
    loader = make_loader(dataset, batch_size, workers, False, pin_memory=device.type == "cuda", sampler=sampler)
    return gather_predictions(predict_loader(model, loader, device, progress, description))
