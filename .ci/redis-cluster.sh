#!/usr/bin/env bash
# Starts the Redis Cluster that the tests use (TALOS_TEST_REDIS_CLUSTER_ADDRS):
# 3 masters on 127.0.0.1:7001-7003 and one replica each on 7004-7006, so a
# master that dies can fail over. Loopback only, no persistence, each node in
# its own directory under $REDIS_CLUSTER_DIR (default /var/lib/redis-cluster).
# Idempotent: if the nodes already answer and the cluster is ok, it does
# nothing. The machine's own Redis on 6379 is never touched.
set -euo pipefail

DIR="${REDIS_CLUSTER_DIR:-/var/lib/redis-cluster}"
PORTS=(7001 7002 7003 7004 7005 7006)
HOST=127.0.0.1

cluster_ok() {
  for p in "${PORTS[@]}"; do
    redis-cli -h "$HOST" -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    # A replica must have finished its first sync to be able to take over.
    repl=$(redis-cli -h "$HOST" -p "$p" info replication 2>/dev/null | tr -d '\r')
    if echo "$repl" | grep -q '^role:slave'; then
      echo "$repl" | grep -q '^master_link_status:up' || return 1
    fi
  done
}

if cluster_ok; then
  echo "redis cluster: already running and ok (${PORTS[*]})"
  exit 0
fi

for p in "${PORTS[@]}"; do
  if redis-cli -h "$HOST" -p "$p" ping >/dev/null 2>&1; then
    continue
  fi
  mkdir -p "$DIR/$p"
  # A node that never joined a cluster, or whose cluster state is gone,
  # starts from a clean nodes file.
  redis-server --daemonize yes --bind "$HOST" --port "$p" \
    --cluster-enabled yes --cluster-config-file "$DIR/$p/nodes.conf" \
    --cluster-node-timeout 2000 --save "" --appendonly no --repl-diskless-sync-delay 0 \
    --dir "$DIR/$p" --logfile "$DIR/$p/redis.log" --pidfile "$DIR/$p/redis.pid"
done

for p in "${PORTS[@]}"; do
  for _ in $(seq 1 50); do
    redis-cli -h "$HOST" -p "$p" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h "$HOST" -p "$p" ping >/dev/null
done

# Create the cluster only when no node knows any slot yet (fresh nodes);
# otherwise the nodes are rejoining a cluster they already form.
assigned=$(redis-cli -h "$HOST" -p "${PORTS[0]}" cluster info | sed -n 's/^cluster_slots_assigned:\([0-9]*\).*/\1/p')
if [ "${assigned:-0}" = "0" ]; then
  addrs=()
  for p in "${PORTS[@]}"; do addrs+=("$HOST:$p"); done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes
fi

for _ in $(seq 1 100); do
  if cluster_ok; then
    echo "redis cluster: ok (${PORTS[*]})"
    exit 0
  fi
  sleep 0.2
done
echo "redis cluster: not ok after 20 s" >&2
for p in "${PORTS[@]}"; do redis-cli -h "$HOST" -p "$p" cluster info | head -n1 >&2 || true; done
exit 1
