"""``actcli test --observe``: early action prediction, accuracy per observation ratio.

For each ratio ``r`` every video is classified from one centred clip inside its first
``r`` (``floor(r * frames)`` frames, at least one); no later frame is requested from the
decoder. The report lists top-1/top-5 per ratio, and a PNG plots the curve.
"""

from __future__ import annotations

from pathlib import Path

import torch

from actcli import console as ui
from actcli.data.video import ClipSpec
from actcli.engine.distributed import is_main, predict_dataset
from actcli.engine.evaluate import topk_accuracy
from actcli.fileio import atomic_path
from actcli.models.convention import PYTORCHVIDEO, Convention
from actcli.pipeline import DataSource, clip_dataset, inputs_of
from actcli.report import EarlyMetrics, make_report, write_report
from actcli.settings import Settings, observe_ratios


def plot_curve(metrics: EarlyMetrics, path: Path, title: str) -> None:
    """Top-1 and top-5 against the observation ratio, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(metrics.ratios, metrics.top1, marker="o", label="top-1")
    ax.plot(metrics.ratios, metrics.top5, marker="s", label="top-5")
    ax.set_xlabel("observed part of each video (r)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def early_prediction(settings: Settings, model: torch.nn.Module, spec: ClipSpec, source: DataSource,
                     device: torch.device, report_path: Path, config: dict, title: str,
                     modalities: tuple[str, ...] = ("rgb",), convention: Convention = PYTORCHVIDEO) -> Path:
    """Evaluate ``model`` at every ratio of ``test.observe``; writes ``report_path`` and the PNG beside it."""
    split = settings.test.split
    ratios = observe_ratios(settings.test.observe or "1")
    top1, top5, clips, skipped = [], [], 0, 0
    with ui.progress() as bars:
        task = bars.add_task("observation ratios", total=len(ratios))
        for ratio in ratios:
            dataset = clip_dataset(source, split, spec, training=False, observe=ratio,
                                   inputs=inputs_of(settings, modalities, convention))
            out = predict_dataset(model, dataset, settings.test.batch_size, settings.data.workers, device, bars,
                                  f"r = {ratio:g}")
            if len(out.labels) == 0:
                ui.warn(f"no readable video at r = {ratio:g}")
            top1.append(topk_accuracy(out.logits, out.labels, 1) if len(out.labels) else 0.0)
            top5.append(topk_accuracy(out.logits, out.labels, 5) if len(out.labels) else 0.0)
            clips, skipped = len(out.labels), len(out.skipped)
            bars.advance(task)
    metrics = EarlyMetrics(split=split, ratios=ratios, top1=top1, top5=top5, clips=clips, skipped_clips=skipped)
    png = report_path.parent / f"early-{split}.png"
    if not is_main():
        return report_path  # rank 0 writes
    plot_curve(metrics, png, title)
    report = write_report(make_report("early", device, config, metrics, {"curve_png": png}), report_path)
    rows = [[f"{r:g}", f"{a:.3f}", f"{b:.3f}"] for r, a, b in zip(ratios, top1, top5, strict=True)]
    ui.console.print(ui.table(f"early prediction on {split} ({clips} videos)", ["observed", "top-1", "top-5"], rows))
    ui.console.print(f"curve: {png}")
    ui.console.print(f"report: {report}")
    return report
