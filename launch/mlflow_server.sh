#!/usr/bin/env bash
# Start an MLflow tracking server for a sweep, in the background. Jobs log to it over HTTP, so one
# process owns the database (no SQLite locks, no database on a shared filesystem).
#
#   launch/mlflow_server.sh start [--port 5000] [--store DIR] [--host ADDR] [--no-serve-artifacts]
#   launch/mlflow_server.sh stop  [--store DIR]
#
# then:  python -m bpgrid.sweep +grid=NAME tracking.uri=<the printed uri>
#
# The server has no authentication: anyone who reaches it can read, change and delete every run.
# So by default it listens on 127.0.0.1 only (jobs on this machine, or through `ssh -L`).
# Jobs on other nodes need it on an address they reach: pass that address with --host (the
# cluster's internal network, never 0.0.0.0 on a machine the internet reaches), and secure it:
#   - best, a reverse proxy in front of a 127.0.0.1 server, with TLS and authentication (nginx
#     `auth_basic`, or your site's SSO); jobs then use https://user:password@host/ as tracking.uri
#     (or MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD in their environment);
#   - or MLflow's own login: add `--app-name basic-auth` below (users in basic_auth.db);
#   - and in any case a firewall that admits only the cluster's nodes.
#
# Artifacts: by default the server proxies them (--serve-artifacts): jobs upload each cell's
# config and learning curve through HTTP into $store/artifacts, so compute nodes need no access
# to that folder. Whoever reaches the server reaches the artifacts too, as with the runs.
# --no-serve-artifacts stops that: the server then only records where artifacts are, and each
# job writes them itself into $store/artifacts, which must be on a filesystem every node mounts.
set -euo pipefail

cmd=${1:-start}; shift || true
port=5000
store=${BPGRID_MLFLOW_STORE:-$PWD/mlflow-server}
bind=127.0.0.1
serve=--serve-artifacts
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --host) bind=$2; shift 2 ;;
    --no-serve-artifacts) serve=--no-serve-artifacts; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mlflow=${MLFLOW:-$(command -v mlflow || echo "$(dirname "$0")/../.venv/bin/mlflow")}
name=$(hostname -f 2>/dev/null || hostname)

case "$bind" in
  127.*|localhost|::1) where=127.0.0.1 ;;
  *)
    where=$name
    [ "$bind" = 0.0.0.0 ] || where=$bind
    echo "WARNING: the server listens on $bind:$port WITHOUT authentication. Put it behind a" >&2
    echo "reverse proxy with TLS and a login, and firewall it to the cluster (see the top of" >&2
    echo "$0)." >&2
    ;;
esac

case "$cmd" in
  start)
    mkdir -p "$store/artifacts"
    if [ "$serve" = --serve-artifacts ]; then
      artifacts=(--artifacts-destination "$store/artifacts" --serve-artifacts)
    else
      artifacts=(--default-artifact-root "$store/artifacts" --no-serve-artifacts)
    fi
    if [ -f "$store/server.pid" ] && kill -0 "$(cat "$store/server.pid")" 2>/dev/null; then
      echo "already running (pid $(cat "$store/server.pid"))" >&2
    else
      # The database backend is SQLite in the store folder; the server serialises all writes.
      # --allowed-hosts admits jobs that address the server by the name it prints.
      setsid nohup "$mlflow" server \
        --backend-store-uri "sqlite:///$store/mlflow.db" "${artifacts[@]}" \
        --host "$bind" --port "$port" --workers 4 \
        --allowed-hosts "localhost,localhost:$port,127.0.0.1:$port,$where,$where:$port" \
        > "$store/server.log" 2>&1 < /dev/null &
      echo $! > "$store/server.pid"
    fi
    probe=$bind
    case "$bind" in 0.0.0.0|127.*|localhost) probe=127.0.0.1 ;; esac
    for _ in $(seq 1 120); do  # the first start creates and migrates the database
      if curl -sf "http://$probe:$port/health" > /dev/null; then
        echo "tracking.uri=http://$where:$port"
        exit 0
      fi
      sleep 1
    done
    echo "mlflow server did not answer on port $port; log: $store/server.log" >&2
    tail -20 "$store/server.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$store/server.pid" ]; then
      kill -- "-$(cat "$store/server.pid")" 2>/dev/null || kill "$(cat "$store/server.pid")" || true
      rm -f "$store/server.pid"
    fi
    ;;
  *) echo "usage: $0 start|stop [--port N] [--store DIR] [--host ADDR] [--no-serve-artifacts]" >&2
     exit 2 ;;
esac
