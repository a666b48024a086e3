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
  (`kc2f.training.flops.training_flops_per_sample`); MFU divides it by a dense
  matmul peak measured here with `keras.ops.matmul` (jitted) in the compute
  dtype of the precision policy, before and after every row (the best
  measurement is the peak, so a busy moment does not inflate MFU);
- `step_ratio` is the step time over the C=1 step of the same size and batch,
  printed next to `flops_ratio`, the same ratio of FLOPs (docs/method.md#performance-anchors:
  0.50 vs 0.48 at C=2, 0.27 vs 0.23 at C=4 on an H100).

This module imports neither TensorFlow nor `kc2f.data` at import time, so it
runs where only JAX or PyTorch is installed; only `benchmark_files` (the
`--from-files` mode, fed by the tf.data pipeline) imports them, when called.
"""

import dataclasses
import gc
import math
import os
import platform
import statistics
import time

import keras
import numpy as np

from kc2f.models import PRESETS, AudioSpectrogramTransformer

# The AST recipe at 10 s (docs/method.md#recipe-values): 1024 frames, SpecAugment 48 / 192.
RECIPE_FRAMES = 1024
RECIPE_FREQM = 48
RECIPE_TIMEM = 192
# AudioSet's label count and statistics, as the PyTorch reference uses 527 classes.
NUM_CLASSES = 527
FBANK_MEAN, FBANK_STD = -4.2677393, 4.5689974
FRAMES_PER_SECOND = 100  # 10 ms frame shift

_OOM_MARKERS = ("resource_exhausted", "resourceexhausted", "out of memory", "oom when allocating")


class BenchError(ValueError):
    """A benchmark cannot run as asked; the message says why."""


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """Transformer size of a benchmark row: a preset name or `custom`."""

    name: str
    hidden_dim: int
    depth: int
    num_heads: int


def model_sizes(names=("base",), hidden_dim=None, depth=None, num_heads=None):
    """The sizes to benchmark: presets by name, or one custom size.

    A custom size is used when any of `hidden_dim`, `depth`, `num_heads` is
    given; the missing ones default to 12 blocks and `hidden_dim // 64` heads
    (at least 1), as ViT.
    """
    if hidden_dim is not None or depth is not None or num_heads is not None:
        if hidden_dim is None:
            raise BenchError("A custom size needs hidden_dim. Received: hidden_dim=None")
        depth = 12 if depth is None else depth
        num_heads = max(1, hidden_dim // 64) if num_heads is None else num_heads
        if hidden_dim % num_heads:
            raise BenchError(
                f"hidden_dim must be divisible by num_heads. Received: hidden_dim={hidden_dim}, "
                f"num_heads={num_heads}"
            )
        return [ModelSize("custom", hidden_dim, depth, num_heads)]
    sizes = []
    for name in names:
        if name not in PRESETS:
            raise BenchError(f"size must be one of {sorted(PRESETS)}. Received: size={name!r}")
        preset = PRESETS[name]
        sizes.append(ModelSize(name, preset["hidden_dim"], preset["depth"], preset["num_heads"]))
    return sizes


def recipe_frames(seconds, max_factor=4):
    """Full-resolution fbank frames of a clip, padded as the AST recipe pads.

    10 ms frames, rounded up to whole 16-frame patches at the largest factor
    (at least C=4): 10 s → 1024, 5 s → 512, 2.56 s → 256, 1 s → 128, which are
    the recipe's target frames (docs/method.md#recipe-values).
    """
    multiple = 16 * max(4, int(max_factor))
    frames = math.ceil(round(seconds * FRAMES_PER_SECOND, 6) / multiple) * multiple
    return max(multiple, frames)


def spec_augment_widths(target_frames, num_mel_bins=128):
    """The recipe's SpecAugment `(freqm, timem)` scaled to `target_frames`.

    48 / 192 at 1024 frames (AST); the time mask keeps its width in seconds. The
    model divides the time mask by C again in compressed phases.
    """
    freqm = min(RECIPE_FREQM, num_mel_bins)
    timem = (RECIPE_TIMEM * target_frames) // RECIPE_FRAMES
    return freqm, timem


def resolve_precision(precision="auto"):
    """`auto` → `mixed_bfloat16` on a GPU/TPU, `float32` on CPU."""
    choices = ("auto", "float32", "mixed_bfloat16", "mixed_float16", "bfloat16")
    if precision not in choices:
        raise BenchError(f"precision must be one of {choices}. Received: precision={precision!r}")
    if precision == "auto":
        return "mixed_bfloat16" if accelerator_present() else "float32"
    return precision


def accelerator_present():
    devices = [str(d).lower() for d in keras.distribution.list_devices()]
    return any(("gpu" in d or "tpu" in d or "cuda" in d) for d in devices)


def resolve_jit(jit="auto"):
    """Keras `jit_compile` for the step: XLA on JAX and TensorFlow by default.

    `auto` turns XLA on for JAX and TensorFlow and keeps Keras' own choice on
    PyTorch (eager; `on` asks Keras for `torch.compile`).
    """
    if jit not in ("auto", "on", "off"):
        raise BenchError(f"jit must be auto, on or off. Received: jit={jit!r}")
    if jit == "on":
        return True
    if jit == "off":
        return False
    return True if keras.backend.backend() in ("jax", "tensorflow") else "auto"


def jit_label(model):
    backend = keras.backend.backend()
    if not model.jit_compile:
        return "eager"
    return "torch.compile" if backend == "torch" else "xla"


def device_name():
    """A short description of the device the backend computes on."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform != "cpu":
                return f"{device.platform}:{device.device_kind}"
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"cuda:{torch.cuda.get_device_name(0)}"
        elif backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return f"gpu:{details.get('device_name', gpus[0].name)}"
    except Exception:  # noqa: BLE001 - a description only
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpu:{platform.processor() or platform.machine()} ({cores} cores)"


