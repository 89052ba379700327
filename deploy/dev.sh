#!/usr/bin/env bash
# `make dev`: Herald's distributed mode without Docker. Builds the service binaries, creates
# the database if it is missing, applies each service's migrations, then runs auth,
# tasks-api, notifier and gateway as separate processes against local Redis and Postgres,
# with every log line prefixed by its service's name. When nginx is installed, it also runs
# the edge of deploy/nginx.conf on one port, so the web client reaches all four services.
# Ctrl-C (or SIGTERM) stops everything; if one service exits, the others are stopped too.
#
#   deploy/dev.sh [--release] [--no-build] [--no-web]
#
#   --no-web  do not build the web client when web/dist is missing
#
# Environment (defaults in brackets):
#   HERALD_DATABASE_URL  [postgres://postgres@127.0.0.1:5432/herald]
#   HERALD_REDIS_URL     [redis://127.0.0.1:6379]
#   HERALD_DEV_PROXY_PORT  port of the local nginx edge [8000]
#   HERALD_DEV_GATEWAY_PORT, HERALD_DEV_TASKS_API_PORT, HERALD_DEV_AUTH_PORT,
#   HERALD_DEV_NOTIFIER_PORT  the services' ports [8080, 8081, 8082, 8083]
#   HERALD_DRAIN_WINDOW  gateway drain on stop, seconds [2]
#   any other HERALD_* / RUST_LOG setting is passed to every service.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=dev
build=1
web=1
for arg in "$@"; do
  case "$arg" in
    --release) profile=release ;;
    --no-build) build=0 ;;
    --no-web) web=0 ;;
    -h | --help)
      sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
      exit 0
      ;;
    *)
      echo "dev.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

export HERALD_DATABASE_URL="${HERALD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/herald}"
export HERALD_REDIS_URL="${HERALD_REDIS_URL:-redis://127.0.0.1:6379}"
export HERALD_ENVIRONMENT="${HERALD_ENVIRONMENT:-development}"
export HERALD_API_KEY="${HERALD_API_KEY:-dev-api-key}"
export HERALD_DRAIN_WINDOW="${HERALD_DRAIN_WINDOW:-2}"
export HERALD_TRUSTED_PROXIES="${HERALD_TRUSTED_PROXIES:-127.0.0.1}"
export HERALD_WEB_DIR="${HERALD_WEB_DIR:-$PWD/web/dist}"
export RUST_LOG="${RUST_LOG:-info}"
proxy_port="${HERALD_DEV_PROXY_PORT:-8000}"

# Ports of the design (distributed mode defaults), overridable one by one.
declare -A PORT=(
  [gateway]="${HERALD_DEV_GATEWAY_PORT:-8080}"
  [tasks-api]="${HERALD_DEV_TASKS_API_PORT:-8081}"
  [auth]="${HERALD_DEV_AUTH_PORT:-8082}"
  [notifier]="${HERALD_DEV_NOTIFIER_PORT:-8083}"
)
SERVICES=(auth tasks-api notifier gateway)

say() { printf '\033[1m[dev]\033[0m %s\n' "$*" >&2; }
die() {
  printf '[dev] %s\n' "$*" >&2
  exit 1
}
for svc in "${!PORT[@]}"; do
  [[ "${PORT[$svc]}" =~ ^[0-9]+$ ]] || die "the $svc port must be a number, not '${PORT[$svc]}'"
done

# --- Redis and Postgres must be running -------------------------------------------------------
redis_hostport() {
  local rest="${HERALD_REDIS_URL#*://}"
  rest="${rest##*@}"
  rest="${rest%%/*}"
  rest="${rest%%\?*}"
  case "$rest" in *:*) echo "$rest" ;; *) echo "$rest:6379" ;; esac
}
redis_addr="$(redis_hostport)"
if command -v redis-cli >/dev/null 2>&1; then
  redis-cli -u "$HERALD_REDIS_URL" ping >/dev/null 2>&1 ||
    die "Redis does not answer at $HERALD_REDIS_URL (start one: redis-server --appendonly yes)"
elif ! (exec 3<>"/dev/tcp/${redis_addr%:*}/${redis_addr##*:}") 2>/dev/null; then
  die "nothing listens at $redis_addr for Redis (HERALD_REDIS_URL=$HERALD_REDIS_URL)"
fi

