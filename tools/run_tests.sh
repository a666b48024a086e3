#!/usr/bin/env bash
# Sets up .venv (if needed) from the project's own files and runs the test suite
# under the TensorFlow and the JAX backends. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
status=0
for backend in tensorflow jax; do
    echo "=== KERAS_BACKEND=$backend"
    KERAS_BACKEND=$backend .venv/bin/python -m pytest -q -m "not slow" --durations=15 "$@" || status=$?
done
exit $status
