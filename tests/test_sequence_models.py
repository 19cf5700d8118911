"""Sequence models: shapes, losses, RULSTM's unrolling, and the no-peeking rule on every model's inputs."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import torch

from actcli.data.datasets import collate_clips
from actcli.data.extract import Extractor, causal_clip, file_source, row_count
from actcli.data.features import FeatureStore
from actcli.data.sequences import SegmentRows, SequenceDataset, stream_paths
from actcli.data.video import ClipSpec
from actcli.engine.sequence_objective import SequenceObjective
from actcli.errors import UserError
from actcli.models.convention import Convention
from actcli.models.sequence import STEP_LABELS, SequenceConfig, build_sequence_model
from actcli.models.sequence.rulstm import RollingUnrolling

FPS, DIM = 4.0, 8


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These networks are tiny: a second CPU thread only waits (as actcli trains them: one thread on CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(model: str, **kw) -> SequenceConfig:
    base = {"streams": {"rgb": DIM}, "num_classes": 5, "steps": 8, "hidden": 16, "layers": 2, "heads_attention": 2,
            "dropout": 0.1, "task": "recognition" if model == "early_lstm" else "anticipation"}
    return SequenceConfig(model, **{**base, **kw})


def _rows(starts, stops, labels, key="v") -> SegmentRows:
    starts, stops = np.asarray(starts, float), np.asarray(stops, float)
    labels = np.asarray(labels)[:, None]
    timeline = {key: [(a, b, (int(c),)) for a, b, c in zip(starts, stops, labels[:, 0], strict=True)]}
    return SegmentRows([str(i) for i in range(len(starts))], [key] * len(starts), starts, stops, starts, stops,
                       labels, ["g"] * len(starts), timeline)


def _store(tmp_path, nan_from: float | None = None, seconds: float = 30.0, name: str = "feats") -> FeatureStore:
    """A .npy store for video ``v``: row r = time r / FPS; rows at or after ``nan_from`` seconds are NaN."""
    rows = int(seconds * FPS) + 1
    table = np.random.default_rng(0).random((rows, DIM), dtype=np.float32)
    if nan_from is not None:
        table[math.ceil(nan_from * FPS - 1e-9):] = np.nan
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    np.save(folder / "v.npy", table)
    return FeatureStore(folder, FPS)


@pytest.mark.parametrize("model", ["rulstm", "avt", "attentive_probe", "early_lstm"])
def test_shapes_in_training_and_evaluation(model):
    config = _config(model, heads=[2, 3], num_classes=5)
    net = build_sequence_model(config)
    x = torch.randn(4, 8, DIM)
    net.train()
    out = net(x)
    assert out["logits"].shape == (4, 5)
    assert (out["steps"] is None) == (model == "attentive_probe")
    net.eval()
    assert net(x).shape == (4, 5)
    labels = torch.randint(0, 2, (4, 2, 9))
    net.train()
    loss = SequenceObjective((2, 3), final_in_steps=model in ("rulstm", "early_lstm")).loss(net(x), labels)
    loss.backward()
    assert torch.isfinite(loss)


def test_rulstm_unrolls_the_time_left_and_completion_sees_only_the_window():
    config = _config("rulstm", tau_a=1.0, alpha=0.25)
    branch = RollingUnrolling(DIM, config)
    assert branch.unroll_counts(8) == [12, 11, 10, 9, 8, 7, 6, 5]  # (tau_a + (T-1-k) alpha) / alpha + 1, as RULSTM
    branch.eval()
    x = torch.randn(2, 8, DIM)
    logits, context = branch(x)
    assert logits.shape == (2, 8, 5) and context.shape == (2, 8, 32)
    # each step's prediction depends on no later step (rolling is causal, unrolling repeats the step's own input)
    changed = x.clone()
    changed[:, 5:] += 10
    assert torch.allclose(branch(changed)[0][:, :5], logits[:, :5], atol=1e-6)
    branch.sequence_completion = True
    assert branch(x)[0].shape == (2, 8, 5)


def test_matt_fuses_streams_with_attention_weights():
    config = _config("rulstm", streams={"rgb": DIM, "flow": 4})
    net = build_sequence_model(config).eval()
    x = {"rgb": torch.randn(3, 8, DIM), "flow": torch.randn(3, 8, 4)}
    weights = net.attention(x)
    assert net(x).shape == (3, 5) and weights.shape == (3, 8, 2)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 8))


def test_objective_ignores_unsupervised_steps():
    objective = SequenceObjective()
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    labels = torch.tensor([[[0, -1, -1]], [[1, -1, -1]]])
    out = {"logits": logits, "steps": torch.zeros(2, 2, 2), "aux": torch.tensor(0.5)}
    expected = float(torch.nn.functional.cross_entropy(logits, labels[:, 0, 0])) + 0.5
    assert objective.loss(out, labels) == pytest.approx(expected, rel=1e-5)
    assert objective.correct(logits, labels).all()


def _inputs_seen(net: torch.nn.Module, batch) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    handle = net.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    net.eval()
    with torch.no_grad():
        out = net(batch)
    net.train()
    train_out = net(batch)["logits"]
    handle.remove()
    assert torch.isfinite(out).all() and torch.isfinite(train_out).all()
    return seen


@pytest.mark.parametrize("model", ["rulstm", "avt", "attentive_probe"])
@pytest.mark.parametrize("tau_a", [1.0, 2.0])
def test_no_anticipation_model_reads_a_feature_at_or_after_start_minus_tau_a(tmp_path, model, tau_a):
    starts = [20.0, 12.3, 2.6]  # the last window reaches before the video: its times clamp to the first row
    rows = _rows(starts, [s + 2 for s in starts], [1, 2, 3])
    config = _config(model, steps=12, tau_a=tau_a)
    for index, start in enumerate(starts):  # features from start - tau_a on are NaN for this segment
        store = _store(tmp_path, nan_from=start - tau_a, name=f"{model}{tau_a}{index}")
        dataset = SequenceDataset(rows.subset(np.arange(3) == index), {"rgb": store}, 12, 0.25, tau_a,
                                  "anticipation", STEP_LABELS[model], 8)
        assert max(dataset.times(0)) < start - tau_a
        batch = collate_clips([dataset[0]])
        assert batch["clips"] is not None and torch.isfinite(batch["clips"]).all()
        net = build_sequence_model(config)
        for seen in _inputs_seen(net, batch["clips"]):
            assert torch.isfinite(seen).all()


def test_early_model_step_k_reads_only_the_first_k_parts_of_the_segment(tmp_path):
    start, stop, steps = 10.0, 14.0, 8
    rows = _rows([start], [stop], [4])
    net = build_sequence_model(_config("early_lstm", steps=steps)).eval()
    for k in range(steps):
        boundary = start + (k + 1) * (stop - start) / steps  # the observed part ends here
        store = _store(tmp_path, nan_from=boundary, name=f"early{k}")
        dataset = SequenceDataset(rows, {"rgb": store}, steps, window="segment", step_labels="same")
        times = dataset.times(0)
        assert times[k] < boundary and all(t < start + (j + 1) * (stop - start) / steps for j, t in enumerate(times))
        x = dataset[0]["clip"][None]
        assert torch.isfinite(x[:, :k + 1]).all()
        with torch.no_grad():
            assert torch.isfinite(net.step_logits(x)[:, :k + 1]).all()  # later NaN steps cannot reach step k


def _counter_video(path, frames: int = 100, fps: int = 25) -> None:
    """A video whose frame i is uniformly grey at level 2 i: its brightness tells which frame a clip ended on."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = 32
        stream.pix_fmt, stream.bit_rate, stream.gop_size = "yuv420p", 2_000_000, 12
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 2 * i, dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


class Brightest(torch.nn.Module):
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return clips.amax(dim=(1, 2, 3, 4))[:, None]


def test_extracted_rows_end_at_their_time_and_never_later(tmp_path):
    path = tmp_path / "count.mp4"
    _counter_video(path)
    spec = ClipSpec(4, 3, 32)
    source = file_source("count", path)
    assert row_count(source.frames, source.fps, 4.0) == 16  # 99 / 25 s at 4 rows/s, row 0 at 0 s
    extractor = Extractor(Brightest(), spec, Convention(), 4.0, False, torch.device("cpu"))
    features = extractor.video(source)
    level = (features[:, 0] * 0.225 + 0.45) * 255  # undo the normalisation
    for r, value in enumerate(level):
        last = causal_clip(r, 4.0, 25.0, 100, spec)[-1]
        assert last == min(99, math.floor(r / 4 * 25)) and abs(value - 2 * last) < 2.0


def test_feature_streams_parse():
    assert stream_paths("a/b.lmdb") == {"rgb": __import__("pathlib").Path("a/b.lmdb")}
    assert set(stream_paths("rgb=x,flow=y,obj=z")) == {"rgb", "flow", "obj"}
    with pytest.raises(UserError):
        stream_paths("rgb=x,=y")