# ---------------------------------------------------------------------------
# Device memory and the matmul peak.


def reset_peak_memory():
    """Resets the device's peak-memory counter where the backend can (not JAX)."""
    backend = keras.backend.backend()
    try:
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        elif backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                tf.config.experimental.reset_memory_stats("GPU:0")
    except Exception:  # noqa: BLE001 - memory is reported as n/a then
        pass


def peak_memory_bytes():
    """Peak device memory in bytes, or `None` where the backend does not expose it.

    JAX: `memory_stats()["peak_bytes_in_use"]` of the first device (a process-wide
    peak: JAX cannot reset it, so a row shows the largest of itself and the rows
    before it); PyTorch: `torch.cuda.max_memory_allocated()`; TensorFlow:
    `tf.config.experimental.get_memory_info("GPU:0")["peak"]`. CPU: `None`.
    """
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            stats = jax.devices()[0].memory_stats()
            if stats and "peak_bytes_in_use" in stats:
                return int(stats["peak_bytes_in_use"])
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return int(torch.cuda.max_memory_allocated())
        elif backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    except Exception:  # noqa: BLE001 - memory is reported as n/a then
        pass
    return None


def _synchronize(value):
    """Blocks until `value` (a backend tensor) is computed; returns it as NumPy."""
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.block_until_ready(value))
    return keras.ops.convert_to_numpy(value)


def measure_matmul_peak(dtype="float32", size=None, repeats=None, trials=3):
    """Dense matmul throughput of the device, FLOP/s, timed in the active backend.

    Multiplies two `(size, size)` matrices of `dtype` with `keras.ops.matmul`,
    jitted where the backend can (`jax.jit`; `tf.function(jit_compile=True)`;
    eager on PyTorch), `repeats` times back to back between two synchronisations,
    and keeps the best of `trials`. Defaults: 8192 and 20 repeats on an
    accelerator, 1024 and 4 repeats on CPU.

    Returns:
        `dict(flops_per_s, dtype, size, repeats)`.
    """
    accel = accelerator_present()
    size = size or (8192 if accel else 1024)
    repeats = repeats or (20 if accel else 4)
    rng = np.random.default_rng(0)
    a = keras.ops.cast(keras.ops.convert_to_tensor(rng.standard_normal((size, size), np.float32)), dtype)
    b = keras.ops.cast(keras.ops.convert_to_tensor(rng.standard_normal((size, size), np.float32)), dtype)

    def matmul(x, y):
        return keras.ops.matmul(x, y)

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        matmul = jax.jit(matmul)
    elif backend == "tensorflow":
        import tensorflow as tf

        matmul = tf.function(matmul, jit_compile=True)
    # A scalar read back synchronises every backend (TF and torch queue their GPU work).
    _synchronize(matmul(a, b)[0, 0])
    best = math.inf
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(repeats):
            c = matmul(a, b)
        _synchronize(c[0, 0])
        best = min(best, (time.perf_counter() - start) / repeats)
    return {"flops_per_s": 2.0 * size**3 / best, "dtype": str(dtype), "size": size, "repeats": repeats}


