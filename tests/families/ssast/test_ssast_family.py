"""The `ssast` family: registry, build from a RunConfig, phase transfer, loss hook and evaluation."""

import numpy as np
import pytest

from kc2f.data.registry import get_dataset_spec
from kc2f.families import AstFamily, SsastFamily, family_of, get_family
from kc2f.families.ssast import SsastPretrainer
from kc2f.training.run_config import RunConfig

CONFIG = dict(model="ssast", method="fshift", hidden_dim=16, depth=1, num_heads=2, patch_size=(8, 8),
              num_prefix_tokens=0, mean=-6.8, std=3.9)


def _waves(batch, rate=8000, seconds=1.28):
    rng = np.random.default_rng(0)
    n = int(rate * seconds)
    return {"waveform": (0.1 * rng.standard_normal((batch, n))).astype(np.float32),
            "length": np.full((batch,), n, np.int32)}


def test_registered_and_found_by_model():
    family = get_family("ssast")
    assert isinstance(family, SsastFamily)
    model = family.build(RunConfig.from_dict(CONFIG), get_dataset_spec("fsdd"), num_classes=10, factor=4)
    assert isinstance(model, SsastPretrainer) and family_of(model) is family
    assert model.token_grid == (8, 4) and model.num_masked == 25
    assert family.compile_loss(False) is None and family.metric(get_dataset_spec("fsdd")) == "masked_accuracy"
    # The supervised defaults are unchanged for the AST.
    ast = AstFamily()
    assert type(ast.compile_loss(False)).__name__ == "CategoricalCrossentropy"
    assert type(ast.compile_loss(True)).__name__ == "BinaryCrossentropy"
    assert ast.evaluate(None, None, None) is None and ast.metric(get_dataset_spec("fsdd")) == "accuracy"
    with pytest.raises(ValueError, match="method"):
        RunConfig.from_dict({**CONFIG, "method": "patch-bl"})
    with pytest.raises(ValueError, match="patch_stride must equal patch_size"):
        RunConfig.from_dict({**CONFIG, "patch_stride": (4, 4)})


def test_phase_transfer_resizes_only_the_position_embedding():
    family = get_family("ssast")
    config, spec = RunConfig.from_dict(CONFIG), get_dataset_spec("fsdd")
    coarse, fine = (family.build(config, spec, 10, factor) for factor in (4, 1))
    report = family.transfer(coarse, fine)
    assert report.paths("resized") == ["position_embedding/position_embedding"]
    assert "generative_head/kernel" in [path for path, action, _, _ in report.entries if action == "copied"]
    assert family.training_flops_per_sample(coarse) < 0.4 * family.training_flops_per_sample(fine)


def test_evaluation_uses_the_same_masks_every_time():
    family = get_family("ssast")
    model = family.build(RunConfig.from_dict(CONFIG), get_dataset_spec("fsdd"), 10, 1)
    batches = [(_waves(3), np.zeros((3, 10), np.float32))] * 2
    first, second = family.evaluate(model, batches, None), family.evaluate(model, batches, None)
    assert first == second
    assert set(first) == {"masked_accuracy", "nce", "mse", "loss"}
    assert first["loss"] == pytest.approx(first["nce"] + 10 * first["mse"])
    assert 0 <= first["masked_accuracy"] <= 1
