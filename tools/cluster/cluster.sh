#!/usr/bin/env bash
# A ckpt cluster on one machine, for trying replicas out and for the fault tests:
# 3 etcd (Patroni's DCS), 3 PostgreSQL under Patroni in synchronous mode, and 3 ckptd
# replicas sharing the database, all on loopback, run as an unprivileged user.
#
#   tools/cluster/cluster.sh start DIR [OPTIONS]   # writes DIR's config (first time), starts
#                                                  #   everything, returns once all serve
#   tools/cluster/cluster.sh status DIR            # processes, Patroni's roles, shard owners
#   tools/cluster/cluster.sh kill DIR PROC [SIG]   # a fault: SIGKILL (default) one process;
#                                                  #   pgN: Patroni and all of its postgres
#   tools/cluster/cluster.sh pids DIR PROC         # the pids `kill` would signal (for a test
#                                                  #   that signals them itself, at a known time)
#   tools/cluster/cluster.sh start DIR PROC        # start one process again (it rejoins)
#   tools/cluster/cluster.sh stop DIR              # stops everything (ckptd hand their
#                                                  #   shards over first); DIR stays
#   tools/cluster/cluster.sh init DIR [OPTIONS]    # only write the config (tests use this)
#
# PROC is one of etcd1..3, pg1..3 (Patroni and its PostgreSQL), ckptd1..3.
#
# OPTIONS (for init, and start of a DIR without config):
#   --base-port=N      node i (1..3) uses ports N+10(i-1) .. +5 (default 7700):
#                      +0 ckptd gRPC, +1 ckptd HTTP, +2 PostgreSQL, +3 Patroni REST API,
#                      +4 etcd clients, +5 etcd peers. So ckptd serves on 7700, 7710, 7720.
#   --ckptd=PATH       the ckptd binary (default: bazel-bin/service/server/ckptd)
#   --ttl=S --loop-wait=S --retry-timeout=S
#                      Patroni's leader lease and loop (default 20, 2, 5): a dead primary
#                      is replaced within about ttl seconds
#   --ckptd-flag=FLAG  one more flag for every ckptd (repeatable), e.g.
#                      --ckptd-flag=--store_lease=5s
#
# Layout of DIR: cluster.conf (what init was given), secrets/ (passwords, 0700),
# run/PROC.argv (each process's command line, one argument per line, for a test fixture
# to start the same commands), run/PROC.pid, log/PROC.log (ckptd's lines stamped with
# the time of day),
# etcdN/ pgN/ (data), and the config files etcdN.yml, pgN.yml, ckptdN.flags.
# docs/deploy.md explains every setting and what each fault does to clients.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PG_BIN=/usr/lib/postgresql/15/bin
NODES=(1 2 3)
# How long start waits for each stage before giving up (a hung process, not a timing test).
READY_SECONDS=${CKPT_CLUSTER_READY_SECONDS:-120}

die() { echo "cluster: $*" >&2; exit 1; }
log() { echo "cluster: $*"; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------- configuration

# The user every process runs as: ourselves, or when root (PostgreSQL, Patroni and etcd
# refuse or misbehave as root) Debian's `postgres`, else `nobody`.
pick_user() {
  if (( EUID != 0 )); then id -un; return; fi
  local name
  for name in postgres nobody; do
    if id "$name" >/dev/null 2>&1; then echo "$name"; return; fi
  done
  die "running as root and neither user postgres nor nobody exists to run the cluster as"
}

random_secret() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }

port() {  # port NODE OFFSET
  echo $(( BASE_PORT + 10 * ($1 - 1) + $2 ))
}

load_conf() {
  [[ -f "$DIR/cluster.conf" ]] || die "$DIR has no cluster (run: $0 start $DIR)"
  # shellcheck disable=SC1091
  source "$DIR/cluster.conf"
}

write_etcd_config() {  # NODE
  local n=$1 members=() i
  for i in "${NODES[@]}"; do members+=("etcd$i=http://127.0.0.1:$(port "$i" 5)"); done
  local joined
  joined="$(IFS=,; echo "${members[*]}")"
  cat >"$DIR/etcd$n.yml" <<EOF_ETCD
# etcd member $n of 3: Patroni's DCS (leader key, member keys, the sync standby).
name: etcd$n
data-dir: $DIR/etcd$n
listen-client-urls: http://127.0.0.1:$(port "$n" 4)
advertise-client-urls: http://127.0.0.1:$(port "$n" 4)
listen-peer-urls: http://127.0.0.1:$(port "$n" 5)
initial-advertise-peer-urls: http://127.0.0.1:$(port "$n" 5)
initial-cluster: $joined
initial-cluster-token: $CLUSTER_TOKEN
initial-cluster-state: new
# Patroni talks to etcd through its v2 API (Debian's etcd has no v3 HTTP gateway).
enable-v2: true
# A loaded 2-core machine stalls for more than etcd's default 1 s election timeout.
heartbeat-interval: 200
election-timeout: 2000
EOF_ETCD
}

