"""`kc2f bench --breakdown`: where one training step's time goes, each part compiled and timed on its own.

Per size × method × factor, five functions of the same model and batch, each
compiled separately (XLA: `jax.jit` on JAX, `tf.function(jit_compile=True)`
on TensorFlow; with `--jit off`, TensorFlow's parts and step are graphs without
XLA, as `kc2f fit` runs them on a CPU) and timed device-synchronised, round-robin (one call of each
per round, so a busy moment of a shared machine hits all parts alike):

- `fbank`: the Kaldi fbank of the waveforms;
- `fbank_compression`: fbank + the temporal compression (pooling; SpecAugment
  excluded, its masks are elementwise);
- `forward`: the loss of the model in training mode;
- `forward_backward`: the loss and its gradients;
- `step`: the full training step (Keras' own compiled `train_function`, as
  `kc2f bench` times it: + the Adam update).

Differences of the medians give the parts: compression = `fbank_compression`
- `fbank`; transformer forward = `forward` - `fbank_compression`; backward =
`forward_backward` - `forward`; optimizer update = `step` - `forward_backward`.
A fused whole can cost less than its parts timed apart (XLA fuses across
them), so the differences are estimates; negative ones are printed as they are.
Only JAX and TensorFlow are supported.
"""

import statistics
import time

import keras

from kc2f.benchmark.backend import jit_label, release, synchronize, to_device
from kc2f.benchmark.errors import BenchError
from kc2f.benchmark.rows import measure_rows
from kc2f.benchmark.step import TrainStep, build_model, compile_model, synthetic_batch

PARTS = ("fbank", "fbank_compression", "forward", "forward_backward", "step")


def _loss_fn(spec):
    if spec.multilabel:
        return keras.losses.BinaryCrossentropy(from_logits=True)
    return keras.losses.CategoricalCrossentropy(from_logits=True)


def _jax_parts(model, loss, x, y):
    import jax
    import jax.numpy as jnp

    # Copies: the full step donates the model's own buffers to its jitted function.
    trainable = [jnp.copy(v.value) for v in model.trainable_variables]
    non_trainable = [jnp.copy(v.value) for v in model.non_trainable_variables]

    def forward(trainable, non_trainable, x, y):
        logits, _ = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss(y, logits)

    fbank = jax.jit(lambda x: model.fbank(x))
    compression = jax.jit(lambda x: model.pooling(model.fbank(x)))
    forward_j = jax.jit(forward)
    backward_j = jax.jit(jax.value_and_grad(forward))
    return {
        "fbank": lambda: fbank(x),
        "fbank_compression": lambda: compression(x),
        "forward": lambda: forward_j(trainable, non_trainable, x, y),
        "forward_backward": lambda: backward_j(trainable, non_trainable, x, y),
    }


def _tensorflow_parts(model, loss, x, y):
    import tensorflow as tf

    # The parts are compiled as the step is (`--jit off`: TensorFlow graphs without XLA, what `kc2f fit`
    # runs on a CPU), so that their differences add up to the step being broken down.
    jit = bool(model.jit_compile)

    @tf.function(jit_compile=jit)
    def forward(x, y):
        return loss(y, model(x, training=True))

    @tf.function(jit_compile=jit)
    def forward_backward(x, y):
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        return value, tape.gradient(value, model.trainable_variables)

    fbank = tf.function(lambda x: model.fbank(x), jit_compile=jit)
    compression = tf.function(lambda x: model.pooling(model.fbank(x)), jit_compile=jit)
    return {
        "fbank": lambda: fbank(x),
        "fbank_compression": lambda: compression(x),
        "forward": lambda: forward(x, y),
        "forward_backward": lambda: forward_backward(x, y),
    }


def _sync(value):
    leaf = value[0] if isinstance(value, tuple) else value
    synchronize(leaf)


def breakdown_row(spec, size, method, factor):
    """Medians (ms) of the five parts of one configuration, and their differences; returns the row."""
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        raise BenchError(f"--breakdown supports the JAX and TensorFlow backends. Received: backend={backend!r}")
    model = compile_model(build_model(size, method, factor, spec), spec)
    data = synthetic_batch(spec.batch, spec.samples, spec.num_classes, spec.seed)
    x, y = to_device(data)
    parts = (_jax_parts if backend == "jax" else _tensorflow_parts)(model, _loss_fn(spec), x, y)
    train_step = TrainStep(model, data)
    parts["step"] = train_step
    times = {name: [] for name in PARTS}
    first = {}
    try:
        for name in PARTS:
            for i in range(spec.warmup):
                start = time.perf_counter()
                _sync(parts[name]())
                if i == 0:
                    first[name] = time.perf_counter() - start
        for _ in range(spec.steps):
            for name in PARTS:
                start = time.perf_counter()
                _sync(parts[name]())
                times[name].append(time.perf_counter() - start)
    finally:
        train_step.close()
    ms = {name: 1e3 * statistics.median(values) for name, values in times.items()}
    row = {
        "size": size.name, "hidden_dim": size.hidden_dim, "depth": size.depth, "num_heads": size.num_heads,
        "method": method, "factor": factor, "tokens": int(model.position_embedding.num_tokens),
        "jit": jit_label(model), "batch": spec.batch, "seconds": spec.seconds, "frames": spec.target_frames, "steps": spec.steps,
        **{f"{name}_ms": value for name, value in ms.items()},
        **{f"{name}_compile_s": first[name] for name in PARTS},
        "compression_ms": ms["fbank_compression"] - ms["fbank"],
        "transformer_forward_ms": ms["forward"] - ms["fbank_compression"],
        "backward_ms": ms["forward_backward"] - ms["forward"],
        "optimizer_ms": ms["step"] - ms["forward_backward"],
    }
    release(model)
    return row


def measure_breakdown(spec, *, log=None):
    """`breakdown_row` for every configuration of `spec`; returns the result dict (`rows`)."""
    return measure_rows(spec, "breakdown", breakdown_row, format_breakdown_row, log)


def format_breakdown_row(result, row):
    return (
        f"kc2f[{result['backend']}] breakdown size={row['size']} method={row['method']} C={row['factor']} "
        f"tokens={row['tokens']} jit={row['jit']} batch={row['batch']} fbank_ms={row['fbank_ms']:.1f} "
        f"compression_ms={row['compression_ms']:.1f} transformer_forward_ms={row['transformer_forward_ms']:.1f} "
        f"backward_ms={row['backward_ms']:.1f} optimizer_ms={row['optimizer_ms']:.1f} step_ms={row['step_ms']:.1f} "
        f"step_compile_s={row['step_compile_s']:.1f}"
    )


def format_breakdown(result):
    header = (f"# kc2f bench --breakdown backend={result['backend']} precision={result['precision']} "
              f"device={result['device'].replace(' ', '_')} (each part compiled on its own; medians, ms)")
    return "\n".join([header] + [format_breakdown_row(result, row) for row in result["rows"]])
