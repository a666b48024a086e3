"""Runs one tiny 2-phase fit on one device and data-parallel on 2 virtual CPU devices.

Executed as a script in a fresh process (the virtual devices must exist before
the backend starts): `python _fit_on_two_devices.py OUT_DIR FIT_ARGS...`. Writes
`OUT_DIR/single` and `OUT_DIR/parallel` run directories and prints the device
count the backend saw.
"""

import os
import sys

backend = os.environ.get("KERAS_BACKEND", "tensorflow")
if backend == "jax":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
else:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from kc2f.training.run_config import RunConfig  # noqa: E402
from kc2f.training.trainer import fit  # noqa: E402

out_dir, sets = sys.argv[1], sys.argv[2:]
print("devices:", len(keras.distribution.list_devices("cpu")))
for name, mode in (("single", "none"), ("parallel", "data-parallel")):
    config = RunConfig.from_sources(None, sets, distribute=mode)
    fit(config, run_dir=os.path.join(out_dir, name), verbose=0)
