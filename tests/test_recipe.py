"""Fine-tuning controls and the optimisation recipe."""

from __future__ import annotations

import pytest
import torch
from conftest import TRAIN_FLAGS

from actcli.data.video import ClipSpec
from actcli.engine.recipe import lr_factor, make_optimizer, param_groups
from actcli.errors import UserError
from actcli.models.freeze import apply_freeze
from actcli.models.multimodal import build_any
from actcli.models.zoo import build_model
from actcli.report import read_report
from actcli.settings import TrainSettings

SPEC = ClipSpec(4, 2, 32)


def _model():
    return build_model("x3d_xs", SPEC, num_classes=3)


def test_no_weight_decay_on_norms_and_biases_and_head_lr_multiplier():
    model = _model()
    groups = {g["name"]: g for g in param_groups(model, TrainSettings(lr=0.1, weight_decay=0.01, head_lr_mult=10))}
    assert set(groups) == {"backbone/decay", "backbone/no_decay", "head/decay", "head/no_decay"}
    assert all(p.ndim == 1 for p in groups["backbone/no_decay"]["params"])
    assert groups["backbone/no_decay"]["weight_decay"] == 0 and groups["backbone/decay"]["weight_decay"] == 0.01
    assert groups["head/decay"]["lr"] == pytest.approx(1.0) and groups["backbone/decay"]["lr"] == pytest.approx(0.1)
    bn_weight = model.backbone.blocks[0].norm.weight
    assert any(p is bn_weight for p in groups["backbone/no_decay"]["params"])


def test_schedules():
    cosine = TrainSettings(epochs=2)
    assert lr_factor(0, 100, 10, cosine, 50) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, cosine, 50) == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, cosine, 50) == pytest.approx(0.0)
    step = TrainSettings(epochs=30, schedule="step", step_every=10, step_gamma=0.1)
    assert lr_factor(0, 300, 0, step, 10) == 1.0
    assert lr_factor(100, 300, 0, step, 10) == pytest.approx(0.1)
    assert lr_factor(250, 300, 0, step, 10) == pytest.approx(0.01)