command -v psql >/dev/null 2>&1 || die "psql is needed to prepare the database (apt-get install postgresql-client)"
# The database named in the URL, and the same server's `postgres` database to create it from.
db_url_base="${HERALD_DATABASE_URL%%\?*}"
db_query=""
[[ "$HERALD_DATABASE_URL" == *\?* ]] && db_query="?${HERALD_DATABASE_URL#*\?}"
db_name="${db_url_base##*/}"
admin_url="${db_url_base%/*}/postgres${db_query}"
[[ "$db_name" =~ ^[A-Za-z0-9_-]+$ ]] || die "cannot read a database name from HERALD_DATABASE_URL"
pg_isready -q -d "$admin_url" 2>/dev/null || psql "$admin_url" -qtAc 'SELECT 1' >/dev/null 2>&1 ||
  die "Postgres does not answer at ${admin_url%%\?*} (pg_ctlcluster <version> main start)"
if [ "$(psql "$admin_url" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$db_name'")" != 1 ]; then
  say "creating database $db_name"
  psql "$admin_url" -qc "CREATE DATABASE \"$db_name\"" >/dev/null
fi

# --- build --------------------------------------------------------------------------------------------
target_dir="${CARGO_TARGET_DIR:-target}"
if [ "$profile" = release ]; then bin="$target_dir/release"; else bin="$target_dir/debug"; fi
if [ "$build" = 1 ]; then
  say "cargo build ($profile)"
  cargo_args=(build -p herald-auth -p herald-tasks-api -p herald-notifier -p herald-gateway)
  [ "$profile" = release ] && cargo_args+=(--release)
  cargo "${cargo_args[@]}"
fi
for svc in "${SERVICES[@]}"; do
  [ -x "$bin/herald-$svc" ] || die "$bin/herald-$svc is missing (run without --no-build)"
done

if [ "$web" = 1 ] && [ -f web/package.json ] && [ ! -f "$HERALD_WEB_DIR/index.html" ]; then
  if command -v npm >/dev/null 2>&1; then
    say "building the web client (web/dist)"
    (cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)
  else
    say "npm not found: the gateway will serve no web client"
  fi
fi

# --- migrations ----------------------------------------------------------------------------------------
say "migrating $db_name"
"$bin/herald-auth" migrate
"$bin/herald-tasks-api" migrate

# --- run ---------------------------------------------------------------------------------------------------
pids=()
names=()
tmp="$(mktemp -d)"
stopping=0

if [ -t 1 ]; then
  declare -A COLOR=([auth]=35 [tasks-api]=33 [notifier]=36 [gateway]=32 [nginx]=34)
else
  declare -A COLOR=()
fi
prefix() {
  local name="$1" label
  label="$(printf '%-9s' "$name")"
  if [ -n "${COLOR[$name]:-}" ]; then
    sed -u "s/^/\x1b[${COLOR[$name]}m[${label}]\x1b[0m /"
  else
    sed -u "s/^/[${label}] /"
  fi
}

stop_all() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap - INT TERM
  say "stopping ${names[*]}"
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Give the gateway its drain window plus a margin, then insist.
  local deadline=$((SECONDS + HERALD_DRAIN_WINDOW + 10))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

start() {
  local name="$1"
  shift
  "$@" > >(prefix "$name") 2>&1 &
  pids+=("$!")
  names+=("$name")
}

for svc in "${SERVICES[@]}"; do
  start "$svc" env HERALD_LISTEN="127.0.0.1:${PORT[$svc]}" "$bin/herald-$svc"
done

nginx_bin="$(command -v nginx || true)"
[ -z "$nginx_bin" ] && [ -x .venv/opt/usr/sbin/nginx ] && nginx_bin="$PWD/.venv/opt/usr/sbin/nginx"
if [ -n "$nginx_bin" ]; then
  deploy/nginx-local.sh "$tmp/nginx" "127.0.0.1:$proxy_port" \
    "127.0.0.1:${PORT[gateway]}" "127.0.0.1:${PORT[auth]}" "127.0.0.1:${PORT[tasks-api]}"
  start nginx "$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e stderr \
    -g "daemon off; pid $tmp/nginx/nginx.pid;"
  entry="http://127.0.0.1:$proxy_port"
else
  entry=""
fi

say "running: auth :${PORT[auth]}, tasks-api :${PORT[tasks-api]}, notifier :${PORT[notifier]}, gateway :${PORT[gateway]}"
if [ -n "$entry" ]; then
  say "open $entry (nginx routes /auth, /tasks and the gateway's paths as in production)"
else
  say "nginx not found: the web client needs one origin for all services; install nginx"
  say "(apt-get install nginx) or run 'make compose-check' once to unpack it into .venv/opt"
fi
say "Ctrl-C stops everything"

# If any process ends, report it and stop the rest.
status=0
wait -n -p ended "${pids[@]}" || status=$?
if [ "$stopping" = 0 ]; then
  for i in "${!pids[@]}"; do
    [ "${pids[$i]}" = "${ended:-}" ] && say "${names[$i]} exited (status $status); stopping the others"
  done
  stop_all
  exit "$((status == 0 ? 1 : status))"
fi
