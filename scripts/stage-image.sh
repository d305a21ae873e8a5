#!/bin/sh
# Stages what the Paygress image holds into DIR, without a Docker engine:
# copies the paths the Dockerfile's COPY lines copy (read from the
# Dockerfile itself, so the two cannot drift apart), then installs the
# production dependencies there as the image build does.
#
#   scripts/stage-image.sh DIR
#
# DIR stands for the image's WORKDIR (/app). Lines with `COPY --from=` take
# a build stage's output (node_modules); the `npm ci` below makes it.
set -eu

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
  echo "usage: scripts/stage-image.sh DIR" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
dir=$(cd "$1" && pwd)
if [ -n "$(ls -A "$dir")" ]; then
  echo "stage-image: $dir is not empty" >&2
  exit 2
fi

# One COPY line to `sources... dest`, flags and --from lines dropped.
grep -E '^[[:space:]]*COPY[[:space:]]' "$root/Dockerfile" |
  grep -v -- '--from=' |
  sed -E 's/^[[:space:]]*COPY[[:space:]]+//; s/--[a-z-]+=[^[:space:]]+[[:space:]]+//g' |
  while read -r line; do
    set -- $line
    if [ "$#" -lt 2 ]; then
      echo "stage-image: cannot read COPY $line" >&2
      exit 1
    fi
    eval "dest=\${$#}"
    case "$dest" in
      /app/*) dest=${dest#/app/} ;;
      /app) dest=. ;;
      /*)
        echo "stage-image: COPY outside /app: $dest" >&2
        exit 1
        ;;
    esac
    target="$dir/$dest"
    count=$(($# - 1))
    i=0
    for src in "$@"; do
      i=$((i + 1))
      [ "$i" -gt "$count" ] && break
      if [ -d "$root/$src" ]; then
        # Docker copies a directory's contents into dest.
        mkdir -p "$target"
        cp -R "$root/$src/." "$target/"
      else
        case "$dest" in */) mkdir -p "$target" ;; esac
        cp "$root/$src" "$target"
      fi
      echo "staged $src -> /app/${dest#./}"
    done
  done

# The image runs npm on Node 24; use the project's Node 24 when present so
# install scripts run on the same major version.
if [ -x "$root/node_modules/node/bin/node" ]; then
  PATH="$root/node_modules/node/bin:$PATH"
  export PATH
fi
cd "$dir"
npm ci --omit=dev --no-audit --no-fund
