"""Data-parallel training on the backend's own engine, one host or several."""

import contextlib
import json
import os

import keras

MODES = ("none", "data-parallel")
# Environment variables of `keras.distribution.initialize` (JAX multi-process).
JAX_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
           "KERAS_DISTRIBUTION_PROCESS_ID")
# `jax.distributed.initialize` may run once per process; a second run in the
# same process (tests, sweeps) reuses the joined job.
_JAX_JOINED = []


def accelerator_present():
    """Whether the Keras backend computes on a GPU or TPU.

    `keras.distribution.list_devices` has no PyTorch implementation (Keras 3.15),
    so torch asks CUDA directly.
    """
    if keras.backend.backend() == "torch":
        import torch

        return torch.cuda.is_available()
    devices = [str(d).lower() for d in keras.distribution.list_devices()]
    return any(("gpu" in d or "tpu" in d or "cuda" in d) for d in devices)


def _tf_cluster():
    """`(process_index, is_chief, num_workers)` from `TF_CONFIG`, or `None` without one.

    Processes are numbered chief first, then the workers; without a `chief`
    task, worker 0 is the chief.
    """
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        num_workers = sum(len(cluster.get(kind, ())) for kind in ("chief", "worker"))
        task_type, task_index, has_chief = task["type"], int(task["index"]), "chief" in cluster
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"TF_CONFIG is not a valid cluster description ({error!r}). Received: {text!r}") from None
    process_index = task_index + (1 if has_chief and task_type == "worker" else 0)
    return process_index, process_index == 0, num_workers


def _jax_processes():
    """Number of JAX processes asked for in the environment (1 without any)."""
    text = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    if not text:
        return 1
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"KERAS_DISTRIBUTION_NUM_PROCESSES must be an integer. Received: {text!r}"
        ) from None


def _multi_worker_strategy(tf):
    """`tf.distribute.MultiWorkerMirroredStrategy` with the `reduce` Keras expects.

    Keras 3.15's TensorFlow trainer calls `strategy.reduce` in two ways this
    strategy rejects: on a whole `(inputs, labels)` batch before training (the
    strategy takes one value, not a nest: keras-team/keras#20329, open) and
    with `axis=0` on the scalar loss of every epoch's logs. Reducing leaf by
    leaf, and across replicas only where a leaf has no axis, is what both
    calls mean.
    """

    class KerasReduceStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis=None):
            parent = super()

            def leaf_reduce(leaf):
                rank = getattr(leaf, "shape", tf.TensorShape(None)).rank
                if rank is None and hasattr(leaf, "values"):
                    rank = leaf.values[0].shape.rank
                return parent.reduce(reduce_op, leaf, None if rank == 0 else axis)

            return tf.nest.map_structure(leaf_reduce, value)

    return KerasReduceStrategy()


