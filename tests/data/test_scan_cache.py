"""The scan cache: a second scan of unchanged files decodes none of them; changed ones are decoded again."""

import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from kc2f.data import Example, bad_audio, get_dataset_spec, scan_cache
from kc2f.data.scan_cache import FILE_NAME, ScanCache

from ._fixtures import REPO_ROOT, band_limited_signal, write_wav
from .test_pipeline import write_bad_files

SPEC = get_dataset_spec("folder").replace(clip_seconds=0.5, target_frames=48, mixup=0.0)
PAST = time.time() - 3600  # older than the racy window


@pytest.fixture
def decodes(monkeypatch):
    """The paths handed to the decoder, per scan (a list of lists)."""
    calls = []
    real = bad_audio._decode_files

    def counting(paths, *args):
        calls.append([os.path.basename(p) for p in paths])
        return real(paths, *args)

    monkeypatch.setattr(bad_audio, "_decode_files", counting)
    return calls


def files(tmp_path, count=4):
    examples = []
    for i in range(count):
        path = str(tmp_path / f"clip{i}.wav")
        write_wav(path, band_limited_signal(8000, 0.2 + 0.1 * i, seed=i), 8000)
        os.utime(path, (PAST, PAST))
        examples.append(Example(path, ("x",), path))
    return examples


def same_report(a, b):
    assert [(x.path, x.reason, x.message) for x in a.bad] == [(x.path, x.reason, x.message) for x in b.bad]
    np.testing.assert_array_equal(a.rates, b.rates)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.channels, b.channels)


def test_second_scan_decodes_nothing_and_a_touched_file_again(tmp_path, decodes):
    examples = files(tmp_path)
    cache_path = tmp_path / "cache" / FILE_NAME
    with ScanCache(cache_path) as cache:
        first = bad_audio.validate_audio(examples, SPEC, scan_cache=cache)
    assert decodes == [[f"clip{i}.wav" for i in range(4)]] and first.decoded == 4
    assert list(first.frames) == [1600, 2400, 3200, 4000] and not first.bad

    with ScanCache(cache_path) as cache:  # another process, later: a fresh connection
        second = bad_audio.validate_audio(examples, SPEC, scan_cache=cache)
    assert decodes[1:] == [[]] and second.decoded == 0
    same_report(first, second)

    os.utime(examples[2].path, (PAST + 10, PAST + 10))  # mtime changed, size kept
    with ScanCache(cache_path) as cache:
        third = bad_audio.validate_audio(examples, SPEC, scan_cache=cache)
    assert decodes[2:] == [["clip2.wav"]] and third.decoded == 1
    same_report(first, third)

    # New content of another length: decoded again, and the new length is what the report says.
    write_wav(examples[0].path, band_limited_signal(8000, 0.5, seed=9), 8000)
    os.utime(examples[0].path, (PAST + 20, PAST + 20))
    with ScanCache(cache_path) as cache:
        fourth = bad_audio.validate_audio(examples, SPEC, scan_cache=cache)
    assert decodes[3:] == [["clip0.wav"]]
    assert fourth.frames[0] == 4000 and list(fourth.frames[1:]) == list(first.frames[1:])


def test_bad_files_come_from_the_cache_with_the_same_reasons(tmp_path, decodes):
    examples, expected = write_bad_files(str(tmp_path))
    for e in examples:
        if os.path.exists(e.path):
            os.utime(e.path, (PAST, PAST))
    cache_path = tmp_path / FILE_NAME
    with ScanCache(cache_path) as cache:
        first = bad_audio.validate_audio(examples, SPEC, scan_cache=cache)
    with ScanCache(cache_path) as cache:
        second = bad_audio.validate_audio(examples, SPEC, scan_cache=cache)
    assert {os.path.basename(b.path): b.reason for b in second.bad} == expected
    same_report(first, second)
    # missing and empty files are never decoded; every other file once, in the first scan only.
    assert len(decodes[0]) == len(examples) - 2 and decodes[1] == []


def test_a_file_written_just_before_its_scan_is_decoded_again(tmp_path, decodes):
    examples = files(tmp_path, 2)
    # A time after the scan's start (as a write during the scan, or a clock ahead) is never trusted;
    # "now" itself would leave the test to the machine's speed.
    soon = time.time() + 60
    os.utime(examples[1].path, (soon, soon))
    cache_path = tmp_path / FILE_NAME
    for _ in range(2):
        with ScanCache(cache_path) as cache:
            bad_audio.validate_audio(examples, SPEC, scan_cache=cache)
    assert decodes == [["clip0.wav", "clip1.wav"], ["clip1.wav"]]


def test_default_cache_is_under_kc2f_cache_dir_and_can_be_switched_off(tmp_path, monkeypatch, decodes):
    monkeypatch.setenv("KC2F_CACHE_DIR", str(tmp_path / "kc2f-cache"))
    examples = files(tmp_path, 2)
    bad_audio.validate_audio(examples, SPEC)
    assert (tmp_path / "kc2f-cache" / FILE_NAME).is_file()
    bad_audio.validate_audio(examples, SPEC)
    assert decodes == [["clip0.wav", "clip1.wav"], []]
    monkeypatch.setenv("KC2F_SCAN_CACHE", "0")
    assert ScanCache.default() is None
    bad_audio.validate_audio(examples, SPEC)
    assert decodes[2] == ["clip0.wav", "clip1.wav"]
    bad_audio.validate_audio(examples, SPEC, scan_cache=False)
    assert len(decodes) == 4 and decodes[3] == ["clip0.wav", "clip1.wav"]


