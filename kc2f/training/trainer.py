"""The coarse-to-fine fit driver: a short loop over phases.

Preparation (options, resume check, data), the phase switch (`PhaseSwitch`),
the per-epoch bookkeeping (`EpochEvaluator`, `EpochRecorder`) and the
optimizer of a phase (`compile_phase`) live in their own modules; this one
wires them together and writes the finished run.
"""

import functools
import os
import time

import keras

from kc2f.data import pipeline, registry
from kc2f.families import get_family
from kc2f.training.checkpoint_store import CheckpointStore
from kc2f.training.compilation_cache import enable_compilation_cache
from kc2f.training.distribution import Distribution, accelerator_present
from kc2f.training.epoch_evaluator import EpochEvaluator, eval_batch_size, predict_scores
from kc2f.training.epoch_recorder import EpochRecorder
from kc2f.training.loss_guard import LossGuard
from kc2f.training.metrics import compute_metrics
from kc2f.training.phase_optimizer import TRAIN_METRIC, compile_phase, learning_rate_schedule
from kc2f.training.phase_schedule import adaptive_schedule, build_schedule
from kc2f.training.phase_precompiler import PhasePrecompiler, PreparedPhase, precompile_wanted, warm_up
from kc2f.training.phase_switch import PhaseSwitch, build_policy, max_coarse_epochs
from kc2f.training.preparation import (
    averaged_checkpoints,
    baseline_target,
    check_baseline_classes,
    check_resume,
    default_run_dir,
    prepare_data,
    resolve,
    with_run_computed,
)
from kc2f.training.run_directory import RunDirectory
from kc2f.training.run_error import RunError
from kc2f.training.run_lock import RunLock
from kc2f.training.run_state import RunState, best_row, describe_epochs
from kc2f.training.scalar_writer import ScalarWriter
from kc2f.training.plateau_learning_rate import PlateauLearningRate
from kc2f.training.step_recorder import StepRecorder
from kc2f.training.step_timer import StepTimer
from kc2f.training.time_breakdown import format_breakdown, time_breakdown


def fit(config, run_dir=None, verbose=1, log=print):
    """Trains one coarse-to-fine (or baseline) run, resuming it if it was interrupted.

    The method of *From Coarse to Fine* (https://arxiv.org/abs/2401.08415): phase
    `i` trains the model at compression factor `factors[i]`; at a phase switch
    (`PhaseSwitch`) the model is rebuilt for the next factor through the run's
    model family, every weight is transferred (position embedding
    interpolated, patch kernel resized), and a fresh optimizer with a restarted
    learning-rate schedule is compiled. Rerunning the same call continues from
    the last committed epoch with the optimizer, random-generator states and
    the FLOPs and time counters restored. The files are `RunDirectory`'s.

    Args:
        config: the run's `RunConfig`.
        run_dir: run directory (default: `runs/<dataset>-<method>-<factors>-s<seed>`).
        verbose: Keras progress-bar verbosity (0, 1 or 2).
        log: function taking one line of text.

    Returns:
        The run summary (also written to `summary.json`).
    """
    # Before anything compiles: on JAX, compiled steps are kept on disk (kc2f.training.compilation_cache).
    enable_compilation_cache()
    try:
        # First of all: a multi-worker TensorFlow strategy or a multi-process JAX
        # job must be set up before the backend runs any operation.
        dist = Distribution(config.distribute)
        config, spec, schedule, target = plan_run(config)
        dist.check_batch_size(config.batch_size)
        policy = build_policy(config, schedule.num_phases, schedule.total_epochs)
    except ValueError as error:
        raise RunError(str(error)) from None
    run = RunDirectory(run_dir or default_run_dir(config))
    try:
        # Only the chief writes; a directory that holds a user's files is refused untouched.
        if dist.is_chief:
            run.claim()
        else:
            run.create()
    except ValueError as error:
        raise RunError(str(error)) from None
    except OSError as error:
        raise RunError(f"Cannot create the run directory {run}: {error.strerror or error}.") from None
    # Only the chief writes the run directory; it holds the lock for the whole run.
    lock = RunLock(run.lock_path).acquire() if dist.is_chief else None
    try:
        return _fit_locked(config, spec, dist, schedule, policy, target, run, verbose, log)
    finally:
        if lock is not None:
            lock.release()


