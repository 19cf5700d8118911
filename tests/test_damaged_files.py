"""Damaged files, interrupted writes, two writers, hostile lists: one clear line or a repair, never garbage.

Every case reproduces the fault on real files: checkpoints with flipped bytes or missing parts,
truncated and zeroed cache entries, a real ``kill -9`` in the middle of ``annotate``, two real
processes on one run folder, commands racing on the datasets registry, lists escaping their root.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TRAIN_FLAGS, clean_env

from actcli.data.registry import remember_root
from actcli.report import read_report

PYTHON_ACTCLI = [sys.executable, "-m", "actcli"]
VIDEO = "MoveLeft/v_MoveLeft_g01_c01.avi"


@pytest.fixture()
def trained(cli, annotated, workdir) -> Path:
    """A run of one epoch on the tiny dataset: its folder."""
    cli("train", "--dataset", "synthetic", "--model", "r3d_tiny", "--epochs", "1", "--experiment", "base", *TRAIN_FLAGS)
    (run,) = (workdir / "outputs" / "runs" / "base").iterdir()
    return run


def _flip_bytes_inside_a_tensor(path: Path, target: Path) -> None:
    """Copy ``path`` to ``target`` with a few bytes changed in the middle of the largest tensor's data
    (the zip members and the pickle stay readable)."""
    data = bytearray(path.read_bytes())
    checkpoint = torch.load(path, weights_only=True)
    largest = max(checkpoint["state_dict"].values(), key=lambda t: t.numel())
    needle = bytes(largest.untyped_storage())[:16]  # the bytes as stored (memory format included)
    at = data.find(needle)
    assert at > 0
    for i in range(at + 16, at + 24):
        data[i] ^= 0x5A
    target.write_bytes(bytes(data))


def _rewrite(path: Path, target: Path, change) -> Path:
    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, target)
    return target


def _commands(weights: Path) -> list[list[str]]:
    return [["test", "--weights", str(weights)], ["predict", "data/synthetic/" + VIDEO, "--weights", str(weights)],
            ["benchmark", "--weights", str(weights), "--runs", "1", "--warmup", "0", "--no-reference"],
            ["export", "--weights", str(weights), "--out", "x.onnx", "--format", "onnx"],
            ["train", "--dataset", "synthetic", "--model", "r3d_tiny", "--weights", str(weights), "--epochs", "1",
             *TRAIN_FLAGS]]


def test_a_checkpoint_with_flipped_bytes_is_refused_by_every_command(cli, trained, workdir):
    damaged = workdir / "flipped.pt"
    _flip_bytes_inside_a_tensor(trained / "checkpoints" / "best.pt", damaged)
    for command in _commands(damaged):
        line = cli.fails(*command)
        assert "flipped.pt is damaged" in line and "digest" in line, (command, line)


def test_non_finite_weights_are_refused_naming_the_file(cli, trained, workdir):
    def poison(checkpoint):
        name = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
        tensor = checkpoint["state_dict"][name]
        tensor[(0,) * tensor.ndim] = float("nan")
        checkpoint.pop("digest")  # as a checkpoint from before digests, or one saved after the weights went bad
    nan = _rewrite(trained / "checkpoints" / "best.pt", workdir / "nan.pt", poison)
    for command in _commands(nan):
        line = cli.fails(*command)
        assert "nan.pt holds non-finite weights" in line, (command, line)


@pytest.mark.parametrize("part", ["model", "classes", "clip", "state_dict"])
def test_a_checkpoint_missing_a_part_is_one_line_naming_it(cli, trained, workdir, part):
    broken = _rewrite(trained / "checkpoints" / "best.pt", workdir / f"no-{part}.pt", lambda c: c.pop(part))
    for command in _commands(broken):
        line = cli.fails(*command)
        assert "not a complete actcli checkpoint" in line and f"'{part}'" in line, (command, line)


def test_zero_frame_clip_in_a_checkpoint_is_one_line(cli, trained, workdir):
    broken = _rewrite(trained / "checkpoints" / "best.pt", workdir / "zero.pt",
                      lambda c: c["clip"].update(frames=0))
    for command in _commands(broken)[:3]:
        assert "'clip' (frames, stride and crop, each at least 1)" in cli.fails(*command)


def test_resume_without_its_training_state_or_with_changed_classes(cli, trained, workdir):
    last = trained / "checkpoints" / "last.pt"
    saved = last.read_bytes()
    _rewrite(last, last, lambda c: c["training"].pop("optimizer"))
    line = cli.fails("train", "--resume", str(trained))
    assert "'training'" in line and "optimizer" in line
    last.write_bytes(saved)
    labels = workdir / "annotations" / "synthetic" / "labels.csv"  # same count, another order
    names = labels.read_text().splitlines()
    labels.write_text("\n".join([names[0], "0," + names[2].split(",")[1], "1," + names[1].split(",")[1],
                                 *names[3:]]) + "\n")
    (labels.parent / "manifest.json").unlink()  # a hand edit
    line = cli.fails("train", "--resume", str(trained))
    assert "same names in another order" in line and "class 0" in line


def test_files_that_are_not_checkpoints_get_an_accurate_line(cli, trained, workdir):
    (workdir / "random.pt").write_bytes(os.urandom(4096))
    (workdir / "empty.pt").write_bytes(b"")
    (workdir / "text.pt").write_text("not a checkpoint\n")
    cli("export", "--weights", trained / "checkpoints" / "best.pt", "--out", workdir / "model.ts", "--format",
        "torchscript")
    shutil.copy(workdir / "model.ts", workdir / "exported.pt")
    cli("export", "--weights", trained / "checkpoints" / "best.pt", "--out", workdir / "model.onnx")
    shutil.copy(workdir / "model.onnx", workdir / "exported-onnx.pt")
    (workdir / "random-pickle.pt").write_bytes(b"\x80" + os.urandom(4095))  # starts like a pickle
    cases = {"random.pt": "not a PyTorch checkpoint", "random-pickle.pt": "damaged", "empty.pt": "is empty (0 bytes)",
             "text.pt": "not a PyTorch checkpoint", "exported.pt": "exported TorchScript model",
             "exported-onnx.pt": "exported ONNX model"}
    for name, expected in cases.items():
        result = cli("export", "--weights", workdir / name, "--out", workdir / "again.ts", code=1)
        assert expected in result.output and "could run code" not in result.output, (name, result.output)
        assert "Traceback" not in result.output and "UserWarning" not in result.output
    (workdir / "settings-folder").mkdir()
    assert "is a folder" in cli.fails("train", "--config", workdir / "settings-folder")


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_export_with_flipped_bytes_is_refused(cli, trained, workdir, fmt):
    out = workdir / f"model.{'ts' if fmt == 'torchscript' else 'onnx'}"
    cli("export", "--weights", trained / "checkpoints" / "best.pt", "--out", out, "--format", fmt)
    cli("predict", "data/synthetic/" + VIDEO, "--weights", out)
    data = bytearray(out.read_bytes())
    if fmt == "onnx":
        import onnx

        weights = [bytes(i.raw_data) for i in onnx.load(str(out)).graph.initializer]
    else:
        weights = [bytes(t.untyped_storage()) for t in torch.jit.load(str(out)).state_dict().values()]
    at = data.find(max(weights, key=len)[64:80])  # inside the largest weight tensor
    assert at > 0
    for i in range(at, at + 8):
        data[i] ^= 0x33
    out.write_bytes(bytes(data))
    line = cli.fails("predict", "data/synthetic/" + VIDEO, "--weights", out)
    assert "is damaged" in line and "export it again" in line


def test_damaged_feature_cache_entries_are_rebuilt_and_counted(cli, annotated, workdir):
    args = ["train", "--dataset", "synthetic", "--freeze", "backbone", "--no-augment", "--epochs", "1", *TRAIN_FLAGS]
    cli(*args, "--experiment", "first")
    entries = sorted((workdir / "outputs" / "cache" / "features").rglob("*.pt"))
    entries[0].write_bytes(entries[0].read_bytes()[:40])  # truncated by a kill
    entries[1].write_bytes(b"")  # zero bytes
    entries[2].write_bytes(bytes(entries[2].stat().st_size))  # zeroed in place, same size
    out = " ".join(cli(*args, "--experiment", "second").output.split())
    assert "3 damaged feature-cache entries" in out and "computed again" in out
    (run,) = (workdir / "outputs" / "runs" / "second").iterdir()
    assert read_report(run / "report-train.json").metrics["cache_entries_rebuilt"] == 3


def test_damaged_clip_cache_entries_are_rebuilt_and_counted(cli, annotated, workdir):
    args = ["train", "--dataset", "synthetic", "--cache-clips", "--epochs", "1", *TRAIN_FLAGS]
    cli(*args, "--experiment", "first")
    entries = sorted((workdir / "outputs" / "cache" / "clips").rglob("*.npy"))
    entries[0].write_bytes(entries[0].read_bytes()[:100])
    entries[1].write_bytes(entries[1].read_bytes()[:128] + bytes(entries[1].stat().st_size - 128))  # payload zeroed
    out = " ".join(cli(*args, "--experiment", "second").output.split())
    assert "2 damaged clip-cache entries" in out
    (run,) = (workdir / "outputs" / "runs" / "second").iterdir()
    metrics = read_report(run / "report-train.json").metrics
    assert metrics["clip_cache"]["damaged"] == 2 and metrics["clip_cache"]["written"] == 2
    assert metrics["cache_entries_rebuilt"] == 2


def test_kill_during_annotate_leaves_a_set_that_train_refuses(cli, dataset_copy, workdir):
    """A real SIGKILL while annotate writes (here: stopped right after train.csv, by a hook) must not leave a
    new train beside an old val that trains silently; temporary files of the killed writer are cleaned."""
    cli("annotate", "--dataset", "synthetic")
    folder = workdir / "annotations" / "synthetic"
    hook = workdir / "kill_after_train_csv.py"
    hook.write_text(
        "import os, signal\nimport actcli.fileio as f\n_write = f.write_text\n"
        "def write_text(target, text):\n    _write(target, text)\n"
        "    if str(target).endswith('train.csv'):\n        os.kill(os.getpid(), signal.SIGKILL)\n"
        "f.write_text = write_text\nimport actcli.commands.data as d\nd.write_text = write_text\n"
        "from actcli.cli import main\nmain()\n")
    (folder / ".train.csv.abc123.tmp").write_text("left by an earlier kill")
    done = subprocess.run([sys.executable, str(hook), "annotate", "--dataset", "synthetic", "--split", "50", "25",
                           "25"], cwd=workdir, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    line = cli.fails("train", "--dataset", "synthetic", "--epochs", "1", *TRAIN_FLAGS)
    assert "incomplete" in line and "re-run `actcli annotate`" in line
    cli("annotate", "--dataset", "synthetic")
    assert not list(folder.glob(".*.tmp"))
    # a hand edit after a complete annotate is read as it is, with a warning naming the file
    (folder / "val.csv").write_text((folder / "val.csv").read_text() + "\n")
    result = cli("train", "--dataset", "synthetic", "--epochs", "1", *TRAIN_FLAGS)
    assert "val.csv was edited since `actcli annotate` wrote it" in " ".join(result.output.split())


def test_full_disk_during_annotate_is_refused_by_train(cli, dataset_copy, workdir):
    from test_reliability import _limit_file_size

    cli("annotate", "--dataset", "synthetic")
    done = subprocess.run([*PYTHON_ACTCLI, "annotate", "--dataset", "synthetic", "--probe"], cwd=workdir,
                          env=clean_env(), capture_output=True, text=True, preexec_fn=_limit_file_size(1500),
                          timeout=120)
    assert done.returncode == 1 and "cannot write" in done.stderr and "Traceback" not in done.stderr
    assert "incomplete" in cli.fails("train", "--dataset", "synthetic", "--epochs", "1", *TRAIN_FLAGS)


def test_test_takes_the_dataset_the_user_names_not_the_checkpoints(cli, trained, workdir, tiny_dataset):
    other = workdir / "other"
    shutil.copytree(tiny_dataset, other)
    shutil.rmtree(other / "MoveLeft")  # a dataset with another class set
    cli("annotate", "--dataset", "folder", "--root", other)
    line = cli.fails("test", "--dataset", "folder", "--root", other, "--weights", trained / "checkpoints" / "best.pt")
    assert "does not predict this dataset's classes" in line and "only in the weights: MoveLeft" in line


def test_a_second_train_of_a_running_run_is_refused(cli, annotated, workdir):
    slow = ["--dataset", "synthetic", "--model", "r3d_tiny", "--frames", "4", "--stride", "2", "--crop", "32",
            "--batch-size", "1", "--workers", "0"]
    process = subprocess.Popen([*PYTHON_ACTCLI, "train", *slow, "--epochs", "200", "--experiment", "busy"],
                               cwd=workdir, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(workdir.glob("outputs/runs/busy/*/checkpoints/last.pt")) and time.monotonic() < deadline:
            time.sleep(0.1)  # an epoch is done: --resume auto finds this run
        assert process.poll() is None
        done = subprocess.run([*PYTHON_ACTCLI, "train", "--resume", "auto", "--experiment", "busy"], cwd=workdir,
                              env=clean_env(), capture_output=True, text=True, timeout=120)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == 1 and len(errors) == 1, done.stderr
        assert "is in use by pid" in errors[0] and str(process.pid) in errors[0]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)


def test_commands_racing_on_the_registry_keep_every_entry(workdir):
    outputs = workdir / "outputs"
    script = ("import sys; from pathlib import Path; from actcli.data.registry import remember_root; "
              "remember_root(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(outputs), f"set{i}", str(workdir / f"d{i}")])
                 for i in range(20)]
    assert all(p.wait(timeout=120) == 0 for p in processes)
    entries = json.loads((outputs / "datasets.json").read_text())
    assert sorted(entries) == sorted(f"set{i}" for i in range(20))


@pytest.mark.parametrize("content", ["[]", '"a string"', "null", '{"ucf50": 3}'])
def test_a_registry_of_the_wrong_shape_is_one_line(cli, workdir, content):
    (workdir / "outputs").mkdir()
    (workdir / "outputs" / "datasets.json").write_text(content)
    assert "is not a datasets registry" in cli.fails("train", "--dataset", "ucf50")


@pytest.mark.parametrize("listed", ["../../../../etc/passwd", "/etc/hostname", "../outside/secret.avi", "link.avi"])
def test_list_paths_outside_the_root_are_refused(cli, workdir, tiny_dataset, listed):
    root = workdir / "clips"
    shutil.copytree(tiny_dataset / "MoveLeft", root)
    (workdir / "outside").mkdir()
    shutil.copy(next(root.glob("*.avi")), workdir / "outside" / "secret.avi")
    (root / "link.avi").symlink_to(workdir / "outside" / "secret.avi")
    rows = [f"{p.name},MoveLeft" for p in sorted(root.glob("v_*.avi"))] + [f"{listed},MoveLeft"]
    (workdir / "list.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    line = cli.fails("annotate", "--dataset", "list", "--root", root, "--list", workdir / "list.csv")
    assert listed in line and "--allow-outside-root" in line and ("outside --root" in line or "absolute" in line)
    if listed in ("../outside/secret.avi", "link.avi"):
        cli("annotate", "--dataset", "list", "--root", root, "--list", workdir / "list.csv", "--allow-outside-root")


def test_hidden_class_folders_are_listed_not_dropped_silently(cli, dataset_copy):
    (dataset_copy / "MoveLeft").rename(dataset_copy / "..MoveLeft")
    out = " ".join(cli("annotate", "--dataset", "synthetic").output.split())
    assert "1 folder(s) skipped as hidden" in out and "..MoveLeft" in out


def test_benchmark_leaves_videos_too_long_for_the_prototype_reader_out_of_it(cli, trained, workdir, monkeypatch):
    import actcli.engine.benchmark as bench

    monkeypatch.setattr(bench, "REFERENCE_DECODE_CAP", 10_000)  # smaller than one tiny video's frames
    cli("benchmark", "--weights", trained / "checkpoints" / "best.pt", "--runs", "2", "--warmup", "0",
        "--report", workdir / "b.json")
    reference = read_report(workdir / "b.json").metrics["reference"]
    assert reference["end_to_end_ms_per_sample"] is None and reference["videos_left_out"] > 0
    assert "left out" in reference["note"]
    with pytest.raises(Exception, match="more than"):
        bench.whole_video(workdir / "data" / "synthetic" / VIDEO, max_bytes=10_000)


def test_remember_root_is_atomic_and_locked(workdir):
    remember_root(workdir / "outputs", "a", workdir)
    assert not list((workdir / "outputs").glob(".*.tmp"))


@pytest.mark.parametrize("args", [["train", "--cache-limit-gb", "inf"], ["train", "--seed", "-1"],
                                  ["train", "--lr", "nan"], ["annotate", "--split", "nan", "50", "50"],
                                  ["annotate", "--split", "inf", "1", "1"], ["annotate", "--seed", "-1"],
                                  ["download", "synthetic", "--seed", "-1"],
                                  ["train", "--crop", "4096"], ["train", "--frames", "100000"],
                                  ["train", "--model", "x3d_xs", "--frames", "1", "--crop", "16"],
                                  ["train", "--frames", "512", "--crop", "1024", "--batch-size", "64"]])
def test_settings_out_of_range_are_one_line(cli, annotated, args):
    line = cli.fails(*args, *([] if args[0] == "download" else ["--dataset", "synthetic"]))
    assert any(word in line for word in ("seed", "split", "cache_limit_gb", "lr", "crop", "frames", "x3d_xs")), line