def is_oom_error(error):
    """Whether `error` is a backend's out-of-memory error (JAX/XLA, TF, PyTorch)."""
    name = type(error).__name__.lower()
    if "outofmemory" in name or "resourceexhausted" in name:
        return True
    message = str(error).lower()
    return any(marker in message for marker in _OOM_MARKERS)


# ---------------------------------------------------------------------------
# The training step.


def build_model(size, method, factor, *, num_classes=NUM_CLASSES, sample_rate=16000,
                target_frames=RECIPE_FRAMES, num_mel_bins=128, fbank_mean=FBANK_MEAN,
                fbank_std=FBANK_STD, freqm=None, timem=None, seed=0):
    """The kc2f AST of a benchmark row, with the recipe's SpecAugment scaled to the clip."""
    default_freqm, default_timem = spec_augment_widths(target_frames, num_mel_bins)
    return AudioSpectrogramTransformer(
        num_classes=num_classes,
        method=method,
        factor=factor,
        sample_rate=sample_rate,
        target_frames=target_frames,
        num_mel_bins=num_mel_bins,
        fbank_mean=fbank_mean,
        fbank_std=fbank_std,
        hidden_dim=size.hidden_dim,
        depth=size.depth,
        num_heads=size.num_heads,
        freqm=default_freqm if freqm is None else freqm,
        timem=default_timem if timem is None else timem,
        seed=seed,
        name=f"ast_{size.name}_{method}_c{factor}",
    )


def compile_model(model, jit="auto", multilabel=False):
    """Adam (AST's betas and weight decay) + cross-entropy on logits, as `kc2f fit`."""
    optimizer = keras.optimizers.Adam(
        learning_rate=1e-4, beta_1=0.95, beta_2=0.999, weight_decay=5e-7
    )
    if multilabel:
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
    else:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss, jit_compile=resolve_jit(jit))
    return model


def synthetic_batch(batch, samples, num_classes, seed=0):
    """Host (NumPy) waveforms `(batch, samples)` float32 and one-hot labels."""
    rng = np.random.default_rng(seed)
    x = (0.1 * rng.standard_normal((batch, samples))).astype(np.float32)
    y = np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, batch)]
    return x, y


def _to_device(data):
    if keras.backend.backend() == "jax":
        import jax

        return jax.tree_util.tree_map(jax.device_put, data)
    return keras.tree.map_structure(keras.ops.convert_to_tensor, data)