def plan_run(config):
    """`(resolved config, dataset spec, phase schedule, budget-mode target)` of a run, every option
    checked (a `--baseline` run included); no data read.

    What `fit` checks before it touches the run directory; sweeps and
    cross-validation call it for all their runs before training the first.

    Raises:
        RunError: an option is invalid for this dataset or schedule (e.g. the
            `--average-checkpoints` range).
    """
    try:
        config, spec = resolve(config)
        schedule = build_schedule(config.factors, config.epochs, config.phase_epochs, config.initial_fraction)
        if config.switch != "fixed" and config.phase_epochs is not None:
            raise ValueError(
                f"Option 'phase_epochs' fixes each phase's length; it cannot be combined with "
                f"switch={config.switch!r}. Received: phase_epochs={list(config.phase_epochs)}"
            )
        if config.switch != "fixed" and config.average_checkpoints is not None:
            # An adaptive switch moves the phase boundary, and an average cannot span one.
            raise ValueError(
                f"Option 'average_checkpoints' needs the phase lengths known in advance; it cannot be "
                f"combined with switch={config.switch!r}. Received: "
                f"average_checkpoints={config.average_checkpoints!r}"
            )
        averaged_checkpoints(config, schedule)
        build_policy(config, schedule.num_phases, schedule.total_epochs)  # e.g. a plateau that cannot fire
        # A --baseline that does not fit this run is refused here, before the run directory is touched.
        target = baseline_target(config)
    except ValueError as error:
        raise RunError(str(error)) from None
    return config, spec, schedule, target


