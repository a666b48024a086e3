"""PhasePrecompiler: the next phase compiled on a background thread changes no result."""

import json

import keras
import numpy as np
import pytest

from kc2f.training.phase_precompiler import ENVIRONMENT_VARIABLE, precompile_wanted, warm_up


def _fit(run_dir, synthetic_dir, precompile, monkeypatch, **overrides):
    from kc2f.training.run_config import RunConfig
    from kc2f.training.trainer import fit

    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "1" if precompile else "0")
    options = dict(dataset="synthetic", data_dir=str(synthetic_dir), method="maxpool", factors=(4, 2, 1),
                   phase_epochs=(1, 1, 1), batch_size=8, max_train_examples=24, max_eval_examples=12,
                   hidden_dim=16, depth=1, num_heads=1, warmup_steps=2, seed=3)
    lines = []
    fit(RunConfig.from_dict({**options, **overrides}), run_dir=run_dir, verbose=0, log=lines.append)
    return json.loads((run_dir / "history.json").read_text()), lines


def test_a_run_compiled_ahead_trains_exactly_as_one_compiled_at_each_switch(tmp_path, synthetic_dir, monkeypatch):
    # Three phases: C=2's model is prepared during C=4's epoch and C=1's during C=2's, then handed over.
    ahead, lines = _fit(tmp_path / "ahead", synthetic_dir, True, monkeypatch)
    in_place, in_place_lines = _fit(tmp_path / "in-place", synthetic_dir, False, monkeypatch)
    assert [row["factor"] for row in ahead] == [4, 2, 1]
    assert sum("compiled ahead" in line for line in lines) == 2, lines
    assert not any("compiled ahead" in line for line in in_place_lines)
    for key in ("loss", "val_loss", "val_metric", "lr"):
        np.testing.assert_allclose([row[key] for row in ahead], [row[key] for row in in_place], rtol=1e-6,
                                   err_msg=key)


def test_warm_up_compiles_the_steps_and_leaves_every_variable_as_it_was():
    from kc2f.data import pipeline
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4), keras.layers.Dropout(0.5, seed=1),
                              keras.layers.Dense(3)])
    optimizer = keras.optimizers.Adam(1e-2)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    batches = pipeline.placeholder_batches(
        tf.data.Dataset.from_tensor_slices((np.ones((8, 6), "float32"), np.eye(3, dtype="float32")[[0, 1] * 4]))
        .batch(4, drop_remainder=True))
    seen = []
    optimizer.build(model.trainable_variables)
    before = [keras.ops.convert_to_numpy(v) for v in [*model.variables, *optimizer.variables]]
    warm_up(model, optimizer, batches, lambda m: seen.append(m.predict_on_batch(np.zeros((4, 6), "float32"))))
    after = [keras.ops.convert_to_numpy(v) for v in [*model.variables, *optimizer.variables]]
    assert model.train_function is not None and model.predict_function is not None and len(seen) == 1
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 0
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)


def test_placeholder_batches_take_the_static_shapes_and_the_batch_size_where_it_is_unknown():
    from kc2f.data import pipeline
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((np.ones((10, 5), "float32"), np.ones((10, 2), "int32"))).batch(4)
    x, y = next(iter(pipeline.placeholder_batches(dataset, batch_size=4)))
    assert x.shape == (4, 5) and x.dtype == tf.float32 and y.shape == (4, 2) and y.dtype == tf.int32
    assert not np.any(x.numpy())
    ragged = tf.data.Dataset.from_generator(lambda: iter([np.ones((4, 3), "float32")]),
                                            output_signature=tf.TensorSpec((4, None), tf.float32))
    assert pipeline.placeholder_batches(ragged) is None


def test_precompile_is_on_by_default_off_by_the_variable_and_for_data_parallel_runs(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    expected = keras.backend.backend() in ("jax", "tensorflow")
    assert precompile_wanted() is expected
    assert precompile_wanted("data-parallel") is False
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "0")
    assert precompile_wanted() is False
