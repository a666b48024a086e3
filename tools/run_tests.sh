#!/usr/bin/env bash
# Sets up .venv (if needed) from the project's own files and runs the test suite.
#
#   bash tools/run_tests.sh          default tier (-m "not slow") under TensorFlow, then JAX
#   bash tools/run_tests.sh --all    the same, then the slow tier (-m slow) under TensorFlow
#   KC2F_TEST_TIERS=all bash tools/run_tests.sh   the same as --all
#
# Other arguments go to every pytest call (e.g. `-x`, a test path, `-n 0` for one process).
# Tests run on two pytest-xdist workers (the machines are 2-core); each tier prints its
# slowest 15 tests and its wall time. What belongs in which tier: tests/conftest.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
tiers="${KC2F_TEST_TIERS:-default}"
args=()
for arg in "$@"; do
    if [ "$arg" = "--all" ]; then tiers=all; else args+=("$arg"); fi
done
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

status=0
run_tier() {  # name, backend, marker expression
    local start=$SECONDS rc=0
    echo "=== $1 tier, KERAS_BACKEND=$2"
    KERAS_BACKEND=$2 .venv/bin/python -m pytest -q -n "${KC2F_TEST_WORKERS:-2}" -m "$3" \
        --durations=15 "${args[@]+"${args[@]}"}" || rc=$?
    # pytest's exit code 5 is "no test collected" (a path given that holds no test of the tier).
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=$rc; fi
    echo "=== $1 tier, KERAS_BACKEND=$2: $((SECONDS - start)) s wall, pytest exit code $rc"
}
run_tier default tensorflow "not slow"
run_tier default jax "not slow"
if [ "$tiers" = all ]; then
    run_tier slow tensorflow "slow"
fi
exit $status
