#!/usr/bin/env bash
# Writes a copy of deploy/nginx.conf that runs without Docker: one gateway, auth and tasks-api
# on local addresses, a local listen port, and every writable path inside OUTDIR.
#
#   deploy/nginx-local.sh OUTDIR [LISTEN] [GATEWAY] [AUTH] [TASKS]
#   nginx -p OUTDIR -c OUTDIR/nginx.conf -g "daemon off; pid OUTDIR/nginx.pid;"
#
# Defaults: LISTEN 127.0.0.1:8000, GATEWAY 127.0.0.1:8080, AUTH 127.0.0.1:8082,
# TASKS 127.0.0.1:8081. Used by `make dev` (deploy/dev.sh) and by `make compose-check`
# (nginx -t on the routing).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: nginx-local.sh OUTDIR [LISTEN] [GATEWAY] [AUTH] [TASKS]}"
listen="${2:-127.0.0.1:8000}"
gateway="${3:-127.0.0.1:8080}"
auth="${4:-127.0.0.1:8082}"
tasks="${5:-127.0.0.1:8081}"

mkdir -p "$out/logs" "$out/tmp"
# When nginx starts as root its workers run as an unprivileged user and must reach OUTDIR.
chmod 755 "$out" "$out/logs" "$out/tmp"

sed -E \
  -e "s#^worker_processes .*#worker_processes 1;#" \
  -e "s#server gateway-1:8080#server ${gateway}#" \
  -e "/server gateway-2:8080/d" \
  -e "s#server auth:8082;#server ${auth};#" \
  -e "s#server tasks-api:8081;#server ${tasks};#" \
  -e "s#^( +)listen 80;#\\1listen ${listen};#" \
  -e "/listen \\[::\\]:80;/d" \
  -e "s#^http \\{#http {\\n    client_body_temp_path ${out}/tmp/body;\\n    proxy_temp_path ${out}/tmp/proxy;\\n    fastcgi_temp_path ${out}/tmp/fastcgi;\\n    uwsgi_temp_path ${out}/tmp/uwsgi;\\n    scgi_temp_path ${out}/tmp/scgi;#" \
  "$here/nginx.conf" >"$out/nginx.conf"

# The substitutions must all have happened, or the copy would silently route elsewhere.
for expected in "server ${gateway}" "server ${auth};" "server ${tasks};" "listen ${listen};" "proxy_temp_path"; do
  grep -qF "$expected" "$out/nginx.conf" || {
    echo "nginx-local.sh: deploy/nginx.conf no longer matches (missing: $expected)" >&2
    exit 1
  }
done
if grep -qE 'gateway-2|server (auth|tasks-api|gateway-1):' "$out/nginx.conf"; then
  echo "nginx-local.sh: a compose host name is left in $out/nginx.conf" >&2
  exit 1
fi
