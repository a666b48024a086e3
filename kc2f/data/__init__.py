"""Data package: dataset registry, indexing, audio decoding and tf.data pipelines.

The model computes its fbank itself; this package feeds it raw mono waveforms
at the dataset's sample rate, zero-padded to a fixed clip length with the
number of valid samples alongside.

`registry` and `manifest` are pure Python. `audio`, `pipeline`, `stats` and
`packing` import TensorFlow (and soundfile, for FLAC/Ogg/MP3, when one is read); TensorFlow is
allowed only here and in export, never in the model.
"""

from kc2f.data.manifest import Example, ManifestError, build_index
from kc2f.data.registry import DATASETS, DatasetSpec, get_dataset_spec

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "Example",
    "ManifestError",
    "build_index",
    "get_dataset_spec",
]