class TrainStep:
    """One optimizer step of a compiled Keras model, synchronised, through Keras' own step.

    JAX: the jitted `model.train_function` (`jax.jit(train_step,
    donate_argnums=0)`) with the model state threaded through it, which is what
    `fit` runs, without `train_on_batch`'s per-step state sync; the state goes
    back into the model in `close()`. TensorFlow: `model.train_function` (the
    `tf.function(jit_compile=True)` step) after a first `train_on_batch` built
    it. PyTorch: `train_on_batch`.

    Calling the object runs one step on `data` (`(x, y)`; default: the batch
    given at construction, kept on the device) and returns the loss as a float,
    read back from the device.
    """

    def __init__(self, model, data):
        self.model = model
        self.backend = keras.backend.backend()
        self.data = _to_device(data)
        self._state = None
        if self.backend == "jax":
            model._symbolic_build(data_batch=self.data)
            model.make_train_function()
            self._state = model._get_jax_state(
                trainable_variables=True,
                non_trainable_variables=True,
                optimizer_variables=True,
                metrics_variables=True,
            )

    def __call__(self, data=None):
        # One structure, (x, y, sample_weight), for every call: train_on_batch builds the
        # TensorFlow step with it, and another structure would retrace and recompile.
        data = keras.utils.unpack_x_y_sample_weight(self.data if data is None else data)
        model = self.model
        if self.backend == "jax":
            logs, self._state = model.train_function(self._state, iter([data]))
        elif self.backend == "tensorflow" and model.train_function is not None:
            logs = model.train_function(iter([data]))
        else:
            x, y, sample_weight = data
            logs = model.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
            return float(logs["loss"])
        return float(_synchronize(logs["loss"]))

    def close(self):
        """Writes the JAX state back into the model's variables."""
        if self.backend == "jax" and self._state is not None:
            trainable, non_trainable, optimizer, metrics = self._state
            self.model._jax_state = {
                "trainable_variables": trainable,
                "non_trainable_variables": non_trainable,
                "optimizer_variables": optimizer,
                "metrics_variables": metrics,
            }
            self.model._jax_state_synced = False
            self.model.jax_state_sync()
            self.model._jax_state = None
            self._state = None


def time_steps(step, steps, warmup, next_data=None):
    """Runs `warmup` then `steps` synchronised steps; returns `(first_s, [step_s, ...])`.

    `first_s` is the first warm-up step (compilation included). `next_data`, if
    given, is called before each step for the step's batch, inside the timed
    region (the input pipeline's share of the step).
    """
    if steps < 1 or warmup < 1:
        raise BenchError(f"steps and warmup must be >= 1. Received: steps={steps}, warmup={warmup}")
    times = []
    first = None
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss = step(next_data() if next_data else None)
        elapsed = time.perf_counter() - start
        if not math.isfinite(loss):
            raise BenchError(f"The loss is not finite at step {i}: {loss}")
        if i == 0:
            first = elapsed
        if i >= warmup:
            times.append(elapsed)
    return first, times


def release(model=None):
    """Frees what a benchmark row allocated before the next one."""
    del model
    keras.backend.clear_session()
    gc.collect()
    if keras.backend.backend() == "torch":
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001
            pass


def throughput(batch, step_s, train_flops_per_sample, peak_flops_per_s=None):
    """`(samples_per_s, tflops, mfu)` of a step; `mfu` is `None` without a peak."""
    samples_per_s = batch / step_s
    flops_per_s = samples_per_s * train_flops_per_sample
    mfu = flops_per_s / peak_flops_per_s if peak_flops_per_s else None
    return samples_per_s, flops_per_s / 1e12, mfu


def add_ratios(rows):
    """Adds `step_ratio` and `flops_ratio` against the C=1 row of the same group.

    A group is the same size, batch and clip (`size`, `hidden_dim`, `depth`,
    `num_heads`, `batch`, `frames`): at C=1 every method is the same model, so
    one C=1 row serves all methods. Rows without a C=1 partner get `None`.
    """

    def group(row):
        return tuple(row.get(k) for k in ("size", "hidden_dim", "depth", "num_heads", "batch", "frames", "input"))

    references = {group(r): r for r in rows if r["factor"] == 1}
    for row in rows:
        ref = references.get(group(row))
        if ref is None:
            row["step_ratio"] = row["flops_ratio"] = None
            continue
        row["step_ratio"] = row["step_ms"] / ref["step_ms"]
        row["flops_ratio"] = row["train_flops_per_sample"] / ref["train_flops_per_sample"]
    return rows


def _training_flops(model):
    # Imported here: kc2f.training.flops is the one closed-form count of the project.
    from kc2f.training.flops import training_flops_per_sample

    return float(training_flops_per_sample(model))


