"""`--on-bad-audio error` lists the bad files of every split at once."""

import pytest

from kc2f.training.preparation import prepare_data, resolve
from kc2f.training.run_config import RunConfig
from kc2f.training.run_error import RunError
from tests.conftest import FSDD_RATE, fsdd_clip, write_wav


def test_error_lists_bad_files_of_both_splits(tmp_path):
    recordings = tmp_path / "fsdd" / "recordings"
    for digit in range(10):
        for index in (0, 5):  # FSDD: index 0-4 is the test split, the rest train
            write_wav(recordings / f"{digit}_alice_{index}.wav", fsdd_clip(digit, 0, index), FSDD_RATE)
    bad = {
        "3_alice_5.wav": b"",  # train: empty
        "7_alice_5.wav": b"not audio at all",  # train: not audio
        "2_alice_0.wav": b"",  # test: empty
        "9_alice_0.wav": b"RIFF\x00\x00",  # test: truncated header
    }
    for name, content in bad.items():
        (recordings / name).write_bytes(content)
    config, spec = resolve(RunConfig(dataset="fsdd", data_dir=str(tmp_path / "fsdd")))
    with pytest.raises(RunError) as caught:
        prepare_data(config, spec, log=lambda line: None)
    message = str(caught.value)
    for name in bad:
        assert name in message, name
    assert "train split 'train': 2 of 10 audio files cannot be used" in message
    assert "eval split 'test': 2 of 10 audio files cannot be used" in message

    # With skip, both splits' counts are kept.
    _, data = prepare_data(config.replace(on_bad_audio="skip"), spec, log=lambda line: None)
    assert (data.num_train, data.num_eval) == (8, 8)
    assert set(data.bad_audio) == {"train", "eval"}
