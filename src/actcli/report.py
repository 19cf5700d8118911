"""The one JSON report schema every measuring command writes (see docs/reports.md).

A report is ``{command, created, environment, config, metrics, artifacts}``. ``metrics`` is
validated against the model of its command (:data:`METRICS`), so a test report always has
``top1`` .. ``per_class`` and a benchmark report always has its latency percentiles.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch
import torchvision
from pydantic import BaseModel, ConfigDict, Field, model_validator

import actcli
from actcli.fileio import write_text

Fraction = Field(ge=0.0, le=1.0)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Environment(_Strict):
    """Where a measurement was taken."""

    actcli: str
    python: str
    platform: str
    torch: str
    torchvision: str
    device: str
    device_name: str
    threads: int = Field(description="torch intra-op CPU threads")
    cpu_count: int | None
    runtime: str = Field("torch", description="What ran the model: torch, openvino or onnxruntime.")
    runtime_version: str = ""


class ClassMetrics(_Strict):
    precision: float = Fraction
    recall: float = Fraction
    f1: float = Fraction
    support: int


class TestMetrics(_Strict):
    """Classification quality on one split; fractions in [0, 1]."""

    __test__ = False
    per_modality_top1: dict[str, float] | None = Field(
        None, description="Late fusion: top-1 of each modality's own head, beside the fused top1.")
    fusion_weights: dict[str, float] | None = Field(
        None, description="Late fusion: each modality's weight in the fused scores (learned with --fusion weighted).")

    split: str
    clips: int
    skipped_clips: int
    top1: float = Fraction
    top5: float = Fraction
    mean_class_accuracy: float = Fraction
    f1_macro: float = Fraction
    f1_weighted: float = Fraction
    loss: float
    per_class: dict[str, ClassMetrics]
    clip_top1: float = Fraction
    clip_top5: float = Fraction
    views_per_video: int = 1


class Percentiles(_Strict):
    p50: float
    p95: float
    mean: float


class ReferenceMetrics(_Strict):
    """The prototype's way, timed alongside: eager fp32 model in contiguous memory, whole video decoded."""

    model_ms_per_sample: Percentiles
    end_to_end_ms_per_sample: Percentiles | None = Field(description="null when every video was too long for the "
                                                         "prototype's whole-video reader (see note)")
    model_speedup: float = Field(description="Reference p50 / actcli p50, model only.")
    end_to_end_speedup: float | None = Field(description="Reference p50 / actcli p50, end to end.")
    videos_left_out: int = Field(0, description="Videos whose frames would pass the reference reader's memory cap "
                                 "(1 GiB): left out of its end-to-end timing.")
    note: str | None = None


class BenchmarkMetrics(_Strict):
    """Latency per sample in milliseconds (batch time / batch size) and throughput."""

    batch_size: int
    runs: int
    warmup: int
    model_ms_per_sample: Percentiles
    end_to_end_ms_per_sample: Percentiles
    throughput_clips_per_s: float = Field(description="End to end, from the mean batch time.")
    model_throughput_clips_per_s: float
    decoder: str = "pyav"
    precision: str = "32"
    optimizations: list[str] = Field(default_factory=list, description="Inference steps applied to the model.")
    runtime: str = Field("torch", description="What ran the model: torch, openvino or onnxruntime.")
    reference: ReferenceMetrics | None = None


class ExportVariant(_Strict):
    """One model compared by ``export --int8``: what computes, model-only latency per sample, test top-1."""

    precision_hint: str = Field(description="OpenVINO's INFERENCE_PRECISION_HINT of the compiled model.")
    ms_per_sample: Percentiles
    top1: float | None = Field(ge=0.0, le=1.0, description="null when the test split had no readable clip")


class ExportMetrics(_Strict):
    """``export --format openvino --int8``: the fp32 / bf16 / int8 IRs side by side."""

    format: str
    file: str
    int8: bool
    calibration_clips: int
    test_split: str
    test_clips: int
    fp32_max_logit_difference: float
    baseline: str = Field(description="The variant int8 is compared with: bf16 where native, else fp32.")
    variants: dict[str, ExportVariant]
    int8_speedup: float = Field(description="Baseline p50 / int8 p50, model only.")
    top1_change: float | None = Field(description="int8 top-1 minus the baseline's (fraction).")


class EpochRecord(_Strict):
    """One epoch of training; a loss that was not finite (NaN inputs in validation) is written as null."""

    epoch: int
    train_loss: float | None
    train_accuracy: float = Fraction
    val_loss: float | None
    val_accuracy: float | None = Field(ge=0.0, le=1.0, description="null without a validation split")
    lr: float
    seconds: float


class ClipCacheMetrics(_Strict):
    """The clip cache of a ``--cache-clips`` run, train and val videos together."""

    folder: str
    limit_bytes: int
    used_bytes: int
    videos: int
    cached: int
    written: int
    over_limit: int
    unreadable: int
    damaged: int = Field(0, description="Entries that did not match their recorded size and digest: dropped and "
                         "decoded again.")


class TrainMetrics(_Strict):
    epochs: int
    best_epoch: int
    best_val_accuracy: float | None = Field(ge=0.0, le=1.0, description="null without a validation split (best = "
                                            "last epoch) or when no epoch validated a clip")
    skipped_clips: int
    skipped_files: list[str]
    seconds: float
    history: list[EpochRecord]
    stopped_early: bool = False
    resumed: bool = False
    clip_cache: ClipCacheMetrics | None = None
    interrupted: str | None = Field(None, description="The signal (SIGINT, SIGTERM) that stopped the run early.")
    batches_done: int = Field(0, description="Interrupted: batches of the unfinished epoch trained and saved.")
    nonfinite_steps: int = Field(0, description="Batches skipped for a NaN or infinite loss (--skip-nonfinite).")
    cache_entries_rebuilt: int = Field(0, description="Damaged feature- or clip-cache entries (truncated, zeroed, "
                                       "overwritten) dropped and computed again.")


