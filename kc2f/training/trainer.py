"""The coarse-to-fine fit driver: phases, phase switches, accounting and resume."""

import csv
import json
import os
import pathlib
import random
import signal
import time

import keras
import numpy as np

from kc2f.models import AudioSpectrogramTransformer
from kc2f.training.checkpoint_store import CheckpointStore, write_json_atomic
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
RESUME_FREE = ("on_bad_audio",)


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


def _subset(examples, limit, seed):
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
    manifest, pipeline, registry = _data()
    config, spec = resolve_config(config)
    run_dir = pathlib.Path(run_dir or default_run_dir(config))
    run_dir.mkdir(parents=True, exist_ok=True)
    fault_where, fault_epoch = _fault_hook()

    def fault(where, epoch):
        if where == fault_where and epoch == fault_epoch:
            os.kill(os.getpid(), signal.SIGKILL)

    store = CheckpointStore(run_dir, fault_hook=lambda where: fault(where, current_epoch))
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

    # Data: index, check every file once, then build per-epoch pipelines.
    try:
        train, label_names = manifest.build_index(spec, config["data_dir"], config["train_split"])
        evaluation, _ = manifest.build_index(spec, config["data_dir"], config["eval_split"])
    except (ValueError, OSError) as error:
        raise RunError(str(error)) from None
    train = _subset(train, config["max_train_examples"], config["seed"])
    evaluation = _subset(evaluation, config["max_eval_examples"], config["seed"])
    bad_audio = {}
    for name, examples in (("train", train), ("eval", evaluation)):
        report = pipeline.validate_audio(examples, spec, on_bad_audio=config["on_bad_audio"])
        if report.bad:
            bad_audio[name] = report.counts()
            log(f"Skipped {len(report.bad)} bad {name} clips: {report.counts()}")
            for line in report.lines():
                log(f"  {line}")
        if name == "train":
            train = report.good
        else:
            evaluation = report.good
    if not train or not evaluation:
        raise RunError(f"No usable clips left: {len(train)} training, {len(evaluation)} evaluation.")
    if config["mean"] is None:
        from kc2f.data.stats import compute_stats

        mean, std = compute_stats(train, spec)
        config["mean"], config["std"] = float(mean), float(std)
        log(f"Normalisation statistics of the training split: mean {mean:.4f}, std {std:.4f}")
    if state is None:
        write_json_atomic(run_dir / "config.json", config)
        write_json_atomic(run_dir / "labels.json", label_names)

    precision = _set_precision(config["precision"])
    batch_size = config["batch_size"]
    drop = len(train) >= batch_size
    steps_per_epoch = len(train) // batch_size if drop else 1
    samples_per_epoch = steps_per_epoch * batch_size if drop else len(train)

    def train_data(epoch):
        return pipeline.make_dataset(
            train, label_names, spec, batch_size=batch_size, training=True, seed=config["seed"],
            epoch=epoch, mixup=config["mixup"], cache=config["cache"], drop_remainder=drop,
        )

    def eval_data():
        return pipeline.make_dataset(
            evaluation, label_names, spec, batch_size=batch_size, training=False, cache=config["cache"]
        )

    writer = ScalarWriter(run_dir / "tensorboard")
    history = list(state["history"]) if state else []
    counters = dict(state["counters"]) if state else {"flops": 0.0, "seconds": 0.0}
    start_epoch = len(history)
    current_epoch = start_epoch

    keras.utils.set_random_seed(config["seed"])
    model, optimizer = None, None
    if start_epoch:
        previous = schedule.phase_of_epoch(start_epoch - 1)
        model = build_model(config, spec, len(label_names), schedule.factors[previous])
        store.restore_model(state["checkpoint"], model)
        log(f"Resuming {run_dir} after epoch {start_epoch} (phase {previous + 1}, C={model.factor}).")
    evaluator = EpochEvaluator(eval_data, spec.multilabel, spec.metric)
    switch = PhaseSwitch(schedule, target=target)
    log(
        f"Run {run_dir}: {config['dataset']} ({len(train)} train / {len(evaluation)} eval clips, "
        f"{len(label_names)} classes), method {config['method']}, factors {list(schedule.factors)}, "
        f"epochs per phase {list(schedule.phase_epochs)}, precision {precision}"
    )

    finished = bool(state and state.get("finished"))
    reason = state.get("stop_reason") if state else None
    epoch = start_epoch
    while epoch < schedule.total_epochs and not finished:
        current_epoch = epoch
        phase = schedule.phase_of_epoch(epoch)
        factor = schedule.factors[phase]
        overhead = 0.0
        if model is None or model.factor != factor or optimizer is None:
            switch_start = time.perf_counter()
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
            optimizer = _compile(model, config, spec, steps_per_epoch)
            resume_optimizer = (
                epoch == start_epoch and start_epoch > 0
                and schedule.phase_of_epoch(start_epoch - 1) == phase
            )
            if resume_optimizer:
                store.restore_optimizer(state["checkpoint"], optimizer, model.trainable_variables)
            overhead = time.perf_counter() - switch_start

        result = model.fit(
            train_data(epoch),
            initial_epoch=epoch,
            epochs=epoch + 1,
            verbose=verbose,
            callbacks=[evaluator, switch],
        )
        logs = {k: float(v[-1]) for k, v in result.history.items()}
        fault("epoch", epoch + 1)
        epoch_flops = training_flops_per_sample(model) * samples_per_epoch
        counters["flops"] += epoch_flops
        counters["seconds"] += logs["train_seconds"] + overhead
        row = {
            "epoch": epoch + 1,
            "phase": phase + 1,
            "factor": factor,
            "tokens": model.num_patch_tokens,
            "loss": logs.get("loss"),
            "val_metric": logs["val_metric"],
            "lr": float(keras.ops.convert_to_numpy(
                optimizer.learning_rate(optimizer.iterations)
                if callable(optimizer.learning_rate) else optimizer.learning_rate
            )),
            "samples": samples_per_epoch,
            "train_seconds": logs["train_seconds"] + overhead,
            "eval_seconds": logs["eval_seconds"],
            "epoch_flops": epoch_flops,
            "cumulative_flops": counters["flops"],
            "cumulative_seconds": counters["seconds"],
        }
        row.update({k: v for k, v in logs.items() if k.startswith("val_") and k != "val_metric"})
        history.append(row)
        writer.scalars(epoch + 1, {
            "loss": row["loss"], f"val/{spec.metric}": row["val_metric"], "lr": row["lr"],
            "phase": row["phase"], "factor": factor, "tokens": row["tokens"],
            "cumulative_train_flops": row["cumulative_flops"],
            "cumulative_train_seconds": row["cumulative_seconds"],
            **{f"val/{k[4:]}": v for k, v in row.items() if k.startswith("val_") and k != "val_metric"},
        })
        writer.flush()
        log(
            f"epoch {epoch + 1}/{schedule.total_epochs} phase {phase + 1} C={factor}: "
            f"loss {row['loss']:.4f} {spec.metric} {row['val_metric']:.4f} "
            f"({row['train_seconds']:.1f}s train, {counters['flops'] / 1e12:.3f} TFLOP so far)"
        )
        finished = switch.finished
        if switch.target_reached:
            reason = f"target {target:.4f} reached"
        elif finished:
            reason = "all epochs trained"
        best_epoch = max(history, key=lambda r: r["val_metric"])["epoch"]
        new_state = {
            "history": history,
            "counters": counters,
            "finished": finished,
            "stop_reason": reason,
            "bad_audio": bad_audio,
            "target": target,
            "best_epoch": best_epoch,
        }
        if switch.switch:
            # The next epoch starts a phase: its optimizer will be new anyway.
            optimizer_to_save = None
        else:
            optimizer_to_save = optimizer
        store.save(f"epoch-{epoch + 1:04d}", model, optimizer_to_save, new_state)
        _write_history(run_dir, history)
        epoch += 1
        if finished:
            break

    return _finalize(run_dir, model, config, spec, schedule, history, counters, bad_audio,
                     target, reason, writer, log)


def _finalize(run_dir, model, config, spec, schedule, history, counters, bad_audio, target,
              reason, writer, log):
    """Writes `model.keras` and `summary.json` of a finished run (idempotent)."""
    model_path = run_dir / "model.keras"
    tmp_path = run_dir / f".model.{os.getpid()}.keras"
    model.save(tmp_path)
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
    }
    write_json_atomic(run_dir / "summary.json", summary)
    writer.close()
    log(
        f"Done: best {spec.metric} {best['val_metric']:.4f} at epoch {best['epoch']}; "
        f"{counters['flops'] / 1e12:.3f} TFLOP, {counters['seconds']:.1f}s training ({reason})."
    )
    return summary
