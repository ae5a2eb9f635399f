#!/usr/bin/env bash
# The README's main job: Foresight in front of a real Slurm, end to end.
#   1. how well it predicts run times on a real log (issue 2's protocol);
#   2. a real Slurm (slurmctld, slurmd x6, slurmdbd, MariaDB, munge) + the
#      Foresight service, in Docker;
#   3. a first model trained inside the service from that real log;
#   4. a slice of the log replayed through sbatch (every submission scored by
#      job_submit.lua);
#   5. a retrain from the cluster's own accounting (sacct), hot-swapped in;
#   6. new submissions scored: predicted run time in AdminComment, QSSF site factor.
# Needs root (it installs docker.io and debootstrap when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export FORESIGHT_HOME=${FORESIGHT_HOME:-$PWD/.state}
F=.venv/bin/foresight
DATA=${FORESIGHT_DATA:-../shared/data}
LOG=$DATA/hpc_swf/KTH-SP2-1996-2.1-cln.swf.gz
SVC=foresight-service
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ready() {  # wait for the service's /readyz (a model is loaded)
  for _ in $(seq 120); do
    docker exec "$SVC" python3 -c 'import urllib.request as u; u.urlopen("http://127.0.0.1:8765/readyz", timeout=2)' \
      >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "the service did not become ready; see: $F cluster logs service" >&2; return 1
}

step "1/6 Run-time prediction on a real log (train first 70%, test last 30%, causal history)"
$F evaluate duration --log "$LOG"

step "2/6 A real Slurm cluster and the Foresight service, in Docker (host network, 127.0.0.1)"
scripts/install-docker.sh
$F cluster up --service

step "3/6 The first model, trained inside the service from the real log"
docker cp "$LOG" "$SVC":/tmp/first.swf.gz
docker exec "$SVC" foresight train --log /tmp/first.swf.gz
ready

step "4/6 Replaying 120 real jobs through sbatch (1 s of cluster time = 10 min of the log)"
$F cluster replay --log "$LOG" --skip 25000 --limit 120 --speedup 600 --max-sleep 20 --wait
$F cluster exec -- sacct -a -X -S now-1hours -E now -n --format=JobID,User,JobName%10,Elapsed,AdminComment%80 | tail -5

step "5/6 Retraining from the cluster's own accounting (sacct --parsable2), hot-swapped in"
fields=$(.venv/bin/python -c 'from predictor.logs import SACCT_FIELDS; print(",".join(SACCT_FIELDS))')
$F cluster exec -- sacct --parsable2 -a -X -S now-1days -E now --format="$fields" > "$FORESIGHT_HOME/demo-sacct.txt"
echo "$(($(wc -l < "$FORESIGHT_HOME/demo-sacct.txt") - 1)) jobs exported from sacct"
docker cp "$FORESIGHT_HOME/demo-sacct.txt" "$SVC":/tmp/sacct.txt
docker exec "$SVC" foresight train --log /tmp/sacct.txt --format sacct || \
  echo "(too few finished jobs in sacct to train a model on; the first model keeps serving)"
docker exec "$SVC" foresight models list
ready

step "6/6 New submissions are scored at sbatch time"
for spec in "short 5" "medium 60" "long 600"; do
  set -- $spec
  $F cluster exec -- sbatch -o /dev/null -J "$1" -t "$2" --wrap "sleep 2"
done
$F cluster exec -- squeue -o "%.6i %.8j %.10l %.8T %Q"
$F cluster exec -- sacct -X -n -S now-5minutes -E now --format=JobID,JobName%8,Timelimit,AdminComment%90 | tail -3
echo
echo "Done. The cluster keeps running: '$F cluster exec -- sbatch --wrap \"sleep 5\"' to submit,"
echo "'$F cluster down' to remove it."
