"""The training loop: optimizer steps, validation, checkpoints, TensorBoard, resume.

Loosely follows torchvision's ``references/video_classification/train.py``. Every epoch is
reproducible on its own: the Python, NumPy and torch RNGs and the DataLoader's shuffling
generator are re-seeded from ``(seed, epoch)`` at its start (workers are re-created each
epoch and seeded from that generator). Resuming from ``last.pt`` therefore replays an
interrupted epoch exactly, and a killed run resumed with ``--resume`` ends with the same
weights as an uninterrupted one.

Ctrl-C or SIGTERM (:mod:`actcli.engine.interrupt`) stop after the current optimizer step;
``last.pt`` then records how many batches of the epoch were done, and a resumed run trains on
the rest of that epoch's clips (same order; augmentation draws differ from an uninterrupted run).
A non-finite loss stops the run with its step number, or with ``skip_nonfinite`` the step is
skipped and counted.

Gradient accumulation groups an epoch's batches into fixed windows of ``accumulate`` (the last
one shorter when they do not divide). Each window's gradient is the mean over the batches it
trained on (a short window, or one with unreadable or non-finite batches, is divided by its own
count), and every window ends with one scheduler step even when all its batches were skipped, so
the schedule takes its ``steps_per_epoch`` steps each epoch and ends at its final value.

With ``mixup`` / ``cutmix`` each training batch is mixed on the device before the forward pass
(:class:`~actcli.engine.objective.BatchMixer`, torch's RNG, so a replayed epoch mixes alike): the loss
is the cross-entropy against the soft targets and training accuracy counts the dominant label.
Repeated augmentation (``repeated_aug``) lives in the sampler
(:class:`~actcli.engine.distributed.EpochSampler`), so resuming mid-epoch skips exactly the copies
already trained on.

``best.pt`` is the epoch with the best ``monitor``: the highest validation accuracy, ties going
to the lower validation loss (``val_loss``: the lowest loss, ties to the higher accuracy; an exact
tie keeps the earlier epoch). An epoch that validated no clip (every video unreadable) is never best.
Early stopping's patience counts epochs without a better monitored value (a tie-break win is none).
With no validation split at all (an empty ``val.csv``: ``annotate --folds`` or ``--split 85 0 15``)
nothing is validated, every epoch replaces ``best.pt`` (best = last) and early stopping is off.

Under torchrun (:mod:`actcli.engine.distributed`) the model trains wrapped in
DistributedDataParallel, the training loader shards with ``DistributedSampler``, per-epoch
statistics are summed over ranks and validation predictions gathered, so every rank sees the
same metrics and takes the same early-stopping and best-checkpoint decisions.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.tensorboard import SummaryWriter

from actcli.engine.distributed import EpochSampler, all_lists, all_sum, gather_predictions, rank_seed, world
from actcli.engine.evaluate import predict_loader
from actcli.engine.interrupt import StopRequest
from actcli.engine.memory_format import uses_channels_last
from actcli.engine.objective import BatchMixer, objective_correct, objective_loss
from actcli.engine.recipe import autocast, make_optimizer, make_scaler, make_scheduler
from actcli.errors import UserError
from actcli.pipeline import clips_to_device
from actcli.report import EpochRecord, TrainMetrics
from actcli.settings import TrainSettings

SaveFn = Callable[[str, dict[str, torch.Tensor], dict[str, Any]], None]


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of every RNG at the start of ``epoch`` (1-based)."""
    return seed * 1_000_003 + epoch


def seed_epoch(seed: int, epoch: int, loader: DataLoader) -> None:
    """Re-seed Python, NumPy, torch and the loader's generator (worker seeds) for ``epoch``, from this
    rank's seed; a ``DistributedSampler`` gets the epoch (its shuffle is the same on every rank)."""
    value = epoch_seed(rank_seed(seed), epoch)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)
    if loader.generator is not None:
        loader.generator.manual_seed(value)
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


