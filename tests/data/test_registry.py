import pytest

from kc2f.data.registry import DATASETS, DatasetSpec, get_dataset_spec

EXPECTED = {
    "audioset", "audioset_balanced", "vggsound", "voxceleb", "kinetics_sounds", "esc50",
    "speechcommands", "fsdd", "folder", "manifest", "synthetic", "unlabelled",
}


def test_all_datasets_registered():
    assert set(DATASETS) == EXPECTED
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert get_dataset_spec(name) is spec


def test_paper_values():
    audioset = get_dataset_spec("audioset_balanced")
    assert (audioset.num_classes, audioset.multilabel, audioset.metric) == (527, True, "mAP")
    assert (audioset.mean, audioset.std) == (-4.2677393, 4.5689974)
    assert (audioset.target_frames, audioset.freqm, audioset.timem, audioset.mixup) == (1024, 48, 192, 0.5)
    assert audioset.lr == 5e-5 and get_dataset_spec("audioset").lr == 1e-5
    assert get_dataset_spec("audioset").balanced_sampling
    esc = get_dataset_spec("esc50")
    assert (esc.clip_seconds, esc.target_frames, esc.freqm, esc.timem, esc.lr) == (5.0, 512, 24, 96, 1e-4)
    sc = get_dataset_spec("speechcommands")
    assert (sc.num_classes, sc.clip_seconds, sc.target_frames, sc.mixup) == (35, 1.0, 128, 0.6)
    assert get_dataset_spec("vggsound").num_classes == 309
    assert get_dataset_spec("voxceleb").num_classes == 1251
    assert get_dataset_spec("kinetics_sounds").mean is None


def test_fsdd_spec():
    spec = get_dataset_spec("fsdd")
    assert (spec.sample_rate, spec.clip_seconds, spec.num_mel_bins, spec.target_frames) == (8000, 1.28, 64, 128)
    assert spec.clip_samples == 10240
    # 126 real 10 ms frames in 1.28 s at 8 kHz (200-sample window, 80 hop), padded to 128.
    assert (spec.clip_samples - 200) // 80 + 1 == 126
    assert (spec.freqm, spec.timem, spec.epochs, spec.initial_epochs, spec.batch_size, spec.lr) == (8, 24, 30, 8, 32, 1e-3)
    assert spec.mean is not None and spec.std > 0


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="Unknown dataset 'nope'.*audioset.*fsdd"):
        get_dataset_spec("nope")


def test_spec_validation():
    base = get_dataset_spec("fsdd")
    with pytest.raises(ValueError, match="metric"):
        base.replace(metric="f1")
    with pytest.raises(ValueError, match="std"):
        base.replace(std=None)
    with pytest.raises(ValueError, match="initial_epochs"):
        base.replace(initial_epochs=99)
    assert isinstance(base.replace(lr=1e-2), DatasetSpec)