def test_a_damaged_cache_file_is_rebuilt_with_one_warning(tmp_path, caplog, decodes):
    examples = files(tmp_path, 2)
    cache_path = tmp_path / FILE_NAME
    cache_path.write_bytes(b"this is not an SQLite database, only damaged bytes" * 100)
    with caplog.at_level(logging.WARNING, logger="kc2f.data.scan_cache"):
        with ScanCache(cache_path) as cache:
            report = bad_audio.validate_audio(examples, SPEC, scan_cache=cache)
    warnings = [r.getMessage() for r in caplog.records if r.name == "kc2f.data.scan_cache"]
    assert len(warnings) == 1 and str(cache_path) in warnings[0] and "rebuilding" in warnings[0]
    assert "\n" not in warnings[0]
    assert not report.bad and report.decoded == 2
    with ScanCache(cache_path) as cache:  # rebuilt: the next scan uses it
        bad_audio.validate_audio(examples, SPEC, scan_cache=cache)
    assert decodes[1] == []


def test_an_unusable_cache_location_only_costs_the_decodes(tmp_path, caplog, decodes):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    examples = files(tmp_path, 1)
    with caplog.at_level(logging.WARNING, logger="kc2f.data.scan_cache"):
        cache = ScanCache(blocker / FILE_NAME)
        report = bad_audio.validate_audio(examples, SPEC, scan_cache=cache)
    assert not cache.enabled and report.decoded == 1 and not report.bad
    assert any("cannot be used" in r.getMessage() for r in caplog.records)


_WRITER = """
import sys
from kc2f.data.scan_cache import ScanCache
path, tag = sys.argv[1], sys.argv[2]
for batch in range(20):
    with ScanCache(path) as cache:
        cache.store({(f"/data/{tag}/{batch}/{i}.wav", 100 + i, 1, ): (0, 16000, i, 1, True, 0.5, None)
                     for i in range(100)})
"""


def test_two_processes_write_the_same_cache(tmp_path):
    cache_path = str(tmp_path / FILE_NAME)
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, cache_path, tag], env=env,
                                stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    errors = [w.communicate(timeout=120)[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0], errors
    assert not any("Warning" in e for e in errors), errors
    # mtime_ns 1 is long before the write: every entry is trusted.
    keys = [(f"/data/{tag}/{batch}/{i}.wav", 100 + i, 1) for tag in "ab" for batch in range(20) for i in range(100)]
    with ScanCache(cache_path) as cache:
        found = cache.lookup(keys)
    assert len(found) == 4000
    assert found[("/data/b/7/42.wav", 142, 1)] == (0, 16000, 42, 1, True, 0.5, None)


def test_opening_while_another_process_makes_the_cache_keeps_what_it_stores(tmp_path):
    """The interleaving behind a lost batch: an opener must not read the version before it holds the lock."""
    import sqlite3
    import threading

    cache_path = str(tmp_path / FILE_NAME)
    locked = threading.Event()

    def first_process():  # half-way through making the cache when the second one opens it
        maker = sqlite3.connect(cache_path, isolation_level=None)
        maker.execute("PRAGMA journal_mode=WAL")
        maker.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        maker.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(0.5)  # the opener is now waiting for the lock
        maker.execute("INSERT INTO meta VALUES ('scan_version', ?)", (scan_cache.SCAN_VERSION,))
        maker.execute(
            "CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, scanned_ns INTEGER, "
            "status INTEGER, rate INTEGER, frames INTEGER, channels INTEGER, finite INTEGER, peak REAL, message TEXT)")
        maker.execute("INSERT INTO files VALUES ('/data/x.wav', 100, 1, 9000000000, 0, 16000, 5, 1, 1, 0.5, NULL)")
        maker.execute("COMMIT")
        maker.close()

    maker = threading.Thread(target=first_process)
    maker.start()
    assert locked.wait(timeout=60)
    with ScanCache(cache_path) as cache:
        maker.join(timeout=60)
        assert cache.enabled
        assert cache.lookup([("/data/x.wav", 100, 1)]) == {("/data/x.wav", 100, 1): (0, 16000, 5, 1, True, 0.5, None)}


def test_packed_shards_carry_their_scan_result(tmp_path, decodes):
    from kc2f.data import packing
    from kc2f.data.pipeline import make_dataset

    examples = files(tmp_path, 3)
    silent = str(tmp_path / "silent.wav")
    write_wav(silent, np.zeros(800), 8000)
    examples.append(Example(silent, ("x",), silent))
    packed = packing.pack_dataset(examples, ["x"], SPEC, str(tmp_path / "packed"), on_bad_audio="skip",
                                  scan_cache=False)
    assert len(decodes) == 1 and len(decodes[0]) == 4
    reopened = packing.open_packed(str(tmp_path / "packed"))
    assert reopened.bad_audio == {"silent": 1} and packed.num_examples == 3
    batches = list(make_dataset(reopened, ["x"], SPEC, batch_size=2, training=False))
    assert sum(len(y) for _, y in batches) == 3
    assert len(decodes) == 1  # reading the shards scans no file