def measure_row(size, method, factor, batch, *, seconds=10.0, sample_rate=16000, target_frames=None,
                steps=30, warmup=5, jit="auto", num_classes=NUM_CLASSES, peak_flops_per_s=None, seed=0):
    """Times the training step of one configuration on synthetic waveforms; returns a row dict."""
    target_frames = target_frames or recipe_frames(seconds, factor)
    samples = int(round(seconds * sample_rate))
    model = build_model(size, method, factor, num_classes=num_classes, sample_rate=sample_rate,
                        target_frames=target_frames, seed=seed)
    compile_model(model, jit)
    flops = _training_flops(model)
    reset_peak_memory()
    step = TrainStep(model, synthetic_batch(batch, samples, num_classes, seed))
    try:
        first, times = time_steps(step, steps, warmup)
    finally:
        step.close()
    row = _row(model, size, batch, seconds, target_frames, times, first, flops, peak_flops_per_s)
    release(model)
    return row


def _row(model, size, batch, seconds, target_frames, times, first, flops, peak_flops_per_s, **extra):
    step_s = statistics.median(times)
    samples_per_s, tflops, mfu = throughput(batch, step_s, flops, peak_flops_per_s)
    row = {
        "size": size.name,
        "hidden_dim": size.hidden_dim,
        "depth": size.depth,
        "num_heads": size.num_heads,
        "method": model.method,
        "factor": model.factor,
        "tokens": int(model.position_embedding.num_tokens),
        "batch": batch,
        "seconds": seconds,
        "frames": target_frames,
        "input": "synthetic",
        "steps": len(times),
        "step_ms": 1e3 * step_s,
        "step_ms_mean": 1e3 * statistics.fmean(times),
        "step_ms_min": 1e3 * min(times),
        "compile_s": first,
        "samples_per_s": samples_per_s,
        "train_flops_per_sample": flops,
        "tflops": tflops,
        "mfu": mfu,
        "peak_memory_bytes": peak_memory_bytes(),
        "jit": jit_label(model),
        "step_ratio": None,
        "flops_ratio": None,
    }
    row.update(extra)
    return row


def _configurations(sizes, methods, factors):
    """(size, method, factor) in order; C=1 once per size (the same model for every method)."""
    configs = []
    for size in sizes:
        for factor in factors:
            for method in methods if factor != 1 else methods[:1]:
                configs.append((size, method, factor))
    return configs


def _check_factors(factors, methods):
    from kc2f.models import METHODS

    if not factors:
        raise BenchError("Give at least one factor. Received: factors=()")
    for factor in factors:
        if not isinstance(factor, int) or factor < 1:
            raise BenchError(f"factors must be integers >= 1. Received: factors={tuple(factors)}")
    if not methods:
        raise BenchError("Give at least one method. Received: methods=()")
    for method in methods:
        if method not in METHODS:
            raise BenchError(f"method must be one of {METHODS}. Received: method={method!r}")


def set_precision(precision):
    precision = resolve_precision(precision)
    keras.mixed_precision.set_global_policy(precision)
    return precision


def _compute_dtype(precision):
    return keras.mixed_precision.Policy(precision).compute_dtype


def run_benchmark(sizes, methods=("maxpool",), factors=(1, 2, 4), batch=64, *, seconds=10.0,
                  sample_rate=16000, target_frames=None, steps=30, warmup=5, precision="auto",
                  jit="auto", num_classes=NUM_CLASSES, seed=0, log=None):
    """Times the training step for every size × method × factor on synthetic waveforms.

    Args:
        sizes: `ModelSize`s (see `model_sizes`).
        methods: compression methods (`maxpool`, `fshift`, ...).
        factors: compression factors C.
        batch: batch size.
        seconds, sample_rate: the synthetic clip.
        target_frames: full-resolution frames (default: `recipe_frames(seconds)`).
        steps, warmup: timed steps (median reported) and warm-up steps.
        precision: `auto` (bf16 on GPU/TPU, float32 on CPU), `float32`, `mixed_bfloat16`.
        jit: `auto` (XLA on JAX/TensorFlow), `on`, `off`.
        log: called with each finished row's line, if given.

    Returns:
        A dict: `backend`, `device`, `precision`, `matmul_peak_tflops`, `matmul`, `rows`.
    """
    factors = [int(f) for f in factors]
    methods = list(methods)
    _check_factors(factors, methods)
    if batch < 1:
        raise BenchError(f"batch must be >= 1. Received: batch={batch}")
    target_frames = target_frames or recipe_frames(seconds, max(factors))
    for factor in factors:
        if target_frames % factor:
            raise BenchError(
                f"frames must be divisible by every factor. Received: frames={target_frames}, factor={factor}"
            )
    previous = keras.mixed_precision.global_policy().name
    precision = set_precision(precision)
    try:
        matmul = measure_matmul_peak(_compute_dtype(precision))
        result = _header(precision, jit, matmul)
        for size, method, factor in _configurations(sizes, methods, factors):
            row = measure_row(size, method, factor, batch, seconds=seconds, sample_rate=sample_rate,
                              target_frames=target_frames, steps=steps, warmup=warmup, jit=jit,
                              num_classes=num_classes, peak_flops_per_s=matmul["flops_per_s"], seed=seed)
            matmul = _record_row(result, row, matmul, precision, log)
        _set_peak(result, matmul)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    result["jit"] = result["rows"][0]["jit"] if result["rows"] else result["jit"]
    return result


