#!/usr/bin/env bash
# The README's main job (see README.md, "Quick start").
set -euo pipefail
cd "$(dirname "$0")/.."
export FORESIGHT_HOME=${FORESIGHT_HOME:-$PWD/.state}
F=.venv/bin/foresight
LOG=../shared/data/hpc_swf/KTH-SP2-1996-2.1-cln.swf.gz
$F train --log "$LOG"
$F evaluate duration --log "$LOG"