def _fit_locked(config, spec, dist, schedule, policy, target, run, verbose, log):
    family = get_family(config.model)
    store = CheckpointStore(run, keep_last=config.keep_checkpoints,
                            protect=averaged_checkpoints(config, schedule))
    if dist.is_chief:
        for path in run.remove_stale_temporaries():
            log(f"Removed {path}, left by an interrupted write.")
        try:
            run.check_writable()
        except ValueError as error:
            raise RunError(str(error)) from None
    saved = check_resume(run, config, store, log, commit=dist.is_chief)
    config = with_run_computed(run, config)
    if saved is not None and saved.get("finished") and run.is_finished():
        log(f"Run {run} already finished; nothing to do.")
        return {**run.read_summary(), "run_dir": str(run)}
    if saved is not None and dist.is_chief:
        run.write_history(saved["history"], split=config.selection_split)  # views of the commit
    if config.baseline is not None:
        log(f"Budget mode: stop the final phase at {spec.metric} >= {target:.4f} (baseline {config.baseline}).")
    preparation_start = time.perf_counter()
    # verbose=0 (or --quiet) draws no bars; otherwise they appear when stderr is a terminal.
    config, data = prepare_data(config, spec, log, show_progress=None if verbose and dist.is_chief else False)
    spec = registry.input_spec(spec, config)  # the input prepare_data sized (or the run's, resumed)
    preparation_seconds = time.perf_counter() - preparation_start
    check_baseline_classes(config, data.labels)
    if saved is None and dist.is_chief:
        run.write_config(config.to_dict())
        run.write_labels(data.labels)

    precision = _set_precision(config.precision)
    drop = data.num_train >= config.batch_size
    if config.steps_per_epoch is None:
        steps_per_epoch = pipeline.steps_per_epoch(data.num_train, config.batch_size, drop)
        samples_per_epoch = steps_per_epoch * config.batch_size if drop else data.num_train
    else:
        # Step-based (kc2f pretrain): an epoch is an evaluation interval, not a pass over the data.
        steps_per_epoch = config.steps_per_epoch
        samples_per_epoch = steps_per_epoch * config.batch_size if drop else None
        if samples_per_epoch is None:
            raise RunError(f"Option 'steps_per_epoch' needs at least one full batch: {data.num_train} "
                           f"training clips, batch size {config.batch_size}.")
    metric = family.metric(spec)

    def build(factor):
        return family.build(config, spec, len(data.labels), factor)

    state = RunState.from_saved(saved)
    writer = ScalarWriter(run.tensorboard, enabled=dist.is_chief)
    keras.utils.set_random_seed(config.seed)
    max_epochs = max_coarse_epochs(config, schedule.num_phases, schedule.total_epochs)
    if policy is not None:  # provisional; a resumed run keeps the phase lengths it decided
        decided = state.switch["decided"] if state.switch else ()
        schedule = adaptive_schedule(schedule.factors, schedule.total_epochs, decided, max_epochs)
    model, init_report = _first_model(config, family, schedule, state, saved, store, build, dist, run, log)
    if saved is not None:
        init_report = saved.get("init_report")
    flops_per_epoch = {}

    def epoch_flops(factor, model=None):
        # Only the budget rule asks for a factor not trained yet; that builds a model once.
        if factor not in flops_per_epoch:
            with dist.scope():
                sized = model if model is not None and model.factor == factor else build(factor)
            flops_per_epoch[factor] = family.training_flops_per_sample(sized) * samples_per_epoch
        return flops_per_epoch[factor]

    epoch_flops(model.factor, model)
    if dist.is_chief:
        _check_free_space(run, store, model, kept=config.average_best or 0)
    val_clips = f"{data.num_val} val / " if data.validation is not None else ""
    log(
        f"Run {run}: {config.dataset} ({data.num_train} train / {val_clips}{data.num_eval} {config.eval_split} clips, "
        f"{len(data.labels)} classes), model {config.model}, method {config.method}, factors "
        f"{list(schedule.factors)}, epochs per phase {list(schedule.phase_epochs)}, "
        f"precision {precision}, {dist.describe()}"
    )

    @functools.cache
    def scoring_data(split):
        # One dataset a split, iterated every epoch: with --cache its clips are decoded once.
        examples = data.validation if split == "val" else data.evaluation
        return pipeline.make_dataset(
            examples, data.labels, spec, batch_size=eval_batch_size(config.batch_size, data.reports[split].num_good),
            training=False, on_bad_audio="skip", audio_report=data.reports[split], cache=config.cache,
        )

    def eval_data():  # the split that selects: the validation split with val_fraction, else eval_split
        return scoring_data("val" if data.validation is not None else "eval")

    evaluator = EpochEvaluator(eval_data, spec.multilabel, metric, state,
                               evaluate=lambda model, dataset: family.evaluate(model, dataset, spec))
    current = {}  # the phase's training dataset: the precompiler's batches take its shapes
    eval_batches = eval_batch_size(config.batch_size, data.reports["val" if data.validation is not None
                                                                    else "eval"].num_good)

    def prepare(factor):  # on the precompiler's thread: what the switch and compile_phase below would do
        with dist.scope():
            ready = build(factor)
            ready_schedule = learning_rate_schedule(config, steps_per_epoch)
            ready_optimizer = compile_phase(ready, config, spec.multilabel, steps_per_epoch, family=family,
                                            schedule=ready_schedule)
        train_batches = pipeline.placeholder_batches(current["train"])
        eval_placeholders = pipeline.placeholder_batches(eval_data(), eval_batches)
        if train_batches is None or eval_placeholders is None:
            raise ValueError("the input's shapes are not static")
        warm_up(ready, ready_optimizer, train_batches, lambda m: evaluator.warm_up(m, eval_placeholders.take(1)))
        return PreparedPhase(ready, ready_optimizer, ready_schedule)

    def next_factor():
        phase = state.schedule.phase_of_epoch(state.epochs_done)
        return state.schedule.factors[phase + 1] if phase + 1 < state.schedule.num_phases else None

    precompiler = PhasePrecompiler(prepare, next_factor, log=log) if precompile_wanted(config.distribute) else None
    handed = {}  # factor -> the PreparedPhase whose model the switch took
    decoded_train = {}  # with --cache: the training clips, decoded in the first phase, read by every phase

    def build_next(factor):
        ready = precompiler.take(factor) if precompiler is not None else None
        if ready is None:
            return build(factor)
        handed[factor] = ready
        return ready.model

    switch = PhaseSwitch(schedule, family, build_next, state, target=target, scope=dist.scope, log=log,
                         on_switch=lambda epoch, text: writer.text(epoch, "phase_switch", text),
                         policy=policy, max_epochs=max_epochs,
                         epoch_flops=epoch_flops, budget=config.switch_budget if policy is not None else None)
    schedule = state.schedule
    recorder = EpochRecorder(
        family=family, metric=metric, samples_per_epoch=samples_per_epoch,
        state=state, run=run, store=store, writer=writer,
        extra_state={"bad_audio": data.bad_audio, "target": target,
                     **({"init_report": init_report} if config.init else {})}, log=log, chief=dist.is_chief,
        split=config.selection_split, average_best=config.average_best,
    )
    guard = LossGuard(run, lambda: len(state.history))
    timer = StepTimer(state)
    phase_schedule = [None]  # the current phase's learning-rate schedule
    plateau = PlateauLearningRate(lambda: phase_schedule[0], state, log=log)
    steps = StepRecorder(writer, steps_per_epoch, lambda: phase_schedule[0],
                         metric_name=None if spec.multilabel or family.compile_loss(False) is None
                         else TRAIN_METRIC)
    resumed_epoch = state.epochs_done
    eval_data()  # made here, not first on the precompiler's thread
    while state.epochs_done < state.schedule.total_epochs and not state.finished:
        schedule = state.schedule  # an adaptive switch revises it
        epoch = state.epochs_done
        phase = schedule.phase_of_epoch(epoch)
        # A run resumed right after a phase's last epoch switches here.
        model = switch.switch(model, phase)
        epoch_flops(model.factor, model)
        start = time.perf_counter()
        ready = handed.pop(model.factor, None)
        with dist.scope():
            if ready is not None and ready.model is model:  # compiled ahead, with its fresh optimizer
                phase_schedule[0], optimizer = ready.schedule, ready.optimizer
            else:
                phase_schedule[0] = learning_rate_schedule(config, steps_per_epoch)
                optimizer = compile_phase(model, config, spec.multilabel, steps_per_epoch, family=family,
                                          schedule=phase_schedule[0])
            if epoch == resumed_epoch and epoch and schedule.phase_of_epoch(epoch - 1) == phase:
                try:
                    store.restore_optimizer(saved["checkpoint"], optimizer, model.trainable_variables)
                except ValueError as error:
                    raise RunError(f"Cannot resume {run}: {error}") from None
        state.overhead += time.perf_counter() - start
        if dist.needs_eval_model:
            evaluator.eval_model = build(model.factor)
        # Step-based runs read one endless stream from its start, skipping the steps done.
        position = dict(epoch=epoch) if config.steps_per_epoch is None else dict(
            epoch=0, start_step=epoch * steps_per_epoch)
        start = time.perf_counter()
        dataset = pipeline.make_dataset(
            data.train, data.labels, spec, batch_size=config.batch_size, training=True, seed=config.seed,
            mixup=config.mixup, cache=config.cache, drop_remainder=drop, cache_store=decoded_train,
            repeat=True, on_bad_audio="skip", audio_report=data.reports["train"], **position,
        )
        # The phase's input pipeline is wall time the run waits for, as the switch is.
        state.overhead += time.perf_counter() - start
        current["train"] = dataset
        with dist.training_scope():
            model.fit(
                dataset,
                steps_per_epoch=steps_per_epoch,
                initial_epoch=epoch,
                epochs=schedule.phase_end(phase),
                verbose=verbose if dist.is_chief else 0,
                # In this order: the guard stops a diverged epoch before anything of it counts, the
                # timer stamps the epoch's end before evaluation, the evaluator measures, the plateau
                # rule steps the learning rate, the switch decides, the recorder commits, then the
                # step recorder writes the committed epoch's steps.
                callbacks=[guard, timer, evaluator, plateau, switch, recorder, steps,
                           *([precompiler] if precompiler is not None else [])],
                shuffle=False,  # the pipeline orders each epoch from (seed, epoch)
            )
        model = switch.next_model or model
    if precompiler is not None:
        precompiler.close()
    averaged = None
    averaged_names = recorder.averaged_names(state) or sorted(store.protect)
    if averaged_names and dist.is_chief:
        model, averaged = _average_checkpoints(store, averaged_names, build(model.factor), eval_data(), spec, run,
                                               log)
    extra = {"selection_split": config.selection_split, "left_out": data.left_out}
    if data.validation is not None:
        extra.update(val_source=data.validation_source, val_clips=data.num_val, test_split=config.eval_split)
        if dist.is_chief:
            extra.update(_test_at_best(store, best_row(state.history, family.metric_across_factors), build,
                                          scoring_data("eval"), spec, config, log))
    return finalize(run, model, family, config, spec, state.schedule, state, target, data.bad_audio, writer, log,
                    replicas=dist.num_replicas, write=dist.is_chief, averaged=averaged, extra=extra,
                    metric=metric, init_report=init_report, preparation_seconds=preparation_seconds)