write_patroni_config() {  # NODE
  local n=$1 i hosts=()
  for i in "${NODES[@]}"; do hosts+=("127.0.0.1:$(port "$i" 4)"); done
  local joined
  joined="$(IFS=,; echo "${hosts[*]}")"
  cat >"$DIR/pg$n.yml" <<EOF_PATRONI
# Patroni for PostgreSQL node $n of 3. Synchronous mode: every commit is on the primary
# and on one synchronous standby before it returns, and only that standby may be
# promoted, so a failover loses no acknowledged commit (docs/deploy.md).
scope: ckpt
name: pg$n
restapi:
  listen: 127.0.0.1:$(port "$n" 3)
  connect_address: 127.0.0.1:$(port "$n" 3)
etcd:
  hosts: $joined
bootstrap:
  dcs:
    ttl: $TTL
    loop_wait: $LOOP_WAIT
    retry_timeout: $RETRY_TIMEOUT
    maximum_lag_on_failover: 0
    synchronous_mode: true
    synchronous_mode_strict: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 300
        wal_log_hints: 'on'
        wal_keep_size: 256MB
        synchronous_commit: 'on'
        # How soon a standby asks again for WAL it could not get: a standby being
        # promoted, and one that must follow the new primary (the slot Patroni makes for
        # it appears a moment later), wait this long (PostgreSQL's default: 5 s each).
        wal_retrieve_retry_interval: 500ms
  initdb:
    - encoding: UTF8
    - locale: C
    - data-checksums
  post_bootstrap: $DIR/secrets/post_bootstrap.sh
postgresql:
  listen: 127.0.0.1:$(port "$n" 2)
  connect_address: 127.0.0.1:$(port "$n" 2)
  data_dir: $DIR/pg$n/data
  bin_dir: $PG_BIN
  pgpass: $DIR/pg$n/pgpass
  authentication:
    superuser:
      username: postgres
      password: $SUPERUSER_PASSWORD
    replication:
      username: replicator
      password: $REPLICATION_PASSWORD
  parameters:
    unix_socket_directories: $DIR/pg$n
  # A new standby copies the primary at once rather than after a spread checkpoint.
  basebackup:
    - checkpoint: fast
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
EOF_PATRONI
}

write_ckptd_flags() {  # NODE
  local n=$1 i hosts=() flag
  for i in "${NODES[@]}"; do hosts+=("127.0.0.1:$(port "$i" 2)"); done
  local joined
  joined="$(IFS=,; echo "${hosts[*]}")"
  {
    echo "--listen=127.0.0.1:$(port "$n" 0)"
    echo "--advertise=127.0.0.1:$(port "$n" 0)"
    echo "--http_listen=127.0.0.1:$(port "$n" 1)"
    # Every PostgreSQL node; libpq picks the one that takes writes. The password is
    # in PGPASSFILE (secrets/pgpass), never on a command line.
    echo "--store=postgresql://ckpt@$joined/ckpt?target_session_attrs=read-write"
    for flag in "${CKPTD_FLAGS[@]}"; do echo "$flag"; done
  } >"$DIR/ckptd$n.flags"
}

write_secrets() {
  mkdir -p "$DIR/secrets"
  chmod 700 "$DIR/secrets"
  local ckpt_password
  ckpt_password="$(random_secret)"
  (
    umask 077
    printf '127.0.0.1:*:ckpt:ckpt:%s\n' "$ckpt_password" >"$DIR/secrets/pgpass"
    # Run by Patroni once, on the node that bootstraps the cluster, with a superuser
    # connection string: ckpt's role and database.
    cat >"$DIR/secrets/post_bootstrap.sh" <<EOF_BOOT
#!/bin/sh
set -e
psql "\$1" -v ON_ERROR_STOP=1 -q -f "$DIR/secrets/bootstrap.sql"
EOF_BOOT
    chmod 700 "$DIR/secrets/post_bootstrap.sh"
    cat >"$DIR/secrets/bootstrap.sql" <<EOF_SQL
CREATE ROLE ckpt LOGIN PASSWORD '$ckpt_password';
CREATE DATABASE ckpt OWNER ckpt;
EOF_SQL
  )
}

