"""Evaluating a trained run, at its own or at other compression factors."""

import json
import pathlib
import time

import keras

from kc2f.models import AudioSpectrogramTransformer
from kc2f.training.epoch_evaluator import predict_scores
from kc2f.training.metrics import compute_metrics
from kc2f.weights import transfer_weights


def load_run_model(run_dir):
    """The trained model of a run directory (`model.keras`)."""
    path = pathlib.Path(run_dir) / "model.keras"
    if not path.exists():
        raise ValueError(f"{run_dir} has no trained model ({path} is missing): has the run finished?")
    return keras.saving.load_model(path, compile=False)


def at_factor(model, factor):
    """`model` rebuilt at compression `factor`, weights transferred (positions interpolated).

    Flexible-resolution inference: a model trained at full resolution runs on
    C-times compressed input with its position embedding interpolated to the
    coarser grid, trading accuracy for speed.
    """
    if factor == model.factor:
        return model
    config = model.get_config()
    config.update(factor=factor, name=f"{model.name}_c{factor}")
    resized = AudioSpectrogramTransformer.from_config(config)
    transfer_weights(model, resized)
    return resized


def evaluate_run(run_dir, split=None, factors=None, data_dir=None, batch_size=None):
    """Metric, token count and throughput of a run's model on a split, per factor.

    Args:
        run_dir: a finished run directory.
        split: split name (default: the run's `eval_split`; a run limited by
            `max_eval_examples` is evaluated on the same clips).
        factors: compression factors to evaluate at (default: the model's own).
        data_dir: dataset root if it moved since training.
        batch_size: evaluation batch size (default: the run's).

    Returns:
        list of dicts: factor, tokens, metric_name, metric, metrics, seconds,
        clips_per_second, clips.
    """
    from kc2f.data import manifest, pipeline, registry

    run_dir = pathlib.Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    spec = registry.get_dataset_spec(config["dataset"])
    labels = json.loads((run_dir / "labels.json").read_text())
    split = split or config["eval_split"]
    examples, _ = manifest.build_index(spec, data_dir or config["data_dir"], split)
    if split == config["eval_split"] and config.get("max_eval_examples"):
        # The same clips the run was validated on.
        from kc2f.training.trainer import subset_examples

        examples = subset_examples(examples, config["max_eval_examples"], config["seed"])
    # Unreadable clips are left out of the metric (and counted in "skipped").
    report = pipeline.validate_audio(examples, spec)
    model = load_run_model(run_dir)
    rows = []
    for factor in factors or [model.factor]:
        candidate = at_factor(model, factor)
        dataset = pipeline.make_dataset(
            examples, labels, spec, batch_size=batch_size or config["batch_size"], training=False,
            on_bad_audio="skip", audio_report=report,
        )
        predict_scores(candidate, dataset.take(1), spec.multilabel)  # compile outside the clock
        start = time.perf_counter()
        scores, targets = predict_scores(candidate, dataset, spec.multilabel)
        seconds = time.perf_counter() - start
        metrics = compute_metrics(scores, targets, spec.multilabel)
        rows.append({
            "factor": factor,
            "tokens": candidate.num_patch_tokens,
            "metric_name": spec.metric,
            "metric": float(metrics[spec.metric]),
            "metrics": {k: float(v) for k, v in metrics.items()},
            "seconds": seconds,
            "clips": report.num_good,
            "skipped": len(report.bad),
            "clips_per_second": report.num_good / seconds,
        })
    return rows