@dataclass
class TrainState:
    """What resuming needs besides module and optimizer states."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps done
    best: float | None = None  # the monitored value of the best epoch, larger is better (accuracy or -loss)
    best_tiebreak: float = -math.inf  # and its tie-break, larger is better (-loss or accuracy)
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    batches_done: int = 0  # of epoch ``epoch + 1``, when a run was stopped mid-epoch, per process
    world_size: int = 1  # processes that trained those batches
    nonfinite_steps: int = 0  # batches skipped for a NaN or infinite loss (skip_nonfinite)


@dataclass
class EpochStats:
    """Mean loss and accuracy over the clips seen in one pass, and unreadable files met."""

    loss: float = 0.0
    accuracy: float = 0.0
    clips: int = 0
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False


class Trainer:
    """Owns the model, optimizer, schedule, scaler and EMA of one training run."""

    def __init__(
        self,
        model: torch.nn.Module,
        train_loader: DataLoader,
        val_loader: DataLoader,
        settings: TrainSettings,
        device: torch.device,
        heads: tuple[int, ...] = (),
        num_classes: int | None = None,
        objective=None,
    ) -> None:
        self.model, self.train_loader, self.val_loader = model, train_loader, val_loader
        self.objective = objective  # loss(output, labels) and correct(output, labels); None: objective_loss/_correct
        self.settings, self.device, self.heads = settings, device, heads
        self.mixer: BatchMixer | None = None  # Mixup / CutMix of each training batch (single-label training)
        if settings.mixup > 0 or settings.cutmix > 0:
            if heads:
                raise UserError("--mixup / --cutmix blend single-label clips; EK100's verb and noun heads train "
                                "on hard labels: drop them")
            if num_classes is None:
                raise ValueError("mixing a batch needs num_classes")
            self.mixer = BatchMixer(num_classes, settings.mixup, settings.cutmix)
        self.steps_per_epoch = max(1, -(-len(train_loader) // settings.accumulate))
        self.optimizer = make_optimizer(model, settings)
        self.scheduler = make_scheduler(self.optimizer, settings, self.steps_per_epoch)
        self.scaler = make_scaler(device, settings.precision)
        self.ema = (
            AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(settings.ema), use_buffers=True)
            if settings.ema else None
        )
        self.state = TrainState()
        self.forward_model: torch.nn.Module = model  # what training steps call: DDP-wrapped under torchrun
        self.channels_last = uses_channels_last(model)  # clips in the memory format of the convolutions
        if world().size > 1:
            self.forward_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                         else None)

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights that are validated and saved: the EMA if enabled, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: modules, optimizer, schedule, scaler, RNGs, counters."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "state": asdict(self.state),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
                "python": list(random.getstate()[1]),
            },
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (RNGs are re-seeded per epoch anyway, see module doc)."""
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.scheduler.load_state_dict(data["scheduler"])
        self.scaler.load_state_dict(data["scaler"])
        if self.ema is not None and data.get("ema") is not None:
            self.ema.load_state_dict(data["ema"])
        self.state = TrainState(**data["state"])
        torch.set_rng_state(data["rng"]["torch"])

    def _optimizer_step(self, batches: int) -> None:
        """Step on the gradients of ``batches`` batches, each backpropagated as ``loss / accumulate``:
        a window of fewer batches is rescaled to their mean."""
        if batches != self.settings.accumulate:
            for param in self.model.parameters():
                if param.grad is not None:
                    param.grad.mul_(self.settings.accumulate / batches)
        if self.settings.clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def _finite(self, value: float, epoch: int, batch: int) -> bool:
        """Whether the batch's loss is finite on every rank (decided together: one all-reduce under
        torchrun, so all ranks skip or step alike). A non-finite loss stops the run (UserError naming
        the step) unless ``skip_nonfinite``, which counts it."""
        if all_sum([float(not math.isfinite(value))])[0] == 0:
            return True
        if not self.settings.skip_nonfinite:
            where = f"({value})" if not math.isfinite(value) else "(on another process)"
            raise UserError(f"the loss is not finite {where} at step {self.state.step + 1} (epoch {epoch}, batch "
                            f"{batch + 1}); training stopped, checkpoints written before are kept. Lower --lr, check "
                            "the inputs, or pass --skip-nonfinite to skip such batches")
        self.state.nonfinite_steps += 1
        return False

    def train_one_epoch(self, on_step: Callable[[float, int], None], stop: StopRequest | None = None,
                        epoch: int = 0) -> EpochStats:
        """One pass over the training loader (the rest of it, for a run resumed mid-epoch);
        ``on_step(loss, clips)`` after each optimizer step; ends early when ``stop`` is requested.

        Windows of ``accumulate`` batches (see the module doc): an optimizer step on the mean gradient
        of the window's readable, finite batches, if any, then one scheduler step."""
        settings, model = self.settings, self.forward_model
        model.train()
        total_loss, correct, seen, skipped = 0.0, 0, 0, []
        pending, pending_loss, pending_clips = 0, 0.0, 0
        done_before, interrupted = self.state.batches_done, False
        self.optimizer.zero_grad(set_to_none=True)
        for index, batch in enumerate(self.train_loader):
            skipped.extend(batch["skipped"])
            last = index == len(self.train_loader) - 1
            # A batch that some rank could not read at all is skipped by every rank, before the forward
            # pass: its collectives (DDP, synchronised batch norm) need every rank.
            if all_sum([float(batch["clips"] is None)])[0] == 0:
                clips = clips_to_device(batch["clips"], self.device, self.channels_last)
                labels = batch["labels"].to(self.device, non_blocking=True)
                if self.mixer is not None:  # soft targets [B, K]; accuracy counts the dominant label
                    clips, labels = self.mixer(clips, labels)
                    clips = clips_to_device(clips, self.device, self.channels_last)  # the memory format again
                with autocast(self.device, settings.precision):
                    logits = model(clips)
                    loss = (self.objective.loss(logits, labels) if self.objective is not None
                            else objective_loss(logits, labels, self.heads, settings.label_smoothing))
                n, value = len(labels), loss.item()  # one device sync per batch
            else:
                n, value = 0, math.nan
            if n and self._finite(value, epoch, done_before + index):
                self.scaler.scale(loss / settings.accumulate).backward()
                total_loss += value * n
                correct += int((self.objective.correct(logits, labels) if self.objective is not None
                                else objective_correct(logits, labels, self.heads)).sum())
                seen += n
                pending += 1
                pending_loss += value * n
                pending_clips += n
            if (index + 1) % settings.accumulate == 0 or last:  # the window's end
                if pending:
                    self._optimizer_step(pending)
                    self.state.step += 1
                    on_step(pending_loss / pending_clips, pending_clips)
                    pending, pending_loss, pending_clips = 0, 0.0, 0
                with warnings.catch_warnings():  # a window skipped whole still advances the schedule, on purpose
                    warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
                    self.scheduler.step()
                self.state.batches_done, self.state.world_size = done_before + index + 1, world().size
                if stop is not None and not last and stop.requested():
                    interrupted = True
                    break
        total_loss, correct, seen = all_sum([total_loss, correct, seen])
        seen = int(seen)
        return EpochStats(total_loss / max(1, seen), correct / max(1, seen), seen, all_lists(skipped), interrupted)

    def validate(self, progress: Progress | None) -> EpochStats:
        """Loss and top-1 accuracy of :attr:`eval_model` on the validation loader."""
        out = predict_loader(self.eval_model, self.val_loader, self.device, progress, description="validate")
        out = gather_predictions(out)  # every rank's shard, so all ranks see the same metrics
        if len(out.labels) == 0:
            return EpochStats(skipped=out.skipped)
        if self.objective is not None:
            loss = float(self.objective.loss(out.logits, out.labels))
            accuracy = float(self.objective.correct(out.logits, out.labels).float().mean())
            return EpochStats(loss, accuracy, len(out.labels), out.skipped)
        loss = float(objective_loss(out.logits, out.labels, self.heads))
        accuracy = float(objective_correct(out.logits, out.labels, self.heads).float().mean())
        return EpochStats(loss, accuracy, len(out.labels), out.skipped)

    def _improved(self, val: EpochStats) -> bool:
        """Whether ``val`` beats the best epoch so far (and becomes it): higher ``(monitor, tie-break)``,
        ``(accuracy, -loss)`` or ``(-loss, accuracy)``; never for an epoch that validated no clip."""
        if val.clips == 0:
            return False
        score = (val.accuracy, -val.loss) if self.settings.monitor == "val_accuracy" else (-val.loss, val.accuracy)
        if self.state.best is None or score > (self.state.best, self.state.best_tiebreak):
            self.state.best, self.state.best_tiebreak = score
            return True
        return False

    def fit(
        self,
        writer: SummaryWriter,
        save: SaveFn,
        seed: int,
        progress: Progress | None = None,
        warn: Callable[[str], None] = print,
        stop: StopRequest | None = None,
    ) -> TrainMetrics:
        """Train from :attr:`state` (epoch 0, or where a resumed run stopped) to the last epoch.

        ``save(kind, weights, extras)`` writes checkpoint ``kind``: "best" (by
        ``settings.monitor``) or "last" (with the full training state for ``--resume``).
        TensorBoard: ``train/loss_step`` per optimizer step; ``train/loss``,
        ``train/accuracy``, ``val/loss``, ``val/accuracy`` and ``lr`` per epoch. A ``stop``
        request ends the epoch after the current step and saves "last" (``interrupted`` in the metrics).
        """
        settings, state = self.settings, self.state
        epoch_task = progress.add_task("epochs", total=settings.epochs, completed=state.epoch) if progress else None
        stopped_early, interrupted = False, None
        validating = len(self.val_loader) > 0  # batches: none when val.csv is empty
        if not validating:
            warn("no validation split (val.csv is empty): best.pt is the last epoch" +
                 ("; --early-stop is off" if settings.early_stop else ""))
        for epoch in range(state.epoch + 1, settings.epochs + 1):
            started = time.perf_counter()
            seed_epoch(seed, epoch, self.train_loader)
            if isinstance(self.train_loader.sampler, EpochSampler):  # resumed mid-epoch: the clips not trained on
                # Ranks shard one permutation (rank r takes r, r + N, ...), so the clips done so far are its first
                # batches_done x batch x N_then entries, whatever the number of processes now.
                done = state.batches_done * (self.train_loader.batch_size or 1) * state.world_size
                self.train_loader.sampler.skip = math.ceil(done / world().size)
            first = self.optimizer.param_groups[0]  # the peak-LR schedule, before any layer-wise decay
            lr = first["lr"] / first.get("lr_scale", 1.0)
            batch_task = progress.add_task(f"epoch {epoch}", total=len(self.train_loader)) if progress else None
            clock = [time.perf_counter()]

            def on_step(loss: float, clips: int, batch_task=batch_task, epoch=epoch, clock=clock) -> None:
                writer.add_scalar("train/loss_step", loss, state.step)
                if progress is not None and batch_task is not None:
                    rate = clips / max(1e-9, time.perf_counter() - clock[0])
                    progress.update(batch_task, advance=settings.accumulate,
                                    description=f"epoch {epoch} loss {loss:.3f} {rate:.1f} clips/s")
                clock[0] = time.perf_counter()

            stats = self.train_one_epoch(on_step, stop, epoch)
            if stats.interrupted:
                interrupted = stop.signal_name or "stop"
                save("last", self.eval_model.state_dict(), {"epoch": state.epoch, "interrupted": interrupted,
                                                            "training": self.state_dict()})
                writer.flush()
                break
            state.batches_done = 0
            val = self.validate(progress) if validating else EpochStats(loss=math.nan, accuracy=math.nan)
            for path in stats.skipped + val.skipped:
                if path not in state.skipped:
                    warn(f"skipped unreadable video {path}")
                    state.skipped.append(path)
            if val.clips == 0 and validating:
                warn(f"epoch {epoch}: no validation clip could be read, so this epoch cannot become best.pt")
            if progress is not None and batch_task is not None:
                progress.remove_task(batch_task)
            record = EpochRecord(epoch=epoch, train_loss=stats.loss, train_accuracy=stats.accuracy,
                                 val_loss=val.loss if validating else None,
                                 val_accuracy=val.accuracy if validating else None, lr=lr,
                                 seconds=time.perf_counter() - started)
            state.history.append(record.model_dump())
            state.seconds += record.seconds
            state.epoch = epoch
            extras = {"epoch": epoch, "val_accuracy": record.val_accuracy, "val_loss": record.val_loss}
            before = state.best
            if not validating or self._improved(val):  # nothing to compare: the latest weights are the best known
                state.best_epoch = epoch
                save("best", self.eval_model.state_dict(), extras)
            # Patience counts epochs without a better monitored value (a tie won on the tie-break is none).
            better = state.best is not None and (before is None or state.best > before)
            state.bad_epochs = 0 if better else state.bad_epochs + 1
            stopped_early = bool(validating and settings.early_stop and state.bad_epochs >= settings.early_stop)
            if stop is not None and epoch < settings.epochs and stop.requested():  # arrived during validation
                interrupted = stop.signal_name or "stop"
                extras["interrupted"] = interrupted
            save("last", self.eval_model.state_dict(), {**extras, "training": self.state_dict()})
            scalars = [("train/loss", stats.loss), ("train/accuracy", stats.accuracy), ("lr", lr)]
            if validating:
                scalars += [("val/loss", val.loss), ("val/accuracy", val.accuracy)]
            for name, value in scalars:
                writer.add_scalar(name, value, epoch)
            writer.flush()
            if progress is not None and epoch_task is not None:
                done = f"val acc {val.accuracy:.3f}" if validating else f"train acc {stats.accuracy:.3f}"
                progress.update(epoch_task, advance=1, description=f"epochs ({done})")
            if stopped_early:
                warn(f"early stop: {settings.monitor} did not improve for {settings.early_stop} epochs")
                break
            if interrupted:
                break
        best = next((r for r in state.history if r["epoch"] == state.best_epoch), None)
        return TrainMetrics(
            epochs=state.epoch, best_epoch=state.best_epoch,
            best_val_accuracy=best["val_accuracy"] if best else None,
            skipped_clips=len(state.skipped), skipped_files=list(state.skipped), seconds=state.seconds,
            history=[EpochRecord(**r) for r in state.history], stopped_early=stopped_early,
            interrupted=interrupted, nonfinite_steps=state.nonfinite_steps,
            batches_done=state.batches_done if interrupted else 0,
        )
