#!/usr/bin/env bash
# kc2f vs the PyTorch reference, training-step throughput on the same GPU in the same run
# (docs/method.md#performance-anchors). Run from anywhere on a GPU machine:
#
#     tools/gpu_bench.sh                      # AST-Base, batch 64, C=1,2,4, bf16
#     SIZE=small BATCH=128 tools/gpu_bench.sh
#     PROFILE=1 tools/gpu_bench.sh            # then each factor's top device ops (kc2f bench --profile)
#                                             # and the widest fusions of its optimised HLO
#
# 1. ../shared/bench/torch_ast_reference.py --compile (timm ViT, bf16 autocast, fused AdamW);
# 2. KERAS_BACKEND=jax kc2f bench --preset base --factors 1,2,4 --batch-size 64 --precision mixed_bfloat16;
# 3. a comparison: kc2f/torch samples/s at each C (the headline is C=1), and each system's
#    step-time ratio vs C=1 next to the FLOPs ratio.
#
# Environment:
#   PYTHON        interpreter with kc2f, keras and jax[cuda] (default: .venv/bin/python)
#   TORCH_PYTHON  interpreter with torch and timm (default: python3)
#   SIZE BATCH FACTORS STEPS  (defaults: base 64 1,2,4 30)
#   REFERENCE     path of torch_ast_reference.py (default: ../shared/bench/ beside the repo)
#   RESULTS_DIR   where the two raw outputs are kept (default: a new temporary directory)
#   KC2F_ARGS     extra arguments for kc2f bench (e.g. "--warmup 10")
#
# On a CUDA image that has torch and jax[cuda] but no kc2f install (how docs/method.md's H200
# figures were taken), the benchmark needs only keras, namex and optree besides them:
#   pip install --target /tmp/site keras==3.15.1 namex optree
#   PYTHONPATH=/tmp/site:$PWD PYTHON=python3 tools/gpu_bench.sh
# (the benchmark imports neither TensorFlow nor tensorflow-io).
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
TORCH_PYTHON="${TORCH_PYTHON:-python3}"
SIZE="${SIZE:-base}"
BATCH="${BATCH:-64}"
FACTORS="${FACTORS:-1,2,4}"
STEPS="${STEPS:-30}"
REFERENCE="${REFERENCE:-../shared/bench/torch_ast_reference.py}"
RESULTS_DIR="${RESULTS_DIR:-$(mktemp -d -t kc2f-gpu-bench-XXXXXX)}"
mkdir -p "$RESULTS_DIR"
TORCH_OUT="$RESULTS_DIR/torch.txt"
KC2F_OUT="$RESULTS_DIR/kc2f.txt"

if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
    echo "warning: nvidia-smi not found; is this a GPU machine?" >&2
fi

echo "=== PyTorch reference: $REFERENCE --compile --size $SIZE --batch $BATCH --factors $FACTORS --steps $STEPS"
torch_status=0
"$TORCH_PYTHON" "$REFERENCE" --compile --size "$SIZE" --batch "$BATCH" --factors "$FACTORS" \
    --steps "$STEPS" | tee "$TORCH_OUT" || torch_status=$?

echo "=== kc2f bench (KERAS_BACKEND=jax): --preset $SIZE --factors $FACTORS --batch-size $BATCH --precision mixed_bfloat16"
kc2f_status=0
KERAS_BACKEND=jax "$PYTHON" -m kc2f.commands.bench --preset "$SIZE" --factors "$FACTORS" --batch-size "$BATCH" \
    --precision mixed_bfloat16 --steps "$STEPS" ${KC2F_ARGS:-} | tee "$KC2F_OUT" || kc2f_status=$?

echo "=== comparison (raw outputs in $RESULTS_DIR)"
"$PYTHON" - "$TORCH_OUT" "$KC2F_OUT" <<'PY'
import sys


def parse(path, prefix):
    """key=value lines of one system, by factor C."""
    rows = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return rows
    for line in lines:
        if not line.startswith(prefix):
            continue
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        rows[int(fields["C"])] = fields
    return rows


