"""Dataset registry: the recipe values of every dataset kc2f knows by name.

A `DatasetSpec` says how to read a dataset (`layout`), what the task is
(`num_classes`, `multilabel`, `metric`), how to turn a file into the model's
input (`sample_rate`, `clip_seconds`, `target_frames`, `num_mel_bins`,
`mean`/`std`) and the training recipe the papers used (SpecAugment masks,
mixup, epochs, learning rate, batch size, balanced sampling).

Sources: AST (Gong et al., 2021, https://arxiv.org/abs/2104.01778) and its
recipes for AudioSet, ESC-50 and Speech Commands; *From Coarse to Fine*
(Feng et al., ICASSP 2024, https://arxiv.org/abs/2401.08415) for VGGSound,
VoxCeleb1 and Kinetics-Sounds. See docs/method.md#recipe-values.

This module is pure Python (no TensorFlow) so that the CLI can list datasets
instantly.
"""

import dataclasses
import math
from dataclasses import dataclass

METRICS = ("accuracy", "mAP")

LAYOUTS = (
    "ast_json",  # AST JSON datafiles + class_labels_indices.csv
    "vggsound",  # vggsound.csv
    "voxceleb",  # VoxCeleb1 iden_split.txt
    "esc50",  # meta/esc50.csv, 5 folds
    "speechcommands",  # Speech Commands v2 folders + validation_list/testing_list
    "fsdd",  # {digit}_{speaker}_{index}.wav
    "folder",  # one sub-folder per class (optionally train/ test/ on top)
    "manifest",  # AST JSON or CSV (path,labels) given as a file
    "synthetic",  # procedurally generated (kc2f.data.synthetic), folder layout on disk
    "unlabelled",  # every audio file under data_dir, no labels (self-supervised pretraining)
)

# Layouts whose "valid" split is the dataset's own validation set, distinct from its test set
# (the others return their single held-out set for both).
OWN_VALIDATION_LAYOUTS = ("speechcommands", "voxceleb")

# Layouts with no recipe of their own (a user's folders or manifest): without the run's
# `clip_seconds`/`target_frames`, both are chosen from the training clips (`sized_from_data`).
DATA_SIZED_LAYOUTS = ("folder", "manifest")

# The spec fields a run may set (`RunConfig` options of the same names): the model's input.
INPUT_FIELDS = ("sample_rate", "clip_seconds", "target_frames", "num_mel_bins")

# Fbank frames per second: every model's hop is 10 ms at full resolution.
FRAMES_PER_SECOND = 100


