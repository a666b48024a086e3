"""The coarse-to-fine fit driver: phases, phase switches, accounting and resume."""

import csv
import json
import os
import pathlib
import random
import signal
import time

import keras

from kc2f.models import AudioSpectrogramTransformer
from kc2f.training.checkpoint_store import CheckpointStore, write_json_atomic
from kc2f.training.distribution import Distribution
from kc2f.training.epoch_evaluator import EpochEvaluator
from kc2f.training.flops import training_flops_per_sample
from kc2f.training.phase_schedule import build_schedule
from kc2f.training.phase_switch import PhaseSwitch
from kc2f.training.scalar_writer import ScalarWriter
from kc2f.training.warmup_step_decay import WarmupStepDecay
from kc2f.weights import transfer_weights

HISTORY_FIELDS = (
    "epoch", "phase", "factor", "tokens", "loss", "val_metric", "lr", "samples",
    "train_seconds", "eval_seconds", "epoch_flops", "cumulative_flops", "cumulative_seconds",
)
# Keys of the resolved config that may differ when a run is resumed.
# `distribute` may change: the global batch, not the device count, defines the run.
RESUME_FREE = ("on_bad_audio", "distribute")


class RunError(ValueError):
    """A run cannot start or resume; the message says why and what to do."""


def _data():
    # The data package needs TensorFlow; import it only when a run starts.
    from kc2f.data import manifest, pipeline, registry

    return manifest, pipeline, registry


def resolve_config(config):
    """Fills the dataset recipe's values into `None` options; returns `(config, spec)`."""
    manifest, pipeline, registry = _data()
    try:
        spec = registry.get_dataset_spec(config["dataset"])
    except ValueError as error:
        raise RunError(str(error)) from None
    resolved = dict(config)
    for key, value in (
        ("epochs", spec.epochs), ("batch_size", spec.batch_size), ("lr", spec.lr),
        ("freqm", spec.freqm), ("timem", spec.timem), ("mixup", spec.mixup),
        ("mean", spec.mean), ("std", spec.std),
    ):
        if resolved.get(key) is None:
            resolved[key] = value
    if resolved["data_dir"] is not None:
        # Absolute, so that resuming from another working directory is the same run.
        resolved["data_dir"] = os.path.abspath(os.path.expanduser(resolved["data_dir"]))
    if resolved["phase_epochs"] is not None:
        resolved["epochs"] = sum(resolved["phase_epochs"])
    if (resolved["mean"] is None) != (resolved["std"] is None):
        raise RunError("Give both 'mean' and 'std', or neither.")
    if resolved["target"] is not None and resolved["baseline"] is not None:
        raise RunError("Give either --target or --baseline, not both.")
    return resolved, spec


def build_model(config, spec, num_classes, factor):
    """The AST of `config` for one phase's compression factor."""
    kwargs = dict(
        num_classes=num_classes,
        method=config["method"],
        factor=factor,
        sample_rate=spec.sample_rate,
        target_frames=spec.target_frames,
        num_mel_bins=spec.num_mel_bins,
        fbank_mean=config["mean"],
        fbank_std=config["std"],
        patch_size=tuple(config["patch_size"]),
        mlp_ratio=config["mlp_ratio"],
        dropout_rate=config["dropout_rate"],
        freqm=config["freqm"],
        timem=config["timem"],
        seed=config["seed"],
        name=f"ast_c{factor}",
    )
    if config["preset"]:
        return AudioSpectrogramTransformer.from_preset(config["preset"], **kwargs)
    return AudioSpectrogramTransformer(
        hidden_dim=config["hidden_dim"], depth=config["depth"], num_heads=config["num_heads"], **kwargs
    )


def _compile(model, config, spec, steps_per_epoch):
    schedule = WarmupStepDecay(
        config["lr"],
        warmup_steps=config["warmup_steps"],
        steps_per_epoch=steps_per_epoch,
        decay_start_epoch=config["decay_start_epoch"],
        decay_every=config["decay_every"],
        decay_rate=config["decay_rate"],
    )
    optimizer = keras.optimizers.Adam(
        learning_rate=schedule,
        beta_1=config["beta_1"],
        beta_2=config["beta_2"],
        weight_decay=config["weight_decay"] or None,
    )
    if spec.multilabel:
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
    else:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    jit = {"auto": "auto", "on": True, "off": False}[config["jit"]]
    model.compile(optimizer=optimizer, loss=loss, jit_compile=jit)
    return optimizer


