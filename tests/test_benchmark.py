"""`kc2f bench` and `kc2f.benchmark`: the table, JSON, spec, ratios, max-batch search, no TensorFlow."""

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from kc2f import benchmark
from kc2f.commands.bench import bench
from tests.conftest import REPO, backend

TINY = ["--hidden", "32", "--depth", "1", "--heads", "2", "--seconds", "1", "--batch-size", "2",
        "--steps", "3", "--warmup", "1", "--num-classes", "5"]
ROW_KEYS = ("C=", "tokens=", "batch=", "step_ms=", "samples_per_s=", "tflops=", "mfu=",
            "step_ratio=", "flops_ratio=", "peak_mem=", "compile_s=", "dtype=")
JSON_ROW_FIELDS = ("size", "method", "factor", "tokens", "batch", "frames", "step_ms", "samples_per_s",
                   "train_flops_per_sample", "tflops", "mfu", "step_ratio", "flops_ratio",
                   "peak_memory_bytes", "compile_s", "jit", "compute_dtype")


def _row_lines(output):
    return [line for line in output.splitlines() if line.startswith("kc2f[")]


def test_table_prints_every_column_for_a_tiny_config():
    result = CliRunner().invoke(bench, TINY + ["--factors", "1,2"])
    assert result.exit_code == 0, result.output
    stdout = result.stdout
    assert f"backend={backend()}" in stdout
    assert "matmul_peak_tflops=" in stdout and "precision=float32" in stdout
    rows = _row_lines(stdout)
    assert len(rows) == 2
    for row in rows:
        for key in ROW_KEYS:
            assert key in row, (key, row)
    assert "C=1 " in rows[0] and "step_ratio=1.000 flops_ratio=1.000" in rows[0]
    assert "C=2 " in rows[1]
    # 1 s → 128 frames: 8 × 8 patches + 2 prefix tokens at C=1, 8 × 4 + 2 at C=2.
    assert "tokens=66 " in rows[0] and "tokens=34 " in rows[1]


