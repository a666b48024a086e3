"""RepeatedPasses: every pass is a whole, fresh-iteration-equal pass, read from one iterator."""

import numpy as np
import tensorflow as tf

from kc2f.data import build_index
from kc2f.data.pipeline import make_dataset
from kc2f.data.repeated_passes import RepeatedPasses

from .test_pipeline import SPEC, collect, folder  # noqa: F401 - the fixture


def assert_same_batches(got, want):
    assert len(got) == len(want)
    for (wave, length, label), (wave_0, length_0, label_0) in zip(got, want):
        np.testing.assert_array_equal(wave, wave_0)
        np.testing.assert_array_equal(length, length_0)
        np.testing.assert_array_equal(label, label_0)


def test_each_pass_is_a_fresh_iteration_of_the_evaluation_pipeline(folder):  # noqa: F811
    examples, labels = build_index("folder", folder, "train")
    for cache in (False, True):
        dataset = make_dataset(examples, labels, SPEC, batch_size=5, training=False, cache=cache)
        want = collect(dataset)
        assert [len(b[0]) for b in want] == [5, 5, 2]  # the short last batch is a pass's end
        passes = RepeatedPasses(dataset)
        assert passes.batches == 3
        for _ in range(3):
            assert_same_batches(collect(passes), want)


def test_one_iterator_serves_every_pass():
    dataset = tf.data.Dataset.range(7).batch(3)
    passes = RepeatedPasses(dataset)
    assert [list(b.numpy()) for b in passes] == [[0, 1, 2], [3, 4, 5], [6]]
    iterator = passes._iterator
    assert iterator is not None
    assert [list(b.numpy()) for b in passes] == [[0, 1, 2], [3, 4, 5], [6]]
    assert passes._iterator is iterator


def test_unknown_length_and_other_iterables_are_iterated_afresh():
    dataset = tf.data.Dataset.range(10).filter(lambda x: x % 3 == 0).batch(2)
    passes = RepeatedPasses(dataset)
    assert passes.batches < 0
    for _ in range(2):
        assert [list(b.numpy()) for b in passes] == [[0, 3], [6, 9]]
    assert passes._iterator is None
    batches = [np.zeros(2), np.ones(2)]
    assert [list(b) for b in RepeatedPasses(batches)] == [[0, 0], [1, 1]]
