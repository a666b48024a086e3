"""`LeanAdam` against Keras' Adam: the same variables after the same steps, fewer ops traced."""

import keras
import numpy as np
import pytest

from kc2f.training.lean_adam import LeanAdam
from kc2f.training.warmup_step_decay import WarmupStepDecay


def _train(optimizer, steps=6, seed=3):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(7, activation="gelu"),
                              keras.layers.LayerNormalization(), keras.layers.Dense(3)])
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(steps * 8, 5)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, steps * 8)]
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return ([keras.ops.convert_to_numpy(v) for v in model.variables],
            [keras.ops.convert_to_numpy(v) for v in optimizer.variables])


def _schedule():
    return WarmupStepDecay(1e-2, warmup_steps=3, steps_per_epoch=2, decay_start_epoch=1, decay_every=1,
                           decay_rate=0.5)


@pytest.mark.parametrize("weight_decay", [None, 0.05])
@pytest.mark.parametrize("schedule", [False, True])
def test_same_update_as_keras_adam(weight_decay, schedule):
    options = dict(beta_1=0.95, beta_2=0.999)
    ours = _train(LeanAdam(learning_rate=_schedule() if schedule else 3e-3, weight_decay=weight_decay, **options))
    keras_ = _train(keras.optimizers.Adam(learning_rate=_schedule() if schedule else 3e-3,
                                          weight_decay=weight_decay, **options))
    for mine, theirs in zip(ours[0] + ours[1], keras_[0] + keras_[1], strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    # The weights moved: the comparison is not between two untouched models.
    untouched = _train(LeanAdam(learning_rate=0.0), steps=1)
    assert any(np.abs(a - b).max() > 1e-3 for a, b in zip(ours[0], untouched[0]))


def test_weight_decay_is_applied():
    # With a huge decay the weights shrink far more than without: the decay is not dropped.
    plain = _train(LeanAdam(learning_rate=1e-2))[0]
    decayed = _train(LeanAdam(learning_rate=1e-2, weight_decay=20.0))[0]
    assert sum(np.abs(w).sum() for w in decayed) < 0.5 * sum(np.abs(w).sum() for w in plain)


def test_get_config_round_trips():
    optimizer = LeanAdam(learning_rate=2e-3, beta_1=0.9, beta_2=0.98, weight_decay=5e-7)
    config = optimizer.get_config()
    assert config["weight_decay"] == 5e-7
    again = LeanAdam.from_config(config)
    assert again.get_config() == config
    assert again.decoupled_weight_decay == 5e-7 and again.weight_decay is None


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="amsgrad"):
        LeanAdam(amsgrad=True)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="counts TensorFlow graph operations")
def test_fewer_operations_traced():
    import tensorflow as tf

    def operations(optimizer):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,))] + [keras.layers.Dense(5) for _ in range(6)])
        optimizer.build(model.trainable_variables)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(model(x) ** 2)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)

        graph = step.get_concrete_function(tf.TensorSpec((2, 5), tf.float32)).graph
        return len(graph.get_operations())

    lean = operations(LeanAdam(learning_rate=_schedule(), weight_decay=5e-7))
    plain = operations(keras.optimizers.Adam(learning_rate=_schedule(), weight_decay=5e-7))
    # 12 variables: Keras computes the schedule and the bias corrections for each.
    assert lean < 0.7 * plain, (lean, plain)
