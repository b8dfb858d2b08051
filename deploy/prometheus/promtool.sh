#!/bin/sh
# Prints the path of a promtool (Prometheus' own checker of configs, rules and rule tests), fetching one when
# there is none: the promtool on PATH, else .venv/bin/promtool, else the one in Debian's `prometheus` package,
# downloaded with apt-get (not installed: no service is set up) and copied to .venv/bin/promtool.
set -eu
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
checkout=$(cd "$(dirname "$0")/../.." && pwd)
target="$checkout/.venv/bin/promtool"
if [ -x "$target" ]; then echo "$target"; exit 0; fi
command -v apt-get >/dev/null 2>&1 || { echo "no promtool and no apt-get: install Prometheus' promtool" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download prometheus >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; } \
  || { echo "apt-get download prometheus failed: install Prometheus' promtool" >&2; exit 1; }
dpkg-deb -x prometheus_*.deb extracted
mkdir -p "$(dirname "$target")"
cp extracted/usr/bin/promtool "$target"
echo "$target"