def num(fields, key):
    try:
        return float(fields[key].rstrip("%"))
    except (KeyError, ValueError, AttributeError):
        return None


def fmt(value, spec=".3f"):
    return "n/a" if value is None else format(value, spec)


torch, kc2f = parse(sys.argv[1], "torch"), parse(sys.argv[2], "kc2f[")
if not torch:
    print("no PyTorch reference lines (is torch + timm installed for TORCH_PYTHON?)")
if not kc2f:
    print("no kc2f lines (is jax[cuda] installed for PYTHON?)")
factors = sorted(set(torch) | set(kc2f))
t1, k1 = torch.get(1), kc2f.get(1)
print("| C | tokens | torch samples/s | kc2f samples/s | kc2f/torch | torch step/C1 | kc2f step/C1 "
      "| FLOPs/C1 | kc2f MFU | kc2f peak mem | kc2f dtype |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for c in factors:
    t, k = torch.get(c, {}), kc2f.get(c, {})
    ts, ks = num(t, "samples_per_s"), num(k, "samples_per_s")
    speed = ks / ts if ts and ks else None
    t_ratio = num(t, "step_ms") / num(t1, "step_ms") if t and t1 else None
    print(f"| {c} | {k.get('tokens', t.get('tokens', '?'))} | {fmt(ts, '.0f')} | {fmt(ks, '.0f')} "
          f"| {fmt(speed, '.2f')} | {fmt(t_ratio)} | {fmt(num(k, 'step_ratio'))} "
          f"| {fmt(num(k, 'flops_ratio'))} | {k.get('mfu', 'n/a')} | {k.get('peak_mem', 'n/a')} "
          f"| {k.get('dtype', 'n/a')} |")
if t1 and k1:
    ratio = num(k1, "samples_per_s") / num(t1, "samples_per_s")
    print(f"\nkc2f/torch samples/s at C=1: {ratio:.2f} "
          f"(kc2f {num(k1, 'samples_per_s'):.0f}, torch+compile {num(t1, 'samples_per_s'):.0f}; "
          f"docs/method.md#performance-anchors: Keras/JAX 1168 vs torch.compile 1140 on an H100)")
print("docs/method.md#performance-anchors: step time 0.50x at C=2 and 0.27x at C=4 (FLOPs ratios 0.48, 0.23).")
PY

profile_status=0
if [ "${PROFILE:-0}" = 1 ]; then
    # Issue 35's anomaly (kc2f's C=2 step slower than C=1 on the GPU): each factor's top device ops.
    # With XLA's optimised programs dumped: their widest fusions show whether the step recomputes the
    # residual-stream gradient in every weight-gradient fusion, as XLA:CPU does (kc2f/benchmark/hlo_fusions.py).
    echo "=== kc2f bench --profile (KERAS_BACKEND=jax): --preset $SIZE --factors 1,2 --batch-size $BATCH, traces in $RESULTS_DIR/profile, HLO in $RESULTS_DIR/hlo"
    XLA_FLAGS="${XLA_FLAGS:-} --xla_dump_to=$RESULTS_DIR/hlo --xla_dump_hlo_as_text" KERAS_BACKEND=jax \
        "$PYTHON" -m kc2f.commands.bench --preset "$SIZE" --factors 1,2 --batch-size "$BATCH" \
        --precision mixed_bfloat16 --steps 10 --profile "$RESULTS_DIR/profile" ${KC2F_ARGS:-} || profile_status=$?
    echo "=== widest fusions of the compiled train steps (C=1, then C=2)"
    "$PYTHON" -m kc2f.benchmark.hlo_fusions "$RESULTS_DIR/hlo" --match train_step --top 8 || profile_status=$?
fi

if [ "$torch_status" -ne 0 ] || [ "$kc2f_status" -ne 0 ] || [ "$profile_status" -ne 0 ]; then
    echo "failed: torch reference exit $torch_status, kc2f bench exit $kc2f_status, profile exit $profile_status" >&2
    exit 1
fi