class Distribution:
    """Where a run's replicas live, and which process owns the run directory.

    `"data-parallel"` uses the engines that ship with the backends, not one of
    kc2f's own: `keras.distribution.DataParallel` on JAX (all devices of all
    processes; several processes are joined with `keras.distribution.initialize`,
    i.e. `jax.distributed.initialize`, from the `KERAS_DISTRIBUTION_*`
    variables) and `tf.distribute.MirroredStrategy` on TensorFlow, or
    `MultiWorkerMirroredStrategy` when `TF_CONFIG` names several workers. The
    batch size of a run stays the global batch: each step splits it across the
    replicas, so a data-parallel run follows the single-device run of the same
    batch and seed. Every model of the run (each phase's rebuild, the weight
    transfer and the fresh optimizer) is created inside `scope()`.

    Only the chief (process 0 on JAX; the `chief` task, else worker 0, on
    TensorFlow) writes checkpoints, logs and reports; the other processes train
    in lock-step and resume from the chief's checkpoints, so the run directory
    must be on storage that every host sees.

    Args:
        mode: `"none"` (one device) or `"data-parallel"`.
    """

    def __init__(self, mode="none"):
        if mode not in MODES:
            raise ValueError(f"distribute must be one of {MODES}. Received: mode={mode!r}")
        self.mode = mode
        self.backend = keras.backend.backend()
        self.engine = None
        self.strategy = None  # TensorFlow: the tf.distribute strategy
        self.keras_distribution = None  # JAX: the keras.distribution.DataParallel
        self.num_processes = 1
        self.process_index = 0
        self.num_replicas = 1
        self.is_chief = True
        cluster = _tf_cluster() if self.backend == "tensorflow" else None
        jax_processes = _jax_processes() if self.backend == "jax" else 1
        if mode == "none":
            if (cluster and cluster[2] > 1) or jax_processes > 1:
                raise ValueError(
                    "The environment describes a multi-process job (TF_CONFIG or "
                    "KERAS_DISTRIBUTION_NUM_PROCESSES) but distribute is 'none': every "
                    "process would train alone into the same run directory. Received: "
                    "distribute='none'; use distribute='data-parallel'."
                )
            return
        if self.backend == "jax":
            self._init_jax(jax_processes)
        elif self.backend == "tensorflow":
            self._init_tensorflow(cluster)
        else:
            raise ValueError(
                f"distribute='data-parallel' runs on the jax and tensorflow backends. "
                f"Received: KERAS_BACKEND={self.backend!r}"
            )

    def _init_jax(self, num_processes):
        # Each backend's engine is imported only under that backend (jax may not be installed).
        import jax

        if num_processes > 1 and not _JAX_JOINED:
            missing = [name for name in JAX_ENV if not os.environ.get(name)]
            if missing:
                raise ValueError(f"A multi-process JAX run needs {', '.join(missing)} set.")
            # CPU devices of different processes talk through gloo (GPUs use NCCL
            # whatever this says); set before the backend starts.
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            keras.distribution.initialize()
            _JAX_JOINED.append(True)
        self.num_processes = jax.process_count()
        self.process_index = jax.process_index()
        self.is_chief = self.process_index == 0
        devices = keras.distribution.list_devices()
        self.num_replicas = len(devices)
        self.keras_distribution = keras.distribution.DataParallel(devices=devices)
        self.engine = "keras.distribution.DataParallel"

    def _init_tensorflow(self, cluster):
        # Under KERAS_BACKEND=tensorflow only; a JAX install may lack TensorFlow.
        import tensorflow as tf

        if cluster and cluster[2] > 1:
            self.process_index, self.is_chief, self.num_processes = cluster
            self.strategy = _multi_worker_strategy(tf)
            self.engine = "tf.distribute.MultiWorkerMirroredStrategy"
        else:
            self.strategy = tf.distribute.MirroredStrategy()
            self.engine = "tf.distribute.MirroredStrategy"
        self.num_replicas = self.strategy.num_replicas_in_sync

    @property
    def needs_eval_model(self):
        """Whether validation needs a single-device copy of the model.

        A `predict_on_batch` of a tf.distribute model feeds the whole batch to
        every replica and returns one copy per replica; the JAX trainer runs it
        once on replicated weights, so JAX needs no copy.
        """
        return self.strategy is not None

    def scope(self):
        """Context in which the run's models and optimizers are created (and restored)."""
        if self.strategy is not None:
            return self.strategy.scope()
        return self.training_scope()

    def training_scope(self):
        """Context of `model.fit`: the JAX trainer reads the current distribution
        at every step; a TensorFlow model keeps the strategy it was built under."""
        if self.keras_distribution is not None:
            return self.keras_distribution.scope()
        return contextlib.nullcontext()

    def check_batch_size(self, batch_size):
        """Raises if the global batch cannot be split evenly across the replicas."""
        if batch_size % self.num_replicas:
            raise ValueError(
                f"The global batch size must be a multiple of the {self.num_replicas} "
                f"replicas. Received: batch_size={batch_size}"
            )

    def describe(self):
        if self.mode == "none":
            return "one device"
        return (f"data-parallel over {self.num_replicas} replicas in {self.num_processes} "
                f"process(es) ({self.engine}; this is process {self.process_index}"
                f"{', the chief' if self.is_chief else ''})")
