"""Everything before the first training step: options resolved, resume checked, data ready.

- `resolve`: fills the dataset recipe's values into the options left `None`.
- `check_resume`: the committed state of a run directory, refusing other options.
- `baseline_target`: the budget-mode target from a baseline run.
- `averaged_checkpoints`: the checkpoints `--average-checkpoints` averages,
  checked against the phase schedule.
- `prepare_data`: indexes the splits (and, with `val_fraction`, the
  validation split: `stratified_holdout` of the training clips or the
  dataset's own), checks every clip once (bad clips of all splits are listed
  together, then fatal or skipped) and computes the normalisation statistics.
"""

import dataclasses
import os
import pathlib
import random
import shutil

from kc2f.data import manifest, pipeline, registry
from kc2f.data.stats import compute_stats
from kc2f.families import get_family
from kc2f.training.baseline_match import baseline_mismatch, describe
from kc2f.training.phase_schedule import default_initial_fraction
from kc2f.training.run_config import DEFAULT_LR_SCHEDULE, DEFAULT_WARMUP_STEPS, flat_options, selection_split
from kc2f.training.run_directory import RunDirectory
from kc2f.training.run_error import OTHER_RUN_DIR, RunError

# Options that may differ when a run is resumed: how bad clips are reported, the
# device layout (the global batch, not the device count, defines the run) and how
# many checkpoints are kept.
RESUME_FREE = ("on_bad_audio", "distribute", "keep_checkpoints")
# Computed from the training split at a run's start where the recipe has none
# (`prepare_data`: the statistics, and a folder's input size) and recorded in config.json: a
# resume without them takes the run's.
RUN_COMPUTED = ("mean", "std", "clip_seconds", "target_frames", "timem")
# What a run whose config.json predates an option used, where that differs from the option's default
# (`pooling` is resolved to "prefix" for the AST; before the option, the AST always pooled so).
PREDATING_VALUES = {"pooling": "prefix"}


@dataclasses.dataclass
class PreparedData:
    """The clips a run trains and validates on, checked.

    Attributes:
        train, evaluation: `kc2f.data.Example` lists (bad clips still in them;
            the reports' masks leave them out).
        labels: class names, in output order.
        reports: `{"train": AudioReport, "eval": AudioReport}`, and `"val"`
            with a validation split.
        bad_audio: skipped clips per split and reason (empty with none).
        validation: the validation clips with `val_fraction` (the best epoch,
            budget stop and adaptive switch read them; `evaluation` is then
            scored once, at the selected epoch), or `None`.
        validation_source: where `validation` comes from, e.g. `"20% of the
            training split (stratified, seed 0)"`, or `None`.
        left_out: folders of audio the layout does not read, with why
            (`kc2f.data.manifest.left_out_folders`).
    """

    train: list
    evaluation: list
    labels: list
    reports: dict
    bad_audio: dict
    validation: list = None
    validation_source: str = None
    left_out: list = dataclasses.field(default_factory=list)

    @property
    def num_train(self):
        return self.reports["train"].num_good

    @property
    def num_eval(self):
        return self.reports["eval"].num_good

    @property
    def num_val(self):
        return self.reports["val"].num_good if self.validation is not None else 0