def test_every_row_runs_in_the_precision_asked_for():
    # Keras' clear_session between rows also resets the dtype policy to float32: every row after the
    # first ran in float32 under --precision mixed_bfloat16 (on an H200, C = 2 slower than C = 1).
    import keras

    result = CliRunner().invoke(bench, TINY + ["--factors", "1,2,4", "--precision", "mixed_bfloat16", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["precision"] == "mixed_bfloat16"
    assert [row["compute_dtype"] for row in data["rows"]] == ["bfloat16"] * 3
    # The caller's policy is back once the benchmark is done.
    assert keras.config.dtype_policy().name == "float32"


def test_json_is_valid_and_has_the_fields():
    result = CliRunner().invoke(bench, TINY + ["--factors", "1,4", "--methods", "fshift", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for field in ("backend", "device", "precision", "jit", "matmul_peak_tflops", "rows"):
        assert field in data
    assert data["backend"] == backend()
    if backend() in ("jax", "tensorflow"):
        assert data["jit"] == "xla"
    assert [(r["method"], r["factor"], r["tokens"]) for r in data["rows"]] == [("fshift", 1, 66), ("fshift", 4, 18)]
    for row in data["rows"]:
        for field in JSON_ROW_FIELDS:
            assert field in row, field
        assert row["step_ms"] > 0 and row["samples_per_s"] > 0 and row["train_flops_per_sample"] > 0
        assert 0 < row["mfu"]
    assert data["rows"][0]["step_ratio"] == 1.0
    assert data["rows"][1]["flops_ratio"] < 0.5


def test_c1_runs_once_for_all_methods():
    sizes = benchmark.model_sizes(["tiny", "small"])
    configs = benchmark.BenchSpec(sizes=sizes, methods=["maxpool", "fshift"], factors=[1, 2]).configurations()
    assert [(s.name, m, c) for s, m, c in configs] == [
        ("tiny", "maxpool", 1), ("tiny", "maxpool", 2), ("tiny", "fshift", 2),
        ("small", "maxpool", 1), ("small", "maxpool", 2), ("small", "fshift", 2),
    ]
    assert benchmark.model_sizes(hidden_dim=64) == [benchmark.ModelSize("custom", 64, 12, 1)]


def test_spec_defaults_and_derived_values():
    spec = benchmark.BenchSpec(sizes=benchmark.model_sizes(["tiny"]), methods=["fshift"], factors=[2, 1],
                               seconds=2.56, num_mel_bins=64)
    assert spec.methods == ("fshift",) and spec.factors == (2, 1)
    assert spec.target_frames == 256 and spec.samples == 40960
    assert spec.spec_augment == (48, 48)
    assert dataclasses.replace(spec, frames=512, freqm=8).spec_augment == (8, 96)
    assert benchmark.BenchSpec().sizes == tuple(benchmark.model_sizes(["base"]))
    assert benchmark.BenchSpec().target_frames == 1024
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.batch = 8


@pytest.mark.parametrize("fields, message", [
    ({"sizes": ()}, "Received: sizes=()"),
    ({"factors": ()}, "Received: factors=()"),
    ({"factors": [1, 0]}, "Received: factors=(1, 0)"),
    ({"methods": ()}, "Received: methods=()"),
    ({"methods": ["nope"]}, "Received: method='nope'"),
    ({"batch": 0}, "Received: batch=0"),
    ({"steps": 0}, "Received: steps=0, warmup=5"),
    ({"seconds": 0.0}, "Received: seconds=0.0"),
    ({"frames": 100, "factors": [1, 8]}, "Received: frames=100, factor=8"),
    ({"factors": [3]}, "Received: frames=1024, factor=3"),
    ({"precision": "fp8"}, "Received: precision='fp8'"),
    ({"jit": "maybe"}, "Received: jit='maybe'"),
    ({"num_classes": 0}, "Received: num_classes=0"),
])
def test_spec_validation_errors_say_what_was_received(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        benchmark.BenchSpec(**fields)


def test_bad_options_are_user_errors():
    runner = CliRunner()
    result = runner.invoke(bench, TINY + ["--methods", "nope"])
    assert result.exit_code != 0 and "method must be one of" in result.output
    result = runner.invoke(bench, TINY + ["--factors", "1,x"])
    assert result.exit_code != 0 and "integers" in result.output
    result = runner.invoke(bench, ["--preset", "huge"])
    assert result.exit_code != 0 and "size must be one of" in result.output
    result = runner.invoke(bench, TINY + ["--batch-size", "0"])
    assert result.exit_code != 0 and "Received: batch=0" in result.output
    assert "Traceback" not in result.output


def test_old_option_names_still_work_with_a_deprecation_warning():
    # --size / --batch were bench's names before it took fit's --preset / --batch-size.
    old = ["--batch" if arg == "--batch-size" else arg for arg in TINY]
    result = CliRunner().invoke(bench, old + ["--factors", "2", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "--batch is deprecated; use --batch-size" in result.stderr
    assert json.loads(result.stdout)["rows"][0]["batch"] == 2
    result = CliRunner().invoke(bench, ["--size", "huge"])
    assert result.exit_code != 0 and "--size is deprecated; use --preset" in result.stderr
    assert "size must be one of" in result.output
    result = CliRunner().invoke(bench, TINY + ["--batch", "3"])
    assert result.exit_code != 0 and "give one of them" in result.output


def test_ratios_arithmetic():
    def row(factor, step_ms, flops, method="maxpool", batch=8):
        return {"size": "tiny", "hidden_dim": 192, "depth": 12, "num_heads": 3, "batch": batch,
                "frames": 1024, "input": "synthetic", "method": method, "factor": factor,
                "step_ms": step_ms, "train_flops_per_sample": flops}

    rows = benchmark.add_ratios([
        row(1, 100.0, 300.0), row(2, 50.0, 144.0), row(4, 27.0, 69.0, method="fshift"),
        row(2, 10.0, 1.0, batch=4),  # no C=1 row at batch 4
    ])
    assert [r["step_ratio"] for r in rows[:3]] == pytest.approx([1.0, 0.5, 0.27])
    assert [r["flops_ratio"] for r in rows[:3]] == pytest.approx([1.0, 0.48, 0.23])
    assert rows[3]["step_ratio"] is None and rows[3]["flops_ratio"] is None

    samples_per_s, tflops, mfu = benchmark.throughput(64, 0.056, 291e9, peak_flops_per_s=800e12)
    assert samples_per_s == pytest.approx(1142.857, rel=1e-6)
    assert tflops == pytest.approx(1142.857 * 291e9 / 1e12, rel=1e-6)
    assert mfu == pytest.approx(tflops / 800, rel=1e-6)
    assert benchmark.throughput(1, 1.0, 1.0)[2] is None


def test_recipe_frames_and_spec_augment_widths():
    assert [benchmark.recipe_frames(s) for s in (10, 5, 2.56, 1, 1.28)] == [1024, 512, 256, 128, 128]
    assert benchmark.recipe_frames(1, max_factor=8) == 128
    assert benchmark.spec_augment_widths(1024) == (48, 192)
    assert benchmark.spec_augment_widths(256) == (48, 48)


def test_search_max_batch_doubles_then_bisects():
    calls = []

    def fits(batch):
        calls.append(batch)
        return batch <= 37

    assert benchmark.search_max_batch(fits, start=8) == (37, False)
    assert calls[:4] == [8, 16, 32, 64]
    assert benchmark.search_max_batch(lambda b: b <= 37, start=64) == (37, False)
    assert benchmark.search_max_batch(lambda b: True, start=3, limit=20) == (20, True)
    assert benchmark.search_max_batch(lambda b: b <= 5, start=2, limit=20) == (5, False)
    assert benchmark.search_max_batch(lambda b: False, start=4) == (0, False)


def test_out_of_memory_errors_are_caught_and_others_raised():
    def trial(batch):
        if batch > 12:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 123 bytes.")

    assert benchmark.search_max_batch(benchmark.fits_or_oom(trial), start=4, limit=64) == (12, False)
    for error in (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                  type("ResourceExhaustedError", (Exception,), {})("OOM when allocating tensor"),
                  type("OutOfMemoryError", (RuntimeError,), {})("")):
        assert benchmark.is_oom_error(error)
    assert not benchmark.is_oom_error(ValueError("shapes do not match"))

    def broken(batch):
        raise ValueError("not an OOM")

    with pytest.raises(ValueError, match="not an OOM"):
        benchmark.fits_or_oom(broken)(1)


def test_find_max_batch_with_a_small_cap():
    result = CliRunner().invoke(
        bench, TINY + ["--factors", "2", "--find-max-batch", "--batch-size", "1", "--max-batch", "2"]
    )
    assert result.exit_code == 0, result.output
    rows = _row_lines(result.stdout)
    assert len(rows) == 1
    assert "C=2 tokens=34 max_batch=>=2 (--max-batch cap) trials=1,2" in rows[0]


_NO_TENSORFLOW = textwrap.dedent(
    """
    import sys

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError("blocked for the test: " + name)

    sys.meta_path.insert(0, _Block())

    from kc2f.commands.bench import bench

    sys.argv = ["kc2f bench"] + sys.argv[1:]
    try:
        bench()
    except SystemExit as exit_:
        assert not exit_.code, exit_.code
    leaked = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith(("tensorflow.", "kc2f.data")))
    assert not leaked, leaked
    print("NO_TENSORFLOW_OK")
    """
)


@pytest.mark.skipif(backend() != "jax", reason="the no-TensorFlow install is checked under KERAS_BACKEND=jax")
def test_runs_without_tensorflow_under_jax():
    env = dict(os.environ, KERAS_BACKEND="jax")
    completed = subprocess.run(
        [sys.executable, "-c", _NO_TENSORFLOW] + TINY + ["--factors", "1,2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "NO_TENSORFLOW_OK" in completed.stdout
    assert len(_row_lines(completed.stdout)) == 2


def test_from_files_reports_input_bound_step(fsdd_dir):
    pytest.importorskip("tensorflow")
    # The generated FSDD-layout folder: 60 training clips (index 5-7), 8 kHz, 0.35-1.6 s.
    args = ["--hidden", "32", "--depth", "1", "--heads", "2", "--batch-size", "4", "--steps", "2",
            "--warmup", "1", "--factors", "1", "--from-files", str(fsdd_dir), "--dataset", "fsdd"]
    result = CliRunner().invoke(bench, args + ["--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["dataset"], out["split"], out["clips"]) == ("fsdd", "train", 60)
    row = out["rows"][0]
    assert row["input"] == "files" and row["frames"] == 128
    assert row["input_slowdown"] == pytest.approx(row["step_ms"] / row["synthetic_step_ms"])


def test_other_families_are_benchmarked_through_their_family():
    from kc2f.benchmark.rows import model_tokens
    from kc2f.benchmark.step import build_model, training_flops

    with pytest.raises(ValueError, match="for model 'htsat'"):
        benchmark.BenchSpec(model="htsat", methods=["patch-pi"])
    spec = benchmark.BenchSpec(model="htsat", sizes=benchmark.model_sizes(["tiny"]), methods=["fshift"],
                               factors=[1, 4], seconds=1.28, sample_rate=8000, num_classes=10)
    fine, coarse = (build_model(spec.sizes[0], "fshift", factor, spec) for factor in (1, 4))
    assert (model_tokens(fine), model_tokens(coarse)) == (512, 128)
    assert training_flops(coarse) / training_flops(fine) == pytest.approx(0.25, abs=0.02)
    # The family's own presets, as `kc2f bench --model htsat --preset tiny` asks for them: HTS-AT's have
    # no `hidden_dim`, and the row's model is the preset's.
    own = benchmark.model_sizes(["tiny"], model="htsat")[0]
    assert own.name == "tiny" and own.hidden_dim is None
    assert model_tokens(build_model(own, "fshift", 4, spec)) == 128
    with pytest.raises(ValueError, match="for model 'htsat'"):
        benchmark.model_sizes(["small"], model="htsat")
