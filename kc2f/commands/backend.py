"""The Keras backend a command will load, and one line naming what to install when it is missing.

Keras imports its backend's package on `import keras`; without it a command
would end in a long `ModuleNotFoundError` traceback. The check reads the same
settings as Keras (`KERAS_BACKEND`, else `$KERAS_HOME/keras.json`, else
TensorFlow) and only asks whether the package is importable: it imports nothing.
"""

import importlib.util
import json
import os

# backend -> (package Keras imports, how to install it)
PACKAGES = {
    "tensorflow": ("tensorflow", 'pip install kc2f (it depends on TensorFlow)'),
    "jax": ("jax", 'pip install "kc2f[jax]"'),
    "torch": ("torch", "pip install torch"),
}


def keras_backend():
    """The backend name Keras will use, without importing Keras."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as handle:
            return str(json.load(handle).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def missing_backend():
    """A one-line message when the backend's package is not installed, else `None`.

    Backends kc2f does not list (Keras' numpy or openvino) are left to Keras.
    """
    name = keras_backend()
    if name not in PACKAGES:
        return None
    package, install = PACKAGES[name]
    if importlib.util.find_spec(package) is not None:
        return None
    return f"KERAS_BACKEND={name} needs the '{package}' package, which is not installed: {install}."