@dataclass(frozen=True)
class DatasetSpec:
    """Everything kc2f needs to know about one dataset.

    Args:
        name: registry name.
        layout: how files and labels are laid out on disk; one of `LAYOUTS`.
        num_classes: number of classes, or `None` to take it from the data
            (the label list `build_index` returns).
        multilabel: `True` for multi-hot labels (sigmoid + BCE), `False` for
            one-hot (softmax + cross-entropy).
        metric: `"accuracy"` or `"mAP"`.
        sample_rate: rate (Hz) every clip is resampled to before the model.
        clip_seconds: clip duration fed to the model; longer clips are cropped
            (randomly in training), shorter ones zero-padded with `length`.
        target_frames: fbank frames at a 10 ms shift for one clip.
        num_mel_bins: number of mel filters of the fbank.
        mean: fbank normalisation mean, or `None` (compute with `kc2f stats`).
        std: fbank normalisation standard deviation (the divisor is `2 * std`),
            or `None`.
        freqm: SpecAugment frequency-mask width (max bins).
        timem: SpecAugment time-mask width (max frames).
        mixup: probability that a training example is mixed with another.
        epochs: epochs of the baseline (single-phase) run.
        initial_epochs: epochs of the coarse initial phase of a 2-phase run.
        lr: peak learning rate.
        batch_size: default batch size.
        balanced_sampling: sample training clips with replacement, weighted by
            the inverse frequency of their labels (AST's AudioSet recipe).
    """

    name: str
    layout: str
    num_classes: "int | None"
    multilabel: bool
    metric: str
    sample_rate: int
    clip_seconds: float
    target_frames: int
    num_mel_bins: int
    mean: "float | None"
    std: "float | None"
    freqm: int
    timem: int
    mixup: float
    epochs: int
    initial_epochs: int
    lr: float
    batch_size: int
    balanced_sampling: bool

    def __post_init__(self):
        def bad(field, why):
            value = getattr(self, field)
            raise ValueError(
                f"DatasetSpec '{self.name}': {field} {why}. Received: {field}={value!r}"
            )

        if self.layout not in LAYOUTS:
            bad("layout", f"must be one of {', '.join(LAYOUTS)}")
        if self.metric not in METRICS:
            bad("metric", f"must be one of {', '.join(METRICS)}")
        if self.num_classes is not None and self.num_classes < 2:
            bad("num_classes", "must be >= 2 or None")
        for field in ("sample_rate", "target_frames", "num_mel_bins", "epochs", "batch_size"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) <= 0:
                bad(field, "must be a positive integer")
        if not self.clip_seconds > 0:
            bad("clip_seconds", "must be positive")
        if (self.mean is None) != (self.std is None):
            bad("std", "must be given together with mean (both or neither)")
        if self.std is not None and not self.std > 0:
            bad("std", "must be positive")
        if not 0.0 <= self.mixup <= 1.0:
            bad("mixup", "must be a probability in [0, 1]")
        if not 0 <= self.initial_epochs <= self.epochs:
            bad("initial_epochs", f"must be in [0, epochs={self.epochs}]")
        if not self.lr > 0:
            bad("lr", "must be positive")
        if self.freqm < 0 or self.timem < 0:
            bad("freqm" if self.freqm < 0 else "timem", "must be >= 0")

    @property
    def has_validation_split(self):
        """Whether the dataset ships its own validation split, distinct from the test split."""
        return self.layout in OWN_VALIDATION_LAYOUTS

    @property
    def clip_samples(self):
        """Samples in one model input clip: `round(clip_seconds * sample_rate)`."""
        return int(round(self.clip_seconds * self.sample_rate))

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _paper_10s(name, layout, num_classes, multilabel, metric, mean, std, **overrides):
    """A 10 s, 16 kHz, 1024-frame, 128-mel AST recipe (AudioSet-like sets)."""
    values = dict(
        name=name,
        layout=layout,
        num_classes=num_classes,
        multilabel=multilabel,
        metric=metric,
        sample_rate=16000,
        clip_seconds=10.0,
        target_frames=1024,
        num_mel_bins=128,
        mean=mean,
        std=std,
        freqm=48,
        timem=192,
        mixup=0.0,
        epochs=20,
        initial_epochs=5,
        lr=1e-4,
        batch_size=12,  # AST's default batch size for 10 s clips.
        balanced_sampling=False,
    )
    values.update(overrides)
    return DatasetSpec(**values)