def _set_precision(precision):
    if precision == "auto":
        devices = [d.lower() for d in keras.distribution.list_devices()]
        precision = "mixed_bfloat16" if any(("gpu" in d or "tpu" in d) for d in devices) else "float32"
    keras.mixed_precision.set_global_policy(precision)
    return precision


def subset_examples(examples, limit, seed):
    """`limit` examples drawn with `seed` (all of them when `limit` is None), in index order."""
    if limit is None or limit >= len(examples):
        return list(examples)
    # A seeded sample, not the first N: indexes are sorted by class or file name.
    picked = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in picked]


def _baseline_best(run_dir):
    state = CheckpointStore(run_dir).load_state()
    if not state or not state.get("history"):
        raise RunError(f"Baseline run {run_dir} has no completed epoch (no {run_dir}/state.json).")
    return max(row["val_metric"] for row in state["history"])


def default_run_dir(config):
    factors = "-".join(str(f) for f in config["factors"])
    method = "baseline" if list(config["factors"]) == [1] else config["method"]
    return pathlib.Path("runs") / f"{config['dataset']}-{method}-{factors}-s{config['seed']}"


def _fault_hook():
    # Test hook: KC2F_FAULT=checkpoint:3 SIGKILLs this process in the middle of
    # the checkpoint write after epoch 3; KC2F_FAULT=epoch:5 right after epoch 5's
    # training, before its checkpoint. The resume tests use it to kill a run at
    # exact points; unset in normal use.
    spec = os.environ.get("KC2F_FAULT")
    if not spec:
        return None, None
    where, _, epoch = spec.partition(":")
    return where, int(epoch)


def _write_history(run_dir, history):
    write_json_atomic(run_dir / "history.json", history)
    tmp = run_dir / f".history.csv.{os.getpid()}.tmp"
    with open(tmp, "w", newline="") as handle:
        extra = sorted({k for row in history for k in row} - set(HISTORY_FIELDS))
        writer = csv.DictWriter(handle, fieldnames=list(HISTORY_FIELDS) + extra)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, run_dir / "history.csv")