class PredictMetrics(_Strict):
    video: str
    top: list[dict[str, float | str]]


class ScoreMetrics(_Strict):
    """EK100 scores of a submission file; fractions in [0, 1], null for an empty subset."""

    task: Literal["recognition", "anticipation"]
    challenge: str
    segments: int
    overall: dict[str, float | None]
    unseen: dict[str, float | None]
    tail: dict[str, float | None]


class EarlyMetrics(_Strict):
    """Early prediction: accuracy when only the first ``ratios[i]`` of each video is seen."""

    split: str
    ratios: list[float]
    top1: list[float]
    top5: list[float]
    clips: int
    skipped_clips: int


class AnticipationMetrics(_Strict):
    """Anticipation by a sequence model at several anticipation times (one entry per ``tau_a``); fractions in [0, 1]."""

    split: str
    model: str
    segments: int = Field(description="Segments of the split file.")
    tau_a: list[float]
    evaluated: list[int] = Field(description="Per tau_a: segments whose window lies in the video (scored).")
    unobservable: list[int] = Field(description="Per tau_a: segments whose window lies before the video: left out of "
                                    "the metrics (EK100 submissions give them zero scores).")
    skipped_clips: int = Field(0, description="Segments whose features could not be read.")
    dropped_at_annotate: int = Field(0, description="Segments of the split whose window at the annotated tau_a lies "
                                     "before the video: not in the split file (task.json counts them).")
    top1: list[float]
    top5: list[float]
    mean_top5_recall: list[float] = Field(description="Class-mean top-5 recall (EK100's anticipation metric).")
    heads_mean_top5_recall: dict[str, list[float]] | None = Field(
        None, description="EK100: class-mean top-5 recall of the verb and noun heads per tau_a.")
    baselines: dict[str, list[float]] = Field(description="Per tau_a: top-1 of same_as_last, most_frequent_next, "
                                              "most_frequent_next_given_last (and most_frequent_next_top5).")
    bayes_optimal: dict[str, float] | None = Field(None, description="The dataset's best possible next-action "
                                                   "accuracy when it states one (synthetic-sequences' grammar.json).")
    official: dict[str, dict[str, float | None]] | None = Field(
        None, description="EK100 at the annotated tau_a: the official overall / unseen / tail scores.")


class AnnotateMetrics(_Strict):
    clips: int
    classes: int
    groups: int
    split_sizes: dict[str, int]
    shared_groups: int
    unreadable: int | None = None
    windows_past_end: int | None = Field(None, description="Clips whose start time is at or after the end of their "
                                         "video (--probe; left out).")
    missing: int = Field(0, description="Videos the official lists name that are not on disk (left out).")
    missing_files: list[str] = Field(default_factory=list, description="The first 100 of them.")


METRICS: dict[str, type[BaseModel]] = {
    "train": TrainMetrics,
    "test": TestMetrics,
    "benchmark": BenchmarkMetrics,
    "predict": PredictMetrics,
    "annotate": AnnotateMetrics,
    "score": ScoreMetrics,
    "early": EarlyMetrics,
    "anticipation": AnticipationMetrics,
    "export": ExportMetrics,
}


class Report(_Strict):
    """A command's measurement, as written to JSON."""

    command: Literal["train", "test", "benchmark", "predict", "annotate", "score", "early", "export",
                     "anticipation"]
    created: datetime
    environment: Environment
    config: dict[str, Any]
    metrics: dict[str, Any]
    artifacts: dict[str, str] = Field(default_factory=dict, description="Name -> file path.")

    @model_validator(mode="after")
    def _metrics_match_command(self) -> Report:
        METRICS[self.command].model_validate(self.metrics)
        return self


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device, runtime: str = "torch") -> Environment:
    """Describe the software and hardware a command ran on, and the runtime that ran the model."""
    from actcli.engine.runtimes import runtime_version

    name = cpu_name() if device.type == "cpu" else platform.processor() or platform.machine()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    return Environment(
        actcli=actcli.__version__,
        python=sys.version.split()[0],
        platform=platform.platform(),
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        device=str(device),
        device_name=name,
        threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        runtime=runtime,
        runtime_version=runtime_version(runtime),
    )


def make_report(
    command: str,
    device: torch.device,
    config: dict[str, Any],
    metrics: BaseModel,
    artifacts: dict[str, Path] | None = None,
) -> Report:
    """Build and validate a report (``created`` = now, UTC); ``config["runtime"]``, when there, names the
    runtime that ran the model (the environment's ``runtime``; default torch)."""
    return Report(
        command=command,
        created=datetime.now(UTC),
        environment=environment(device, str(config.get("runtime") or "torch")),
        config=config,
        metrics=metrics.model_dump(mode="json"),
        artifacts={k: str(v) for k, v in (artifacts or {}).items()},
    )


def write_report(report: Report, path: Path) -> Path:
    """Write ``report`` as indented JSON, atomically."""
    write_text(path, report.model_dump_json(indent=2) + "\n")
    return path


def read_report(path: Path) -> Report:
    """Load and validate a report file."""
    return Report.model_validate_json(path.read_text(encoding="utf-8"))
