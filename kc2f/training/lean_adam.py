"""`LeanAdam`: Keras' Adam with its per-step scalars computed once a step, not once a variable."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kc2f")
class LeanAdam(keras.optimizers.Adam):
    """Adam (with Keras' decoupled weight decay) whose step scalars are computed once a step.

    The same update as `keras.optimizers.Adam(weight_decay=...)` (Keras 3's
    Adam and AdamW differ only in the default weight decay): each variable is
    first decayed, `v -= v * weight_decay * lr`, then moved by Adam with bias
    correction. Keras computes the learning rate (the whole schedule) inside
    the weight decay of every variable, and the bias corrections inside the
    update of every variable, and a phase's compilation traces each of those
    operations in Python. Here they are computed once per `apply` and shared
    by the variables' updates: the demo's AST (34 trainable variables) traces
    a train step of 2,059 TensorFlow graph operations instead of 3,639.
    Results are the same (tests/training/test_lean_adam.py compares the
    variables after several steps with Keras' Adam); the variables, and hence
    checkpoints, are Keras' Adam's.

    Args:
        weight_decay: decoupled weight decay (`None` or 0: none).
        **kwargs: `keras.optimizers.Adam`'s other arguments (`amsgrad` is
            not supported).
    """

    def __init__(self, weight_decay=None, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("LeanAdam does not implement amsgrad. Received: amsgrad=True")
        # Keras' own weight decay would compute the learning rate once a variable: kept here.
        super().__init__(weight_decay=None, **kwargs)
        self.decoupled_weight_decay = weight_decay or None
        self._step_scalars = None

    def apply(self, grads, trainable_variables=None):
        try:
            return super().apply(grads, trainable_variables)
        finally:
            # The scalars belong to this step's trace: never reused by another.
            self._step_scalars = None

    def _scalars(self, learning_rate, dtype):
        cached = self._step_scalars
        if cached is not None and cached[0] is learning_rate and cached[1] == dtype:
            return cached[2:]
        lr = ops.cast(learning_rate, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        decay = None if self.decoupled_weight_decay is None else lr * ops.cast(self.decoupled_weight_decay, dtype)
        self._step_scalars = (learning_rate, dtype, alpha, decay)
        return alpha, decay

    def update_step(self, gradient, variable, learning_rate):
        alpha, decay = self._scalars(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        if decay is not None:
            # Keras' order: the variable decays before Adam moves it.
            self.assign_sub(variable, variable * decay)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), self.epsilon)))

    def get_config(self):
        config = super().get_config()
        config["weight_decay"] = self.decoupled_weight_decay
        return config
