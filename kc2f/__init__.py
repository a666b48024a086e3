"""kc2f: coarse-to-fine training of Audio Spectrogram Transformers.

Implements *From Coarse to Fine: Efficient Training for Audio Spectrogram
Transformers* (Feng, Erol, Chung, Senocak, ICASSP 2024,
https://arxiv.org/abs/2401.08415) as a Keras 3 multi-backend application.

Python API:

    import kc2f
    classifier = kc2f.load("runs/fsdd-maxpool-2-1-s0")      # run dir, export or .keras file
    classifier.predict(["a.wav", "b.flac"], top_k=3)         # or waveforms with sample_rate=
    kc2f.fit(dataset="fsdd", data_dir="data/fsdd", method="maxpool", factors=(2, 1))

After `import kc2f`, a kc2f `.keras` file loads with plain
`keras.saving.load_model` (the model classes register themselves with Keras).

The package root stays light: importing ``kc2f`` imports neither Keras nor
TensorFlow, so ``kc2f --version`` and ``import kc2f`` are instant and silent.
Keras only deserialises classes of its own packages by module path; the model
classes of kc2f are registered the moment Keras itself is imported (by an
import hook, before or after ``import kc2f``), not by importing Keras here.
"""

import importlib.abc as _abc
import importlib.util as _util
import os as _os
import sys as _sys

# TensorFlow's C++ INFO and WARNING lines ("This TensorFlow binary is optimized ...") are noise
# for users (errors still show; Python warnings are untouched). A user's own setting wins.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"


def load(path, labels=None, factor=None, multilabel=None):
    """Loads a trained model for prediction: `kc2f.classifier.AudioClassifier.load`.

    Args:
        path: a run directory, an export (`OUT` or `OUT/N`, SavedModel or
            `.keras`) or a `.keras` file.
        labels: label file overriding the one found beside the model.
        factor: run a run's / `.keras` model at compression factor C.
        multilabel: force sigmoid (`True`) or softmax (`False`) scores.

    Returns:
        `kc2f.classifier.AudioClassifier`.
    """
    _require_backend()
    from kc2f.classifier import AudioClassifier

    return AudioClassifier.load(path, labels=labels, factor=factor, multilabel=multilabel)


def fit(run_dir=None, config=None, sets=(), verbose=1, log=print, **options):
    """Trains (or resumes) a run, as `kc2f fit` does.

    Args:
        run_dir: run directory (default `runs/<dataset>-<method>-<factors>-s<seed>`).
        config: a YAML file of options (`--config`).
        sets: `"key=value"` strings (`--set`).
        verbose: progress-bar verbosity (0, 1 or 2).
        log: function taking one line of text.
        **options: any `RunConfig` option or model option, e.g. `dataset="fsdd"`,
            `factors=(2, 1)` (or `"2,1"`), `epochs=30`; these win over `config`
            and `sets`.

    Returns:
        The run summary (`summary.json`, with `run_dir` added).

    Raises:
        TypeError: an option kc2f does not know.
    """
    _require_backend()
    from kc2f.options import parse_ints
    from kc2f.training.run_config import RunConfig
    from kc2f.training.trainer import fit as fit_run

    known = RunConfig.known_names()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"kc2f.fit() got an unexpected keyword argument '{unknown[0]}'. "
                        f"Known options: {', '.join(sorted(known))}")

    for name in ("factors", "phase_epochs"):
        if isinstance(options.get(name), str):
            options[name] = parse_ints(options[name], name)
    run_config = RunConfig.from_sources(config, sets, **options)
    return fit_run(run_config, run_dir=run_dir, verbose=verbose, log=log)


def _require_backend():
    """Raises `ModuleNotFoundError` in one line naming what to install when Keras' backend is missing."""
    from kc2f.commands.backend import missing_backend

    message = missing_backend()
    if message:
        raise ModuleNotFoundError(message)


def _register_keras_objects():
    """Imports the model families, whose modules register kc2f's classes with Keras."""
    # While one of the modules the families are built from is itself being imported (it is
    # what imports Keras), importing the families here would meet it half-initialised; the
    # families are then imported by whoever asked for that module. Upper layers (data,
    # training, ...) are never imported by the families, so they do not get in the way.
    below = ("kc2f.layers", "kc2f.models", "kc2f.weights", "kc2f.families")
    initializing = any(getattr(getattr(module, "__spec__", None), "_initializing", False)
                       for name, module in list(_sys.modules.items()) if name.startswith(below))
    if not initializing:
        import kc2f.families  # noqa: F401


class _KerasImportHook(_abc.MetaPathFinder):
    """Registers kc2f's Keras classes right after `import keras` completes.

    It stays on `sys.meta_path` until Keras is really imported: a mere
    `importlib.util.find_spec("keras")` (TensorFlow makes one) executes nothing.
    """

    _searching = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or self._searching:
            return None
        self._searching = True
        try:
            spec = _util.find_spec("keras")
        finally:
            self._searching = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            if self in _sys.meta_path:
                _sys.meta_path.remove(self)
            _register_keras_objects()

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in _sys.modules:
    _register_keras_objects()
elif not any(isinstance(finder, _KerasImportHook) for finder in _sys.meta_path):
    _sys.meta_path.insert(0, _KerasImportHook())