def _test_at_best(store, best, build, test_dataset, spec, config, log):
    """Summary entries of the test split scored with the best (selected) epoch's checkpoint.

    The validation split chose the epoch; the test split is scored once, at
    it, so the reported test metric is not itself a selection on the test
    split. The best checkpoint is always kept (`CheckpointStore`), and a run
    killed while finishing scores the same weights again.
    """
    model = build(best["factor"])
    try:
        store.restore_model(store.name(best["epoch"]), model)
    except ValueError as error:
        raise RunError(f"Cannot score the best epoch's checkpoint on '{config.eval_split}': {error}") from None
    scores, labels = predict_scores(model, test_dataset, spec.multilabel)
    metrics = {name: float(value) for name, value in compute_metrics(scores, labels, spec.multilabel).items()}
    log(f"Best epoch {best['epoch']} (val {spec.metric} {best['val_metric']:.4f}): "
        f"{config.eval_split} {spec.metric} {metrics[spec.metric]:.4f}")
    return {"test_metric_at_best": metrics[spec.metric], "test_metrics_at_best": metrics}


def _average_checkpoints(store, names, model, eval_dataset, spec, run, log):
    """`(model, summary entries)`: `model` set to the mean of checkpoints `names`, and its metric.

    It reads only committed checkpoints, so a run killed while finishing and
    run again averages the same weights. `averaged_epochs` lists the epochs
    averaged, in order.
    """
    try:
        store.average_model(names, model)
    except ValueError as error:
        raise RunError(f"Cannot average the checkpoints of {run}: {error}") from None
    scores, labels = predict_scores(model, eval_dataset, spec.multilabel)
    metrics = {name: float(value) for name, value in compute_metrics(scores, labels, spec.multilabel).items()}
    epochs = sorted(int(name.removeprefix(RunDirectory.CHECKPOINT_PREFIX)) for name in names)
    log(f"Weight average of the checkpoints of epochs {describe_epochs(epochs)}: "
        f"{spec.metric} {metrics[spec.metric]:.4f}")
    return model, {"averaged_epochs": epochs, "averaged_metric": metrics[spec.metric],
                   "averaged_metrics": metrics}