def _record_row(result, row, matmul, precision, log):
    """Adds `row` to `result`, logs it, and returns the matmul peak re-measured.

    The peak is re-measured after every row and the best of all measurements
    kept (a busy or still-clocking-up device reads low once); MFU is
    recomputed against it at the end.
    """
    result["rows"].append(row)
    add_ratios(result["rows"])
    if log:
        log(format_row(result, row))
    return _best_matmul(matmul, measure_matmul_peak(_compute_dtype(precision)))


def _best_matmul(a, b):
    return a if a["flops_per_s"] >= b["flops_per_s"] else b


def _set_peak(result, matmul):
    """Sets the matmul peak of `result` and recomputes every row's MFU against it."""
    result["matmul"] = matmul
    result["matmul_peak_tflops"] = matmul["flops_per_s"] / 1e12
    for row in result["rows"]:
        row["mfu"] = 1e12 * row["tflops"] / matmul["flops_per_s"]


def _header(precision, jit, matmul):
    return {
        "tool": "kc2f",
        "backend": keras.backend.backend(),
        "device": device_name(),
        "precision": precision,
        "jit": jit,
        "matmul_peak_tflops": matmul["flops_per_s"] / 1e12 if matmul else None,
        "matmul": matmul,
        "rows": [],
    }


# ---------------------------------------------------------------------------
# Output.


def _fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def _fmt_memory(value):
    return "n/a" if value is None else f"{value / 2**30:.2f}GiB"


def format_header(result):
    peak = result.get("matmul_peak_tflops")
    matmul = result.get("matmul") or {}
    return (
        f"# kc2f bench backend={result['backend']} jit={result['jit']} precision={result['precision']} "
        f"device={result['device'].replace(' ', '_')} matmul_peak_tflops={_fmt(peak, '.4g')} "
        f"(matmul {matmul.get('dtype', '?')} {matmul.get('size', '?')}^2)"
    )


def format_row(result, row):
    """One line per row, with the PyTorch reference's keys first (`C=`, `tokens=`, ...)."""
    mfu = None if row["mfu"] is None else 100 * row["mfu"]
    line = (
        f"kc2f[{result['backend']}] size={row['size']} method={row['method']} C={row['factor']} "
        f"tokens={row['tokens']} batch={row['batch']} step_ms={row['step_ms']:.1f} "
        f"samples_per_s={row['samples_per_s']:.4g} tflops={row['tflops']:.4g} mfu={_fmt(mfu, '.1f')}% "
        f"step_ratio={_fmt(row['step_ratio'], '.3f')} flops_ratio={_fmt(row['flops_ratio'], '.3f')} "
        f"peak_mem={_fmt_memory(row['peak_memory_bytes'])} compile_s={row['compile_s']:.1f}"
    )
    if row.get("input") == "files":
        line += (
            f" input=files synthetic_step_ms={row['synthetic_step_ms']:.1f} "
            f"input_slowdown={row['input_slowdown']:.2f}"
        )
    return line