def fit(config, run_dir=None, verbose=1, log=print):
    """Trains one coarse-to-fine (or baseline) run, resuming it if it was interrupted.

    The method of *From Coarse to Fine* (https://arxiv.org/abs/2401.08415): phase
    `i` trains the AST at compression factor `factors[i]`; at a phase switch the
    model is rebuilt for the next factor, every weight is transferred (position
    embedding interpolated, patch kernel resized), and a fresh optimizer with a
    restarted learning-rate schedule is compiled. The run directory holds one
    TensorBoard log, `history.csv`/`history.json`, `config.json`, `labels.json`,
    checkpoints and `state.json`; rerunning the same call continues from the last
    completed epoch with the optimizer, random-generator states and the FLOPs and
    time counters restored.

    Args:
        config: options (`kc2f.config.build`).
        run_dir: run directory (default: `runs/<dataset>-<method>-<factors>-s<seed>`).
        verbose: Keras progress-bar verbosity (0, 1 or 2).
        log: function taking one line of text.

    Returns:
        The run summary (also written to `summary.json`).
    """
    try:
        # First of all: a multi-worker TensorFlow strategy or a multi-process JAX
        # job must be set up before the backend runs any operation.
        dist = Distribution(config.get("distribute", "none"))
    except ValueError as error:
        raise RunError(str(error)) from None
    manifest, pipeline, registry = _data()
    config, spec = resolve_config(config)
    try:
        dist.check_batch_size(config["batch_size"])
    except ValueError as error:
        raise RunError(str(error)) from None
    run_dir = pathlib.Path(run_dir or default_run_dir(config))
    run_dir.mkdir(parents=True, exist_ok=True)
    fault_where, fault_epoch = _fault_hook()

    store = CheckpointStore(run_dir)
    state = store.load_state()
    if state is not None:
        saved = json.loads((run_dir / "config.json").read_text())
        changed = {k: (saved.get(k), config.get(k)) for k in set(saved) | set(config)
                   if k not in RESUME_FREE and saved.get(k) != config.get(k)}
        if changed:
            lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in sorted(changed.items())))
            raise RunError(
                f"Run directory {run_dir} holds a run with another configuration ({lines}). "
                "Resume it with the same options, or choose another --run-dir."
            )
        if state.get("finished") and (run_dir / "summary.json").exists():
            log(f"Run {run_dir} already finished; nothing to do.")
            return json.loads((run_dir / "summary.json").read_text())

    schedule = build_schedule(
        config["factors"], config["epochs"], config["phase_epochs"], config["initial_fraction"]
    )
    target = config["target"]
    if config["baseline"] is not None:
        target = _baseline_best(config["baseline"])
        log(f"Budget mode: stop the final phase at {spec.metric} >= {target:.4f} (baseline {config['baseline']}).")

    # Data: index, check every file once (bad clips are listed, then fatal or skipped).
    try:
        train, label_names = manifest.build_index(spec, config["data_dir"], config["train_split"])
        evaluation, _ = manifest.build_index(spec, config["data_dir"], config["eval_split"])
    except (ValueError, OSError) as error:
        raise RunError(str(error)) from None
    train = subset_examples(train, config["max_train_examples"], config["seed"])
    evaluation = subset_examples(evaluation, config["max_eval_examples"], config["seed"])
    reports, bad_audio = {}, {}
    for name, examples in (("train", train), ("eval", evaluation)):
        report = pipeline.validate_audio(examples, spec)
        reports[name] = report
        if report.bad:
            if config["on_bad_audio"] == "error":
                raise RunError(str(pipeline.BadAudioError(report)))
            bad_audio[name] = dict(report.counts)
            log(f"Skipping bad {name} clips: {report.summary()}")
            for bad in report.bad:
                log(f"  - {bad.source}: {bad.message}")
    num_train = reports["train"].num_good
    if not num_train or not reports["eval"].num_good:
        raise RunError(
            f"No usable clips left: {num_train} training, {reports['eval'].num_good} evaluation."
        )
    if config["mean"] is None:
        from kc2f.data.stats import compute_stats

        good = [e for e, ok in zip(train, reports["train"].good_mask) if ok]
        mean, std = compute_stats(good, spec)
        config["mean"], config["std"] = float(mean), float(std)
        log(f"Normalisation statistics of the training split: mean {mean:.4f}, std {std:.4f}")
    if state is None and dist.is_chief:
        write_json_atomic(run_dir / "config.json", config)
        write_json_atomic(run_dir / "labels.json", label_names)

    precision = _set_precision(config["precision"])
    batch_size = config["batch_size"]
    drop = num_train >= batch_size
    steps_per_epoch = pipeline.steps_per_epoch(num_train, batch_size, drop)
    samples_per_epoch = steps_per_epoch * batch_size if drop else num_train

    def eval_data():
        return pipeline.make_dataset(
            evaluation, label_names, spec, batch_size=batch_size, training=False,
            on_bad_audio="skip", audio_report=reports["eval"],
        )

    writer = ScalarWriter(run_dir / "tensorboard", enabled=dist.is_chief)
    history = list(state["history"]) if state else []
    counters = dict(state["counters"]) if state else {"flops": 0.0, "seconds": 0.0}
    start_epoch = len(history)

    def fault(where, epoch):
        if where == fault_where and epoch == fault_epoch:
            os.kill(os.getpid(), signal.SIGKILL)

    keras.utils.set_random_seed(config["seed"])
    model = None
    with dist.scope():
        if start_epoch:
            previous = schedule.phase_of_epoch(start_epoch - 1)
            model = build_model(config, spec, len(label_names), schedule.factors[previous])
            store.restore_model(state["checkpoint"], model)
            log(f"Resuming {run_dir} after epoch {start_epoch} (phase {previous + 1}, C={model.factor}).")
        elif config.get("init"):
            model = build_model(config, spec, len(label_names), schedule.factors[0])
            _initialize(model, config["init"], log)
    log(
        f"Run {run_dir}: {config['dataset']} ({num_train} train / {reports['eval'].num_good} eval "
        f"clips, {len(label_names)} classes), method {config['method']}, factors "
        f"{list(schedule.factors)}, epochs per phase {list(schedule.phase_epochs)}, "
        f"precision {precision}, {dist.describe()}"
    )

    evaluator = EpochEvaluator(eval_data, spec.multilabel, spec.metric)
    switch = PhaseSwitch(schedule, target=target)
    recorder = _Recorder(
        schedule=schedule, spec=spec, store=store, writer=writer, history=history,
        counters=counters, samples_per_epoch=samples_per_epoch, bad_audio=bad_audio,
        target=target, run_dir=run_dir, switch=switch, fault=fault, log=log, chief=dist.is_chief,
    )
    finished = bool(state and state.get("finished"))
    reason = state.get("stop_reason") if state else None
    epoch = start_epoch
    while epoch < schedule.total_epochs and not finished:
        phase = schedule.phase_of_epoch(epoch)
        factor = schedule.factors[phase]
        switch_start = time.perf_counter()
        # The phase switch (rebuild, transfer, recompile) happens inside the
        # distribution's scope, so the new model's variables are replicated too.
        with dist.scope():
            if model is None:
                model = build_model(config, spec, len(label_names), factor)
            elif model.factor != factor:
                new_model = build_model(config, spec, len(label_names), factor)
                report = transfer_weights(model, new_model)
                log(
                    f"Phase {phase + 1}: C={model.factor} -> C={factor}, tokens "
                    f"{model.num_patch_tokens} -> {new_model.num_patch_tokens}; resized "
                    f"{', '.join(report.paths('resized'))}; fresh optimizer and LR schedule."
                )
                writer.text(epoch, "phase_switch", f"epoch {epoch}: C={model.factor} -> C={factor}")
                model = new_model
            # A fresh optimizer and LR schedule per phase, as the paper resets them; a
            # run resumed inside a phase gets its saved optimizer state back.
            optimizer = _compile(model, config, spec, steps_per_epoch)
            if epoch == start_epoch and start_epoch and schedule.phase_of_epoch(start_epoch - 1) == phase:
                store.restore_optimizer(state["checkpoint"], optimizer, model.trainable_variables)
        if dist.needs_eval_model:
            evaluator.eval_model = build_model(config, spec, len(label_names), factor)
        recorder.overhead = time.perf_counter() - switch_start
        dataset = pipeline.make_dataset(
            train, label_names, spec, batch_size=batch_size, training=True, seed=config["seed"],
            epoch=epoch, mixup=config["mixup"], cache=config["cache"], drop_remainder=drop,
            repeat=True, on_bad_audio="skip", audio_report=reports["train"],
        )
        with dist.training_scope():
            model.fit(
                dataset,
                steps_per_epoch=steps_per_epoch,
                initial_epoch=epoch,
                epochs=schedule.phase_end(phase),
                verbose=verbose if dist.is_chief else 0,
                callbacks=[evaluator, switch, recorder],
                shuffle=False,  # the pipeline orders each epoch from (seed, epoch)
            )
        epoch = len(history)
        finished = switch.finished
        reason = recorder.reason

    return _finalize(run_dir, model, config, spec, schedule, history, counters, bad_audio,
                     target, reason, writer, log, replicas=dist.num_replicas, write=dist.is_chief)


