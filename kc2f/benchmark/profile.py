"""`kc2f bench --profile DIR`: a profiler trace of the training step per factor, and its top ops.

Per size × method × factor, the step `kc2f bench` times (`TrainStep`: Keras'
own compiled `train_function`) is compiled and warmed up outside the trace,
then `spec.steps` steps are traced with the backend's profiler (JAX:
`jax.profiler.trace`; TensorFlow: `tf.profiler.experimental`) into
`DIR/<size>-<method>-c<factor>/` (TensorBoard's profile plugin and Perfetto
read it). The trace's events are summed by name: on an accelerator, the ops on
its device planes (XLA's kernels); on a CPU, the host threads' events, less
those that wrap a whole step or call (the step function, executors, Python
frames) and threads' waits. Each row keeps
its top ops, per step, so the factors compare side by side: the op whose time
does not fall with C is what keeps a coarse step from being cheaper. Each row
names the dtype its model ran in: issue 35's GPU C = 2 step, slower than C = 1,
was a float32 step beside a bfloat16 one (fixed in `backend.release`).
"""

import collections
import os
import pathlib
import re
import time

import keras

from kc2f.benchmark.backend import dtype_label, release
from kc2f.benchmark.errors import BenchError
from kc2f.benchmark.rows import measure_rows
from kc2f.benchmark.step import TrainStep, build_model, compile_model, synthetic_batch

TOP_OPS = 12
# Events that stand for a whole step or call (the step function, the executors around the ops,
# TensorFlow's eager dispatch, Eigen's thread-pool loops inside an op, Python frames: `$file:line`),
# a thread waiting, or the end marker of an op: summed, they would top every table without naming an op
# (on a CPU, TensorFlow's `ExecutorState::Process` and `KernelAndDeviceFunc::Run` did, at 38% and 24%).
_NOT_OPS = ("one_step_on_data", "__inference", "Execute", "BlockUntilReady", "Await", "Wait", "PjitFunction",
            "ExecutorState::", "KernelAndDeviceFunc::", "ParallelFor", "$", "end: ")
_NUMBERED = re.compile(r"[._]\d+$")


def op_kind(name):
    """What an op is, less where it is: TensorFlow's `scope/name:Type` gives `Type`; XLA's numbered
    instructions lose their number (`fusion.12` and `fusion.3` are both `fusion`)."""
    if ":" in name and " " not in name:
        return name.rsplit(":", 1)[1]
    return _NUMBERED.sub("", name)


def _lines(path):
    """`(plane name, [(event name, duration ns)])` of every line of an `.xplane.pb` file."""
    if keras.backend.backend() == "jax":
        from jax.profiler import ProfileData

        for plane in ProfileData.from_file(str(path)).planes:
            for line in plane.lines:
                yield plane.name, [(e.name, e.duration_ns) for e in line.events]
        return
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(pathlib.Path(path).read_bytes())
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            yield plane.name, [(names.get(e.metadata_id, "?"), e.duration_ps / 1e3) for e in line.events]


def top_ops(trace_dir, steps, top=TOP_OPS):
    """The ops of the newest trace under `trace_dir` with the most time, per step.

    Ops are the events whose names are not a step, an executor call, a Python
    frame or a wait (`_NOT_OPS`); on an accelerator its device planes, else the
    host's.

    Args:
        trace_dir: a directory the profiler wrote (`plugins/profile/<run>/*.xplane.pb`).
        steps: steps in the trace (the totals are divided by it).
        top: how many ops to keep.

    Returns:
        dict: `where` (`"device"` or `"host"`: which planes were summed), `ops`
        (`[{"name", "ms_per_step", "count_per_step", "share"}]`, most time first;
        `share` of the summed planes' total) and `kinds`, the same summed by
        `op_kind` (every layer's matmuls together: what a factor's time goes to).
        On a CPU, ops of two threads overlap: shares are of the summed op time,
        not of the step's wall time.
    """
    files = sorted(pathlib.Path(trace_dir).rglob("*.xplane.pb"), key=os.path.getmtime)
    if not files:
        raise BenchError(f"The profiler wrote no .xplane.pb under {trace_dir}.")
    totals = {"device": collections.Counter(), "host": collections.Counter()}
    counts = collections.Counter()
    for plane, events in _lines(files[-1]):
        where = ("device" if plane.startswith("/device:") and not plane.startswith("/device:CPU")
                 else "host" if plane.startswith("/host:") else None)
        if where is None:
            continue
        for name, duration_ns in events:
            if not any(word in name for word in _NOT_OPS):
                totals[where][name] += duration_ns
                counts[name] += 1
    where = "device" if totals["device"] else "host"
    grand = sum(totals[where].values()) or 1.0
    kinds, kind_counts = collections.Counter(), collections.Counter()
    for name, ns in totals[where].items():
        kind = op_kind(name)
        kinds[kind] += ns
        kind_counts[kind] += counts[name]

    def rows(summed, how_many):
        return [{"name": name, "ms_per_step": ns / 1e6 / steps, "count_per_step": how_many[name] / steps,
                 "share": ns / grand} for name, ns in summed.most_common(top)]

    return {"where": where, "ops": rows(totals[where], counts), "kinds": rows(kinds, kind_counts)}


