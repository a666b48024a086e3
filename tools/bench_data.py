"""Benchmark the kc2f data pipeline: clips/s per CPU core, from files and from packed shards.

Generates its own fixtures (WAV and FLAC, 1 s and 10 s clips at 16 kHz) in a
temporary directory, runs one evaluation epoch of `make_dataset` over each
(after a warm-up epoch that pays tracing), and prints clips/s and clips/s per
core (cores = `os.sched_getaffinity`).

    python tools/bench_data.py --clips 64
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def write_fixtures(root, fmt, seconds, clips):
    import soundfile

    from kc2f.data.synthetic import _write_wav16

    rng = np.random.default_rng(0)
    for i in range(clips):
        label = ("a", "b")[i % 2]
        os.makedirs(os.path.join(root, "train", label), exist_ok=True)
        x = (rng.standard_normal(int(16000 * seconds)) * 0.1).clip(-1, 1)
        path = os.path.join(root, "train", label, f"{i:05d}.{fmt}")
        if fmt == "wav":
            _write_wav16(path, x)
        else:
            pcm = np.round(x * 32767).astype(np.int16)
            soundfile.write(path, pcm, 16000, format="FLAC", subtype="PCM_16")
    os.makedirs(os.path.join(root, "test", "a"), exist_ok=True)
    os.makedirs(os.path.join(root, "test", "b"), exist_ok=True)


def timed_epoch(ds):
    start = time.perf_counter()
    n = sum(int(f["length"].shape[0]) for f, _ in ds)
    return n, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64, help="clips per fixture set")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)

    from kc2f.data import build_index, get_dataset_spec, packing
    from kc2f.data.pipeline import make_dataset, validate_audio

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{'source':<8} {'format':<6} {'clip':>5} {'clips':>6} {'clips/s':>9} {'clips/s/core':>13}")
    with tempfile.TemporaryDirectory(prefix="kc2f-bench-") as tmp:
        for seconds in (1.0, 10.0):
            spec = get_dataset_spec("folder").replace(clip_seconds=seconds,
                                                      target_frames=int(seconds * 100))
            for fmt in ("wav", "flac"):
                root = os.path.join(tmp, f"{fmt}{int(seconds)}")
                write_fixtures(root, fmt, seconds, args.clips)
                examples, labels = build_index("folder", root, "train")
                report = validate_audio(examples, spec)
                packed = packing.pack_dataset(examples, labels, spec, os.path.join(root, "packed"),
                                              num_shards=4)
                for source, data in (("files", examples), ("packed", packed)):
                    kwargs = {"audio_report": report} if source == "files" else {}
                    ds = make_dataset(data, labels, spec, batch_size=args.batch_size,
                                      training=False, **kwargs)
                    timed_epoch(ds)  # warm-up: tracing, page cache
                    n, dt = timed_epoch(ds)
                    print(f"{source:<8} {fmt:<6} {seconds:>4.0f}s {n:>6} {n / dt:>9.1f} "
                          f"{n / dt / cores:>13.1f}")


if __name__ == "__main__":
    main()