def format_lines(result):
    """The header and one line per row (ratios recomputed over all rows)."""
    add_ratios(result["rows"])
    return "\n".join([format_header(result)] + [format_row(result, row) for row in result["rows"]])


# ---------------------------------------------------------------------------
# Largest batch that fits.


def search_max_batch(fits, start=1, limit=None):
    """Largest batch `b <= limit` with `fits(b)`, by doubling from `start` then bisecting.

    `fits` must be monotone (a batch that fits means every smaller one fits).
    Returns `(batch, capped)`: `capped` is True when `limit` itself fits (the
    true maximum may be larger); `batch` is 0 when not even 1 fits.
    """
    if start < 1:
        raise BenchError(f"start must be >= 1. Received: start={start}")
    if limit is not None and limit < 1:
        raise BenchError(f"limit must be >= 1. Received: limit={limit}")
    good, bad = 0, None
    batch = start if limit is None else min(start, limit)
    while True:
        if fits(batch):
            good = batch
            if limit is not None and batch >= limit:
                return good, True
            batch = batch * 2 if limit is None else min(batch * 2, limit)
        else:
            bad = batch
            break
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good, False


def fits_or_oom(trial):
    """Wraps `trial(batch)` into `fits(batch)`: False on a backend OOM, errors re-raised."""

    def fits(batch):
        try:
            trial(batch)
            return True
        except Exception as error:  # noqa: BLE001 - only OOM is an answer
            if is_oom_error(error):
                release()
                return False
            raise

    return fits


def find_max_batch(sizes, methods=("maxpool",), factors=(1, 2, 4), *, start=8, max_batch=4096,
                   seconds=10.0, sample_rate=16000, target_frames=None, precision="auto", jit="auto",
                   num_classes=NUM_CLASSES, trial_steps=2, log=None):
    """Largest training batch that fits, per size × method × factor.

    Each trial builds and compiles the model and runs `trial_steps` training
    steps at the batch; an out-of-memory error of the backend (XLA
    RESOURCE_EXHAUSTED, TensorFlow ResourceExhaustedError, torch
    OutOfMemoryError) means "does not fit". The batch doubles from `start`
    until a trial fails or `max_batch` is reached, then bisects.

    Returns:
        A dict: `backend`, `device`, `precision`, `rows` (`size`, `method`,
        `factor`, `tokens`, `max_batch`, `capped`, `trials`).
    """
    factors = [int(f) for f in factors]
    methods = list(methods)
    _check_factors(factors, methods)
    target_frames = target_frames or recipe_frames(seconds, max(factors))
    samples = int(round(seconds * sample_rate))
    previous = keras.mixed_precision.global_policy().name
    precision = set_precision(precision)
    result = _header(precision, jit, None)
    try:
        for size, method, factor in _configurations(sizes, methods, factors):
            tried = []
            tokens = []

            def trial(batch, size=size, method=method, factor=factor, tried=tried, tokens=tokens):
                tried.append(batch)
                model = build_model(size, method, factor, num_classes=num_classes,
                                    sample_rate=sample_rate, target_frames=target_frames)
                tokens[:] = [int(model.position_embedding.num_tokens)]
                compile_model(model, jit)
                step = TrainStep(model, synthetic_batch(batch, samples, num_classes))
                try:
                    for _ in range(trial_steps):
                        step()
                finally:
                    step = None
                    release(model)

            best, capped = search_max_batch(fits_or_oom(trial), start=min(start, max_batch), limit=max_batch)
            row = {"size": size.name, "hidden_dim": size.hidden_dim, "depth": size.depth,
                   "num_heads": size.num_heads, "method": method, "factor": factor,
                   "tokens": tokens[0] if tokens else None, "frames": target_frames,
                   "max_batch": best, "capped": capped, "trials": tried}
            result["rows"].append(row)
            if log:
                log(format_max_batch_row(result, row))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return result


def format_max_batch_row(result, row):
    bound = f">={row['max_batch']} (--max-batch cap)" if row["capped"] else str(row["max_batch"])
    return (
        f"kc2f[{result['backend']}] size={row['size']} method={row['method']} C={row['factor']} "
        f"tokens={row['tokens']} max_batch={bound} trials={','.join(map(str, row['trials']))}"
    )