# The command line of each process, one argument per line (run/PROC.argv).
write_argv() {  # PROC ARG...
  local proc=$1
  shift
  printf '%s\n' "$@" >"$DIR/run/$proc.argv"
}

cmd_init() {
  [[ ! -e "$DIR/cluster.conf" ]] || die "$DIR already has a cluster"
  [[ -x "$CKPTD" ]] || die "no ckptd at $CKPTD (bazel build //service/server:ckptd, or --ckptd=PATH)"
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"
  RUN_AS="$(pick_user)"
  CLUSTER_TOKEN="ckpt-$(random_secret)"
  SUPERUSER_PASSWORD="$(random_secret)"
  REPLICATION_PASSWORD="$(random_secret)"
  mkdir -p "$DIR/run" "$DIR/log"
  write_secrets
  local n
  for n in "${NODES[@]}"; do
    mkdir -p "$DIR/etcd$n" "$DIR/pg$n"
    chmod 700 "$DIR/etcd$n" "$DIR/pg$n"
    write_etcd_config "$n"
    write_patroni_config "$n"
    write_ckptd_flags "$n"
    write_argv "etcd$n" /usr/bin/etcd --config-file "$DIR/etcd$n.yml"
    write_argv "pg$n" /usr/bin/env "HOME=$DIR/pg$n" /usr/bin/patroni "$DIR/pg$n.yml"
    write_argv "ckptd$n" /usr/bin/env "PGPASSFILE=$DIR/secrets/pgpass" "$CKPTD" \
      "--flagfile=$DIR/ckptd$n.flags"
  done
  (
    umask 077
    {
      printf 'BASE_PORT=%q\nRUN_AS=%q\nCKPTD=%q\n' "$BASE_PORT" "$RUN_AS" "$CKPTD"
      printf 'TTL=%q\nLOOP_WAIT=%q\nRETRY_TIMEOUT=%q\n' "$TTL" "$LOOP_WAIT" "$RETRY_TIMEOUT"
    } >"$DIR/cluster.conf"
  )
  chmod 600 "$DIR"/pg?.yml
  # Everything belongs to the user the processes run as; nobody else may read it.
  chmod 700 "$DIR"
  if (( EUID == 0 )); then
    chown -R "$RUN_AS:" "$DIR"
    setpriv "--reuid=$RUN_AS" "--regid=$RUN_AS" --init-groups -- test -w "$DIR" ||
      die "user $RUN_AS cannot reach $DIR: pick a directory every user can enter (e.g. under /tmp)"
  fi
  log "config written to $DIR (processes run as $RUN_AS)"
}

# ---------------------------------------------------------------- processes