def resolve(config):
    """Fills the dataset recipe's values into `None` options; returns `(config, spec)`."""
    try:
        spec = registry.get_dataset_spec(config.dataset)
    except ValueError as error:
        raise RunError(str(error)) from None
    recipe = spec
    changes = _input_changes(config, spec)
    # The pipeline resamples every clip to spec.sample_rate (a clip keeps its seconds) and crops or
    # pads it to spec.clip_seconds; the model's fbank has spec.target_frames and num_mel_bins.
    spec = registry.input_spec(spec, config.replace(**changes))
    # The recipe's statistics describe its own fbank: with other mel bins or another rate they are
    # computed from the training split instead (prepare_data).
    own_fbank = (spec.num_mel_bins, spec.sample_rate) == (recipe.num_mel_bins, recipe.sample_rate)
    changes.update({
        key: getattr(spec, key)
        for key in ("epochs", "batch_size", "lr", "mixup") + (("mean", "std") if own_fbank else ())
        if getattr(config, key) is None
    })
    if config.freqm is None:
        changes["freqm"] = _scaled(recipe.freqm, spec.num_mel_bins, recipe.num_mel_bins)
    if config.timem is None and (changes.get("target_frames") or config.target_frames) is not None:
        changes["timem"] = _scaled(recipe.timem, spec.target_frames, recipe.target_frames)
    elif config.timem is None and spec.layout not in registry.DATA_SIZED_LAYOUTS:
        changes["timem"] = recipe.timem
    if config.data_dir is not None:
        # Absolute, so that resuming from another working directory is the same run.
        changes["data_dir"] = os.path.abspath(os.path.expanduser(config.data_dir))
    if config.phase_epochs is not None:
        if config.epochs is not None and config.epochs != sum(config.phase_epochs):
            raise RunError(
                f"--phase-epochs {','.join(map(str, config.phase_epochs))} add up to "
                f"{sum(config.phase_epochs)} epochs, not --epochs {config.epochs}: give one, or make them agree."
            )
        changes["epochs"] = sum(config.phase_epochs)
    changes.update(get_family(config.model).resolve_options(config, spec))
    if config.lr_schedule is None:  # recorded, so that config.json states the schedule the run used
        changes["lr_schedule"] = DEFAULT_LR_SCHEDULE
    if config.warmup_steps is None:
        changes["warmup_steps"] = DEFAULT_WARMUP_STEPS
    if config.initial_fraction is None:
        # Recorded in config.json, so that the run states the split it trained.
        changes["initial_fraction"] = default_initial_fraction(len(config.factors))
    resolved = config.replace(**changes)
    if resolved.fold is not None and spec.layout != "esc50":
        raise RunError(f"Option 'fold' selects ESC-50's held-out fold; dataset '{spec.name}' has no folds. "
                       f"Received: fold={resolved.fold}")
    for name in ("clips_per_class", "test_clips_per_class"):
        if getattr(resolved, name) is not None and spec.layout != "synthetic":
            raise RunError(f"Option '{name}' sizes the generated synthetic set; dataset '{spec.name}' "
                           f"is read from disk. Received: {name}={getattr(resolved, name)}")
    if (resolved.mean is None) != (resolved.std is None):
        raise RunError("Give both 'mean' and 'std', or neither.")
    if resolved.target is not None and resolved.baseline is not None:
        raise RunError("Give either --target or --baseline, not both.")
    return resolved, spec


def _input_changes(config, spec):
    """The input options `resolve` fills: `target_frames` from a `clip_seconds` given alone (10 ms
    hops rounded up to the model's `frames_multiple`), and for a `registry.DATA_SIZED_LAYOUTS`
    dataset `clip_seconds` from `target_frames` given alone. Options left `None` take the recipe's
    values (`registry.input_spec`), or for a data-sized dataset are chosen by `size_input`."""
    if config.keywords is not None and spec.layout != "speechcommands":
        raise RunError(f"Option 'keywords' picks Speech Commands words; dataset '{spec.name}' has "
                       f"no such words. Received: keywords={config.keywords!r}")
    if config.clip_seconds is not None and config.target_frames is None:
        try:
            multiple = get_family(config.model).frames_multiple(config)
        except ValueError as error:
            raise RunError(str(error)) from None
        return {"target_frames": registry.frames_for(config.clip_seconds, multiple)}
    if config.target_frames is not None and config.clip_seconds is None:
        if spec.layout in registry.DATA_SIZED_LAYOUTS:
            return {"clip_seconds": config.target_frames / registry.FRAMES_PER_SECOND}
    return {}


def _scaled(width, size, recipe_size):
    """A SpecAugment mask width of the recipe, scaled to an input of `size` frames (or bins)
    instead of the recipe's `recipe_size`, so that it masks the same share of the input."""
    return width if size == recipe_size else int(round(width * size / recipe_size))