def test_freeze_bn_keeps_statistics_and_trains_the_rest():
    model = _model()
    apply_freeze(model, "bn")
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    before = bns[0].running_mean.clone()
    optimizer = make_optimizer(model, TrainSettings(lr=0.1))
    model(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    optimizer.step()
    assert not any(m.training for m in bns) and torch.equal(bns[0].running_mean, before)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    assert model.backbone.blocks[0].conv.conv_t.weight.grad is not None


def test_freeze_until_block_by_index_and_name():
    model = _model()
    assert apply_freeze(model, "until:1") == ["blocks.0", "blocks.1"]
    assert not any(p.requires_grad for p in model.backbone.blocks[1].parameters())
    assert all(p.requires_grad for p in model.backbone.blocks[2].parameters())
    model.train()
    assert not model.backbone.blocks[1].training and model.backbone.blocks[2].training
    other = _model()
    assert apply_freeze(other, "until:blocks.2")[-1] == "blocks.2"
    with pytest.raises(UserError, match="names no block"):
        apply_freeze(_model(), "until:blocks.99")


def test_precision_16_on_cpu_is_refused(cli, annotated):
    line = cli.fails("train", "--dataset", "synthetic", "--precision", "16", "--device", "cpu", *TRAIN_FLAGS)
    assert "--precision 16" in line and "bf16" in line


def test_bf16_accumulation_clipping_ema_smoothing_early_stop(cli, annotated, workdir):
    cli("train", "--dataset", "synthetic", "--experiment", "recipe", "--epochs", "4", "--precision", "bf16",
        "--accumulate", "2", "--clip-grad", "1.0", "--ema", "0.9", "--label-smoothing", "0.1",
        "--early-stop", "1", "--monitor", "val_accuracy", "--lr", "1e-9", "--optimizer", "sgd",
        "--schedule", "step", "--freeze", "backbone", "--head-lr-mult", "5", *TRAIN_FLAGS)
    (run,) = (workdir / "outputs" / "runs" / "recipe").iterdir()
    metrics = read_report(run / "report-train.json").metrics
    # Frozen backbone and lr 1e-9: predictions never change, so patience 1 stops at epoch 2.
    assert metrics["stopped_early"] and metrics["epochs"] == 2 and metrics["best_epoch"] == 1
    assert all(r["train_loss"] > 0 for r in metrics["history"])


def test_bad_freeze_value_names_the_setting(cli, annotated):
    line = cli.fails("train", "--dataset", "synthetic", "--freeze", "layers", *TRAIN_FLAGS)
    assert "model.freeze" in line


def test_freeze_until_a_block_freezes_everything_that_runs_before_it():
    # MViT: patch embedding and positional encodings (cls token) run before blocks.0.
    model = build_model("mvit_base_16x4", ClipSpec(4, 2, 32), num_classes=3)
    frozen = apply_freeze(model, "until:blocks.1")
    assert frozen == ["patch_embed", "cls_positional_encoding", "blocks.0", "blocks.1"]
    backbone = model.backbone
    ran: list[torch.nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda module, _args: ran.append(module)) for m in backbone.modules()]
    model.train()
    model(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    for hook in hooks:
        hook.remove()
    before_blocks = ran[: ran.index(backbone.blocks[2])]  # everything up to and including blocks.1
    assert backbone.patch_embed in before_blocks and backbone.cls_positional_encoding in before_blocks
    trainable = [m for m in before_blocks if m is not backbone and any(p.requires_grad for p in m.parameters())]
    assert not trainable
    assert all(p.grad is None for m in before_blocks if m is not backbone for p in m.parameters())
    assert backbone.cls_positional_encoding.cls_token.grad is None
    assert all(p.grad is not None for p in backbone.blocks[2].parameters())
    assert all(p.grad is not None for p in backbone.norm_embed.parameters())
    assert not backbone.patch_embed.training and backbone.blocks[2].training


def _late(fusion: str):
    return build_any("r3d_tiny", SPEC, 4, 0.0, ["rgb", "audio"], fusion)


HEADS = {  # model -> (the model to optimise, the parameters that map features to class scores)
    "single": lambda: (m := build_model("r3d_tiny", SPEC, 4), list(m.head.parameters())),
    "late": lambda: (m := _late("late"), list(m.heads.parameters())),
    "weighted": lambda: (m := _late("weighted"), [*m.heads.parameters(), m.fusion_logits]),
    "joint": lambda: (m := _late("joint"), list(m.head.parameters())),
    "cached_features": lambda: (h := build_model("r3d_tiny", SPEC, 4).head, list(h.parameters())),
}


@pytest.mark.parametrize("kind", list(HEADS))
def test_head_lr_multiplier_applies_to_every_kind_of_head(kind):
    model, head = HEADS[kind]()
    groups = param_groups(model, TrainSettings(lr=0.1, head_lr_mult=10))
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert set(lr_of) == {id(p) for p in model.parameters()}
    head_ids = {id(p) for p in head}
    assert all(lr_of[i] == pytest.approx(1.0) for i in head_ids)
    assert all(lr == pytest.approx(0.1) for i, lr in lr_of.items() if i not in head_ids)
    # The head's group is the one that trains it: one step moves the head by lr x mult.
    optimizer = make_optimizer(model, TrainSettings(lr=0.1, head_lr_mult=10, optimizer="sgd", weight_decay=0))
    assert {g["name"].split("/")[0] for g in optimizer.param_groups if id(g["params"][0]) in head_ids} == {"head"}


def test_cached_feature_training_uses_the_head_lr_multiplier(cli, annotated, workdir):
    cli("train", "--dataset", "synthetic", "--experiment", "cachedlr", "--epochs", "1", "--freeze", "backbone",
        "--no-augment", "--lr", "0.01", "--head-lr-mult", "10", "--warmup", "0", "--schedule", "step", *TRAIN_FLAGS)
    (run,) = (workdir / "outputs" / "runs" / "cachedlr").iterdir()
    history = read_report(run / "report-train.json").metrics["history"]
    assert history[0]["lr"] == pytest.approx(0.1)  # only the head trains: every group has lr x 10
