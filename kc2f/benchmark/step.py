"""One training step of a benchmark row: the model, its compiled step, and timing it.

`build_model` is the one place that builds the AST for benchmarking, and
`training_flops` the one place that counts its FLOPs.
"""

import math
import time

import keras
import numpy as np

from kc2f.benchmark.backend import resolve_jit, synchronize, to_device
from kc2f.benchmark.errors import BenchError
from kc2f.families import family_of, get_family
from kc2f.training.phase_optimizer import adam_optimizer
from kc2f.training.run_config import RunConfig

def build_model(size, method, factor, spec):
    """The benchmark row's model, built by its family (`spec.model`): `size` at (`method`, `factor`).

    Input and head come from `spec`. A named size is the family's preset; a
    custom one gives width, depth and heads.
    """
    freqm, timem = spec.spec_augment
    family = get_family(spec.model)
    if size.name in family.presets:
        sizes = dict(preset=size.name)
    else:
        sizes = dict(hidden_dim=size.hidden_dim, depth=size.depth, num_heads=size.num_heads)
    config = RunConfig.from_dict(dict(
        model=spec.model, method=method, **sizes, mean=spec.fbank_mean, std=spec.fbank_std, freqm=freqm,
        timem=timem, seed=spec.seed,
    ))
    return family.build(config, spec, spec.num_classes, factor)


def compile_model(model, spec):
    """Adam (AST's betas and weight decay) + cross-entropy on logits, as `kc2f fit`; `spec.jit` for XLA."""
    optimizer = adam_optimizer(1e-4, beta_1=0.95, beta_2=0.999, weight_decay=5e-7)
    if spec.multilabel:
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
    else:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss, jit_compile=resolve_jit(spec.jit))
    return model


def training_flops(model):
    """Closed-form training FLOPs per sample of `model` (forward + backward)."""
    return float(family_of(model).training_flops_per_sample(model))


def synthetic_batch(batch, samples, num_classes, seed=0):
    """Host (NumPy) waveforms `(batch, samples)` float32 and one-hot labels."""
    rng = np.random.default_rng(seed)
    x = (0.1 * rng.standard_normal((batch, samples))).astype(np.float32)
    y = np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, batch)]
    return x, y


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
        self.data = to_device(data)
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
        return float(synchronize(logs["loss"]))

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
    region (the input pipeline's share of the step). `BenchSpec` checks that
    `steps` and `warmup` are >= 1.
    """
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
