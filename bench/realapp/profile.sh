#!/usr/bin/env bash
# Where strata's time goes on the real-app scenarios (not a comparison table; run.sh is).
# For each scenario, a copy of its context gets an instrumented Dockerfile in which every
# RUN prints how long its own command took (profile.py instrument). Then, cold (empty
# store), one build per compression in $COMPRESSIONS, each under /usr/bin/time -v:
#   strata load of the base (timed), strata build --compression C --progress plain;
# and, with PEER=1, the same instrumented Dockerfile with BuildKit (docker load + build).
# Per step it prints the tool's time, the command's own time and the difference (what
# the tool spends around the command), plus strata's peak RSS.
#
#   bench/realapp/profile.sh
#   SCENARIOS="node c" COMPRESSIONS="gzip none zstd" PEER=1 bench/realapp/profile.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-/var/tmp/strata-realapp}
SCENARIOS=${SCENARIOS:-"python node c rust"}
COMPRESSIONS=${COMPRESSIONS:-"gzip none"}
PEER=${PEER:-0}
if [ -z "${STRATA:-}" ]; then
  for c in "${CARGO_TARGET_DIR:-$PROJECT/target}/release/strata" "$(command -v strata || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && { STRATA=$c; break; }
  done
fi
STRATA=${STRATA:?no strata binary: cargo build --release, or set STRATA}
DOCKER=${DOCKER:-/usr/bin/docker}
export DOCKER_HOST=unix://$WORK/dockerd/docker.sock
OUT=${OUT:-$WORK/results/profile-$(date +%Y%m%d-%H%M%S)-$$}
ROOT=$WORK/profile-root
BASE_TAR=$WORK/base/debian-minbase.tar
mkdir -p "$OUT"

started=0
if [ "$PEER" = 1 ] && ! "$DOCKER" info >/dev/null 2>&1; then "$HERE/run.sh" --start-dockerd >/dev/null; started=1; fi
# shellcheck disable=SC2317  # called by the trap
cleanup() {
  rm -rf "$ROOT" "$WORK/profile-ctx"
  if [ "$started" = 1 ]; then "$HERE/run.sh" --stop-dockerd; fi
}
trap cleanup EXIT

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
for s in $SCENARIOS; do
  cx=$WORK/profile-ctx/$s
  rm -rf "$cx"; mkdir -p "$WORK/profile-ctx"
  cp -al "$WORK/ctx/$s" "$cx"
  rm "$cx/Dockerfile"
  python3 "$HERE/profile.py" instrument "$WORK/ctx/$s/Dockerfile" >"$cx/Dockerfile"
  for c in $COMPRESSIONS; do
    rm -rf "$ROOT"
    log=$OUT/$s.strata.$c.log
    t0=$EPOCHREALTIME
    "$STRATA" --root "$ROOT" load -q -i "$BASE_TAR" >/dev/null
    t1=$EPOCHREALTIME
    /usr/bin/time -v -o "$OUT/$s.strata.$c.time" "$STRATA" --root "$ROOT" build "$cx" -f "$cx/Dockerfile" \
      -t "profile/$s:latest" --progress plain --compression "$c" >"$log" 2>&1
    t2=$EPOCHREALTIME
    echo "== $s strata --compression $c: load $(secs "$t0" "$t1") s, build $(secs "$t1" "$t2") s," \
      "peak RSS $(awk -F': ' '/Maximum resident/ { printf "%.0f MiB", $2 / 1024 }' "$OUT/$s.strata.$c.time")"
    python3 "$HERE/profile.py" report "$log"
  done
  if [ "$PEER" = 1 ]; then
    "$DOCKER" image ls -q | sort -u | xargs -r "$DOCKER" rmi -f >/dev/null 2>&1 || true
    "$DOCKER" builder prune -af >/dev/null
    log=$OUT/$s.buildkit.log
    t0=$EPOCHREALTIME
    "$DOCKER" load -q -i "$BASE_TAR" >/dev/null
    t1=$EPOCHREALTIME
    DOCKER_BUILDKIT=1 "$DOCKER" build --network host --progress plain -t "profile/$s:latest" "$cx" >"$log" 2>&1
    t2=$EPOCHREALTIME
    echo "== $s BuildKit: load $(secs "$t0" "$t1") s, build $(secs "$t1" "$t2") s"
    python3 "$HERE/profile.py" report "$log"
    "$DOCKER" image ls -q | sort -u | xargs -r "$DOCKER" rmi -f >/dev/null 2>&1 || true
    "$DOCKER" builder prune -af >/dev/null
  fi
done 2>&1 | tee "$OUT/profile.txt"
echo "results: $OUT"