def format_max_batch(result):
    header = (
        f"# kc2f bench --find-max-batch backend={result['backend']} precision={result['precision']} "
        f"device={result['device'].replace(' ', '_')}"
    )
    return "\n".join([header] + [format_max_batch_row(result, row) for row in result["rows"]])


# ---------------------------------------------------------------------------
# Fed from audio files through the tf.data pipeline.


def benchmark_files(data_dir, sizes, methods=("maxpool",), factors=(1,), batch=32, *, dataset="folder",
                    split="train", steps=30, warmup=5, precision="auto", jit="auto", seed=0, log=None):
    """Whether the input pipeline keeps up: the step fed from files vs the same step on one resident batch.

    Indexes `data_dir` with `kc2f.data.manifest.build_index` under the registry's
    `dataset` recipe (sample rate, clip, frames, mel bins, SpecAugment), builds
    the training `tf.data` pipeline (`kc2f.data.pipeline.make_dataset`, decode,
    crop/pad, augmentation as in `kc2f fit`), and times per configuration:

    - `synthetic_step_ms`: the step on the pipeline's first batch kept on the device;
    - `step_ms`: the step fed with a new batch from the pipeline every step
      (waiting for the pipeline and the host-to-device copy included).

    `input_slowdown = step_ms / synthetic_step_ms`: about 1 when the input side
    keeps up, larger when training is input-bound. Imports TensorFlow (tf.data).
    """
    from kc2f.data import manifest, pipeline, registry

    factors = [int(f) for f in factors]
    methods = list(methods)
    _check_factors(factors, methods)
    spec = registry.get_dataset_spec(dataset)
    examples, label_names = manifest.build_index(spec, str(data_dir), split)
    if len(examples) < batch:
        raise BenchError(
            f"{data_dir} has {len(examples)} {split} clips, fewer than one batch. Received: batch={batch}"
        )
    dataset_ = pipeline.make_dataset(
        examples, label_names, spec, batch_size=batch, training=True, seed=seed, drop_remainder=True,
        repeat=True,
    )
    backend = keras.backend.backend()
    previous = keras.mixed_precision.global_policy().name
    precision = set_precision(precision)
    try:
        matmul = measure_matmul_peak(_compute_dtype(precision))
        result = _header(precision, jit, matmul)
        result.update(dataset=spec.name, data_dir=str(data_dir), split=split, clips=len(examples))
        iterator = iter(dataset_) if backend == "tensorflow" else dataset_.as_numpy_iterator()
        first_batch = next(iterator)
        for size, method, factor in _configurations(sizes, methods, factors):
            if spec.target_frames % factor:
                raise BenchError(
                    f"{spec.name} has {spec.target_frames} frames, not divisible by factor={factor}"
                )
            model = build_model(size, method, factor, num_classes=len(label_names),
                                sample_rate=spec.sample_rate, target_frames=spec.target_frames,
                                num_mel_bins=spec.num_mel_bins, fbank_mean=spec.mean,
                                fbank_std=spec.std, freqm=spec.freqm, timem=spec.timem, seed=seed)
            compile_model(model, jit, multilabel=spec.multilabel)
            flops = _training_flops(model)
            reset_peak_memory()
            step = TrainStep(model, first_batch)
            try:
                first, resident = time_steps(step, steps, warmup)
                _, fed = time_steps(step, steps, warmup, next_data=lambda: next(iterator))
            finally:
                step.close()
            synthetic_ms = 1e3 * statistics.median(resident)
            row = _row(model, size, batch, spec.clip_seconds, spec.target_frames, fed, first, flops,
                       matmul["flops_per_s"], input="files", synthetic_step_ms=synthetic_ms,
                       input_slowdown=1e3 * statistics.median(fed) / synthetic_ms)
            release(model)
            matmul = _record_row(result, row, matmul, precision, log)
        _set_peak(result, matmul)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if result["rows"]:
        result["jit"] = result["rows"][0]["jit"]
    return result
