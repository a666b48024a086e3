"""Step-based self-supervised pretraining runs (`kc2f pretrain`) on the trainer of `fit`.

SSAST (Gong et al., https://arxiv.org/abs/2110.09784) counts optimizer
steps, not epochs, and the coarse-to-fine schedule of its Table 6 row in
*From Coarse to Fine* (https://arxiv.org/abs/2401.08415) is in steps too:
100K steps at Fshift 4, then 500K at full resolution. `pretrain` maps a
step budget onto the trainer's epochs: an "epoch" is an evaluation interval
of `eval_every` steps (`RunConfig.steps_per_epoch`), after which the
masked-patch accuracy is measured and the run is committed, so phases,
the phase switch, resuming after a kill, FLOPs and time accounting and
TensorBoard are `fit`'s own (`kc2f.training.trainer.fit`).
"""

import pathlib

from kc2f.families import pretraining_family
from kc2f.training.run_error import RunError
from kc2f.training.trainer import fit

COARSE_SHARE = 1 / 6  # Table 6: 100K of 600K steps at low resolution
SSAST_LR = 1e-4  # src/pretrain/run_mask_patch.sh
SSAST_WARMUP_STEPS = 1000  # src/traintest_mask.py


def step_schedule(steps, eval_every, factors, phase_steps=None):
    """`(epochs, phase_epochs)` of a step budget in evaluation intervals of `eval_every` steps.

    Args:
        steps: total optimizer steps.
        eval_every: steps per evaluation interval (the trainer's epoch).
        factors: the phases' compression factors.
        phase_steps: steps per phase (`None`: 1/6 of the steps in the
            coarse phases, shared equally, the rest at full resolution).

    Raises:
        RunError: a count that is not a whole number of intervals, or phase
            steps that do not add up to `steps`.
    """
    if not isinstance(eval_every, int) or eval_every < 1:
        raise RunError(f"--eval-every must be a positive number of steps. Received: eval_every={eval_every}")
    if not isinstance(steps, int) or steps < 1 or steps % eval_every:
        raise RunError(f"--steps must be a positive multiple of --eval-every {eval_every}. Received: steps={steps}")
    epochs = steps // eval_every
    if phase_steps is None:
        if len(factors) == 1:
            return epochs, None
        coarse = max(len(factors) - 1, round(epochs * COARSE_SHARE))
        if coarse >= epochs:
            raise RunError(f"{steps} steps in intervals of {eval_every} leave no full-resolution phase; "
                           "give more steps or a smaller --eval-every.")
        shares = [coarse // (len(factors) - 1)] * (len(factors) - 1)
        shares[0] += coarse - sum(shares)
        return epochs, tuple(shares) + (epochs - coarse,)
    phase_steps = tuple(phase_steps)
    if len(phase_steps) != len(factors):
        raise RunError(f"--phase-steps gives {len(phase_steps)} phases for {len(factors)} factors "
                       f"{list(factors)}. Received: phase_steps={list(phase_steps)}")
    if sum(phase_steps) != steps:
        raise RunError(f"--phase-steps add up to {sum(phase_steps)}, not --steps {steps}. "
                       f"Received: phase_steps={list(phase_steps)}")
    if any(s < 1 or s % eval_every for s in phase_steps):
        raise RunError(f"Every phase must be a positive multiple of --eval-every {eval_every} steps. "
                       f"Received: phase_steps={list(phase_steps)}")
    return epochs, tuple(s // eval_every for s in phase_steps)


def pretrain_config(config, steps, eval_every, phase_steps=None):
    """`config` as a step-based SSAST pretraining run (the pretraining family's model, no SpecAugment, no mixup).

    SSAST's recipe (docs/method.md#ssast): no SpecAugment, no mixup; where
    `config` leaves them `None`, a learning rate of 1e-4 and SSAST's schedule:
    1000 warm-up steps, then ×0.5 (`decay_rate`) after `lr_patience` (2)
    evaluations in a row without a gain in masked-patch accuracy
    (`WarmupPlateauDecay`, restarted in every phase).
    """
    epochs, phase_epochs = step_schedule(steps, eval_every, config.factors, phase_steps)
    changes = dict(model=pretraining_family().name, epochs=epochs, phase_epochs=phase_epochs, steps_per_epoch=eval_every,
                   freqm=0, timem=0, mixup=0.0)
    for name, value in (("lr", SSAST_LR), ("lr_schedule", "warmup-plateau"), ("warmup_steps", SSAST_WARMUP_STEPS)):
        if getattr(config, name) is None:
            changes[name] = value
    return config.replace(**changes)


def default_pretrain_dir(config):
    """`runs/pretrain-<dataset>-<method or full>-<factors>-s<seed>`."""
    factors = "-".join(str(f) for f in config.factors)
    method = "full" if tuple(config.factors) == (1,) else config.method
    return pathlib.Path("runs") / f"pretrain-{config.dataset}-{method}-{factors}-s{config.seed}"


def pretrain(config, steps, eval_every, phase_steps=None, run_dir=None, verbose=1, log=print):
    """Runs (or resumes) SSAST pretraining of `steps` optimizer steps; returns the run summary.

    The summary is `fit`'s, with the masked-patch accuracy as its metric;
    `model.keras` is the `SsastPretrainer`, which `kc2f fit --model ast
    --init RUN_DIR` fine-tunes.
    """
    config = pretrain_config(config, steps, eval_every, phase_steps)
    return fit(config, run_dir=run_dir or default_pretrain_dir(config), verbose=verbose, log=log)