DATASETS = {
    # AudioSet full (2M clips): AST recipe with lr 1e-5, balanced sampling, 5 epochs
    # (the coarse phase takes 1 of them, docs/method.md#phases).
    "audioset": _paper_10s(
        "audioset", "ast_json", 527, True, "mAP", -4.2677393, 4.5689974,
        mixup=0.5, epochs=5, initial_epochs=1, lr=1e-5, balanced_sampling=True,
    ),
    # AudioSet balanced (20k clips): the AST balanced recipe, lr 5e-5, no weighted
    # sampling (the balanced set is already balanced).
    "audioset_balanced": _paper_10s(
        "audioset_balanced", "ast_json", 527, True, "mAP", -4.2677393, 4.5689974,
        mixup=0.5, epochs=25, initial_epochs=6, lr=5e-5,
    ),
    "vggsound": _paper_10s(
        "vggsound", "vggsound", 309, False, "accuracy", -5.0767093, 4.4533687,
    ),
    "voxceleb": _paper_10s(
        "voxceleb", "voxceleb", 1251, False, "accuracy", -3.7614744, 4.2011642,
    ),
    # Kinetics-Sounds: the class count depends on the release (~32); stats must be
    # computed with `kc2f stats`.
    "kinetics_sounds": _paper_10s(
        "kinetics_sounds", "ast_json", None, False, "accuracy", None, None,
    ),
    "esc50": DatasetSpec(
        name="esc50", layout="esc50", num_classes=50, multilabel=False, metric="accuracy",
        sample_rate=16000, clip_seconds=5.0, target_frames=512, num_mel_bins=128,
        mean=-6.6268077, std=5.358466, freqm=24, timem=96, mixup=0.0,
        epochs=25, initial_epochs=6, lr=1e-4, batch_size=48, balanced_sampling=False,
    ),
    "speechcommands": DatasetSpec(
        name="speechcommands", layout="speechcommands", num_classes=35, multilabel=False,
        metric="accuracy", sample_rate=16000, clip_seconds=1.0, target_frames=128,
        num_mel_bins=128, mean=-6.845978, std=5.5654526, freqm=48, timem=48, mixup=0.6,
        epochs=30, initial_epochs=8, lr=2.5e-4, batch_size=128, balanced_sampling=False,
    ),
    # Free Spoken Digit Dataset: 8 kHz speech, 10 digits, 3000 clips (<= ~2.3 s, most
    # under 1 s). 1.28 s gives 126 frames of 10 ms, padded to 128 (8 patches of 16).
    # 64 mel bins: at 8 kHz the 256-point FFT has 129 bins, too few for 128 filters.
    # mean/std: Kaldi fbank (KaldiFbank(sample_rate=8000, num_mel_bins=64)) over the
    # 2700 training clips (index 5-49), no augmentation, padded frames excluded
    # (clips cropped at the start to 1.28 s, as in evaluation):
    #   kc2f stats --dataset fsdd --data-dir ../shared/data/fsdd --split train
    #   (-> mean=-6.802681 std=3.920047)
    "fsdd": DatasetSpec(
        name="fsdd", layout="fsdd", num_classes=10, multilabel=False, metric="accuracy",
        sample_rate=8000, clip_seconds=1.28, target_frames=128, num_mel_bins=64,
        mean=-6.802681, std=3.920047, freqm=8, timem=24, mixup=0.0,
        epochs=30, initial_epochs=8, lr=1e-3, batch_size=32, balanced_sampling=False,
    ),
    # Generic layouts: the user supplies the data; stats must be computed.
    "folder": DatasetSpec(
        name="folder", layout="folder", num_classes=None, multilabel=False,
        metric="accuracy", sample_rate=16000, clip_seconds=10.0, target_frames=1024,
        num_mel_bins=128, mean=None, std=None, freqm=48, timem=192, mixup=0.0,
        epochs=20, initial_epochs=5, lr=1e-4, batch_size=12, balanced_sampling=False,
    ),
    "manifest": DatasetSpec(
        name="manifest", layout="manifest", num_classes=None, multilabel=True,
        metric="mAP", sample_rate=16000, clip_seconds=10.0, target_frames=1024,
        num_mel_bins=128, mean=None, std=None, freqm=48, timem=192, mixup=0.0,
        epochs=20, initial_epochs=5, lr=1e-4, batch_size=12, balanced_sampling=False,
    ),
    # Unlabelled audio for SSAST pretraining (kc2f pretrain): every file under data_dir,
    # e.g. local copies of AudioSet + LibriSpeech. SSAST's recipe (src/pretrain/run_mask_patch.sh):
    # 10 s at 16 kHz, 128 mel bins, 1024 frames, normalised with AudioSet's statistics
    # (dataset_mean -4.2677393, dataset_std 4.5689974), batch 24, lr 1e-4, no SpecAugment/mixup.
    "unlabelled": DatasetSpec(
        name="unlabelled", layout="unlabelled", num_classes=None, multilabel=False,
        metric="accuracy", sample_rate=16000, clip_seconds=10.0, target_frames=1024,
        num_mel_bins=128, mean=-4.2677393, std=4.5689974, freqm=0, timem=0, mixup=0.0,
        epochs=10, initial_epochs=2, lr=1e-4, batch_size=24, balanced_sampling=False,
    ),
    # The embedded default dataset (kc2f.data.synthetic): 8 procedurally generated
    # sound-event classes, 16 kHz, 1.28 s (126 real frames padded to 128).
    # mean/std: KaldiFbank(sample_rate=16000, num_mel_bins=64) over the default
    # train split (write_synthetic_dataset(clips_per_class=100, seed=0), generator version 2):
    #   kc2f stats --dataset synthetic --split train  (-> -2.719153 / 3.241496)
    "synthetic": DatasetSpec(
        name="synthetic", layout="synthetic", num_classes=8, multilabel=False,
        metric="accuracy", sample_rate=16000, clip_seconds=1.28, target_frames=128,
        num_mel_bins=64, mean=-2.719153, std=3.241496, freqm=8, timem=24, mixup=0.0,
        epochs=10, initial_epochs=3, lr=1e-3, batch_size=32, balanced_sampling=False,
    ),
}


