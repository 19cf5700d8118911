"""What the ``actcli`` commands share: option types (Typer ``Annotated``), settings from options,
error handling, and the hand-over to torchrun for ``--nproc``.

Each help text ends with the default, so ``--help`` tells the user what happens without the flag.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from actcli import console as ui
from actcli.data.registry import DATASETS
from actcli.errors import UserError
from actcli.models.zoo import MODELS
from actcli.settings import Settings, load_settings

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file (sections as in `actcli config show`).")]
DatasetOpt = Annotated[str | None, typer.Option(help=f"Dataset: {', '.join(DATASETS)}. (default: ucf50)")]
RootOpt = Annotated[Path | None, typer.Option(help="Folder with the class folders. (default: where `download` put it)")]
AnnotationsOpt = Annotated[Path | None, typer.Option("--annotations", help="Folder with labels.csv and the split CSVs. (default: annotations/<dataset>)")]
ModelOpt = Annotated[str | None, typer.Option("--model", help=f"Model: {', '.join(MODELS)}. (default: x3d_xs)")]
FramesOpt = Annotated[int | None, typer.Option(help="Frames per clip. (default: the model's)")]
StrideOpt = Annotated[int | None, typer.Option(help="Take every N-th frame. (default: the model's)")]
CropOpt = Annotated[int | None, typer.Option(help="Square crop in pixels. (default: the model's)")]
WorkersOpt = Annotated[int | None, typer.Option(help="DataLoader worker processes. (default: 2)")]
NprocOpt = Annotated[int | None, typer.Option(min=1, help="Run as N processes on this machine with torchrun (DistributedDataParallel: gloo on CPU, NCCL on GPUs; --batch-size is per process). For several machines call torchrun yourself (docs/distributed.md). (default: 1)")]
FeaturesOpt = Annotated[Path | None, typer.Option(help="Features modality: a folder of <video>.npy arrays [frames, D] (folder datasets: the video's path without suffix; EK100: the video id) or an LMDB in RULSTM's layout. test: default the path used in training. (default: none)")]
FeaturesFpsOpt = Annotated[float | None, typer.Option(help="Feature rows (LMDB frames) per second of video. (default: 30, RULSTM's)")]
DecoderOpt = Annotated[Literal["auto", "torchcodec", "pyav", "torchcodec-cuda"] | None, typer.Option(help="Video decoder: torchcodec (faster; needs `apt-get install ffmpeg`), pyav, auto = torchcodec when it works here, else pyav, or torchcodec-cuda (GPU decoding with NVDEC; without a CUDA GPU one warning, then auto's choice). (default: auto)")]
RuntimeOpt = Annotated[Literal["auto", "torch", "openvino", "onnxruntime"] | None, typer.Option(help="What runs the model: torch, openvino (CPU; fp32 or bf16 per --precision), onnxruntime (CPU, fp32), or auto = openvino on the CPU where it is installed and converts the model, else torch. Exported files run on their own runtime (an ONNX file also on openvino). (default: auto)")]
PrecisionOpt = Annotated[Literal["auto", "32", "bf16", "16"] | None, typer.Option(help="Inference precision: 32, bf16, 16 (CUDA only), or auto = bf16 where the hardware computes it natively (CPUs with AMX or AVX512-BF16, recent GPUs), else 32. Applies to checkpoints, not exported files. (default: auto)")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto, cpu, cuda or mps. (default: auto)")]
ExperimentOpt = Annotated[str | None, typer.Option(help="Experiment name (run folder outputs/runs/<name>/). (default: default)")]
CheckpointOpt = Annotated[Path | None, typer.Option("--weights", help="actcli checkpoint (test, predict and benchmark also take an exported .ts / .onnx / OpenVINO .xml file). (default: best.pt of the latest run)")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Where to write the JSON report. (default: in the run folder)")]


def settings_from_options(config: Path | None, **flat: Any) -> tuple[Settings, dict[str, str]]:
    """Settings from defaults < config < env < these CLI values (``section__field`` keys)."""
    return load_settings(config, {k.replace("__", "."): v for k, v in flat.items()})


def hand_to_torchrun(command: str, settings: Any, sources: dict[str, str], nproc: int | None, args: list[str]) -> bool:
    """Hand the command to torchrun when ``--nproc`` > 1 (and this is not already a torchrun process)."""
    from actcli.engine.distributed import launched_by_torchrun

    if not nproc or nproc == 1 or launched_by_torchrun():
        return False
    from actcli.commands.launch import launch

    launch(command, settings, sources, nproc, args)
    return True


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a :class:`UserError` into one red line and exit status 1 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            ui.errors.print(f"[bold red]error:[/bold red] {exc}", soft_wrap=True, highlight=False, markup=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            ui.errors.print("[red]interrupted[/red]; files already written are complete")
            raise typer.Exit(130) from None

    return wrapper
