"""The recipe transformers need: layer-wise LR decay, drop path, Mixup/CutMix, RandAugment on whole clips,
repeated augmentation, gradient checkpointing and the per-family recipe defaults, on real models and clips."""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from conftest import TRAIN_FLAGS, extend_run
from torch.utils.data import Dataset

from actcli.data.datasets import make_loader
from actcli.data.transforms import AUTO_AUGMENT, train_transform
from actcli.data.video import ClipSpec
from actcli.engine.distributed import EpochSampler
from actcli.engine.objective import BatchMixer, objective_correct, objective_loss
from actcli.engine.recipe import checkpoint_blocks, family_recipe, param_groups
from actcli.engine.train import Trainer
from actcli.errors import UserError
from actcli.models import zoo
from actcli.models.freeze import apply_freeze
from actcli.models.zoo import build_model
from actcli.pipeline import clip_dataset, clip_spec, data_source, model_config
from actcli.report import read_report
from actcli.settings import TrainSettings, load_settings

SPEC = ClipSpec(4, 2, 32)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def mvit():
    """pytorchvideo's MViT-B at a reduced clip, with stochastic depth 0.2 (16 blocks)."""
    return build_model("mvit_base_16x4", SPEC, num_classes=3, config={"drop_path": 0.2})


def _lr_of(model, settings: TrainSettings) -> dict[int, float]:
    groups = param_groups(model, settings)
    lr = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert all(g["weight_decay"] == 0 for g in groups if any(p.ndim == 1 for p in g["params"]))
    return lr


def test_layer_decay_scales_each_block_stem_and_head(mvit):
    F_, lr, mult = 0.75, 0.1, 10.0
    settings = TrainSettings(lr=lr, layer_decay=F_, head_lr_mult=mult, weight_decay=0.05)
    lr_of = _lr_of(mvit, settings)
    backbone, blocks = mvit.backbone, mvit.backbone.blocks
    L = len(blocks)
    assert L == 16
    for module in (backbone.patch_embed, backbone.cls_positional_encoding):  # before block 0: F^(L+1)
        assert all(lr_of[id(p)] == pytest.approx(lr * F_ ** (L + 1)) for p in module.parameters())
    for i, block in enumerate(blocks):
        assert all(lr_of[id(p)] == pytest.approx(lr * F_ ** (L - i)) for p in block.parameters()), i
    assert all(lr_of[id(p)] == pytest.approx(lr) for p in backbone.norm_embed.parameters())  # after the last block
    assert all(lr_of[id(p)] == pytest.approx(lr * mult) for p in mvit.head.parameters())
    assert set(lr_of) == {id(p) for p in mvit.parameters()}

    # A network without a separate stem (pytorchvideo Net: blocks 0..4 = stem, 3 stages, pooling head).
    tiny = build_model("r3d_tiny", SPEC, 3)
    apply_freeze(tiny, "until:1")  # frozen parameters are in no group
    lr_of = _lr_of(tiny, settings)
    blocks = tiny.backbone.blocks
    assert not any(id(p) in lr_of for p in blocks[1].parameters())
    assert all(lr_of[id(p)] == pytest.approx(lr * F_ ** (5 - 2)) for p in blocks[2].parameters())
    assert all(lr_of[id(p)] == pytest.approx(lr * F_ ** (5 - 3)) for p in blocks[3].parameters())
    # Off (1.0): today's four groups, unchanged.
    names = {g["name"] for g in param_groups(build_model("r3d_tiny", SPEC, 3), TrainSettings(layer_decay=1.0))}
    assert names == {"backbone/decay", "backbone/no_decay", "head/decay", "head/no_decay"}


def test_drop_path_reaches_mvit_and_is_refused_where_there_is_none(mvit, cli, annotated):
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for b in mvit.backbone.blocks]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.2) and rates == sorted(rates)  # linear from 0
    clips = torch.randn(2, 3, 4, 32, 32)
    mvit.train()
    with torch.no_grad():
        torch.manual_seed(0)
        a = mvit(clips)
        torch.manual_seed(1)
        b = mvit(clips)
        mvit.eval()
        assert not torch.allclose(a, b) and torch.equal(mvit(clips), mvit(clips))  # random in training only
    settings, _ = load_settings(None, {"model.drop_path": 0.2, "model.name": "mvit_base_16x4"})
    assert model_config(settings) == {"drop_path": 0.2}
    line = cli.fails("train", "--dataset", "synthetic", "--model", "x3d_xs", "--drop-path", "0.1", *TRAIN_FLAGS)
    assert "stochastic depth" in line and "mvit_base_16x4" in line
    assert "model.drop_path" in cli.fails("train", "--dataset", "synthetic", "--drop-path", "1.5", *TRAIN_FLAGS)


