"""Training-step throughput of the kc2f AST on the active Keras backend.

`kc2f bench` times what one optimizer step of real training costs: waveforms in,
Kaldi fbank and the temporal compression inside the model, SpecAugment on (the
recipe's 48/192 masks at 1024 frames, scaled to the clip), loss, Adam update,
all through Keras' own compiled train step (`model.make_train_function()`: XLA
via `jax.jit` on JAX, `tf.function(jit_compile=True)` on TensorFlow, eager or
`torch.compile` on PyTorch). The PyTorch reference
(`shared/bench/torch_ast_reference.py`) prints one line per factor,

    torch+compile C=1 tokens=514 batch=64 step_ms=... samples_per_s=... tflops=...

and `format_lines` prints the same keys, plus MFU, ratios and memory, so both
outputs can be read (and parsed) side by side.

Method:
- synthetic waveforms are generated on the host with NumPy and put on the
  device once (as the reference keeps its batch on the GPU);
- every timed step is device-synchronised (the loss is read back to the host)
  and the step time is the median of `steps` steps after `warmup` steps (the
  first warm-up step includes compilation, reported as `compile_s`);
- achieved TFLOP/s = samples/s x the closed-form training FLOPs per sample
  (`step.training_flops`); MFU divides it by a dense matmul peak measured here
  with `keras.ops.matmul` (jitted) in the compute dtype of the precision
  policy, before and after every row (the best measurement is the peak, so a
  busy moment does not inflate MFU);
- `step_ratio` is the step time over the C=1 step of the same size and batch,
  printed next to `flops_ratio`, the same ratio of FLOPs (docs/method.md#performance-anchors:
  0.50 vs 0.48 at C=2, 0.27 vs 0.23 at C=4 on an H100).

Modules: `spec` (`BenchSpec`: what is measured), `sizes` (`ModelSize`),
`step` (the model and its timed training step), `peak` (matmul peak, MFU),
`memory` (peak device memory, OOM), `backend` (device, precision, jit),
`rows` (the result dict), `measure` (the timing loop), `synthetic`, `files`
and `max_batch` (the three measurements), `output` (the text), `entry` (`run`:
the `kc2f bench` entry).

The package imports neither TensorFlow nor `kc2f.data` at import time, so it
runs where only JAX or PyTorch is installed; only `benchmark_files` (the
`--from-files` mode, fed by the tf.data pipeline) imports them, when called.
"""

from kc2f.benchmark.backend import (
    accelerator_present,
    device_name,
    precision_scope,
    release,
    resolve_jit,
    resolve_precision,
)
from kc2f.benchmark.entry import run
from kc2f.benchmark.errors import BenchError
from kc2f.benchmark.files import benchmark_files
from kc2f.benchmark.max_batch import find_max_batch, fits_or_oom, search_max_batch
from kc2f.benchmark.memory import is_oom_error, peak_memory_bytes, reset_peak_memory
from kc2f.benchmark.output import format_header, format_lines, format_max_batch, format_max_batch_row, format_row
from kc2f.benchmark.peak import measure_matmul_peak, throughput
from kc2f.benchmark.rows import add_ratios
from kc2f.benchmark.sizes import ModelSize, model_sizes
from kc2f.benchmark.spec import NUM_CLASSES, RECIPE_FRAMES, BenchSpec, recipe_frames, spec_augment_widths
from kc2f.benchmark.step import TrainStep, build_model, compile_model, synthetic_batch, time_steps, training_flops
from kc2f.benchmark.synthetic import measure_row, run_benchmark

__all__ = [
    "NUM_CLASSES",
    "RECIPE_FRAMES",
    "BenchError",
    "BenchSpec",
    "ModelSize",
    "TrainStep",
    "accelerator_present",
    "add_ratios",
    "benchmark_files",
    "build_model",
    "compile_model",
    "device_name",
    "find_max_batch",
    "fits_or_oom",
    "format_header",
    "format_lines",
    "format_max_batch",
    "format_max_batch_row",
    "format_row",
    "is_oom_error",
    "measure_matmul_peak",
    "measure_row",
    "model_sizes",
    "peak_memory_bytes",
    "precision_scope",
    "recipe_frames",
    "release",
    "reset_peak_memory",
    "resolve_jit",
    "resolve_precision",
    "run",
    "run_benchmark",
    "search_max_batch",
    "spec_augment_widths",
    "synthetic_batch",
    "throughput",
    "time_steps",
    "training_flops",
]
