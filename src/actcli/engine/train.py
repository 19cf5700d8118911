"""The training loop: epochs of SGD/AdamW steps, validation, checkpoints, TensorBoard.

Loosely follows torchvision's ``references/video_classification/train.py``: one function
per epoch, evaluation after each epoch, ``best.pt`` kept by validation accuracy (ties go
to the lower validation loss) and ``last.pt`` rewritten every epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from actcli.engine.evaluate import predict_loader
from actcli.pipeline import clips_to_device
from actcli.report import EpochRecord, TrainMetrics
from actcli.settings import TrainSettings


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """SGD (momentum 0.9, Nesterov) or AdamW over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=settings.lr, momentum=0.9, nesterov=True, weight_decay=settings.weight_decay
        )
    return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int):
    """Learning rate rising linearly for ``warmup_steps``, then cosine decay to 0 at the end."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class EpochStats:
    """Mean loss and accuracy over the clips seen in one pass, and unreadable files met."""

    loss: float = 0.0
    accuracy: float = 0.0
    clips: int = 0
    skipped: list[str] = field(default_factory=list)


def train_one_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    on_step: Callable[[float, int], None],
) -> EpochStats:
    """One pass over ``loader``; ``on_step(loss, clips)`` is called after every optimizer step."""
    model.train()
    total_loss, correct, seen, skipped = 0.0, 0, 0, []
    for batch in loader:
        skipped.extend(batch["skipped"])
        if batch["clips"] is None:
            continue
        clips = clips_to_device(batch["clips"], device)
        labels = batch["labels"].to(device)
        logits = model(clips)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        n = len(labels)
        total_loss += loss.item() * n
        correct += int((logits.argmax(dim=1) == labels).sum())
        seen += n
        on_step(loss.item(), n)
    return EpochStats(total_loss / max(1, seen), correct / max(1, seen), seen, skipped)


def validate(model: torch.nn.Module, loader: DataLoader, device: torch.device, progress: Progress | None) -> EpochStats:
    """Loss and top-1 accuracy on a validation loader."""
    out = predict_loader(model, loader, device, progress, description="validate")
    if len(out.labels) == 0:
        return EpochStats(skipped=out.skipped)
    loss = float(F.cross_entropy(out.logits, out.labels))
    accuracy = float((out.logits.argmax(dim=1) == out.labels).float().mean())
    return EpochStats(loss, accuracy, len(out.labels), out.skipped)


def fit(
    model: torch.nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    settings: TrainSettings,
    device: torch.device,
    writer: SummaryWriter,
    save: Callable[[str, int, dict], None],
    progress: Progress | None = None,
    warn: Callable[[str], None] = print,
) -> TrainMetrics:
    """Train for ``settings.epochs`` epochs with validation after each.

    ``save(kind, epoch, extras)`` writes checkpoint ``kind`` ("best" or "last").
    TensorBoard scalars: ``train/loss_step`` per step; ``train/loss``, ``train/accuracy``,
    ``val/loss``, ``val/accuracy`` and ``lr`` per epoch.
    """
    optimizer = make_optimizer(model, settings)
    total_steps = settings.epochs * max(1, len(train_loader))
    scheduler = warmup_cosine(optimizer, total_steps, max(1, round(settings.warmup * total_steps)))
    epoch_task = progress.add_task("epochs", total=settings.epochs) if progress else None
    history: list[EpochRecord] = []
    skipped: list[str] = []
    best: tuple[float, float] | None = None
    best_epoch, step, started = 0, 0, time.perf_counter()

    for epoch in range(1, settings.epochs + 1):
        epoch_start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        batch_task = progress.add_task(f"epoch {epoch}", total=len(train_loader)) if progress else None

        def on_step(loss: float, clips: int, batch_task=batch_task, epoch=epoch) -> None:
            nonlocal step
            step += 1
            writer.add_scalar("train/loss_step", loss, step)
            if progress is not None and batch_task is not None:
                rate = clips / max(1e-9, time.perf_counter() - on_step.last)  # type: ignore[attr-defined]
                progress.update(batch_task, advance=1, description=f"epoch {epoch} loss {loss:.3f} {rate:.1f} clips/s")
            on_step.last = time.perf_counter()  # type: ignore[attr-defined]

        on_step.last = time.perf_counter()  # type: ignore[attr-defined]
        stats = train_one_epoch(model, train_loader, optimizer, scheduler, device, on_step)
        val = validate(model, val_loader, device, progress)
        for path in stats.skipped + val.skipped:
            if path not in skipped:
                warn(f"skipped unreadable video {path}")
                skipped.append(path)
        if progress is not None and batch_task is not None:
            progress.remove_task(batch_task)
        record = EpochRecord(
            epoch=epoch, train_loss=stats.loss, train_accuracy=stats.accuracy, val_loss=val.loss,
            val_accuracy=val.accuracy, lr=lr, seconds=time.perf_counter() - epoch_start,
        )
        history.append(record)
        for name, value in (
            ("train/loss", stats.loss), ("train/accuracy", stats.accuracy),
            ("val/loss", val.loss), ("val/accuracy", val.accuracy), ("lr", lr),
        ):
            writer.add_scalar(name, value, epoch)
        writer.flush()
        extras = {"epoch": epoch, "val_accuracy": val.accuracy, "val_loss": val.loss}
        if best is None or (val.accuracy, -val.loss) > best:
            best, best_epoch = (val.accuracy, -val.loss), epoch
            save("best", epoch, extras)
        save("last", epoch, extras)
        if progress is not None and epoch_task is not None:
            progress.update(
                epoch_task, advance=1,
                description=f"epochs (val acc {val.accuracy:.3f}, best {best[0]:.3f})",
            )
    return TrainMetrics(
        epochs=settings.epochs,
        best_epoch=best_epoch,
        best_val_accuracy=best[0] if best else 0.0,
        skipped_clips=len(skipped),
        skipped_files=skipped,
        seconds=time.perf_counter() - started,
        history=history,
    )
