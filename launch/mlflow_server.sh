#!/usr/bin/env bash
# Start an MLflow tracking server for a cluster sweep, on the login node, in the background.
# Jobs on compute nodes log to it over HTTP, so one process owns the database (no SQLite locks).
#
#   launch/mlflow_server.sh start [--port 5000] [--store DIR]   # prints the tracking.uri to use
#   launch/mlflow_server.sh stop  [--store DIR]
#
# then:  python -m bpgrid.sweep +grid=NAME hydra/launcher=slurm tracking.uri=http://HOST:PORT
set -euo pipefail

cmd=${1:-start}; shift || true
port=5000
store=${BPGRID_MLFLOW_STORE:-$PWD/mlflow-server}
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mlflow=${MLFLOW:-$(command -v mlflow || echo "$(dirname "$0")/../.venv/bin/mlflow")}
host=$(hostname -f 2>/dev/null || hostname)

case "$cmd" in
  start)
    mkdir -p "$store/artifacts"
    if [ -f "$store/server.pid" ] && kill -0 "$(cat "$store/server.pid")" 2>/dev/null; then
      echo "already running (pid $(cat "$store/server.pid"))" >&2
    else
      # The database backend is SQLite in the store folder; the server serialises all writes.
      # --allowed-hosts admits jobs that address the server by this host's name.
      setsid nohup "$mlflow" server \
        --backend-store-uri "sqlite:///$store/mlflow.db" \
        --artifacts-destination "$store/artifacts" --serve-artifacts \
        --host 0.0.0.0 --port "$port" --workers 4 \
        --allowed-hosts "localhost,localhost:$port,127.0.0.1:$port,$host,$host:$port" \
        > "$store/server.log" 2>&1 < /dev/null &
      echo $! > "$store/server.pid"
    fi
    for _ in $(seq 1 120); do  # the first start creates and migrates the database
      if curl -sf "http://127.0.0.1:$port/health" > /dev/null; then
        echo "tracking.uri=http://$host:$port"
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
  *) echo "usage: $0 start|stop [--port N] [--store DIR]" >&2; exit 2 ;;
esac
