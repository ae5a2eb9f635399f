# Shared by every role's entrypoint (sourced). Configuration is rendered on the
# host into /etc/foresight/conf (read-only mount) and copied into /etc/slurm so
# that ownership and modes are right inside the container.
set -eu

log() { echo "[$(date +%H:%M:%S) ${FORESIGHT_ROLE:-?}] $*" >&2; }

install_conf() {
  mkdir -p /etc/slurm
  for f in slurm.conf gres.conf cgroup.conf foresight-power.toml; do
    install -m 0644 "/etc/foresight/conf/$f" "/etc/slurm/$f"
  done
  install -m 0600 -o slurm -g slurm /etc/foresight/conf/slurmdbd.conf /etc/slurm/slurmdbd.conf
}

# Users created by `foresight cluster replay` (name:uid per line) exist in every container.
add_users() {
  local users=/etc/foresight/state/users name uid
  [ -f "$users" ] || return 0
  while IFS=: read -r name uid; do
    [ -n "$name" ] || continue
    id -u "$name" >/dev/null 2>&1 || useradd -M -N -g users -u "$uid" -s /bin/sh "$name" || true
  done < "$users"
}

start_munge() {
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged --force
}

wait_tcp() {  # wait_tcp PORT SECONDS
  local i
  for i in $(seq 1 "$2"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 1
  done
  log "nothing answers on 127.0.0.1:$1 after $2 s"
  return 1
}