def _check_free_space(run, store, model, kept=0):
    # A new checkpoint is written before the oldest is pruned, and model.keras at the end; `kept`
    # more checkpoints stay for a best-K average.
    needed = (3 + len(store.protect) + kept) * store.bytes_needed(model)
    free = run.free_bytes()
    if free < needed:
        raise RunError(
            f"Not enough free space in {run}: checkpoints of this model need about {needed / 1e6:.1f} MB, "
            f"{free / 1e6:.1f} MB are free."
        )


def _set_precision(precision):
    if precision == "auto":
        precision = "mixed_bfloat16" if accelerator_present() else "float32"
    keras.mixed_precision.set_global_policy(precision)
    return precision


def _first_model(config, family, schedule, state, saved, store, build, dist, run, log):
    """`(model, init report)`: the last checkpoint, a pretrained init (its report's text) or a fresh one."""
    with dist.scope():
        if state.epochs_done:
            previous = schedule.phase_of_epoch(state.epochs_done - 1)
            model = build(schedule.factors[previous])
            try:
                store.restore_model(saved["checkpoint"], model)
            except ValueError as error:
                raise RunError(f"Cannot resume {run}: {error}") from None
            log(f"Resuming {run} after epoch {state.epochs_done} (phase {previous + 1}, C={model.factor}).")
            return model, None
        model = build(schedule.factors[0])
        if config.init:
            try:
                report = family.initialize(model, config.init)
            except (ValueError, OSError, ImportError) as error:
                raise RunError(f"--init {config.init}: {error}") from None
            log(f"Initialised from {config.init}:\n{report}")
            return model, str(report)
        return model, None


