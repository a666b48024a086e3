"""Per-step cost of TensorBoard's per-step records: the training accuracy metric and `StepRecorder`.

A deliberately tiny model (a 32→64→4 MLP, batch 8), so that the step itself
costs almost nothing and any per-step overhead shows. Three variants are
timed in interleaved one-epoch `fit` calls of 400 steps (after a compiling
epoch each): plain, with the `accuracy` metric kc2f compiles for
single-label runs, and with both plus `StepRecorder`; it prints the minimum
and the median µs per step of each.

    KERAS_BACKEND=jax python tools/bench_step_recorder.py
"""

import sys
import tempfile
import time

import keras
import numpy as np

from kc2f.training.scalar_writer import ScalarWriter
from kc2f.training.step_recorder import StepRecorder
from kc2f.training.warmup_step_decay import WarmupStepDecay

STEPS, REPEATS = 400, 15


def timed_variant(metric, recorder, logdir):
    x = np.random.default_rng(0).normal(size=(STEPS * 8, 32)).astype("float32")
    y = keras.utils.to_categorical(np.arange(STEPS * 8) % 4, 4)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4)])
    schedule = WarmupStepDecay(1e-3, warmup_steps=10, steps_per_epoch=STEPS)
    model.compile(keras.optimizers.Adam(schedule), keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")] if metric else [])
    callbacks = []
    if recorder:
        callbacks.append(StepRecorder(ScalarWriter(logdir), STEPS, schedule, "accuracy" if metric else None))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=callbacks, shuffle=False)  # compiles

    def once():
        start = time.perf_counter()
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=callbacks, shuffle=False)
        return (time.perf_counter() - start) / STEPS * 1e6

    return once


def main():
    with tempfile.TemporaryDirectory() as logdir:
        variants = {
            "plain": timed_variant(False, False, logdir),
            "+accuracy": timed_variant(True, False, logdir),
            "+accuracy+StepRecorder": timed_variant(True, True, logdir),
        }
        times = {name: [] for name in variants}
        for _ in range(REPEATS):
            for name, once in variants.items():
                times[name].append(once())
    print(f"{keras.backend.backend()}: µs/step, min (median) of {REPEATS} interleaved epochs of {STEPS} steps: "
          + ", ".join(f"{name} {min(v):.0f} ({np.median(v):.0f})" for name, v in times.items()))


if __name__ == "__main__":
    sys.exit(main())
