#!/usr/bin/env bash
# Renders a `check --html` report (or any page) to a PNG with headless Chromium, offline, as a
# person would see it: `bash scripts/screenshot-report.sh demo/check_report.html shot.png`.
# Needs Debian's chromium (`apt-get install chromium`); not part of the test suite.
set -euo pipefail
page="$(realpath "${1:?usage: screenshot-report.sh REPORT.html OUT.png [WIDTHxHEIGHT]}")"
out="$(realpath -m "${2:?usage: screenshot-report.sh REPORT.html OUT.png [WIDTHxHEIGHT]}")"
size="${3:-1300x2600}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "screenshot-report: no chromium found (Debian: apt-get install chromium)" >&2
  exit 2
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# No network at all: the report must not need it, and the background-networking flags keep
# Chromium from reaching out on its own.
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size="${size/x/,}" --screenshot="$out" "file://$page" \
  2> "$profile/stderr" || { cat "$profile/stderr" >&2; exit 1; }
test -s "$out"
echo "screenshot: $out"