def _trace(trace_dir, run_steps):
    """Runs `run_steps()` under the backend's profiler, writing into `trace_dir`."""
    if keras.backend.backend() == "jax":
        import jax

        with jax.profiler.trace(str(trace_dir)):
            run_steps()
        return
    import tensorflow as tf

    tf.profiler.experimental.start(str(trace_dir))
    try:
        run_steps()
    finally:
        tf.profiler.experimental.stop()


def profile_row(spec, size, method, factor, out_dir):
    """Traces `spec.steps` steps of one configuration into `out_dir/<size>-<method>-c<factor>`; returns the row."""
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        raise BenchError(f"--profile supports the JAX and TensorFlow backends. Received: backend={backend!r}")
    model = compile_model(build_model(size, method, factor, spec), spec)
    step = TrainStep(model, synthetic_batch(spec.batch, spec.samples, spec.num_classes, spec.seed))
    trace_dir = pathlib.Path(out_dir) / f"{size.name}-{method}-c{factor}"
    try:
        start = time.perf_counter()
        step()  # compiled outside the trace
        compile_seconds = time.perf_counter() - start
        for _ in range(max(spec.warmup - 1, 0)):
            step()
        start = time.perf_counter()

        def run_steps():
            for _ in range(spec.steps):
                step()

        _trace(trace_dir, run_steps)
        traced_ms = 1e3 * (time.perf_counter() - start) / spec.steps
    finally:
        step.close()
    ops = top_ops(trace_dir, spec.steps)
    row = {
        "size": size.name, "method": method, "factor": factor, "tokens": int(model.position_embedding.num_tokens),
        "batch": spec.batch, "seconds": spec.seconds, "frames": spec.target_frames, "steps": spec.steps,
        "compile_s": compile_seconds, "compute_dtype": dtype_label(model),
        "traced_step_ms": traced_ms, "trace_dir": str(trace_dir), **ops,
    }
    release(model)
    return row


def measure_profile(spec, out_dir, *, log=None):
    """`profile_row` for every configuration of `spec`; returns the result dict (`rows`)."""
    return measure_rows(spec, "profile", lambda *args: profile_row(*args, out_dir), format_profile_row, log)


def format_profile_row(result, row):
    lines = [f"kc2f[{result['backend']}] profile size={row['size']} method={row['method']} C={row['factor']} "
             f"tokens={row['tokens']} batch={row['batch']} traced_step_ms={row['traced_step_ms']:.1f} "
             f"compile_s={row['compile_s']:.1f} dtype={row['compute_dtype']} top {row['where']} ops per step "
             f"({row['trace_dir']}):"]
    lines += [_op_line(op) for op in row["ops"]]
    if row.get("kinds"):
        lines.append(f"  top {row['where']} op kinds per step (the ops above and the rest, summed by kind):")
        lines += [_op_line(op) for op in row["kinds"]]
    return "\n".join(lines)


def _op_line(op):
    return f"  {op['ms_per_step']:9.3f} ms  {100 * op['share']:5.1f}%  x{op['count_per_step']:g}  {op['name']}"


def format_profile(result):
    header = (f"# kc2f bench --profile backend={result['backend']} precision={result['precision']} "
              f"device={result['device'].replace(' ', '_')} (ms per traced step, summed by op name)")
    return "\n".join([header] + [format_profile_row(result, row) for row in result["rows"]])
