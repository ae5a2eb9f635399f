#!/usr/bin/env bash
# Create .venv with Foresight and its dev tools. Idempotent; installs Debian's
# python3-venv first when the interpreter cannot make a virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "bootstrap: installing python3-venv (needs root)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip
fi
# Debian packages the tests drive for real: Lua 5.1 + lua-socket/lua-cjson for
# job_submit.lua (the same modules slurmctld's job_submit/lua loads).
need=()
command -v lua5.1 >/dev/null 2>&1 || need+=(lua5.1)
for mod in socket cjson; do
  lua5.1 -e "require '$mod'" >/dev/null 2>&1 || need+=("lua-$mod")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.1 lua-socket lua-cjson
fi
# A C compiler and the interpreter's headers build the service's compiled tree walk
# (predictor/service/_tree_walk.c; optional: without them the numpy walk serves).
has_headers() {
  "$PY" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
}
if ! command -v cc >/dev/null 2>&1 || ! has_headers; then
  echo "bootstrap: installing gcc python3-dev (for the compiled tree walk)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev \
    || echo "bootstrap: could not install them; the service will walk trees with numpy" >&2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.foresight-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
   || [ predictor/service/_tree_walk.c -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