pid_of() {  # PROC: prints the pid if the process runs
  local file="$DIR/run/$1.pid" pid
  [[ -f "$file" ]] || return 1
  pid="$(<"$file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

start_proc() {  # PROC
  local proc=$1
  if pid_of "$proc" >/dev/null; then log "$proc already runs"; return; fi
  [[ -f "$DIR/run/$proc.argv" ]] || die "unknown process $proc (etcd1..3, pg1..3, ckptd1..3)"
  local -a argv as_user=()
  mapfile -t argv <"$DIR/run/$proc.argv"
  if (( EUID == 0 )); then
    as_user=(setpriv "--reuid=$RUN_AS" "--regid=$RUN_AS" --init-groups --)
  fi
  # A session of its own, so that a Ctrl-C of this script does not reach it; the
  # shell writes its pid and then becomes the process. ckptd's lines get the time of
  # day in front (etcd, Patroni and PostgreSQL stamp their own), through a small reader
  # that ends when ckptd does.
  if [[ "$proc" == ckptd? ]]; then
    setsid bash -c 'echo $$ >"$1"; log=$2; shift 2
      exec "$@" > >(while IFS= read -r line; do
        printf "%s %s\n" "$(date +%T.%3N)" "$line"; done >>"$log") 2>&1' _ \
      "$DIR/run/$proc.pid" "$DIR/log/$proc.log" "${as_user[@]}" "${argv[@]}" </dev/null \
      >>"$DIR/log/$proc.log" 2>&1 &
  else
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$DIR/run/$proc.pid" \
      "${as_user[@]}" "${argv[@]}" </dev/null >>"$DIR/log/$proc.log" 2>&1 &
  fi
  local deadline=$((SECONDS + 10))
  until [[ -s "$DIR/run/$proc.pid" ]]; do
    (( SECONDS < deadline )) || die "$proc did not start (log: $DIR/log/$proc.log)"
    sleep 0.05
  done
  log "$proc started (pid $(<"$DIR/run/$proc.pid"), log $DIR/log/$proc.log)"
}

# Waits until CHECK (a function) succeeds, polling, for at most READY_SECONDS.
await() {  # WHAT CHECK [ARG...]
  local what=$1 deadline=$((SECONDS + READY_SECONDS))
  shift
  until "$@"; do
    (( SECONDS < deadline )) || die "$what not ready after ${READY_SECONDS}s (logs in $DIR/log)"
    sleep 0.2
  done
}

etcd_healthy() {  # NODE
  curl -fsS --max-time 2 "http://127.0.0.1:$(port "$1" 4)/health" 2>/dev/null | grep -q '"health":"true"'
}

# Patroni's view of the cluster (GET /cluster on any node that answers), as JSON.
patroni_cluster() {
  local n
  for n in "${NODES[@]}"; do
    if curl -fsS --max-time 2 "http://127.0.0.1:$(port "$n" 3)/cluster" 2>/dev/null; then return; fi
  done
  return 1
}

# A primary that takes writes and a synchronous standby running: commits can return.
patroni_writable() {
  patroni_cluster | /usr/bin/python3 -c '
import json, sys
members = json.load(sys.stdin).get("members", [])
running = [m["role"] for m in members if m.get("state") in ("running", "streaming")]
sys.exit(0 if "leader" in running and "sync_standby" in running else 1)' 2>/dev/null
}

ckptd_serving() {  # NODE: its log says so
  grep -q "serving on" "$DIR/log/ckptd$1.log" 2>/dev/null
}

stop_proc() {  # PROC SIGNAL
  local proc=$1 signal=$2 pid
  pid="$(pid_of "$proc")" || return 0
  kill "-$signal" "$pid" 2>/dev/null || true
  kill -CONT "$pid" 2>/dev/null || true  # a frozen (SIGSTOP) process acts on it too
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS >= deadline )); then
      log "$proc (pid $pid) still runs 60s after SIG$signal; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
    fi
    sleep 0.1
  done
  rm -f "$DIR/run/$proc.pid"
}

