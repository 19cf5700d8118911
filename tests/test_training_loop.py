"""The training loop's edge cases on a real (tiny) network: gradient accumulation windows, the LR
schedule when batches are skipped, and which epoch becomes ``best.pt``."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from actcli.engine.recipe import lr_factor
from actcli.engine.train import EpochStats, Trainer
from actcli.settings import TrainSettings

CPU = torch.device("cpu")
K = 3


class TinyNet(nn.Module):
    """``float [B, 3, T, H, W]`` -> convolution -> global mean -> logits ``[B, K]``. No batch norm and
    no dropout: a batch's gradient depends only on the weights and the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, K)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(clips).relu().mean(dim=(2, 3, 4)))


def batches(n: int, unreadable: set[int] = frozenset(), nonfinite: set[int] = frozenset(),
            seed: int = 0) -> list[dict[str, Any]]:
    """``n`` batches as ``collate_clips`` makes them (2 clips ``[2, 3, 2, 8, 8]`` each); the ones in
    ``unreadable`` have no clip (every video skipped), those in ``nonfinite`` a NaN clip."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        clips = torch.randn(2, 3, 2, 8, 8, generator=generator)
        labels = torch.randint(0, K, (2,), generator=generator)
        if i in nonfinite:
            clips[0] = float("nan")
        readable = i not in unreadable
        out.append({"clips": clips if readable else None, "labels": labels if readable else None,
                    "indices": torch.arange(2 * i, 2 * i + 2), "skipped": [] if readable else [f"v{i}a.mp4"]})
    return out


def loader(items: list[dict[str, Any]]) -> DataLoader:
    return DataLoader(items, batch_size=None, collate_fn=lambda batch: batch)


class Passes:
    """A validation loader whose n-th pass yields ``passes[n]`` (the last one from then on)."""

    def __init__(self, *passes: list[dict[str, Any]]) -> None:
        self.passes, self.count = passes, 0

    def __len__(self) -> int:
        return len(self.passes[0])

    def __iter__(self):
        items = self.passes[min(self.count, len(self.passes) - 1)]
        self.count += 1
        return iter(items)


class NoWriter:
    def add_scalar(self, *args: Any) -> None:
        pass

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(("unreadable", "nonfinite", "windows"), [
    ((), (), [[0, 1, 2], [3, 4, 5], [6]]),  # the epoch's last window holds one batch
    ({4}, (), [[0, 1, 2], [3, 5], [6]]),  # an unreadable batch shrinks its window, windows stay in place
    ((), {1}, [[0, 2], [3, 4, 5], [6]]),  # a NaN batch (skip_nonfinite) too
])
def test_each_accumulation_window_is_the_mean_over_its_own_batches(unreadable, nonfinite, windows):
    items = batches(7, set(unreadable), set(nonfinite))
    model = TinyNet()
    trainer = Trainer(model, loader(items), loader(items[:1]), TrainSettings(epochs=1, accumulate=3,
                                                                             skip_nonfinite=True), CPU)
    steps = []  # (weights, gradients) right before each optimizer step

    def record(_optimizer, _args, _kwargs) -> None:
        steps.append((copy.deepcopy(model.state_dict()), [p.grad.clone() for p in model.parameters()]))

    trainer.optimizer.register_step_pre_hook(record)
    trainer.train_one_epoch(lambda loss, clips: None)
    assert len(steps) == len(windows)
    for (weights, grads), window in zip(steps, windows, strict=True):
        reference = TinyNet()
        reference.load_state_dict(weights)
        loss = sum(F.cross_entropy(reference(items[i]["clips"]), items[i]["labels"]) for i in window)
        (loss / len(window)).backward()  # one plain step over the window's readable batches
        for param, grad in zip(reference.parameters(), grads, strict=True):
            torch.testing.assert_close(grad, param.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("unreadable", "nonfinite"), [((), ()), ({3, 4, 5}, ()), ({1}, {6})])
@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_the_schedule_reaches_its_end_whatever_batches_are_skipped(unreadable, nonfinite, schedule):
    settings = TrainSettings(epochs=2, accumulate=3, warmup=0.2, lr=0.01, skip_nonfinite=True, schedule=schedule,
                             step_every=1, step_gamma=0.5)
    trainer = Trainer(TinyNet(), loader(batches(7, set(unreadable), set(nonfinite))), loader(batches(1)),
                      settings, CPU)
    assert trainer.steps_per_epoch == 3
    metrics = trainer.fit(NoWriter(), lambda *args: None, seed=0, warn=lambda line: None)
    total, warmup = 6, 1
    assert trainer.scheduler.last_epoch == total
    assert [r.lr for r in metrics.history] == pytest.approx(
        [settings.lr * lr_factor(step, total, warmup, settings, 3) for step in (0, 3)])
    final = settings.lr * lr_factor(total, total, warmup, settings, 3)  # cosine: 0; step: lr x 0.5^2
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(final, abs=1e-12)


def stats(accuracy: float, loss: float) -> EpochStats:
    return EpochStats(loss=loss, accuracy=accuracy, clips=4)


def test_equal_accuracy_goes_to_the_lower_loss_and_an_unvalidated_epoch_never_wins():
    trainer = Trainer(TinyNet(), loader(batches(1)), loader(batches(1)), TrainSettings(), CPU)
    assert not trainer._improved(EpochStats(skipped=["a.mp4"]))  # no clip validated: its 0 loss means nothing
    assert trainer._improved(stats(0.5, 1.0))
    assert trainer._improved(stats(0.5, 0.8))  # same accuracy, lower loss
    assert not trainer._improved(stats(0.5, 0.9))
    assert not trainer._improved(stats(0.5, 0.8))  # an exact tie keeps the earlier epoch
    assert not trainer._improved(EpochStats())
    assert not trainer._improved(stats(0.4, 0.1))
    assert trainer._improved(stats(0.6, 2.0))


def test_monitoring_loss_breaks_ties_on_accuracy():
    trainer = Trainer(TinyNet(), loader(batches(1)), loader(batches(1)), TrainSettings(monitor="val_loss"), CPU)
    assert not trainer._improved(EpochStats())
    assert trainer._improved(stats(0.2, 1.0))
    assert trainer._improved(stats(0.3, 1.0))  # same loss, higher accuracy
    assert not trainer._improved(stats(0.9, 1.1))
    assert trainer._improved(stats(0.1, 0.5))


def test_an_epoch_whose_validation_videos_were_all_unreadable_does_not_become_best():
    # Epoch 1 validates nothing (every video unreadable; loss reads 0); epoch 2 validates 4 clips.
    val = Passes(batches(2, unreadable={0, 1}), batches(2))
    trainer = Trainer(TinyNet(), loader(batches(3)), val, TrainSettings(epochs=2, monitor="val_loss"), CPU)
    saved, warnings = [], []
    metrics = trainer.fit(NoWriter(), lambda kind, weights, extras: saved.append((kind, extras["epoch"])), seed=0,
                          warn=warnings.append)
    assert saved == [("last", 1), ("best", 2), ("last", 2)]
    assert metrics.best_epoch == 2 and metrics.best_val_accuracy == metrics.history[1].val_accuracy
    assert any("epoch 1" in line and "no validation clip" in line for line in warnings)


def test_a_tie_won_on_the_loss_updates_best_but_not_the_early_stop_patience():
    trainer = Trainer(TinyNet(), loader(batches(3)), loader(batches(1)), TrainSettings(epochs=5, early_stop=2), CPU)
    script = iter([stats(0.5, 1.0), stats(0.5, 0.9), stats(0.5, 0.8)])
    trainer.validate = lambda progress: next(script)  # the validation results of epochs 1-3
    saved = []
    metrics = trainer.fit(NoWriter(), lambda kind, weights, extras: saved.append((kind, extras["epoch"])), seed=0,
                          warn=lambda line: None)
    assert [epoch for kind, epoch in saved if kind == "best"] == [1, 2, 3]
    assert metrics.best_epoch == 3 and metrics.stopped_early and metrics.epochs == 3  # accuracy flat for 2 epochs
