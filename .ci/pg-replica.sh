#!/usr/bin/env bash
# Starts the PostgreSQL streaming replica that the tests use
# (TALOS_TEST_POSTGRES_REPLICA_URL): a hot standby of the machine's PostgreSQL
# (127.0.0.1:5432) on 127.0.0.1:5433, made with pg_basebackup and run by
# pg_ctl as the postgres OS user, in $PG_REPLICA_DIR (default
# /var/lib/postgresql/talos-replica-5433). Loopback only. If the primary's
# pg_hba.conf does not admit replication connections from 127.0.0.1, a
# `host replication all 127.0.0.1/32 trust` line is added and the primary
# reloaded. Idempotent: a standby that already answers on 5433 is left as it
# is; a stopped one is started again, and one that cannot start (or is not a
# standby) is made afresh.
set -euo pipefail

DIR="${PG_REPLICA_DIR:-/var/lib/postgresql/talos-replica-5433}"
LOG="$DIR.log"
HOST=127.0.0.1
PRIMARY_PORT=5432
PORT=5433

as_postgres() { runuser -u postgres -- "$@"; }
# PostgreSQL's server programs (pg_ctl, pg_basebackup) of the primary's major
# version, whether or not they are on PATH.
ver=$(psql -h "$HOST" -p "$PRIMARY_PORT" -U postgres -d postgres -Atc 'SHOW server_version_num')
bindir="/usr/lib/postgresql/$((ver / 10000))/bin"
[ -x "$bindir/pg_ctl" ] || bindir="$(dirname "$(command -v pg_ctl)")"

standby_ok() {
  [ "$(psql -h "$HOST" -p "$PORT" -U postgres -d postgres -Atc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = "t" ]
}

wait_standby() {
  for _ in $(seq 1 100); do
    standby_ok && return 0
    sleep 0.2
  done
  return 1
}

# Tests pause the standby's replay (pg_wal_replay_pause) and resume it; a
# test killed in between must not leave it paused for the next run.
resume_replay() {
  psql -h "$HOST" -p "$PORT" -U postgres -d postgres -Atc \
    'SELECT pg_wal_replay_resume() WHERE pg_is_wal_replay_paused()' >/dev/null
}

if standby_ok; then
  resume_replay
  echo "postgres replica: already running on $HOST:$PORT"
  exit 0
fi

# Replication connections from loopback must be admitted by the primary.
hba=$(psql -h "$HOST" -p "$PRIMARY_PORT" -U postgres -d postgres -Atc 'SHOW hba_file')
if ! grep -Eq '^[[:space:]]*host[[:space:]]+replication[[:space:]]+(all|postgres)[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
  echo "postgres replica: admitting replication from $HOST in $hba"
  printf '%s\n' "host replication all 127.0.0.1/32 trust" >>"$hba"
  psql -h "$HOST" -p "$PRIMARY_PORT" -U postgres -d postgres -Atc 'SELECT pg_reload_conf()' >/dev/null
fi

# A standby directory from an earlier run is started again.
if [ -f "$DIR/standby.signal" ]; then
  as_postgres "$bindir/pg_ctl" -D "$DIR" -l "$LOG" -w -t 30 start >/dev/null 2>&1 || true
  if wait_standby; then
    echo "postgres replica: restarted on $HOST:$PORT"
    exit 0
  fi
  echo "postgres replica: the standby in $DIR did not come up; making a new one" >&2
  as_postgres "$bindir/pg_ctl" -D "$DIR" -m immediate stop >/dev/null 2>&1 || true
fi

rm -rf "$DIR"
mkdir -p "$DIR"
chown postgres:postgres "$DIR"
chmod 700 "$DIR"
as_postgres "$bindir/pg_basebackup" -h "$HOST" -p "$PRIMARY_PORT" -U postgres -D "$DIR" -R -X stream -c fast
# The primary's configuration lives outside its data directory (Debian's
# /etc/postgresql), so the standby gets its own: loopback, port 5433, a socket
# in /tmp, read-only queries while it replays.
as_postgres tee "$DIR/postgresql.conf" >/dev/null <<CONF
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '/tmp'
hot_standby = on
max_connections = 100
fsync = off
CONF
as_postgres tee "$DIR/pg_hba.conf" >/dev/null <<'CONF'
local all all trust
host all all 127.0.0.1/32 trust
CONF
as_postgres "$bindir/pg_ctl" -D "$DIR" -o "-p $PORT -k /tmp" -l "$LOG" -w -t 60 start >/dev/null
if ! wait_standby; then
  echo "postgres replica: not up as a standby on $HOST:$PORT after 20 s; log $LOG:" >&2
  tail -n 20 "$LOG" >&2 || true
  exit 1
fi
echo "postgres replica: streaming standby on $HOST:$PORT"
