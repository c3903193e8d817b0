"""Recipes: loading, typed overrides, every error reported at once, every shipped recipe valid."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from actionnet_edge.errors import ActionNetError
from actionnet_edge.models import MIN_INPUT_SIZE, check_input_size
from actionnet_edge.train.config import Recipe, load_recipe, parse_recipe
from actionnet_edge.train.schedule import step_epochs

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
GOOD = {"model": {"arch": "mobilenet_v2", "temporal": "action"},
        "data": {"dataset": "synthetic", "segments": 8, "size": 64},
        "train": {"epochs": 3, "batch_size": 4, "lr": 0.01, "lr_steps": [0.34, 0.67]}}


def _write(tmp_path, raw) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_shipped_recipes_exist():
    names = {p.stem for p in RECIPES}
    assert "synthetic" in names and len(names) >= 7


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_validates(path):
    r = load_recipe(path)
    assert isinstance(r, Recipe)
    assert r.train.lr > 0 and r.train.epochs > 0
    assert all(0 < f < 1 for f in r.train.lr_steps)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_validates_with_one_epoch(path):
    r = load_recipe(path, ["train.epochs=1"])
    assert r.train.epochs == 1 and step_epochs(r.train.lr_steps, 1) == []


def test_epoch_steps_are_an_error_that_says_how_to_fix_it(tmp_path):
    with pytest.raises(ActionNetError, match=r"train.lr_steps: steps are fractions of the run in \(0, 1\), got 3; "
                                             r"for a step after epoch E of 5 write E/5"):
        load_recipe(_write(tmp_path, GOOD), ["train.epochs=5", "train.lr_steps=[3, 4]"])
    with pytest.raises(ActionNetError, match="only for lr_schedule: step"):
        load_recipe(_write(tmp_path, GOOD), ["train.lr_schedule=cosine"])
    with pytest.raises(ActionNetError, match="train.warmup: a fraction of the run"):
        load_recipe(_write(tmp_path, GOOD), ["train.warmup=2"])


def test_size_rule_is_the_models_one(tmp_path):
    with pytest.raises(ActionNetError, match=f"data.size must be an integer of at least {MIN_INPUT_SIZE} px, got 30"):
        load_recipe(_write(tmp_path, GOOD), ["data.size=30"])
    assert load_recipe(_write(tmp_path, GOOD), [f"data.size={MIN_INPUT_SIZE}"]).data.size == MIN_INPUT_SIZE
    assert check_input_size(MIN_INPUT_SIZE) == MIN_INPUT_SIZE
    for bad in (MIN_INPUT_SIZE - 1, 0, 32.0, True):
        with pytest.raises(ActionNetError, match="--size must be"):
            check_input_size(bad, "--size")


def test_paper_schedules():
    by = {p.stem: load_recipe(p) for p in RECIPES}
    for stem, steps, epochs in (("jester_mbv2_action", [10, 20, 25], 30),
                                ("egogesture_mbv2_action", [5, 10, 15], 25),
                                ("ssv2_mbv2_action", [30, 40, 45], 50),
                                ("synthetic", [3, 4], 5)):
        r = by[stem]
        assert (step_epochs(r.train.lr_steps, r.train.epochs), r.train.epochs) == (steps, epochs), stem
        assert r.train.lr_schedule == "step" and r.train.warmup == 0
        if stem == "synthetic":
            continue
        assert (r.train.lr, r.train.batch_size) == (0.01, 64)
        assert r.model.dropout == 0.5 and r.data.segments == 8 and r.train.weight_decay == 5e-4


def test_defaults_and_typed_overrides(tmp_path):
    r = load_recipe(_write(tmp_path, GOOD), ["train.lr=0.05", "train.lr_steps=[0.5]", "data.flip=true",
                                              "model.pretrained=null", "train.clip_grad=5"])
    assert r.train.lr == 0.05 and r.train.lr_steps == [0.5] and r.data.flip is True
    assert r.train.clip_grad == 5.0 and isinstance(r.train.clip_grad, float)
    assert r.train.momentum == 0.9 and r.qat is None
    assert r.to_dict()["train"]["lr"] == 0.05


def test_all_errors_reported_at_once_with_suggestions(tmp_path):
    raw = {"model": {"arch": "mobilenet_v3", "temporl": "action"}, "data": {"dataset": "synthetic", "size": "big"},
           "train": {"epochs": 3, "lr": -1}, "trian": {}}
    with pytest.raises(ActionNetError) as e:
        parse_recipe(raw)
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("unknown section 'trian'", "did you mean 'train'", "model.temporl: unknown key",
                 "did you mean 'temporal'", "data.size: expected an integer"):
        assert part in msg, msg


def test_bad_values_reported_together():
    raw = {"model": {"arch": "mobilenet_v3"}, "data": {"dataset": "jestr", "segments": 1},
           "train": {"epochs": 3, "lr": -1, "lr_steps": [2, 5]}}
    msg = str(pytest.raises(ActionNetError, parse_recipe, raw).value)
    for part in ("model.arch: unknown 'mobilenet_v3'", "did you mean 'mobilenet_v2'", "data.dataset: unknown 'jestr'",
                 "data.segments: must be >= 2", "train.lr: must be > 0", "train.lr_steps"):
        assert part in msg, msg
    assert "5 problems" in msg or "6 problems" in msg


def test_qat_section(tmp_path):
    raw = dict(GOOD, qat={"backend": "xnnpack", "epochs": 2, "freeze_bn_epoch": 1})
    r = parse_recipe(raw)
    assert r.qat.backend == "xnnpack" and r.qat.freeze_bn_epoch == 1 and r.to_dict()["qat"]["epochs"] == 2
    with pytest.raises(ActionNetError, match="qat.backend: unknown 'xnnpak'.*did you mean 'xnnpack'"):
        parse_recipe(dict(GOOD, qat={"backend": "xnnpak"}))
    with pytest.raises(ActionNetError, match="freeze_bn_epoch"):
        parse_recipe(dict(GOOD, qat={"epochs": 2, "freeze_bn_epoch": 5}))


def test_file_errors(tmp_path):
    with pytest.raises(ActionNetError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ActionNetError, match="not valid YAML"):
        load_recipe(bad)
    with pytest.raises(ActionNetError, match="expected section.key=value"):
        load_recipe(_write(tmp_path, GOOD), ["lr=0.1"])
    with pytest.raises(ActionNetError, match="train.lrr: unknown key"):
        load_recipe(_write(tmp_path, GOOD), ["train.lrr=0.1"])
    with pytest.raises(ActionNetError, match="missing section 'train'"):
        parse_recipe({"model": {}, "data": {}})


def test_causal_and_consensus_keys_build_the_model(tmp_path):
    from actionnet_edge.train.loop import build_model

    r = load_recipe(_write(tmp_path, GOOD), ["model.causal=true", "model.consensus=last", "model.width_mult=0.35"])
    m = build_model(r, 5)
    assert m.config["causal"] is True and m.config["consensus"] == "last"
    assert build_model(load_recipe(_write(tmp_path, GOOD), ["model.width_mult=0.35"]), 5).config["causal"] is False
    with pytest.raises(ActionNetError, match="model.consensus: unknown 'mean', valid: avg, last"):
        load_recipe(_write(tmp_path, GOOD), ["model.consensus=mean"])


def test_zero_init_residual_starts_every_residual_block_as_the_identity(tmp_path):
    import torch
    import torchvision

    from actionnet_edge.train.loop import build_model

    r = load_recipe(_write(tmp_path, GOOD), ["model.zero_init_residual=true", "model.width_mult=0.35"])
    m = build_model(r, 5)
    blocks = [b for b in m.backbone.modules()
              if isinstance(b, torchvision.models.mobilenetv2.InvertedResidual) and b.use_res_connect]
    assert len(blocks) == 10
    x = torch.randn(8, blocks[3].out_channels, 8, 8)
    m.train()
    assert torch.equal(blocks[3].conv(x), torch.zeros_like(x))  # branch is zero: block(x) == x
    assert torch.equal(blocks[3](x), x)
    # the official initialisation stays the default: the same block's branch is not zero there
    plain = build_model(load_recipe(_write(tmp_path, GOOD), ["model.width_mult=0.35"]), 5).train()
    assert float(next(b for b in plain.backbone.modules() if isinstance(b, type(blocks[3])) and b.use_res_connect)
                 .conv[-1].weight.abs().min()) == 1.0
    with pytest.raises(ActionNetError, match="model.zero_init_residual: only for training from scratch"):
        load_recipe(_write(tmp_path, GOOD), ["model.zero_init_residual=true", f"model.pretrained={_write(tmp_path, GOOD)}"])
    with pytest.raises(ActionNetError, match="bninception has no residual blocks"):
        load_recipe(_write(tmp_path, GOOD), ["model.zero_init_residual=true", "model.arch=bninception"])
