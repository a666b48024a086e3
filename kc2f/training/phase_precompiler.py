"""The `PhasePrecompiler` callback: the next phase's model compiled while the current phase trains.

A coarse-to-fine run compiles a new train step and a new evaluation step at
every phase switch (the model is rebuilt at the next factor, so every shape
changes). Paid at the switch, that compilation stands on the critical path:
on 2 CPU cores it was 4-7 s per phase, a tenth of the demo's coarse-to-fine
run (issue 35). `PhasePrecompiler` takes it off: once the current phase's
first step has run (its own compilation done), a background thread builds the
next phase's model, compiles it with the phase's fresh optimizer and
learning-rate schedule (`compile_phase`), and runs one training step and one
evaluation batch on placeholder (zero) batches of the real inputs' shapes,
which traces and compiles both steps (tracing, and XLA where the step uses it). It then
puts every variable of the model and optimizer back to its state before that
step, so the prepared model is the freshly built and compiled one, with its
compiled functions kept. At the switch `take` hands it over: the weights are
transferred into it as into a freshly built model, and training goes on
without a compilation; if the thread has not finished, the switch waits for
it (that wait is counted in the run's time).

Results do not change: the model, optimizer and schedule are the ones the
switch would have built (tests/training/test_phase_precompiler.py compares a
run's history with and without). Keras keeps its dtype policy per thread, so
the thread takes the main thread's. What it costs: the next phase's model and
optimizer are held in memory from the current phase's second step on, and the
compilation needs CPU time beside the training.

On by default. Measured on 2 CPU cores (2026-12-06, TensorFlow 2.21, nothing
else running): in the FSDD pair (`configs/fsdd.yaml`, 8 + 22 epochs) the C = 1
phase's compilation fell from 8.8 s to 0.3 s while the C = 2 phase it ran
beside took 45.4 s instead of 44.0 s, and the time saved at the report's budget
point rose from 34.90% to 38.98% (45.67% FLOPs). Where a phase is shorter than
the compilation the thread has nothing to hide behind: in the demo's recipe
trimmed to 2 + 2 epochs (`jit: on`, four runs each way) the C = 2 steps took
34-39 ms instead of 19-21 ms beside it, and the runs took 39-45 s against
40-49 s (docs/method.md#where-the-time-goes). `KC2F_PRECOMPILE=0` turns it off.
Data-parallel runs (their models live in a distribution scope of the main
thread) and the torch backend (its steps are not compiled ahead by default)
compile at the switch.
"""

import os
import threading
import time

import keras

ENVIRONMENT_VARIABLE = "KC2F_PRECOMPILE"
BACKENDS = ("jax", "tensorflow")


def precompile_wanted(distribute="none"):
    """Whether runs compile the next phase ahead: `KC2F_PRECOMPILE` (default on), a JAX or TensorFlow
    backend, and a single-device run (`distribute` `"none"`)."""
    setting = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    return keras.backend.backend() in BACKENDS and distribute == "none"


class PreparedPhase:
    """A compiled model of the next phase and what compiled it.

    Attributes:
        model: built and compiled, its train and evaluation steps traced.
        optimizer: the model's fresh optimizer (in its initial state).
        schedule: the optimizer's learning-rate schedule.
    """

    def __init__(self, model, optimizer, schedule):
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule


def warm_up(model, optimizer, train_batches, evaluate):
    """Compiles `model`'s train and evaluation steps on placeholder batches, leaving its state unchanged.

    Args:
        model: a compiled model.
        optimizer: its optimizer.
        train_batches: a dataset whose batches have the training inputs'
            structure, shapes and dtypes (their values do not matter).
        evaluate: function `model ->` that runs the evaluation path once.
    """
    optimizer.build(model.trainable_variables)
    saved = [(v, keras.ops.convert_to_numpy(v)) for v in [*model.variables, *optimizer.variables]]
    model.fit(train_batches, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    evaluate(model)
    for variable, value in saved:
        variable.assign(value)


class PhasePrecompiler(keras.callbacks.Callback):
    """Prepares the next phase's compiled model on a background thread (see the module docstring).

    Put it in each phase's callbacks; after the phase's first batch it starts
    `prepare(next_factor())` once per factor. `take(factor)` then returns the
    `PreparedPhase` (waiting for the thread), or `None` when none was
    prepared for that factor or preparing it failed (logged; the switch then
    builds and compiles the model itself, as without this callback).

    Args:
        prepare: function `factor -> PreparedPhase`, run on the thread.
        next_factor: zero-argument function: the factor of the phase after
            the one training now, or `None` in the last phase.
        log: function taking one line of text.
    """

    async_safe = True  # reads no logs

    def __init__(self, prepare, next_factor, log=print):
        super().__init__()
        self.prepare = prepare
        self.next_factor = next_factor
        self.log = log
        self._thread = None
        self._factor = None
        self._result = self._error = None
        self._seconds = 0.0

    def on_train_batch_end(self, batch, logs=None):
        if self._thread is not None or batch != 0:
            return
        factor = self.next_factor()
        if factor is None or factor == self._factor:
            return
        self._factor, self._result, self._error = factor, None, None
        self._thread = threading.Thread(target=self._run, args=(factor, keras.config.dtype_policy()),
                                        name=f"kc2f-precompile-c{factor}", daemon=True)
        self._thread.start()

    def _run(self, factor, policy):
        keras.config.set_dtype_policy(policy)  # Keras keeps it per thread
        start = time.perf_counter()
        try:
            self._result = self.prepare(factor)
        except Exception as error:  # noqa: BLE001 - the switch falls back to compiling in place
            self._error = error
        self._seconds = time.perf_counter() - start

    def take(self, factor):
        """The `PreparedPhase` of `factor`, or `None`; waits for a thread still preparing it."""
        if self._thread is None or self._factor != factor:
            return None
        self._thread.join()
        self._thread = None
        result, error = self._result, self._error
        self._result = self._error = None
        if error is not None:
            self.log(f"Compiling the C={factor} phase ahead failed ({type(error).__name__}: {error}); "
                     f"compiling it at the switch.")
            return None
        self.log(f"C={factor} phase compiled ahead, beside the previous phase ({self._seconds:.1f} s).")
        return result

    def close(self):
        """Waits for a thread still running (a run that ends before its switch) and drops its model."""
        if self._thread is not None:
            self._thread.join()
        self._thread = self._result = None