def _initialize(model, path, log):
    from kc2f.weights.pretrained import initialize_from

    try:
        report = initialize_from(model, path)
    except (ValueError, OSError, ImportError) as error:
        raise RunError(f"--init {path}: {error}") from None
    log(f"Initialised from {path}:\n{report}")


class _Recorder(keras.callbacks.Callback):
    """Per-epoch bookkeeping: history row, counters, TensorBoard, atomic checkpoint."""

    def __init__(self, *, schedule, spec, store, writer, history, counters, samples_per_epoch,
                 bad_audio, target, run_dir, switch, fault, log, chief=True):
        super().__init__()
        self.schedule, self.spec, self.store, self.writer = schedule, spec, store, writer
        self.history, self.counters = history, counters
        self.samples_per_epoch, self.bad_audio, self.target = samples_per_epoch, bad_audio, target
        self.run_dir, self.switch, self.fault, self.log = run_dir, switch, fault, log
        self.chief = chief
        self.overhead = 0.0
        self.reason = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        model, optimizer = self.model, self.model.optimizer
        self.fault("epoch", epoch + 1)
        phase = self.schedule.phase_of_epoch(epoch)
        epoch_flops = training_flops_per_sample(model) * self.samples_per_epoch
        train_seconds = logs["train_seconds"] + self.overhead
        self.overhead = 0.0
        self.counters["flops"] += epoch_flops
        self.counters["seconds"] += train_seconds
        lr = optimizer.learning_rate
        row = {
            "epoch": epoch + 1,
            "phase": phase + 1,
            "factor": model.factor,
            "tokens": model.num_patch_tokens,
            "loss": float(logs["loss"]),
            "val_metric": logs["val_metric"],
            "lr": float(keras.ops.convert_to_numpy(lr(optimizer.iterations) if callable(lr) else lr)),
            "samples": self.samples_per_epoch,
            "train_seconds": train_seconds,
            "eval_seconds": logs["eval_seconds"],
            "epoch_flops": epoch_flops,
            "cumulative_flops": self.counters["flops"],
            "cumulative_seconds": self.counters["seconds"],
        }
        row.update({k: v for k, v in logs.items() if k.startswith("val_") and k != "val_metric"})
        self.history.append(row)
        metric = self.spec.metric
        self.writer.scalars(epoch + 1, {
            "loss": row["loss"], f"val/{metric}": row["val_metric"], "lr": row["lr"],
            "phase": row["phase"], "factor": row["factor"], "tokens": row["tokens"],
            "cumulative_train_flops": row["cumulative_flops"],
            "cumulative_train_seconds": row["cumulative_seconds"],
            **{f"val/{k[4:]}": v for k, v in row.items() if k.startswith("val_") and k != "val_metric"},
        })
        self.writer.flush()
        self.log(
            f"epoch {epoch + 1}/{self.schedule.total_epochs} phase {phase + 1} C={model.factor}: "
            f"loss {row['loss']:.4f} {metric} {row['val_metric']:.4f} ({train_seconds:.1f}s train, "
            f"{self.counters['flops'] / 1e12:.3f} TFLOP so far)"
        )
        if self.switch.target_reached:
            self.reason = f"target {self.target:.4f} reached"
        elif self.switch.finished:
            self.reason = "all epochs trained"
        state = {
            "history": self.history,
            "counters": self.counters,
            "finished": self.switch.finished,
            "stop_reason": self.reason,
            "bad_audio": self.bad_audio,
            "target": self.target,
            "best_epoch": max(self.history, key=lambda r: r["val_metric"])["epoch"],
        }
        # After a phase's last epoch the next phase compiles a fresh optimizer anyway.
        keep_optimizer = None if self.switch.switch else optimizer
        if not self.chief:
            return
        self.store.fault_hook = lambda where: self.fault(where, epoch + 1)
        self.store.save(f"epoch-{epoch + 1:04d}", model, keep_optimizer, state)
        _write_history(self.run_dir, self.history)