def size_input(config, spec, durations, log=print):
    """`config` with the model input fitted to the training clips (seconds each, `durations`).

    A `registry.DATA_SIZED_LAYOUTS` dataset with no `clip_seconds`/`target_frames`
    gets both from its clips (`registry.sized_from_data`; SpecAugment's time mask
    scaled with the frames), logged. Any dataset whose clips fill less than half of
    the input on average gets a warning: most of each step's compute would go to
    padding.
    """
    durations = [float(d) for d in durations]
    if not durations:
        return config
    changes = {}
    sized = spec.layout in registry.DATA_SIZED_LAYOUTS
    if sized and config.clip_seconds is None and config.target_frames is None:
        multiple = get_family(config.model).frames_multiple(config)
        seconds, frames = registry.sized_from_data(durations, spec.clip_seconds, multiple)
        whole = sum(d <= seconds for d in durations) / len(durations)
        changes.update(clip_seconds=seconds, target_frames=frames)
        log(f"Input sized from the {len(durations)} training clips (dataset '{spec.name}' has no fixed "
            f"clip length): {seconds:g} s per clip ({whole:.0%} of the clips whole, longer ones cropped), "
            f"{frames} frames (a multiple of {multiple}). Set clip_seconds / target_frames to choose.")
    if config.timem is None:
        frames = changes.get("target_frames") or config.target_frames or spec.target_frames
        recipe = registry.get_dataset_spec(spec.name)
        changes["timem"] = _scaled(recipe.timem, frames, recipe.target_frames)
    config = config.replace(**changes) if changes else config
    clip = config.clip_seconds or spec.clip_seconds
    fill = sum(min(d, clip) for d in durations) / (len(durations) * clip)
    if fill < 0.5:
        median = sorted(durations)[len(durations) // 2]
        fitting, _ = registry.sized_from_data(durations, clip, 1)
        log(f"Warning: the training clips fill {fill:.0%} of the {clip:g} s input on average (median clip "
            f"{median:.2f} s): most of each step's compute goes to padding. Set clip_seconds (e.g. "
            f"--set clip_seconds={fitting:g}) to fit them.")
    return config


def default_run_dir(config):
    """`runs/<dataset>-<method or baseline>-<factors>-s<seed>`."""
    factors = "-".join(str(f) for f in config.factors)
    method = "baseline" if tuple(config.factors) == (1,) else config.method
    return pathlib.Path("runs") / f"{config.dataset}-{method}-{factors}-s{config.seed}"


def check_resume(run, config, store, log=print, commit=True):
    """The committed state to resume `run` from, `None` for a new run; call it holding the lock.

    A damaged or missing latest checkpoint, or a damaged `state.json`, falls
    back to the newest checkpoint that verifies (its own run state is
    committed again, with a warning naming the bad file). A directory with
    files but no commit, or holding a run with other options, is refused.

    Raises:
        RunError: the directory cannot be resumed with `config`; the message
            names the file or option and what to do.
    """
    try:
        state = run.read_state()
        problem = store.problem(state) if state is not None else None
    except ValueError as error:  # state.json damaged
        state, problem = None, str(error)
    if state is None and problem is None:
        found = run.unexpected_entries()
        if found:
            raise RunError(
                f"Run directory {run} holds {', '.join(found)} but no {run.STATE}: it is not a kc2f run "
                f"that can be resumed. Remove those files or {OTHER_RUN_DIR}."
            )
        changed = _config_changes(run, config) if run.has(run.CONFIG) else None
        if changed and commit:
            # A run with no committed epoch has nothing to keep: it starts again with the new
            # options (e.g. after an option refused at its start), rather than being refused.
            log(f"No epoch of {run} was committed; starting it again with other options ({changed}).")
            for name in (run.CONFIG, run.LABELS):
                run.file(name).unlink(missing_ok=True)
        uncommitted = run.checkpoints / run.checkpoint_name(1)
        if commit and uncommitted.is_dir():
            shutil.rmtree(uncommitted)
            log(f"Removed {uncommitted}: written, but killed before its epoch was committed.")
        return None
    if problem is not None:
        fallback, skipped = store.newest_valid()
        if fallback is None:
            raise RunError(
                f"Cannot resume {run}: {problem}, and no checkpoint verifies"
                f"{' (' + '; '.join(skipped) + ')' if skipped else ''}. Move the run directory away to start over."
            )
        log(f"Warning: {problem}; resuming from {fallback['checkpoint']} instead "
            f"(epoch {len(fallback['history'])}).")
        if commit:
            run.write_state(fallback)
            if not fallback.get("finished"):
                # The summary described the lost commit; the resumed run writes a new one.
                run.file(run.SUMMARY).unlink(missing_ok=True)
        state = fallback
    _check_same_config(run, config)
    return state


def with_run_computed(run, config):
    """`config` with the run's computed options (`RUN_COMPUTED`) where `config` leaves them `None`."""
    if not run.has(run.CONFIG):
        return config
    saved = run.read_config()
    filled = {k: saved[k] for k in RUN_COMPUTED if getattr(config, k) is None and saved.get(k) is not None}
    return config.replace(**filled) if filled else config


def _config_changes(run, config):
    """`"lr: 0.001 -> 0.002, ..."`: the options in which `config` differs from the run's `config.json`
    (those a resume may change aside), or `None`; RunError when `config.json` cannot be read."""
    try:
        recorded = run.read_config()
    except ValueError as error:
        raise RunError(f"Cannot resume {run}: {error}") from None
    # An option added to kc2f after the run started counts as its default, or as the value such a
    # run used (`PREDATING_VALUES`). Model options compare flat, as runs before their nesting
    # recorded them; those of other families (recorded flat by such runs) are not this run's.
    defaults = type(config)(model=config.model, method=config.method).flat_dict()
    recorded = flat_options(recorded)
    saved = {**defaults, **recorded}
    current = config.flat_dict()
    changed = {k: (saved.get(k), current.get(k)) for k in current
               if k not in RESUME_FREE and saved.get(k) != current.get(k)
               and not (k in RUN_COMPUTED and current.get(k) is None)
               and not (k not in recorded and current.get(k) == PREDATING_VALUES.get(k, defaults.get(k)))}
    if not changed:
        return None
    return ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))


