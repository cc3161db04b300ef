#!/usr/bin/env bash
# Three gateways on one PostgreSQL behind HAProxy, on this machine, for a demo or a test:
#   bash scripts/fleet.sh start | stop | status
# start: the set-up of scripts/dev.sh (which installs haproxy too), the database if missing, three gateways
#        (node dist/main.js on ports 3001-3003) and HAProxy on :3000 (deploy/haproxy.cfg). Then open
#        http://127.0.0.1:3000/ as with `dev.sh start`.
# stop:  each gateway drains (no new sessions, the running ones finish, at most DRAIN_TIMEOUT_S), then HAProxy stops.
# Settings (environment): FLEET_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/faceid_fleet),
# FLEET_PORT (3000), FLEET_GATEWAY_PORTS ("3001 3002 3003"), FLEET_DIR (state, logs; default
# $XDG_STATE_HOME/faceid-gateway/fleet), and any gateway setting (README, "Configuration"), passed to all three.
# FACE_SESSIONS_MAX defaults to each gateway's share of this machine (5 per core, divided among the gateways).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "fleet: $*" >&2; }

DB_URL="${FLEET_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/faceid_fleet}"
FRONT_PORT="${FLEET_PORT:-3000}"
read -r -a PORTS <<< "${FLEET_GATEWAY_PORTS:-3001 3002 3003}"
STATE="${FLEET_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/faceid-gateway/fleet}"
[ ${#PORTS[@]} -eq 3 ] || { say "FLEET_GATEWAY_PORTS needs three ports (deploy/haproxy.cfg has three servers)"; exit 2; }

# A process from a pid file that still runs (an exited one not yet reaped by its parent counts as gone).
alive() {
  [ -f "$1" ] || return 1
  local pid state
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
  [ "${state:0:1}" != Z ]
}

# GET a URL: prints the status code (000 when nothing answers) and the body.
probe() {
  node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(3000) })
    .then(async (r) => console.log(r.status, await r.text()))
    .catch(() => console.log("000"))' "$1"
}

wait_ready() {
  local port=$1 pidfile=$2 i
  for i in $(seq 1 600); do
    alive "$pidfile" || return 1
    [ "$(probe "http://127.0.0.1:$port/health/ready" | cut -d' ' -f1)" = 200 ] && return 0
    sleep 0.2
  done
  return 1
}

ensure_database() {
  node -e '
    const { Client } = require("pg");
    const url = new URL(process.argv[1]);
    const name = decodeURIComponent(url.pathname.slice(1));
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) { console.error("fleet: the database name must be a plain identifier"); process.exit(2); }
    url.pathname = "/postgres";
    const admin = new Client({ connectionString: url.toString() });
    admin.connect()
      .then(() => admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]))
      .then((r) => (r.rowCount ? null : admin.query(`CREATE DATABASE ${name}`).then(() => console.error(`fleet: created database ${name}`))))
      .then(() => admin.end())
      .catch((err) => { console.error(`fleet: PostgreSQL is not reachable at ${url.host} (${err.code ?? err.message})`); process.exit(1); });
  ' "$DB_URL"
}

