"""Evaluating a trained run, at its own or at other compression factors."""

import time

from kc2f.data import manifest, pipeline, registry
from kc2f.data.progress_bar import ProgressBar
from kc2f.families import family_of, load_model
from kc2f.training.epoch_evaluator import eval_batch_size, predict_scores
from kc2f.training.metrics import compute_metrics
from kc2f.training.preparation import index_options, subset_examples
from kc2f.training.run_directory import RunDirectory


def load_run_model(run_dir):
    """The trained model of a run directory (`model.keras`); ValueError naming a damaged file."""
    return load_model(RunDirectory(run_dir).require_model())


def evaluate_run(run_dir, split=None, factors=None, data_dir=None, batch_size=None, show_progress=None):
    """Metric, token count and throughput of a run's model on a split, per factor.

    Args:
        run_dir: a finished run directory.
        split: split name (default: the run's `eval_split`; a run limited by
            `max_eval_examples` is evaluated on the same clips).
        factors: compression factors to evaluate at (default: the model's own).
        data_dir: dataset root if it moved since training.
        batch_size: evaluation batch size (default: `eval_batch_size` of the run's, as in training).
        show_progress: progress bars (scan, each factor's pass) on stderr
            (`None`: when stderr is a terminal).

    Returns:
        list of dicts: factor, tokens, metric_name, metric, metrics, seconds,
        clips_per_second, clips.
    """
    run = RunDirectory(run_dir)
    config = run.read_config()
    # The run's own input (--sample-rate, clip length): clips decode and crop as in training.
    spec = registry.input_spec(config["dataset"], config)
    labels = run.read_labels()
    split = split or config["eval_split"]
    examples, _ = manifest.build_index(spec, data_dir or config["data_dir"], split,
                                       **index_options(config))
    if split == config["eval_split"] and config.get("max_eval_examples"):
        # The same clips the run was validated on.
        examples = subset_examples(examples, config["max_eval_examples"], config["seed"])
    # Unreadable clips are left out of the metric (and counted in "skipped").
    report = pipeline.validate_audio(examples, spec, show_progress=show_progress)
    model = load_run_model(run_dir)
    family = family_of(model)
    rows = []
    for factor in factors or [model.factor]:
        candidate = family.at_factor(model, factor)
        dataset = pipeline.make_dataset(
            examples, labels, spec, batch_size=batch_size or eval_batch_size(config["batch_size"], report.num_good),
            training=False, on_bad_audio="skip", audio_report=report,
        )
        predict_scores(candidate, dataset.take(1), spec.multilabel)  # compile outside the clock
        with ProgressBar(f"evaluate C={factor}", report.num_good, unit="clips",
                         show_progress=show_progress) as progress:
            start = time.perf_counter()
            scores, targets = predict_scores(candidate, dataset, spec.multilabel, progress=progress)
            seconds = time.perf_counter() - start
        metrics = compute_metrics(scores, targets, spec.multilabel)
        rows.append({
            "factor": factor,
            "tokens": family.tokens(candidate),
            "metric_name": spec.metric,
            "metric": float(metrics[spec.metric]),
            "metrics": {k: float(v) for k, v in metrics.items()},
            "seconds": seconds,
            "clips": report.num_good,
            "skipped": len(report.bad),
            "clips_per_second": report.num_good / seconds,
        })
    return rows
