#!/usr/bin/env bash
# Compile the fold's modules with mypyc (the compiler of the mypy project), in place:
# conflict/<module>.cpython-*.so next to each source, which Python then imports instead of
# the .py. The pure-Python package stays the default and the reference; this is the fast
# build for production and benchmarks (`make compile`; `make clean-compiled` undoes it).
#
#   tools/compile_fold.sh          build
#   tools/compile_fold.sh clean    remove every compiled module
#
# conflict/clock.py and conflict/errors.py stay interpreted: compiled, the VClock mapping
# crashed the interpreter's garbage collector under Hypothesis, and the exception classes
# lost their class attributes (docs/BENCHMARKS.md, "The fold").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
MODULES=(conflict/fold.py conflict/policy.py conflict/state.py conflict/spec.py conflict/inputs.py
         conflict/values.py)

clean() {
  rm -f conflict/*.so ./*__mypyc*.so
}

if [[ ${1:-} == clean ]]; then
  clean
  exit 0
fi
if ! command -v "${CC:-cc}" >/dev/null; then
  echo "compile_fold: no C compiler (cc); install gcc, or run the pure-Python fold" >&2
  exit 2
fi
clean
mkdir -p build
# mypyc builds under build/ (ignored by git) and copies the modules next to their sources.
MYPYC_OPT_LEVEL=3 "$BIN/mypyc" "${MODULES[@]}" >build/mypyc.log 2>&1 || {
  echo "compile_fold: mypyc failed; see build/mypyc.log" >&2
  tail -20 build/mypyc.log >&2
  clean
  exit 1
}
echo "compiled: ${MODULES[*]}"
