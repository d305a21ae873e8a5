#!/bin/sh
# Runs the Paygress bench: installs wrk and h2load from Debian when they
# are missing, then hands every argument to bench/run.ts on the project's
# Node 24. See bench/README.md.
set -eu
cd "$(dirname "$0")/.."

missing=""
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v h2load >/dev/null 2>&1 || missing="$missing nghttp2-client"
[ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  # shellcheck disable=SC2086
  $sudo apt-get install -y --no-install-recommends $missing
fi

exec node_modules/.bin/node bench/run.ts "$@"
