"""Importing kc2f runs no TensorFlow op: a multi-worker strategy must configure the runtime first."""

import subprocess
import sys

import pytest

from tests.conftest import REPO, backend

SCRIPT = """
import kc2f.cli, kc2f.training.trainer, kc2f.experiments.sweep, kc2f.export, kc2f.inference
from tensorflow.python.eager import context
print("context started:", context.context()._context_handle is not None)
"""


@pytest.mark.skipif(backend() != "tensorflow", reason="the TensorFlow runtime matters under KERAS_BACKEND=tensorflow")
def test_importing_the_trainer_starts_no_tensorflow_runtime():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "context started: False" in out.stdout, out.stdout