def _real_batch(settings_overrides: dict | None = None, batch_size: int = 4) -> dict:
    settings, _ = load_settings(None, {"data.dataset": "synthetic", "model.name": "r3d_tiny", "data.frames": 4,
                                       "data.stride": 2, "data.crop": 32, **(settings_overrides or {})})
    source = data_source(settings)
    dataset = clip_dataset(source, "train", clip_spec(settings), training=True,
                           auto_augment=settings.data.auto_augment)
    torch.manual_seed(0)
    return next(iter(make_loader(dataset, batch_size, 0, True)))


def test_cutmix_cuts_one_box_through_every_frame_and_mixup_blends_targets_alike(annotated):
    batch = _real_batch()
    # Real clips, each shifted by its own offset so that no pixel of one equals a pixel of another.
    clips = batch["clips"] + 10 * torch.arange(4.0).view(4, 1, 1, 1, 1)
    labels = batch["labels"]
    rolled = clips.roll(1, 0)
    torch.manual_seed(3)
    mixed, targets = BatchMixer(3, cutmix=1.0)(clips, labels)
    assert targets.shape == (4, 3) and torch.allclose(targets.sum(1), torch.ones(4))
    changed = mixed != clips  # [B, C, T, H, W]
    box = changed.any(dim=(1, 2))  # [B, H, W]
    assert box.any()
    for b in range(4):
        assert torch.equal(changed[b], box[b].expand_as(changed[b]))  # the same box in every frame and channel
        rows, cols = box[b].any(1).nonzero().flatten(), box[b].any(0).nonzero().flatten()
        if len(rows):
            assert box[b][rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # a rectangle
        assert torch.equal(mixed[b][changed[b]], rolled[b][changed[b]])  # pasted from the rolled clip
        area = box[b].float().mean()
        expected = (1 - area) * F.one_hot(labels[b], 3) + area * F.one_hot(labels[b - 1], 3)
        assert torch.allclose(targets[b], expected.float(), atol=1e-6)

    torch.manual_seed(4)
    mixed, targets = BatchMixer(3, mixup=0.8)(clips, labels)
    assert torch.allclose(targets.sum(1), torch.ones(4))
    lam = float(((mixed - rolled) / (clips - rolled)).flatten()[0])
    assert torch.allclose(mixed, lam * clips + (1 - lam) * rolled, atol=1e-5)
    assert torch.allclose(targets, lam * F.one_hot(labels, 3) + (1 - lam) * F.one_hot(labels.roll(1), 3), atol=1e-6)

    # The loss is the soft-label cross-entropy (smoothed towards uniform), accuracy counts the dominant label.
    logits = torch.randn(4, 3)
    soft = -(targets * logits.log_softmax(1)).sum(1).mean()
    assert objective_loss(logits, targets) == pytest.approx(float(soft), rel=1e-6)
    smoothed = targets * 0.9 + 0.1 / 3
    assert objective_loss(logits, targets, label_smoothing=0.1) == pytest.approx(
        float(-(smoothed * logits.log_softmax(1)).sum(1).mean()), rel=1e-6)
    assert torch.equal(objective_correct(logits, targets), logits.argmax(1) == targets.argmax(1))
    with pytest.raises(UserError, match="EK100"):
        Trainer(build_model("r3d_tiny", SPEC, 5), [], [], TrainSettings(mixup=0.8), CPU, heads=(2, 3), num_classes=5)


def test_auto_augment_applies_the_same_ops_to_every_frame(annotated):
    frame = _real_batch({"data.augment": False})["clips"]  # just to read a real frame's pixels
    first = ((frame[0, :, 0] * 0.225 + 0.45).clamp(0, 1) * 255).to(torch.uint8)  # [C, H, W]
    clip = first.expand(4, *first.shape).contiguous()  # [T, C, H, W]: four identical frames
    for name in AUTO_AUGMENT:
        transform = train_transform(32, hflip=False, auto_augment=name)
        policy = AUTO_AUGMENT[name]()
        from torchvision import tv_tensors

        outs = []
        for seed in range(6):
            torch.manual_seed(seed)
            out = transform(clip)  # float [C, T, H, W]
            assert all(torch.equal(out[:, 0], out[:, t]) for t in range(4)), name
            torch.manual_seed(seed)
            outs.append(policy(tv_tensors.Video(clip)).as_subclass(torch.Tensor))
        assert all(torch.equal(o[0], o[t]) for o in outs for t in range(4))
        assert len({o.numpy().tobytes() for o in outs}) > 1, f"{name}: the op should differ between calls"
    batch = _real_batch({"data.auto_augment": "trivialaugment"})
    assert batch["clips"].shape == (4, 3, 4, 32, 32)


class _Indices(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def test_repeated_sampler_each_index_n_times_copies_on_different_ranks_and_resumes():
    sampler = EpochSampler(_Indices(7), num_replicas=1, rank=0, seed=5, repeats=3)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert len(sampler) == 21 and Counter(epoch1) == Counter({i: 3 for i in range(7)})
    sampler.set_epoch(2)
    assert list(sampler) != epoch1
    shards = []
    for rank in range(2):
        shard = EpochSampler(_Indices(7), num_replicas=2, rank=rank, seed=5, repeats=2)
        shard.set_epoch(1)
        shards.append(list(shard))
    assert all(Counter(s) == Counter(range(7)) for s in shards)  # each clip once per rank: its copies split
    # Resume: 2 ranks trained 2 batches of 2; one process continues as Trainer.fit computes the skip.
    done = 2 * 2 * 2
    whole = EpochSampler(_Indices(7), num_replicas=1, rank=0, seed=5, repeats=2)
    whole.set_epoch(1)
    whole.skip = math.ceil(done / 1)
    trained = shards[0][:4] + shards[1][:4] + list(whole)
    assert Counter(trained) == Counter({i: 2 for i in range(7)}) and len(whole) == 14 - done


class _StopAfter:
    signal_name = "SIGTERM"

    def __init__(self, steps: int) -> None:
        self.steps, self.calls = steps, 0

    def requested(self) -> bool:
        self.calls += 1
        return self.calls >= self.steps


class _NoWriter:
    def add_scalar(self, *args) -> None:
        pass

    def flush(self) -> None:
        pass


def test_an_interrupted_epoch_of_repeated_clips_resumes_where_it_stopped(annotated):
    settings, _ = load_settings(None, {"data.dataset": "synthetic", "model.name": "r3d_tiny", "data.frames": 4,
                                       "data.stride": 2, "data.crop": 32})
    source = data_source(settings)
    spec = clip_spec(settings)
    train_set = clip_dataset(source, "train", spec, training=True)
    val_set = clip_dataset(source, "val", spec, training=False)
    train = TrainSettings(epochs=1, batch_size=3, repeated_aug=2, mixup=0.8, cutmix=1.0, layer_decay=0.75)
    seen: list[int] = []

    def trainer() -> Trainer:
        from actcli.data.datasets import collate_clips
        from actcli.engine.distributed import train_sampler

        loader = make_loader(train_set, 3, 0, True, sampler=train_sampler(train_set, 0, train.repeated_aug))
        loader.collate_fn = lambda samples: (seen.extend(s["index"] for s in samples), collate_clips(samples))[1]
        return Trainer(build_model("r3d_tiny", spec, 3), loader, make_loader(val_set, 3, 0, False), train, CPU,
                       num_classes=3)

    saved: dict = {}
    first = trainer()
    metrics = first.fit(_NoWriter(), lambda kind, w, extras: saved.update(extras), 0, stop=_StopAfter(3))
    assert metrics.interrupted and metrics.batches_done == 3 and len(seen) == 9
    resumed = trainer()
    resumed.load_state_dict(saved["training"])
    assert resumed.fit(_NoWriter(), lambda *a: None, 0).epochs == 1
    assert Counter(seen) == Counter({i: 2 for i in range(len(train_set))})


def test_gradient_checkpointing_gives_the_same_gradients_and_saves_fewer_tensors():
    plain = build_model("r3d_tiny", SPEC, 3, dropout=0.0)
    checked = copy.deepcopy(plain)
    assert checkpoint_blocks(checked.backbone) == 4  # stem and 3 stages (the pooling head has no parameters)
    clips = torch.randn(2, 3, 4, 32, 32)
    counts = []
    for model in (plain, checked):
        model.train()
        saved = [0]

        def pack(tensor, saved=saved):
            saved[0] += 1
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = model(clips).logsumexp(1).sum()
        loss.backward()
        counts.append(saved[0])
    assert counts[1] < counts[0] / 2, counts
    for (name, a), b in zip(plain.named_parameters(), checked.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=0), name
    for (name, a), b in zip(plain.named_buffers(), checked.buffers(), strict=True):  # BN statistics move once
        assert torch.equal(a, b), name
    clone = copy.deepcopy(checked)  # EMA / inference copies run their own weights
    block = clone.backbone.blocks[1]
    assert block.forward.args[0] is block and list(checked.state_dict()) == list(plain.state_dict())


def test_family_recipe_fills_only_what_the_user_left(monkeypatch):
    settings, sources = load_settings(None, {"model.name": "r3d_tiny", "train.lr": 0.01})
    assert family_recipe(settings, sources) == (settings, {})  # pytorchvideo: nothing changes
    entry = dataclasses.replace(zoo.get_entry("r3d_tiny"), name="vit_fake", family="huggingface")
    monkeypatch.setitem(zoo.MODELS, "vit_fake", entry)
    settings, sources = load_settings(None, {"model.name": "vit_fake", "train.batch_size": 16})
    assert family_recipe(settings, sources) == (settings, {})  # from random initialisation: the plain defaults
    settings, sources = load_settings(None, {"model.name": "vit_fake", "train.batch_size": 16,
                                             "train.label_smoothing": 0.0, "model.weights": "kinetics"})
    tuned, applied = family_recipe(settings, sources, world_size=2)
    assert tuned.train.lr == pytest.approx(1e-3 * 16 * 2 / 256) and tuned.train.weight_decay == 0.05
    recipe = (tuned.train.layer_decay, tuned.model.drop_path, tuned.train.mixup, tuned.train.cutmix)
    assert recipe == (0.75, 0.1, 0.8, 1.0)
    assert tuned.train.repeated_aug == 2 and tuned.data.auto_augment == "randaugment"
    assert tuned.train.label_smoothing == 0.0 and "train.label_smoothing" not in applied  # given: kept
    settings, sources = load_settings(None, {"model.name": "vit_fake", "data.augment": False,
                                             "model.freeze": "backbone", "model.weights": "kinetics"})
    tuned, applied = family_recipe(settings, sources)
    assert not {"train.mixup", "train.cutmix", "train.repeated_aug", "data.auto_augment"} & set(applied)
    settings, sources = load_settings(None, {"model.name": "vit_fake", "data.dataset": "ek100",
                                             "model.weights": "kinetics"})
    assert "train.mixup" not in family_recipe(settings, sources)[1]


def test_transformer_recipe_trains_resumes_and_is_recorded(cli, annotated, workdir, monkeypatch):
    # r3d_tiny stated a transformer: the whole recipe runs on a fast network (no drop path: it has none).
    entry = dataclasses.replace(zoo.get_entry("r3d_tiny"), name="tiny_transformer",
                                options={"recipe": "transformer", "drop_path": False})
    monkeypatch.setitem(zoo.MODELS, "tiny_transformer", entry)
    pretrained = workdir / "pretrained.pt"  # the recipe is for fine-tuning: start from (publisher-format) weights
    torch.save(zoo.build_backbone("r3d_tiny", zoo.get_entry("r3d_tiny").clip)[0].state_dict(), pretrained)
    out = cli("train", "--dataset", "synthetic", "--model", "tiny_transformer", "--weights", pretrained, "--epochs",
              "1", "--experiment", "vit", "--grad-checkpointing", "--label-smoothing", "0.2", *TRAIN_FLAGS).output
    assert "recipe defaults for tiny_transformer" in out
    (run,) = (workdir / "outputs" / "runs" / "vit").iterdir()
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["train"]["lr"] == pytest.approx(1e-3 * 3 / 256) and config["train"]["label_smoothing"] == 0.2
    assert config["train"]["mixup"] == 0.8 and config["train"]["repeated_aug"] == 2
    assert config["train"]["grad_checkpointing"] and config["data"]["auto_augment"] == "randaugment"
    assert read_report(run / "report-train.json").config["train"]["layer_decay"] == 0.75
    extend_run(run, 2)
    cli("train", "--resume", str(run))
    assert read_report(run / "report-train.json").metrics["epochs"] == 2
    line = cli.fails("train", "--dataset", "synthetic", "--freeze", "backbone", "--no-augment", "--cutmix", "1",
                     *TRAIN_FLAGS)
    assert "cached backbone features" in line
    assert "--no-augment" in cli.fails("train", "--dataset", "synthetic", "--no-augment", "--repeated-aug", "2",
                                       *TRAIN_FLAGS)
    assert "transformers" in cli("train", "--help").output

