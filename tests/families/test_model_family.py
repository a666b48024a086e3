"""The model-family seam: a user's family trains coarse-to-fine with no trainer change."""

import json
import pathlib

import keras
import numpy as np
import pytest

from kc2f.families import AstFamily, family_names, family_of, get_family, register_family
from kc2f.families.ast import AudioSpectrogramTransformer
from kc2f.training.run_config import RunConfig
from kc2f.training.trainer import fit
from tests.families.toy_family import TOY, FrameEnergyClassifier


def test_registry_finds_families_by_name_and_by_model():
    assert isinstance(get_family("ast"), AstFamily)
    assert get_family("toy-energy") is TOY
    ast = AudioSpectrogramTransformer(num_classes=3, hidden_dim=16, depth=1, num_heads=1, target_frames=64,
                                      num_mel_bins=32, patch_size=(16, 16))
    assert family_of(ast).name == "ast"
    assert family_of(FrameEnergyClassifier(3)) is TOY
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        get_family("nope")
    with pytest.raises(ValueError, match="must be a ModelFamily"):
        register_family(object())


def test_config_takes_the_methods_of_the_family():
    assert RunConfig(model="toy-energy", method="maxpool").model == "toy-energy"
    with pytest.raises(ValueError, match="for model 'toy-energy'"):
        RunConfig(model="toy-energy", method="fshift")


def test_at_factor_rebuilds_and_resizes_through_the_family():
    model = FrameEnergyClassifier(4, factor=1)
    model.offset.assign(np.linspace(0.0, 1.0, 64).astype("float32"))
    coarse = TOY.at_factor(model, 2)
    assert coarse.factor == 2 and coarse.cells == 32
    # A linear ramp stays a linear ramp (the resize's guarantee).
    np.testing.assert_allclose(np.asarray(coarse.offset.numpy()), np.linspace(0.0, 1.0, 64).reshape(32, 2).mean(1),
                               atol=1e-5)
    assert TOY.at_factor(model, 1) is model


def test_a_registered_family_trains_coarse_to_fine_and_resumes(tmp_path):
    lines = []
    config = RunConfig(model="toy-energy", dataset="synthetic", data_dir=str(tmp_path / "data"),
                       factors=(2, 1), phase_epochs=(1, 2), batch_size=8, max_train_examples=16,
                       max_eval_examples=8, warmup_steps=1)
    summary = fit(config, run_dir=tmp_path / "run", verbose=0, log=lines.append)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [(row["phase"], row["factor"], row["tokens"]) for row in history] == [(1, 2, 32), (2, 1, 64), (2, 1, 64)]
    coarse = FrameEnergyClassifier(8, factor=2, clip_samples=20480)
    fine = FrameEnergyClassifier(8, factor=1, clip_samples=20480)
    assert history[0]["epoch_flops"] == TOY.training_flops_per_sample(coarse) * 16
    assert history[1]["epoch_flops"] == TOY.training_flops_per_sample(fine) * 16
    assert any("Phase 2: C=2 -> C=1, tokens 32 -> 64; resized offset" in line for line in lines)
    assert summary["model"] == "toy-energy" and summary["epochs_trained"] == 3
    loaded = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    assert isinstance(loaded, FrameEnergyClassifier) and loaded.factor == 1
    again = []
    fit(config, run_dir=tmp_path / "run", verbose=0, log=again.append)
    assert any("already finished" in line for line in again)


PLUGIN = '''
from tests.families.toy_family import ToyFamily


class PluginFamily(ToyFamily):
    name = "plugin-energy"
'''


def _install_plugin(root, value):
    """A package and its `.dist-info` (METADATA, entry_points.txt) under `root`, as pip installs one."""
    (root / "kc2f_plugin_demo").mkdir(parents=True)
    (root / "kc2f_plugin_demo" / "__init__.py").write_text(PLUGIN)
    info = root / "kc2f_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kc2f-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[kc2f.families]\nplugin-energy = {value}\n")


@pytest.fixture
def rediscover(monkeypatch):
    from kc2f.families import model_family

    monkeypatch.setattr(model_family, "_discovered", False)
    monkeypatch.setattr(model_family, "_FAMILIES", dict(model_family._FAMILIES))
    return model_family


