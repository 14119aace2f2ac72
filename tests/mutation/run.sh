#!/usr/bin/env bash
# Mutation testing of the core maths (not part of CI): mutmut mutates the modules that pyproject.toml lists under
# [tool.mutmut] one change at a time and runs, for each mutant, only the fast tests that call the mutated function.
# Writes the score and every surviving mutant to tests/mutation/survivors.txt (survivors are then killed by a test or
# argued equivalent in tests/mutation/RESULTS.md). The whole run takes about 29 minutes on 2 cores; leave src/ and
# tests/ unedited meanwhile.   bash tests/mutation/run.sh [mutant name glob ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python -m pip install -q "mutmut==3.8.1"
# One thread per mutant: mutmut forks its test runs from a process that has imported torch, and a forked child
# that starts an OpenMP pool spins on both cores until mutmut's CPU limit kills it (every mutant a "timeout").
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/mutmut run --max-children "${MUTMUT_WORKERS:-2}" "$@" || true
.venv/bin/python tests/mutation/report.py > tests/mutation/survivors.txt
echo "wrote tests/mutation/survivors.txt"
