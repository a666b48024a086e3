"""Shared test set-up: deterministic seeds, repository paths and the float32 policy."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FSDD = SHARED / "data" / "fsdd" / "recordings"


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    import keras

    keras.utils.set_random_seed(1234)
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def backend():
    return os.environ.get("KERAS_BACKEND", "tensorflow")