def test_an_installed_packages_family_trains_from_the_command_line(tmp_path, monkeypatch, rediscover, synthetic_dir):
    # Issue 32 item 5: a package that declares a `kc2f.families` entry point is found by name.
    from click.testing import CliRunner

    from kc2f.cli import main

    _install_plugin(tmp_path / "site", "kc2f_plugin_demo:PluginFamily")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "plugin-energy" in family_names()
    assert type(get_family("plugin-energy")).__name__ == "PluginFamily"
    result = CliRunner().invoke(main, [
        "fit", "--model", "plugin-energy", "--dataset", "synthetic", "--data-dir", str(synthetic_dir),
        "--method", "maxpool", "--factors", "2,1", "--phase-epochs", "1,1", "--batch-size", "8", "--quiet",
        "--set", "max_train_examples=16", "--set", "max_eval_examples=8", "--set", "warmup_steps=1",
        "--set", "frames=32", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [(row["factor"], row["tokens"]) for row in history] == [(2, 16), (1, 32)]
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["model"] == "plugin-energy" and recorded["model_options"] == {"frames": 32}
    # Its options are listed from its own dataclass, and an option it lacks is named with its owners.
    listed = json.loads(CliRunner().invoke(main, ["models", "plugin-energy", "--json"]).output)
    assert [option["name"] for option in listed[0]["options"]] == ["frames"]
    refused = CliRunner().invoke(main, ["fit", "--model", "plugin-energy", "--set", "hidden_dim=8",
                                        "--run-dir", str(tmp_path / "refused")])
    assert refused.exit_code != 0 and "not an option of model 'plugin-energy'" in refused.output
    assert not (tmp_path / "refused").exists()


def test_a_plugin_that_does_not_load_is_named(tmp_path, monkeypatch, rediscover):
    _install_plugin(tmp_path / "site", "kc2f_plugin_demo:Missing")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ValueError, match="Cannot load model family 'plugin-energy' from entry point "
                                         "'kc2f_plugin_demo:Missing'.*AttributeError"):
        get_family("plugin-energy")
    assert get_family("ast").name == "ast"  # a known name does not need the plugins


def test_an_installed_family_goes_fit_export_serving_predict(tmp_path, monkeypatch, rediscover, synthetic_dir):
    # Issue 32 item 4: export and predict learn what they need from the family (`serving_info`), so
    # a family of a user's own exports, serves in plain TensorFlow and predicts like kc2f's.
    import os
    import subprocess
    import sys

    from click.testing import CliRunner

    import kc2f
    from kc2f.cli import main
    from kc2f.export import export_run
    from tests.conftest import REPO
    from tests.families.htsat.test_htsat_family import SERVE

    site = tmp_path / "site"
    _install_plugin(site, "kc2f_plugin_demo:PluginFamily")
    monkeypatch.syspath_prepend(str(site))
    # An export under another backend runs in a TensorFlow child process, which finds the plugin too.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(REPO), os.environ.get("PYTHONPATH", "")]))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "fit", "--model", "plugin-energy", "--dataset", "synthetic", "--data-dir", str(synthetic_dir),
        "--method", "maxpool", "--factors", "2,1", "--phase-epochs", "1,1", "--batch-size", "8", "--quiet",
        "--set", "max_train_examples=16", "--set", "max_eval_examples=8", "--set", "warmup_steps=1",
        "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    out_dir = export_run(run_dir, tmp_path / "export")["out_dir"]
    metadata = json.loads((pathlib.Path(out_dir) / "assets" / "kc2f.json").read_text())
    assert (metadata["sample_rate"], metadata["token_grid"], metadata["method"]) == (16000, [1, 64], "maxpool")
    rng = np.random.default_rng(5)
    waves = np.stack([rng.standard_normal(30000).astype("float32") * scale for scale in (0.1, 0.4)])
    np.save(tmp_path / "waves.npy", waves)
    (tmp_path / "serve.py").write_text(SERVE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # plain TensorFlow: no kc2f, no plugin
    served = subprocess.run([sys.executable, str(tmp_path / "serve.py"), str(out_dir), str(tmp_path / "waves.npy"),
                             str(tmp_path / "out.npz")], capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=600)
    assert served.returncode == 0, served.stderr[-3000:]
    served = np.load(tmp_path / "out.npz")
    assert not served["kc2f_imported"]
    for model in (run_dir, out_dir):
        classifier = kc2f.load(str(model))
        for row, wave in zip(served["scores"], waves):
            np.testing.assert_allclose(classifier.predict(wave, sample_rate=16000)["scores"], row, atol=1e-5)


@pytest.mark.parametrize("name", ["ast", "htsat", "ssast"])
def test_presets_resolve_one_way_for_every_family(name):
    """`ModelFamily.sizes`: a named preset gives the preset's sizes, no preset the run's own; the
    built model has them."""
    from kc2f.families import get_family
    from kc2f.training.run_config import RunConfig

    family = get_family(name)
    method = family.methods[0]
    for preset, sizes in family.presets.items():
        assert family.sizes(RunConfig(model=name, method=method, preset=preset)) == sizes
    own = family.sizes(RunConfig(model=name, method=method,
                                 model_options=dict(hidden_dim=64, depth=3, num_heads=2)))
    assert own and not any(own == sizes for sizes in family.presets.values())
    width = own.get("hidden_dim", own.get("embed_dim"))
    assert width == 64


def test_default_and_pretraining_families_are_named_by_the_registry_not_the_callers():
    from kc2f.families import default_family, pretraining_family

    assert default_family().name == "ast" and RunConfig().model == "ast"
    assert pretraining_family().name == "ssast" and pretraining_family().pretrains
    assert not default_family().pretrains
    # A run's stored config without `model` (older runs) reads as the default family's.
    assert RunConfig.from_dict({"dataset": "synthetic"}).model == default_family().name
