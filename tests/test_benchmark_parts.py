"""`kc2f bench --compare-minimal` and `--breakdown`: the minimal step computes kc2f's function, the CLI prints both."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kc2f.benchmark.profile import op_kind
from kc2f.families.ast.ast_minimal import MinimalAst
from kc2f.commands.bench import bench
from kc2f.families.ast import AudioSpectrogramTransformer
from tests.conftest import backend

TINY = ["--hidden", "32", "--depth", "1", "--heads", "2", "--seconds", "1", "--batch-size", "2",
        "--steps", "2", "--warmup", "1", "--num-classes", "5"]


def _copy_weights(model, minimal):
    """kc2f's weights into the minimal twin, by role."""
    values = {v.path.split("/", 1)[1]: keras.ops.convert_to_numpy(v) for v in model.weights}
    minimal.patch_kernel.assign(values["patch_embedding/kernel"].reshape(minimal.patch_kernel.shape))
    minimal.patch_bias.assign(values["patch_embedding/bias"])
    minimal.prefix.assign(values["position_embedding/prefix_tokens"])
    minimal.position.assign(values["position_embedding/position_embedding"])
    names = {"g1": "norm1/gamma", "b1": "norm1/beta", "wqkv": "qkv/kernel", "bqkv": "qkv/bias",
             "wo": "proj/kernel", "bo": "proj/bias", "g2": "norm2/gamma", "b2": "norm2/beta",
             "w1": "fc1/kernel", "c1": "fc1/bias", "w2": "fc2/kernel", "c2": "fc2/bias"}
    for i, block in enumerate(minimal.block_weights):
        for key, name in names.items():
            block[key].assign(values[f"block_{i}/{name}"])
    for variable, name in ((minimal.norm_g, "norm/gamma"), (minimal.norm_b, "norm/beta"),
                           (minimal.head_g, "head_norm/gamma"), (minimal.head_b, "head_norm/beta"),
                           (minimal.head_w, "head/kernel"), (minimal.head_c, "head/bias")):
        variable.assign(values[name])


@pytest.mark.parametrize("method, factor", [("maxpool", 1), ("maxpool", 2), ("avgpool", 4), ("fshift", 2),
                                            ("patch-bl", 2)])
