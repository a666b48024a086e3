"""A fresh optimizer and learning-rate schedule for each phase, as the paper resets them."""

import keras

from kc2f.families import ModelFamily
from kc2f.training.epoch_scale_schedule import EpochScaleSchedule, parse_epoch_scales
from kc2f.training.lean_adam import LeanAdam
from kc2f.training.run_config import DEFAULT_LR_SCHEDULE, DEFAULT_WARMUP_STEPS
from kc2f.training.warmup_plateau_decay import WarmupPlateauDecay
from kc2f.training.warmup_step_decay import WarmupStepDecay


TRAIN_METRIC = "accuracy"  # the training metric of single-label runs (logs, history, TensorBoard)


def learning_rate_schedule(config, steps_per_epoch):
    """One phase's learning-rate schedule (a function of the phase's optimizer step): AST's warm-up +
    step decay, `EpochScaleSchedule` with `lr_schedule: epoch-scales`, or SSAST's warm-up + decay on
    plateau (`WarmupPlateauDecay`, which `compile_phase` attaches to its optimizer) with
    `lr_schedule: warmup-plateau`. Options left `None` take `fit`'s defaults."""
    kind = config.lr_schedule or DEFAULT_LR_SCHEDULE
    warmup_steps = DEFAULT_WARMUP_STEPS if config.warmup_steps is None else config.warmup_steps
    if kind == "epoch-scales":
        return EpochScaleSchedule(config.lr, parse_epoch_scales(config.lr_epoch_scales), steps_per_epoch)
    if kind == "warmup-plateau":
        return WarmupPlateauDecay(config.lr, warmup_steps=warmup_steps, decay_rate=config.decay_rate,
                                  patience=config.lr_patience)
    return WarmupStepDecay(
        config.lr,
        warmup_steps=warmup_steps,
        steps_per_epoch=steps_per_epoch,
        decay_start_epoch=config.decay_start_epoch,
        decay_every=config.decay_every,
        decay_rate=config.decay_rate,
    )


def compile_phase(model, config, multilabel, steps_per_epoch, family=None, schedule=None):
    """Compiles `model` with a new Adam (or AdamW) and a restarted learning-rate schedule.

    *From Coarse to Fine* (https://arxiv.org/abs/2401.08415) resets the
    optimizer state and the learning-rate schedule at every phase switch; the
    recipe is AST's (docs/method.md#optimizer): Adam, betas (0.95, 0.999),
    weight decay 5e-7, linear warm-up, then ×`decay_rate` every `decay_every`
    epochs from `decay_start_epoch`. Other recipes choose `optimizer: adamw`
    (decoupled weight decay, e.g. HTS-AT's) and `lr_schedule: epoch-scales`
    (`EpochScaleSchedule` with `lr_epoch_scales`); the defaults are AST's.
    Single-label runs also track the training accuracy (`TRAIN_METRIC`;
    against the argmax of the label, which mixup makes soft); it reads the
    logits the loss uses and changes no update.

    Args:
        model: the phase's model.
        config: the run's `RunConfig`.
        multilabel: binary cross-entropy on multi-hot labels if `True`,
            categorical cross-entropy otherwise.
        steps_per_epoch: optimizer steps per epoch.
        family: the run's `ModelFamily`, whose `compile_loss` gives the loss
            (`None`: the supervised default, cross-entropy).
        schedule: the phase's new `learning_rate_schedule(config, steps_per_epoch)`
            (`None`: one is made here); a `WarmupPlateauDecay` is attached to
            the new optimizer.

    Returns:
        The optimizer.
    """
    schedule = schedule or learning_rate_schedule(config, steps_per_epoch)
    # Keras 3's Adam and AdamW are the same update (decoupled weight decay; AdamW only
    # defaults it to 0.004), which `adam_optimizer` builds with its step scalars shared.
    optimizer = adam_optimizer(schedule, config.beta_1, config.beta_2, config.weight_decay)
    if isinstance(schedule, WarmupPlateauDecay):
        schedule.attach(optimizer)
    loss = (family or ModelFamily()).compile_loss(multilabel)
    # A family computing its own loss (loss None) has no labels to score.
    metrics = [] if multilabel or loss is None else [keras.metrics.CategoricalAccuracy(name=TRAIN_METRIC)]
    jit = {"auto": "auto", "on": True, "off": False}[config.jit]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit)
    if model.built:
        # Its slots are made now, not inside the first traced train step: TensorFlow traces a
        # function that creates variables twice, which cost ~2 s a phase on the demo's model.
        model.optimizer.build(model.trainable_variables)
    return optimizer


def current_learning_rate(optimizer):
    """The learning rate the optimizer's schedule gives at its current step."""
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr(optimizer.iterations) if callable(lr) else lr))


def adam_optimizer(learning_rate, beta_1, beta_2, weight_decay):
    """Adam with decoupled `weight_decay`: `LeanAdam`, or on PyTorch Keras' own Adam (which
    Keras runs there as a fused torch update, per-variable scalars included)."""
    if keras.backend.backend() == "torch":
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                                     weight_decay=weight_decay or None)
    return LeanAdam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, weight_decay=weight_decay)