def finalize(run, model, family, config, spec, schedule, state, target, bad_audio, writer, log, replicas=1,
             write=True, averaged=None, extra=None, metric=None, init_report=None, preparation_seconds=None):
    """Writes `model.keras` and `summary.json` of a finished run (idempotent); returns the summary.

    `model.keras` holds `model`: the last epoch's model, or the weight average
    of the `--average-checkpoints` epochs, whose entries (`averaged_epochs`,
    `averaged_metric`, `averaged_metrics`) `averaged` adds to the summary;
    `summary["delivered_model"]` says which one the file holds; `extra` adds
    entries (the selection split, and with a validation split the test metric
    at the best epoch). The run's hyperparameters and final metrics go to
    TensorBoard's HParams dashboard. With `write=False` (a non-chief process)
    only the summary is returned. `metric` names the
    tracked metric (default: the dataset's); with `--init`, `init_report` (what
    the initialisation loaded, resized and dropped) goes to the summary.
    """
    metric = metric or spec.metric
    if write:
        tmp_path = run.file(f".model.{os.getpid()}.keras")
        # The deliverable is an inference model: no optimizer or loss in the file, so
        # it loads anywhere without kc2f's training classes (nor replicated variables).
        try:
            family.inference_copy(model).save(tmp_path)
            os.replace(tmp_path, run.model_path)
        except OSError as error:
            tmp_path.unlink(missing_ok=True)
            raise RunError(
                f"Cannot write {run.model_path}: {error.strerror or error}. Every epoch is committed; "
                "free space and run the same command to finish."
            ) from None
    history = state.history
    best = best_row(history, family.metric_across_factors)
    summary = {
        "run_dir": str(run),
        "dataset": config.dataset,
        "model": config.model,
        "method": config.method,
        "factors": list(schedule.factors),
        "phase_epochs": list(schedule.phase_epochs),
        "metric": metric,
        "epochs_trained": len(history),
        "best_metric": best["val_metric"],
        "best_epoch": best["epoch"],
        "final_metric": history[-1]["val_metric"],
        "target": target,
        "stop_reason": state.stop_reason,
        "train_flops": state.counters["flops"],
        "train_seconds": state.counters["seconds"],
        "bad_audio": bad_audio,
        "replicas": replicas,
        **({"init": config.init, "init_report": init_report} if config.init else {}),
        "time_breakdown": time_breakdown(history, state.counters.get("checkpoint_seconds"), preparation_seconds),
        "delivered_model": "last epoch" if averaged is None else "weight average of epochs "
                           f"{describe_epochs(averaged['averaged_epochs'])}",
        **(averaged or {}),
        **(extra or {}),
    }
    split = summary.get("selection_split", "val")
    writer.hparams(len(history), config.flat_dict(), {
        f"final/best_{split}_{metric}": summary["best_metric"], "final/best_epoch": summary["best_epoch"],
        f"final/last_{split}_{metric}": summary["final_metric"],
        "final/train_tflops": summary["train_flops"] / 1e12, "final/train_seconds": summary["train_seconds"],
        **({f"final/test_{metric}_at_best": summary["test_metric_at_best"]}
           if "test_metric_at_best" in summary else {}),
    })
    writer.flush()
    if write:
        try:
            # No absolute path in the file: a run directory moved or copied stays self-consistent.
            run.write_summary({key: value for key, value in summary.items() if key != "run_dir"})
        except OSError as error:
            raise RunError(f"Cannot write {run.file(run.SUMMARY)}: {error.strerror or error}.") from None
    writer.close()
    for line in format_breakdown(summary["time_breakdown"]):
        log(f"Time: {line}")
    at_best = (f" ({summary['test_split']} {metric} {summary['test_metric_at_best']:.4f} there)"
               if "test_metric_at_best" in summary else "")
    log(
        f"Done: best {split} {metric} {best['val_metric']:.4f} at epoch {best['epoch']}{at_best}; "
        f"{state.counters['flops'] / 1e12:.3f} TFLOP, {state.counters['seconds']:.1f}s training "
        f"({state.stop_reason})."
    )
    return summary