# The postmaster of node N, from its pid file, if it runs.
postmaster_of() {
  local file="$DIR/pg$1/data/postmaster.pid" pid
  [[ -f "$file" ]] || return 1
  pid="$(head -1 "$file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# ---------------------------------------------------------------- commands

cmd_start() {
  if [[ ! -f "$DIR/cluster.conf" ]]; then cmd_init; fi
  load_conf
  local n
  for n in "${NODES[@]}"; do start_proc "etcd$n"; done
  for n in "${NODES[@]}"; do await "etcd$n" etcd_healthy "$n"; done
  log "etcd healthy"
  for n in "${NODES[@]}"; do start_proc "pg$n"; done
  await "a PostgreSQL primary with a synchronous standby" patroni_writable
  log "PostgreSQL writable (primary and synchronous standby running)"
  for n in "${NODES[@]}"; do start_proc "ckptd$n"; done
  for n in "${NODES[@]}"; do await "ckptd$n" ckptd_serving "$n"; done
  log "ckptd serving on 127.0.0.1:$(port 1 0), 127.0.0.1:$(port 2 0), 127.0.0.1:$(port 3 0)"
}

cmd_start_one() {  # PROC
  load_conf
  start_proc "$1"
}

# The pids a fault on PROC signals, one a line: for pgN the node's Patroni, its
# postmaster and every postgres process under it (a lost machine takes them all; a
# postmaster killed alone leaves its backends serving their connections for a while,
# and Patroni alone would restart postgres in place); for the others, the process.
node_pids() {  # PROC
  local proc=$1 pid postmaster
  pid="$(pid_of "$proc")" || return 1
  echo "$pid"
  if [[ "$proc" == pg? ]] && postmaster="$(postmaster_of "${proc#pg}")"; then
    echo "$postmaster"
    ps -o pid= --ppid "$postmaster" | tr -d ' '
  fi
}

cmd_pids() {  # PROC
  load_conf
  node_pids "$1" || die "$1 does not run"
}

cmd_kill() {  # PROC [SIGNAL]
  load_conf
  local proc=$1 signal=${2:-KILL}
  signal="${signal#SIG}"
  local -a pids=()
  mapfile -t pids < <(node_pids "$proc") || true
  (( ${#pids[@]} > 0 )) || die "$proc does not run"
  # At once: for a pg node, its standbys notice and one is promoted.
  kill "-$signal" "${pids[@]}" 2>/dev/null || true
  log "SIG$signal sent to $proc (pids ${pids[*]})"
}

cmd_stop() {
  load_conf
  local n leader=""
  # ckptd first: on SIGTERM each hands its shards over, the last one just stops.
  for n in "${NODES[@]}"; do stop_proc "ckptd$n" TERM; done
  # Standbys before the primary, so that stopping does not cause a failover.
  leader="$(patroni_cluster 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for m in json.load(sys.stdin).get("members", []):
    if m["role"] == "leader": print(m["name"])' 2>/dev/null)" || leader=""
  for n in "${NODES[@]}"; do
    [[ "pg$n" == "$leader" ]] || stop_proc "pg$n" TERM
  done
  [[ -z "$leader" ]] || stop_proc "$leader" TERM
  for n in "${NODES[@]}"; do
    local postmaster
    if postmaster="$(postmaster_of "$n")"; then  # Patroni was killed: its postgres lives on
      kill -INT "$postmaster" 2>/dev/null || true
    fi
  done
  for n in "${NODES[@]}"; do stop_proc "etcd$n" TERM; done
  log "stopped; data stays in $DIR (remove it to start afresh)"
}

cmd_status() {
  load_conf
  local proc n pid
  for n in "${NODES[@]}"; do
    for proc in "etcd$n" "pg$n" "ckptd$n"; do
      if pid="$(pid_of "$proc")"; then
        printf '%-7s running (pid %s)\n' "$proc" "$pid"
      else
        printf '%-7s stopped\n' "$proc"
      fi
    done
  done
  echo
  patroni_cluster 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for m in json.load(sys.stdin).get("members", []):
    print("%-4s %-13s %-10s timeline %s, lag %s" % (m["name"], m["role"], m["state"],
          m.get("timeline", "?"), m.get("lag", 0)))' || echo "Patroni: no node answers"
  echo
  local hosts=() i
  for i in "${NODES[@]}"; do hosts+=("127.0.0.1:$(port "$i" 2)"); done
  PGPASSFILE="$DIR/secrets/pgpass" PGCONNECT_TIMEOUT=3 psql -X -q \
    "postgresql://ckpt@$(IFS=,; echo "${hosts[*]}")/ckpt?target_session_attrs=read-write" \
    -c "SELECT address, count(*) AS shards, string_agg(shard::text, ',' ORDER BY shard) AS which
        FROM ckpt_owners WHERE expires > now() GROUP BY address ORDER BY address" 2>/dev/null ||
    echo "shard owners: the database does not answer"
}

main() {
  (( $# >= 1 )) || { usage; exit 2; }
  local command=$1
  shift
  case "$command" in
    -h | --help | help) usage; exit 0 ;;
  esac
  (( $# >= 1 )) || die "$command needs a directory"
  DIR=$1
  shift
  BASE_PORT=7700
  CKPTD="$REPO_ROOT/bazel-bin/service/server/ckptd"
  TTL=20
  LOOP_WAIT=2
  RETRY_TIMEOUT=5
  CKPTD_FLAGS=()
  local -a rest=()
  while (( $# > 0 )); do
    case "$1" in
      --base-port=*) BASE_PORT="${1#*=}" ;;
      --ckptd=*) CKPTD="$(realpath "${1#*=}")" ;;
      --ttl=*) TTL="${1#*=}" ;;
      --loop-wait=*) LOOP_WAIT="${1#*=}" ;;
      --retry-timeout=*) RETRY_TIMEOUT="${1#*=}" ;;
      --ckptd-flag=*) CKPTD_FLAGS+=("${1#*=}") ;;
      --*) die "unknown option $1" ;;
      *) rest+=("$1") ;;
    esac
    shift
  done
  [[ "$BASE_PORT" =~ ^[0-9]+$ ]] && (( BASE_PORT > 0 && BASE_PORT + 25 < 65536 )) ||
    die "--base-port needs a port number"
  (( LOOP_WAIT + 2 * RETRY_TIMEOUT <= TTL )) ||
    die "Patroni needs loop_wait + 2 * retry_timeout <= ttl"
  if [[ -d "$DIR" ]]; then DIR="$(cd "$DIR" && pwd)"; fi
  case "$command" in
    init) cmd_init ;;
    start)
      if (( ${#rest[@]} == 0 )); then cmd_start; else cmd_start_one "${rest[0]}"; fi ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    kill) (( ${#rest[@]} >= 1 )) || die "kill needs a process"; cmd_kill "${rest[@]}" ;;
    pids) (( ${#rest[@]} >= 1 )) || die "pids needs a process"; cmd_pids "${rest[0]}" ;;
    *) die "unknown command $command (try --help)" ;;
  esac
}

main "$@"