def _check_same_config(run, config):
    changed = _config_changes(run, config)
    if changed:
        raise RunError(
            f"Run directory {run} holds a run with another configuration ({changed}). "
            f"Resume it with the same options, or {OTHER_RUN_DIR}."
        )


def baseline_target(config):
    """The metric that ends the final phase: `--target`, or the `--baseline` run's best (`None`: neither).

    Raises:
        RunError: the baseline cannot be read, is not a baseline run, or measures something else.
    """
    if config.baseline is None:
        return config.target
    baseline = RunDirectory(config.baseline)
    try:
        history = baseline.read_history()
        baseline_config = baseline.read_config()
        factors = baseline_config.get("factors")
    except ValueError as error:
        raise RunError(f"--baseline {config.baseline}: {error}") from None
    if selection_split(baseline_config) != config.selection_split:
        raise RunError(
            f"--baseline {config.baseline} selected its epochs on the {selection_split(baseline_config)} split, "
            f"this run on the {config.selection_split} split: its best metric is no target here. Train the "
            "baseline with the same --val-fraction (or none)."
        )
    if factors is not None and list(factors) != [1]:
        raise RunError(
            f"--baseline {config.baseline} is not a baseline run (factors {list(factors)}); "
            "give a run trained with --factors 1."
        )
    mismatch = baseline_mismatch(describe(config.to_dict()), describe(baseline_config))
    if mismatch:
        raise RunError(f"--baseline {config.baseline} does not measure what this run measures ({mismatch}): "
                       "its best metric is no target here. Give a baseline trained on the same data and splits.")
    return max(row["val_metric"] for row in history)


def check_baseline_classes(config, labels):
    """RunError when the `--baseline` run was trained on other classes than `labels` (this run's)."""
    baseline = RunDirectory(config.baseline) if config.baseline is not None else None
    if baseline is None or not baseline.has(baseline.LABELS):
        return
    try:
        theirs = baseline.read_labels()
    except ValueError as error:
        raise RunError(f"--baseline {config.baseline}: {error}") from None
    mismatch = baseline_mismatch(describe({}, labels), describe({}, theirs))
    if mismatch:
        raise RunError(f"--baseline {config.baseline} was trained on other classes than this run's data "
                       f"({mismatch}): its best metric is no target here.")