def _finalize(run_dir, model, config, spec, schedule, history, counters, bad_audio, target,
              reason, writer, log, replicas=1, write=True):
    """Writes `model.keras` and `summary.json` of a finished run (idempotent).

    With `write=False` (a non-chief process) only the summary is returned.
    """
    if write:
        model_path = run_dir / "model.keras"
        tmp_path = run_dir / f".model.{os.getpid()}.keras"
        # The deliverable is an inference model: no optimizer or loss in the file, so
        # it loads anywhere without kc2f's training classes (nor replicated variables).
        clean = AudioSpectrogramTransformer.from_config(model.get_config())
        for clean_weight, weight in zip(clean.weights, model.weights):
            clean_weight.assign(weight.numpy())
        clean.save(tmp_path)
        os.replace(tmp_path, model_path)
    best = max(history, key=lambda r: r["val_metric"])
    summary = {
        "run_dir": str(run_dir),
        "dataset": config["dataset"],
        "method": config["method"],
        "factors": list(schedule.factors),
        "phase_epochs": list(schedule.phase_epochs),
        "metric": spec.metric,
        "epochs_trained": len(history),
        "best_metric": best["val_metric"],
        "best_epoch": best["epoch"],
        "final_metric": history[-1]["val_metric"],
        "target": target,
        "stop_reason": reason,
        "train_flops": counters["flops"],
        "train_seconds": counters["seconds"],
        "bad_audio": bad_audio,
        "replicas": replicas,
    }
    if write:
        write_json_atomic(run_dir / "summary.json", summary)
    writer.close()
    log(
        f"Done: best {spec.metric} {best['val_metric']:.4f} at epoch {best['epoch']}; "
        f"{counters['flops'] / 1e12:.3f} TFLOP, {counters['seconds']:.1f}s training ({reason})."
    )
    return summary
