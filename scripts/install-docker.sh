#!/usr/bin/env bash
# Make Docker usable for the dev cluster. Idempotent:
#   1. installs Debian's docker.io and debootstrap when missing (needs root + apt),
#   2. starts dockerd with host networking only (--bridge=none --iptables=false)
#      when no engine answers, logging to $DOCKERD_LOG,
#   3. waits until `docker info` answers.
# When something cannot be done it prints exactly what is missing and exits 1.
set -uo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/foresight-dockerd.log}
WAIT_S=${DOCKER_WAIT_S:-60}

say() { echo "install-docker: $*" >&2; }
fail() { say "MISSING: $*"; exit 1; }

engine_up() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_up && command -v debootstrap >/dev/null 2>&1; then
  say "docker engine answers and debootstrap is installed; nothing to do"
  exit 0
fi

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail "packages ${need_pkgs[*]} are not installed and this is not root (run: sudo $0)"
  command -v apt-get >/dev/null 2>&1 || fail "packages ${need_pkgs[*]} are not installed and apt-get is absent (not Debian/Ubuntu?)"
  say "installing ${need_pkgs[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || say "apt-get update failed; trying the install anyway"
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null \
    || fail "apt-get install ${need_pkgs[*]} failed (no package mirror reachable?)"
fi

command -v dockerd >/dev/null 2>&1 || fail "dockerd binary (Debian package docker.io)"
command -v docker >/dev/null 2>&1 || fail "docker CLI (Debian package docker.io or docker-cli)"

if ! engine_up; then
  [ "$(id -u)" -eq 0 ] || fail "no docker engine answers and starting dockerd needs root"
  if pgrep -x dockerd >/dev/null 2>&1; then
    say "dockerd is running but not answering yet; waiting"
  else
    say "starting dockerd --bridge=none --iptables=false (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    # setsid + nohup: the daemon outlives this script and its session.
    setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false \
      >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 "$WAIT_S"); do
    engine_up && break
    sleep 1
  done
  if ! engine_up; then
    say "dockerd did not answer within ${WAIT_S}s; last lines of $DOCKERD_LOG:"
    tail -n 15 "$DOCKERD_LOG" >&2 2>/dev/null || true
    fail "a working docker engine (see the log lines above: cgroups, storage driver or kernel features)"
  fi
fi
say "docker engine ready: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