def averaged_checkpoints(config, schedule):
    """Names of the checkpoints `config.average_checkpoints` averages (empty without it).

    Checked before training, so that a wrong range fails at once rather than
    after the last epoch.

    Raises:
        RunError: the range goes beyond the run's epochs, spans a phase switch
            (the phases' models have weights of different shapes), or the run
            may stop early (budget mode).
    """
    best = config.average_best
    if best is not None:
        if best > schedule.phase_epochs[-1]:
            raise RunError(f"--average-checkpoints {config.average_checkpoints}: the final phase has only "
                           f"{schedule.phase_epochs[-1]} epochs to choose {best} from.")
        return ()  # chosen as the run goes (kc2f.training.run_state.top_rows), kept by EpochRecorder
    epochs = config.average_range
    if epochs is None:
        return ()
    first, last = epochs
    text = f"--average-checkpoints {config.average_checkpoints}"
    if last > schedule.total_epochs:
        raise RunError(f"{text}: epoch {last} is beyond the run's {schedule.total_epochs} epochs.")
    if config.target is not None or config.baseline is not None:
        raise RunError(f"{text}: a budget-mode run (--target / --baseline) may stop before epoch {last}; "
                       "average the checkpoints of a run that trains all its epochs.")
    phase, end = schedule.phase_of_epoch(first - 1), schedule.phase_of_epoch(last - 1)
    if phase != end:
        switch = schedule.phase_end(phase)
        raise RunError(
            f"{text} spans the phase switch after epoch {switch} (C={schedule.factors[phase]} -> "
            f"C={schedule.factors[phase + 1]}): the phases' models hold weights of different shapes "
            f"(position embedding, patch kernel), which cannot be averaged. Average within one phase, "
            f"e.g. {switch + 1}..{last}."
        )
    return tuple(RunDirectory.checkpoint_name(epoch) for epoch in range(first, last + 1))


def subset_examples(examples, limit, seed):
    """`limit` examples drawn with `seed` (all of them when `limit` is None), in index order."""
    if limit is None or limit >= len(examples):
        return list(examples)
    # A seeded sample, not the first N: indexes are sorted by class or file name.
    picked = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in picked]