def get_dataset_spec(name):
    """Returns the registered `DatasetSpec` called `name`.

    Args:
        name: registry name, e.g. `"fsdd"`; a `DatasetSpec` is returned as is.

    Raises:
        ValueError: `name` is not registered; the message lists the known names.
    """
    if isinstance(name, DatasetSpec):
        return name
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown dataset '{name}'. Known datasets: {', '.join(sorted(DATASETS))}. "
            f"Received: name={name!r}"
        ) from None


def input_spec(spec, options):
    """`spec` with the model input the run set: its `INPUT_FIELDS` that `options` gives (not `None`).

    Args:
        spec: a `DatasetSpec` or registry name.
        options: a `RunConfig` or a run's `config.json` mapping (older runs lack
            the fields: the recipe's values stand).
    """
    spec = get_dataset_spec(spec)
    get = options.get if isinstance(options, dict) else (lambda key: getattr(options, key, None))
    changes = {key: get(key) for key in INPUT_FIELDS if get(key) is not None}
    return spec.replace(**changes) if changes else spec


def frames_for(clip_seconds, multiple):
    """Full-resolution fbank frames for `clip_seconds` of audio: 10 ms hops, rounded up to `multiple`.

    Args:
        clip_seconds: seconds of audio in one model input clip (> 0).
        multiple: the model's frame granularity (`ModelFamily.frames_multiple`).
    """
    if not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be positive. Received: clip_seconds={clip_seconds!r}")
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple must be a positive integer. Received: multiple={multiple!r}")
    frames = max(1, round(clip_seconds * FRAMES_PER_SECOND))
    return -(-frames // multiple) * multiple


def sized_from_data(durations, recipe_seconds, multiple, quantile=0.95):
    """`(clip_seconds, target_frames)` for clips of these lengths: the `quantile` of `durations`
    (so that at most 5% of the clips are cropped), 10 ms resolution, at most the recipe's
    `recipe_seconds` (longer clips are cropped at random in training, as the recipe does), and
    the frames of that length rounded up to `multiple`.

    Args:
        durations: seconds of each usable training clip (non-empty).
        recipe_seconds: the dataset recipe's clip length, the ceiling.
        multiple: the model's frame granularity (`ModelFamily.frames_multiple`).
    """
    values = sorted(float(d) for d in durations)
    if not values:
        raise ValueError("durations is empty: no usable training clip to size the input from.")
    position = min(len(values) - 1, max(0, math.ceil(quantile * len(values)) - 1))
    # The 1e-9 keeps a length of exactly N hops at N (float error would round it up to N + 1).
    seconds = math.ceil(values[position] * FRAMES_PER_SECOND - 1e-9) / FRAMES_PER_SECOND
    seconds = min(max(seconds, multiple / FRAMES_PER_SECOND), recipe_seconds)
    return seconds, frames_for(seconds, multiple)