def test_minimal_ast_computes_the_same_logits(method, factor):
    model = AudioSpectrogramTransformer(num_classes=5, method=method, factor=factor, target_frames=128,
                                        hidden_dim=32, depth=2, num_heads=2, fbank_mean=-4.0, fbank_std=4.0)
    minimal = MinimalAst.like(model)
    _copy_weights(model, minimal)
    rng = np.random.default_rng(0)
    x = {"waveform": (0.1 * rng.standard_normal((2, 16000))).astype("float32"),
         "length": np.array([16000, 9000], "int32")}
    # Trained weights are not zero: random prefix/bias values make every path count.
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    got = keras.ops.convert_to_numpy(minimal(x, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert minimal.grid == model.token_grid


def test_minimal_ast_config_round_trips():
    model = AudioSpectrogramTransformer(num_classes=3, factor=2, target_frames=128, hidden_dim=32, depth=1,
                                        num_heads=2, freqm=8, timem=16)
    minimal = MinimalAst.like(model, seed=3)
    config = minimal.get_config()
    again = MinimalAst.from_config(config)
    assert again.get_config() == config
    assert (again.freq_mask, again.time_mask, again.pool_factor) == (8, 8, 2)


@pytest.mark.slow  # four models compiled per factor (both build orders)
def test_compare_minimal_prints_the_ratio_per_factor():
    result = CliRunner().invoke(bench, TINY + ["--factors", "1,2", "--compare-minimal"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("kc2f[")]
    assert len(rows) == 2 and "C=1 " in rows[0] and "C=2 " in rows[1]
    assert all("kc2f/minimal_throughput=" in row and "minimal_step_ms=" in row for row in rows)
    result = CliRunner().invoke(bench, TINY + ["--factors", "2", "--compare-minimal", "--json"])
    row = json.loads(result.stdout)["rows"][0]
    ratios = []
    for order in ("kc2f_first", "minimal_first"):
        half = row["orders"][order]
        assert len(half["kc2f_step_ms_all"]) == len(half["minimal_step_ms_all"]) == 2
        ratios.append(np.median(half["minimal_step_ms_all"]) / np.median(half["kc2f_step_ms_all"]))
        assert row[f"ratio_{order}"] == pytest.approx(ratios[-1])
    assert row["ratio"] == pytest.approx(np.sqrt(ratios[0] * ratios[1]))


@pytest.mark.skipif(backend() not in ("jax", "tensorflow"), reason="--breakdown: JAX and TensorFlow")
def test_breakdown_times_every_part():
    result = CliRunner().invoke(bench, TINY + ["--factors", "1", "--breakdown", "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["rows"][0]
    for part in ("fbank", "fbank_compression", "forward", "forward_backward", "step"):
        assert row[f"{part}_ms"] > 0 and row[f"{part}_compile_s"] > 0
    assert row["optimizer_ms"] == pytest.approx(row["step_ms"] - row["forward_backward_ms"])
    text = CliRunner().invoke(bench, TINY + ["--factors", "2", "--breakdown"]).stdout
    assert "fbank_ms=" in text and "backward_ms=" in text and "C=2 " in text


def test_profile_traces_each_factor_and_lists_its_top_ops(tmp_path):
    # Issue 35 item 4: what a device call runs to find why a coarse step is not cheaper.
    out = tmp_path / "traces"
    result = CliRunner().invoke(bench, TINY + ["--factors", "1,2", "--steps", "2", "--profile", str(out), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [row["factor"] for row in rows] == [1, 2]
    for row in rows:
        assert list(pathlib.Path(row["trace_dir"]).rglob("*.xplane.pb")), row["trace_dir"]
        assert row["ops"] and all(op["ms_per_step"] > 0 and 0 < op["share"] <= 1 for op in row["ops"])
        assert [op["ms_per_step"] for op in row["ops"]] == sorted((op["ms_per_step"] for op in row["ops"]),
                                                                  reverse=True)
        assert row["traced_step_ms"] > 0 and row["where"] in ("device", "host")
        # The executors and dispatch around the ops are not ops: on a CPU they topped the table.
        assert not any(word in op["name"] for op in row["ops"]
                       for word in ("ExecutorState::", "KernelAndDeviceFunc::", "one_step_on_data"))
        kinds = row["kinds"]
        assert kinds and kinds[0]["ms_per_step"] >= row["ops"][0]["ms_per_step"]
        assert sum(op["share"] for op in kinds) <= 1 + 1e-9
    text = CliRunner().invoke(bench, TINY + ["--factors", "2", "--steps", "2", "--profile", str(out)]).stdout
    assert "profile size=" in text and "C=2 " in text and " ms " in text and "op kinds per step" in text


@pytest.mark.parametrize("mode", ["--profile", "--breakdown"])
def test_from_files_gives_the_files_recipe_to_the_other_measurements(mode, fsdd_dir, tmp_path):
    # They time a step on synthetic waveforms; --from-files used to be dropped without a word, so
    # `--from-files DIR --dataset fsdd --profile` profiled 10 s clips of 128 mel bins. (--compare-minimal
    # and --find-max-batch take the same branch of `benchmark.run`; their own runs take 25-50 s here.)
    pytest.importorskip("tensorflow")
    extra = [mode, str(tmp_path / "traces")] if mode == "--profile" else [mode]
    own = CliRunner().invoke(bench, TINY + ["--factors", "1", "--json", *extra])
    recipe = CliRunner().invoke(bench, TINY + ["--factors", "1", "--json", *extra,
                                              "--from-files", str(fsdd_dir), "--dataset", "fsdd"])
    assert own.exit_code == 0 and recipe.exit_code == 0, own.output + recipe.output
    own_row, recipe_row = json.loads(own.stdout)["rows"][0], json.loads(recipe.stdout)["rows"][0]
    # The FSDD recipe: 1.28 s at 8 kHz, 128 frames of 64 mel bins; TINY's own clip: 1 s at 16 kHz, 128 bins.
    assert own_row["frames"] != 128 or own_row["tokens"] != recipe_row["tokens"]
    assert recipe_row["frames"] == 128 and recipe_row["tokens"] < own_row["tokens"]
    assert "fsdd" in recipe.stderr and "64 mel bins" in recipe.stderr


def test_op_kind_drops_where_an_op_is():
    assert op_kind("gradient_tape/ast_c1_1/block_2_1/strided_slice_1/StridedSliceGrad:StridedSliceGrad") == (
        "StridedSliceGrad")
    assert op_kind("ast_c2_1/fbank_1/rfft:RFFT") == "RFFT"
    assert op_kind("fusion.12") == op_kind("fusion.3") == "fusion"
    assert op_kind("loop_multiply_fusion_2") == "loop_multiply_fusion"
    assert op_kind("dot") == "dot"


_HLO = """HloModule jit_train_step, is_scheduled=true
%fused_computation (param_0: f32[4]) -> f32[4] {
  %param_0 = f32[4]{0} parameter(0)
  ROOT %negate.1 = f32[4]{0} negate(%param_0)
}
ENTRY %main.1 (p0: f32[4], p1: f32[4]) -> f32[4] {
  %p0 = f32[4]{0} parameter(0)
  %p1 = f32[4]{0} parameter(1)
  %negate_fusion = f32[4]{0} fusion(%p0), kind=kLoop, calls=%fused_computation
  %copy_bitcast_fusion.3 = f32[2,2]{1,0} fusion(%p0, %p1, %negate_fusion, %p0, %p1, /*index=5*/%p1, %p0), kind=kLoop, calls=%fused_computation
  ROOT %multi = (f32[4]{0}, f32[4]{0}) fusion(%p0, %p1), kind=kInput, calls=%fused_computation
}
"""


def test_hlo_fusions_counts_each_fusions_operands():
    from kc2f.benchmark.hlo_fusions import fusions

    found = {f["name"]: f for f in fusions(_HLO)}
    assert set(found) == {"negate_fusion", "copy_bitcast_fusion.3", "multi"}
    # The index comments XLA puts every five operands are not operands.
    assert found["copy_bitcast_fusion.3"]["operands"] == 7 and found["copy_bitcast_fusion.3"]["kind"] == "kLoop"
    assert found["multi"]["operands"] == 2 and found["multi"]["shape"].startswith("(f32[4]")
    assert found["negate_fusion"]["operands"] == 1


def test_hlo_fusions_summarizes_an_xla_dump(tmp_path):
    # What tools/gpu_bench.sh PROFILE=1 prints from the profiled steps' dump: here a real JAX program.
    pytest.importorskip("jax")
    code = ("import jax, jax.numpy as jnp\n"
            "f = jax.jit(jax.grad(lambda w, x: jnp.sum(jnp.tanh(x @ w) ** 2)))\n"
            "f(jnp.ones((8, 8)), jnp.ones((4, 8))).block_until_ready()\n")
    env = {**os.environ, "XLA_FLAGS": f"--xla_dump_to={tmp_path} --xla_dump_hlo_as_text",
           "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    out = subprocess.run([sys.executable, "-m", "kc2f.benchmark.hlo_fusions", str(tmp_path), "--top", "2"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fusions" in out.stdout and "operands" in out.stdout and "widest:" in out.stdout
    from kc2f.benchmark.hlo_fusions import summarize_dump

    rows = summarize_dump(tmp_path, top=2)
    assert rows and all(len(row["widest"]) <= 2 for row in rows)
    assert any(row["fusions"] > 0 for row in rows)
    assert all(not row["module"].endswith(("_", ".")) for row in rows)
    missing = subprocess.run([sys.executable, "-m", "kc2f.benchmark.hlo_fusions", str(tmp_path / "nope")],
                             capture_output=True, text=True, env=env, timeout=300)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
