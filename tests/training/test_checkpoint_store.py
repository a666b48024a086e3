"""Checkpoints are atomic: a write killed half-way leaves the previous state loadable."""

import json

import keras
import numpy as np
import pytest

from kc2f.families.ast import AudioSpectrogramTransformer
from kc2f.training import checkpoint_store
from kc2f.training.checkpoint_store import CheckpointStore

SMALL = dict(num_classes=3, hidden_dim=8, depth=1, num_heads=1, target_frames=32, num_mel_bins=16,
             sample_rate=8000, freqm=2, timem=4)


class Killed(Exception):
    pass


def _trained():
    model = AudioSpectrogramTransformer(method="maxpool", factor=1, **SMALL)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).standard_normal((4, 3000)).astype("float32")
    model.fit(x, np.eye(3)[[0, 1, 2, 0]].astype("float32"), epochs=1, verbose=0)
    return model


def test_save_and_restore_model_and_optimizer(tmp_path):
    model = _trained()
    store = CheckpointStore(tmp_path)
    assert store.load_state() is None
    store.save("epoch-0001", model, model.optimizer, {"history": [{"epoch": 1}]})
    assert store.load_state()["checkpoint"] == "epoch-0001"
    clone = AudioSpectrogramTransformer(method="maxpool", factor=1, **SMALL)
    clone.compile(optimizer="adam", loss="categorical_crossentropy")
    store.restore_model("epoch-0001", clone)
    store.restore_optimizer("epoch-0001", clone.optimizer, clone.trainable_variables)
    for a, b in zip(model.variables, clone.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(clone.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) > 0
    for a, b in zip(model.optimizer.variables, clone.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))


def test_kill_during_write_keeps_previous_state(tmp_path, monkeypatch):
    model = _trained()
    CheckpointStore(tmp_path).save("epoch-0001", model, model.optimizer, {"history": [1]})
    save_arrays, written = checkpoint_store._save_arrays, []

    def die_after_the_model_file(path, variables):
        if written:
            raise Killed(path)
        written.append(path)
        save_arrays(path, variables)

    monkeypatch.setattr(checkpoint_store, "_save_arrays", die_after_the_model_file)
    with pytest.raises(Killed):
        CheckpointStore(tmp_path).save("epoch-0002", model, model.optimizer, {"history": [1, 2]})
    monkeypatch.setattr(checkpoint_store, "_save_arrays", save_arrays)
    store = CheckpointStore(tmp_path)
    state = store.load_state()
    assert state["history"] == [1] and state["checkpoint"] == "epoch-0001" and store.problem(state) is None
    store.restore_model("epoch-0001", AudioSpectrogramTransformer(method="maxpool", factor=1, **SMALL))
    # The next successful save cleans up the half-written directory.
    store.save("epoch-0002", model, model.optimizer, {"history": [1, 2]})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch-0001", "epoch-0002"]
    assert json.loads((tmp_path / "state.json").read_text())["checkpoint"] == "epoch-0002"


def test_restore_into_other_architecture_is_a_clear_error(tmp_path):
    model = _trained()
    store = CheckpointStore(tmp_path)
    store.save("epoch-0001", model, None, {})
    other = AudioSpectrogramTransformer(method="maxpool", factor=1, **dict(SMALL, depth=2))
    with pytest.raises(ValueError, match="different configuration"):
        store.restore_model("epoch-0001", other)


def test_keeps_the_newest_and_the_best_and_verifies_checksums(tmp_path):
    model = _trained()
    store = CheckpointStore(tmp_path, keep_last=2)
    for epoch in range(1, 5):
        store.save(store.name(epoch), model, model.optimizer, {"history": list(range(epoch))}, best="epoch-0001")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch-0001", "epoch-0003", "epoch-0004"]
    state = store.load_state()
    assert state["format_version"] == 1 and set(state["checksums"]) == {"model.npz", "optimizer.npz"}
    (tmp_path / "checkpoints" / "epoch-0004" / "optimizer.npz").write_bytes(b"\0" * 10)
    assert "epoch-0004/optimizer.npz is damaged (checksum mismatch)" in store.problem(state)
    fallback, skipped = store.newest_valid()
    assert fallback["checkpoint"] == "epoch-0003" and fallback["history"] == [0, 1, 2]
    assert len(skipped) == 1 and "epoch-0004" in skipped[0]
    with pytest.raises(ValueError, match="keep_last must be an integer >= 1"):
        CheckpointStore(tmp_path, keep_last=0)
