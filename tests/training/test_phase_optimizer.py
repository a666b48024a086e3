"""compile_phase: each phase's fresh optimizer is built before the first step is traced."""

import keras
import numpy as np

from kc2f.training.phase_optimizer import compile_phase
from kc2f.training.run_config import RunConfig


class CountingModel(keras.Model):
    """Counts its train_step calls: under a compiled step (TensorFlow, JAX) each call is one trace."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)
        self.traces = 0

    def call(self, inputs):
        return self.dense(inputs)

    def train_step(self, *args, **kwargs):
        self.traces += 1
        return super().train_step(*args, **kwargs)


def test_the_optimizer_is_built_before_fit_so_the_train_step_is_traced_once():
    model = CountingModel()
    model(np.zeros((1, 4), "float32"))
    optimizer = compile_phase(model, RunConfig(lr=1e-3), False, steps_per_epoch=2)
    assert optimizer.built
    assert len(optimizer.variables) > len(model.trainable_variables)  # Adam's slots exist
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = keras.utils.to_categorical(np.arange(8) % 3, 3)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    if keras.backend.backend() in ("tensorflow", "jax"):
        # TensorFlow traces a function that creates variables twice: slots made inside the
        # first step cost a second trace (about 2 s a phase on the demo's model).
        assert model.traces == 1
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 4