def stratified_holdout(examples, fraction, seed):
    """`(train, held_out)`: a seeded, per-class share `fraction` of `examples` held out.

    Classes are the examples' first labels (for a multi-label dataset, the
    first listed label stands for the clip). Each class with at least two
    clips gives `round(fraction · n)` of them, at least one and at most
    `n - 1`, so that every class is both trained and validated where it can
    be; a class with a single clip stays in training. Both lists keep the
    index order; the same `(examples, fraction, seed)` gives the same split.

    Args:
        examples: `kc2f.data.Example` list (a split's index).
        fraction: share held out, in (0, 1).
        seed: seed of the per-class draw.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1). Received: fraction={fraction}")
    by_class = {}
    for index, example in enumerate(examples):
        by_class.setdefault(example.labels[0], []).append(index)
    rng = random.Random(seed)
    held = set()
    for label in sorted(by_class):
        indexes = by_class[label]
        if len(indexes) < 2:
            continue
        count = min(max(round(fraction * len(indexes)), 1), len(indexes) - 1)
        held.update(rng.sample(indexes, count))
    return ([e for i, e in enumerate(examples) if i not in held],
            [e for i, e in enumerate(examples) if i in held])


# The run options that are `manifest.build_index` layout options of the same name.
INDEX_OPTIONS = ("fold", "clips_per_class", "test_clips_per_class", "include_folders", "keywords")


def index_options(config):
    """`manifest.build_index`'s layout options from a run's options (a `RunConfig` or its
    `config.json` mapping): ESC-50's held-out `fold`, the synthetic set's `clips_per_class` and
    `test_clips_per_class`, the `_name` folders read as classes, Speech Commands' `keywords`
    (each left out when `None`)."""
    get = config.get if isinstance(config, dict) else (lambda key: getattr(config, key, None))
    return {key: get(key) for key in INDEX_OPTIONS if get(key) is not None}


def prepare_data(config, spec, log=print, show_progress=None):
    """Indexes and checks both splits; returns `(config with statistics, PreparedData)`.

    The scan of each split decodes only the files the scan cache does not hold
    (`kc2f.data.scan_cache`); `show_progress` draws its bars on stderr
    (`None`: when stderr is a terminal).
    """
    options = index_options(config)
    try:
        train, labels = manifest.build_index(spec, config.data_dir, config.train_split, **options)
        evaluation, _ = manifest.build_index(spec, config.data_dir, config.eval_split, **options)
        left_out = manifest.left_out_folders(spec, config.data_dir, **options)
    except (ValueError, OSError) as error:
        raise RunError(str(error)) from None
    for entry in left_out:
        log(f"Left out: {entry['folder']} ({entry['files']} audio files): {entry['reason']}.")
    train = subset_examples(train, config.max_train_examples, config.seed)
    evaluation = subset_examples(evaluation, config.max_eval_examples, config.seed)
    splits = {"train": (config.train_split, train), "eval": (config.eval_split, evaluation)}
    validation = source = None
    if config.val_fraction is not None:
        train, validation, source = _validation_split(config, spec, train, options)
        log(f"Validation: {source}: {len(validation)} clips, {len(train)} to train on; selection on them, "
            f"'{config.eval_split}' scored at the best epoch.")
        splits = {"train": (config.train_split, train), "val": ("validation", validation),
                  "eval": (config.eval_split, evaluation)}
    reports = {name: pipeline.validate_audio(examples, spec, show_progress=show_progress)
               for name, (_, examples) in splits.items()}
    if config.on_bad_audio == "error" and any(report.bad for report in reports.values()):
        # Every split's list at once: a bad evaluation clip must not wait for the training ones' fix.
        raise RunError("\n".join(
            f"{name} split '{split}': {pipeline.BadAudioError(reports[name])}"
            for name, (split, _) in splits.items() if reports[name].bad
        ))
    bad_audio = {}
    for name, report in reports.items():
        if report.bad:
            bad_audio[name] = dict(report.counts)
            log(f"Skipping bad {name} clips: {report.summary()}")
            for bad in report.bad:
                log(f"  - {bad.source}: {bad.message}")
    data = PreparedData(train, evaluation, labels, reports, bad_audio, validation, source, left_out)
    if not data.num_train or not data.num_eval or (validation is not None and not data.num_val):
        raise RunError(f"No usable clips left: {data.num_train} training, {data.num_eval} evaluation"
                       f"{f', {data.num_val} validation' if validation is not None else ''}.")
    report = reports["train"]
    config = size_input(config, spec, report.frames[report.good_mask] / report.rates[report.good_mask], log)
    if config.mean is None:
        good = [e for e, ok in zip(train, report.good_mask) if ok]
        mean, std = compute_stats(good, registry.input_spec(spec, config), show_progress=show_progress)
        config = config.replace(mean=float(mean), std=float(std))
        log(f"Normalisation statistics of the training split: mean {mean:.4f}, std {std:.4f}")
    return config, data


def _validation_split(config, spec, train, options):
    """`(train, validation, description)`: the dataset's own validation split, or a hold-out of `train`."""
    if spec.has_validation_split:
        try:
            validation, _ = manifest.build_index(spec, config.data_dir, "valid", **options)
        except (ValueError, OSError) as error:
            raise RunError(str(error)) from None
        validation = subset_examples(validation, config.max_eval_examples, config.seed)
        return train, validation, f"the dataset's own validation split (val_fraction={config.val_fraction:g} unused)"
    train, held_out = stratified_holdout(train, config.val_fraction, config.seed)
    if not held_out:
        raise RunError(f"--val-fraction {config.val_fraction:g} holds out no clip of the {len(train)} training "
                       "clips (every class has a single clip); give more data or leave it unset.")
    share = f"{100 * config.val_fraction:g}%"
    return train, held_out, f"{share} of the training split (stratified by class, seed {config.seed})"