start() {
  bash scripts/dev.sh setup
  mkdir -p "$STATE"
  ensure_database
  # One key ring for the fleet: a template sealed by one gateway is opened by the others.
  if [ ! -f "$STATE/fleet.env" ]; then
    (umask 077; echo "TEMPLATE_KEYS=fleet1:$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64"))')" > "$STATE/fleet.env")
  fi
  local port pidfile
  for port in "${PORTS[@]}"; do
    pidfile="$STATE/gw-$port.pid"
    if alive "$pidfile"; then say "gateway :$port already runs (pid $(cat "$pidfile"))"; continue; fi
    mkdir -p "$STATE/gw-$port"
    (
      set -a
      # shellcheck disable=SC1091
      . "$STATE/fleet.env"
      set +a
      export DATABASE_URL="$DB_URL" PORT="$port" HOST=127.0.0.1 FACEID_DATA_DIR="$STATE/gw-$port"
      export TRUSTED_PROXIES="${TRUSTED_PROXIES:-loopback}"
      # All of them share this machine's cores: each admits its share of what one gateway would (5 face sessions
      # per core), or together they overload the engines (README, Benchmarks, the fleet phase).
      export FACE_SESSIONS_MAX="${FACE_SESSIONS_MAX:-$(( (5 * $(nproc) + ${#PORTS[@]} - 1) / ${#PORTS[@]} ))}"
      nohup node dist/main.js >> "$STATE/gw-$port.log" 2>&1 &
      echo $! > "$pidfile"
    )
    say "gateway :$port started (pid $(cat "$pidfile"), log $STATE/gw-$port.log)"
  done
  for port in "${PORTS[@]}"; do
    wait_ready "$port" "$STATE/gw-$port.pid" || { say "gateway :$port did not get ready; see $STATE/gw-$port.log"; exit 1; }
  done
  if alive "$STATE/haproxy.pid"; then
    say "haproxy already runs (pid $(cat "$STATE/haproxy.pid"))"
  else
    FACEID_FLEET_BIND="127.0.0.1:$FRONT_PORT" FACEID_GW1="127.0.0.1:${PORTS[0]}" FACEID_GW2="127.0.0.1:${PORTS[1]}" \
      FACEID_GW3="127.0.0.1:${PORTS[2]}" nohup haproxy -db -f deploy/haproxy.cfg >> "$STATE/haproxy.log" 2>&1 &
    echo $! > "$STATE/haproxy.pid"
    wait_ready "$FRONT_PORT" "$STATE/haproxy.pid" || { say "haproxy did not start; see $STATE/haproxy.log"; exit 1; }
  fi
  say "up: http://127.0.0.1:$FRONT_PORT/ (HAProxy) -> gateways ${PORTS[*]}, database ${DB_URL##*@}"
  # The demo clinic's keys are printed once, by whichever gateway created the clinic on the empty database.
  if grep -hq 'fid_ws_' "$STATE"/gw-*.log 2>/dev/null; then
    say "the demo keys (printed once, at the first start): grep -h 'fid_' $STATE/gw-*.log"
  fi
}

stop() {
  local port pidfile pids=()
  for port in "${PORTS[@]}"; do
    pidfile="$STATE/gw-$port.pid"
    if alive "$pidfile"; then
      kill -TERM "$(cat "$pidfile")"
      pids+=("$pidfile")
    fi
  done
  [ ${#pids[@]} -gt 0 ] && say "draining ${#pids[@]} gateway(s)"
  local started=$SECONDS f
  for f in "${pids[@]}"; do
    # The drain takes at most DRAIN_TIMEOUT_S (30 s by default); past 120 s something is wrong.
    while alive "$f"; do
      if [ $((SECONDS - started)) -gt 120 ]; then
        say "$(basename "$f" .pid) still runs after 120 s; killing it"
        kill -KILL "$(cat "$f")" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
    rm -f "$f"
  done
  if alive "$STATE/haproxy.pid"; then kill -TERM "$(cat "$STATE/haproxy.pid")"; say "haproxy stopped"; fi
  rm -f "$STATE/haproxy.pid"
  say "stopped"
}

status() {
  local port rc=0 name pidfile
  for port in "${PORTS[@]}" "$FRONT_PORT"; do
    if [ "$port" = "$FRONT_PORT" ]; then name="haproxy :$port"; pidfile="$STATE/haproxy.pid"; else name="gateway :$port"; pidfile="$STATE/gw-$port.pid"; fi
    if alive "$pidfile"; then
      echo "$name  pid $(cat "$pidfile")  ready: $(probe "http://127.0.0.1:$port/health/ready")"
    else
      echo "$name  not running"
      rc=3
    fi
  done
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: bash scripts/fleet.sh start|stop|status" >&2
    exit 2
    ;;
esac
