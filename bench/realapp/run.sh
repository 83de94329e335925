#!/usr/bin/env bash
# strata vs. BuildKit (docker 20.10) and buildah on real applications (python, node, c,
# rust) on a local Debian bookworm minbase base, all offline, all tools in the same run.
# Run bench/realapp/setup.sh once first (it downloads; this script does not).
#
#   bench/realapp/run.sh                          # all scenarios, all tools, cold warm touch
#   QUICK=1 SCENARIOS=python bench/realapp/run.sh
#   STRATA_ARGS="--compression none" TOOLS=strata bench/realapp/run.sh
#
# Cells are run back to back: for each scenario and mode, each run does strata, then
# BuildKit, then buildah, so the tools of one cell see the same machine load.
#   cold:  untimed reset (the tool's store emptied, the base image removed), then timed:
#          importing the base from $WORK/base/debian-minbase.tar plus the build
#          (strata load + strata build; docker load + docker build;
#           skopeo copy into buildah's store + buildah bud)
#   warm:  a rebuild with nothing changed (timed: the build)
#   touch: the app's source file gets a new comment line first (untimed), then the build
# See bench/README.md ("Real applications") for the rules and the latest table.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)   # <project>/bench/realapp
PROJECT=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-/var/tmp/strata-realapp}
SCENARIOS=${SCENARIOS:-"python node c rust"}
TOOLS=${TOOLS:-"strata buildkit buildah"}
MODES=${MODES:-"cold warm touch"}
if [ "${QUICK:-0}" = 1 ]; then
  RUNS_COLD=${RUNS_COLD:-1} RUNS_WARM=${RUNS_WARM:-1} RUNS_TOUCH=${RUNS_TOUCH:-1}
else
  RUNS_COLD=${RUNS_COLD:-2} RUNS_WARM=${RUNS_WARM:-3} RUNS_TOUCH=${RUNS_TOUCH:-3}
fi
if [ -z "${STRATA:-}" ]; then
  for c in "${CARGO_TARGET_DIR:-$PROJECT/target}/release/strata" "$(command -v strata || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && { STRATA=$c; break; }
  done
fi
STRATA_ROOT=${STRATA_ROOT:-$WORK/strata-root}
STRATA_ARGS=${STRATA_ARGS:-}
DOCKER=${DOCKER:-/usr/bin/docker}           # Debian docker.io 20.10 client, matches its dockerd
DOCKERD_DIR=${DOCKERD_DIR:-$WORK/dockerd}  # our own dockerd: socket, data root, exec root
DOCKER_HOST=unix://$DOCKERD_DIR/docker.sock
export DOCKER_HOST
BUILDAH_STORE=${BUILDAH_STORE:-$WORK/buildah-store}
RUNTIME=${RUNTIME:-/usr/bin/runc}           # crun 1.8.1 fails on this VM's hybrid cgroups
NETWORK=${NETWORK:-host}                    # RUN network for every tool (the builds are offline)
KEEP_STORES=${KEEP_STORES:-0}               # 1: leave each tool's images after the run (check-python.sh)
BASE_TAR=$WORK/base/debian-minbase.tar
BASE_NAME=localhost/strata-bench/debian:bookworm-minbase
OUT=${OUT:-$WORK/results/$(date +%Y%m%d-%H%M%S)-$$}
LOGS=$OUT/logs

# The file each scenario's touch mode changes, and its comment syntax.
touch_file() {
  case $1 in
    python) echo "app/app.py #" ;;
    node) echo "app/server.js //" ;;
    c) echo "src/hello.c //" ;;
    rust) echo "src/src/main.rs //" ;;
  esac
}

# ---------------------------------------------------------------------------
# dockerd: our own instance on our own socket and data root (never the system one)
# ---------------------------------------------------------------------------
start_dockerd() {
  mkdir -p "$DOCKERD_DIR"
  if [ -f "$DOCKERD_DIR/dockerd.pid" ] && kill -0 "$(cat "$DOCKERD_DIR/dockerd.pid")" 2>/dev/null; then
    return
  fi
  /usr/sbin/dockerd --data-root "$DOCKERD_DIR/root" --exec-root "$DOCKERD_DIR/exec" \
    --pidfile "$DOCKERD_DIR/dockerd.pid.own" --host "$DOCKER_HOST" \
    --storage-driver overlay2 --iptables=false --bridge=none \
    >"$DOCKERD_DIR/dockerd.log" 2>&1 &
  echo $! >"$DOCKERD_DIR/dockerd.pid"
  for _ in $(seq 1 150); do
    "$DOCKER" info >/dev/null 2>&1 && return
    sleep 0.2
  done
  echo "dockerd did not come up; see $DOCKERD_DIR/dockerd.log" >&2
  return 1
}
stop_dockerd() {
  local pid
  [ -f "$DOCKERD_DIR/dockerd.pid" ] || return 0
  pid=$(cat "$DOCKERD_DIR/dockerd.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$DOCKERD_DIR/dockerd.pid"
}

case ${1:-} in
  --start-dockerd) start_dockerd; echo "dockerd up: DOCKER_HOST=$DOCKER_HOST"; exit ;;
  --stop-dockerd) stop_dockerd; exit ;;
esac
STRATA=${STRATA:?no strata binary: cargo build --release, or set STRATA}

# ---------------------------------------------------------------------------
# the tools: reset (untimed), import of the base (timed in cold), build (timed)
# ---------------------------------------------------------------------------
BFLAGS=(--root "$BUILDAH_STORE/root" --runroot "$BUILDAH_STORE/run" --storage-driver overlay)

buildah_wipe() {
  if [ -d "$BUILDAH_STORE/root" ]; then
    buildah "${BFLAGS[@]}" rm --all >/dev/null 2>&1 || true
    buildah "${BFLAGS[@]}" rmi --all --force >/dev/null 2>&1 || true
    grep -o " $BUILDAH_STORE/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  fi
  rm -rf "$BUILDAH_STORE"
}

reset_tool() {   # $1 tool: empty its store and forget the base
  case $1 in
    strata) rm -rf "$STRATA_ROOT" ;;
    buildkit)
      "$DOCKER" image ls -q | sort -u | xargs -r "$DOCKER" rmi -f >/dev/null 2>&1 || true
      "$DOCKER" image prune -af >/dev/null
      "$DOCKER" builder prune -af >/dev/null ;;
    buildah) buildah_wipe ;;
  esac
}

import_base() {  # $1 tool: the timed part of cold that is not the build
  case $1 in
    strata) "$STRATA" --root "$STRATA_ROOT" load -q -i "$BASE_TAR" ;;
    buildkit) "$DOCKER" load -q -i "$BASE_TAR" ;;
    buildah) skopeo copy --quiet "docker-archive:$BASE_TAR" \
      "containers-storage:[overlay@$BUILDAH_STORE/root+$BUILDAH_STORE/run]$BASE_NAME" ;;
  esac
}

build() {        # $1 tool $2 scenario
  local ctx=$WORK/ctx/$2 tag=realapp/$2:latest
  case $1 in
    strata)
      # shellcheck disable=SC2086  # STRATA_ARGS: extra flags, split on purpose
      "$STRATA" --root "$STRATA_ROOT" build "$ctx" -f "$ctx/Dockerfile" -t "$tag" \
        --progress plain --metadata-file "$OUT/run/strata.$2.json" $STRATA_ARGS ;;
    buildkit)
      DOCKER_BUILDKIT=1 "$DOCKER" build --network "$NETWORK" --progress plain \
        -f "$ctx/Dockerfile" -t "$tag" "$ctx" ;;
    buildah)
        buildah "${BFLAGS[@]}" bud --runtime "$RUNTIME" --layers --jobs 4 --network "$NETWORK" \
        --pull=never -f "$ctx/Dockerfile" -t "$tag" "$ctx" ;;
  esac
}

has_image() {    # $1 tool $2 scenario: did the build leave the tagged image?
  case $1 in
    strata) [ -s "$OUT/run/strata.$2.json" ] && rm -f "$OUT/run/strata.$2.json" ;;
    buildkit) "$DOCKER" image inspect "realapp/$2:latest" >/dev/null 2>&1 ;;
    buildah) buildah "${BFLAGS[@]}" inspect --type image "realapp/$2:latest" >/dev/null 2>&1 ;;
  esac
}

touch_app() {    # $1 scenario: a new comment line at the end of the app's source
  local f c
  read -r f c <<<"$(touch_file "$1")"
  cp "$HERE/scenarios/$1/$f" "$WORK/ctx/$1/$f"
  printf '%s touch %s\n' "$c" "$(date +%s%N)" >>"$WORK/ctx/$1/$f"
}

# one timed run: prints seconds, appends them to the cell's file; the log gets the output
timed() {        # $1 tool $2 scenario $3 mode $4 run
  local t=$1 s=$2 m=$3 log=$LOGS/$1.$2.$3.$4.log t0 t1 rc=0
  t0=$EPOCHREALTIME
  if [ "$m" = cold ]; then
    { import_base "$t" && build "$t" "$s"; } >"$log" 2>&1 || rc=$?
  else
    build "$t" "$s" >"$log" 2>&1 || rc=$?
  fi
  t1=$EPOCHREALTIME
  if [ $rc -ne 0 ] || ! has_image "$t" "$s"; then
    echo "FAILED" >>"$OUT/$s.$t.$m"
    printf '  %-8s %-6s %-5s run %s FAILED (rc %s, see %s)\n' "$t" "$s" "$m" "$4" "$rc" "$log"
    return 1
  fi
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >>"$OUT/$s.$t.$m"
  printf '  %-8s %-6s %-5s run %s %8s s\n' "$t" "$s" "$m" "$4" "$(tail -1 "$OUT/$s.$t.$m")"
}

runs_of() { case $1 in cold) echo "$RUNS_COLD" ;; warm) echo "$RUNS_WARM" ;; touch) echo "$RUNS_TOUCH" ;; esac; }

run_scenario() { # $1 scenario
  local s=$1 m r t
  [ -d "$WORK/ctx/$s" ] || { echo "no context $WORK/ctx/$s: run bench/realapp/setup.sh" >&2; return 1; }
  cp "$HERE/scenarios/$s/$(touch_file "$s" | cut -d' ' -f1)" "$WORK/ctx/$s/$(touch_file "$s" | cut -d' ' -f1)"
  declare -A failed=()
  for m in $MODES; do
    for r in $(seq 1 "$(runs_of "$m")"); do
      [ "$m" = touch ] && touch_app "$s"
      for t in $TOOLS; do
        [ -n "${failed[$t]:-}" ] && { echo "skipped" >>"$OUT/$s.$t.$m"; continue; }
        if [ "$m" = cold ]; then reset_tool "$t" >/dev/null 2>&1; fi
        # warm: one untimed warm-up build after cold, so the first timed run is a true no-op
        if [ "$m" = warm ] && [ "$r" = 1 ]; then build "$t" "$s" >"$LOGS/$t.$s.warmup.log" 2>&1 || true; fi
        timed "$t" "$s" "$m" "$r" || failed[$t]=1
      done
    done
  done
  if [ "$KEEP_STORES" != 1 ]; then
    for t in $TOOLS; do reset_tool "$t" >/dev/null 2>&1 || true; done
  fi
}

# mean ±σ of a cell file; "FAILED"/"skipped"/"-" when there are no numbers
cell() {
  local f=$1
  [ -f "$f" ] || { echo "-"; return; }
  awk '/^[0-9.]+$/ { n++; s += $1; q += $1 * $1; next } { bad = $1 }
       END { if (n == 0) { print (bad != "" ? bad : "-"); exit }
             m = s / n; v = q / n - m * m; if (v < 0) v = 0
             printf "%.2f ±%.2f\n", m, sqrt(v) }' "$f"
}
mean() { awk '/^[0-9.]+$/ { n++; s += $1 } END { if (n) printf "%.6f\n", s / n }' "$1" 2>/dev/null; }
ratio() {
  local a b
  a=$(mean "$1"); b=$(mean "$2")
  if [ -n "$a" ] && [ -n "$b" ]; then awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3gx\n", a / b }'; else echo "-"; fi
}

print_table() {
  local s m
  printf '%-8s %-6s %15s %15s %15s %14s %14s\n' scenario mode "strata s" "buildkit s" "buildah s" \
    strata/buildkit strata/buildah
  for s in $SCENARIOS; do
    for m in $MODES; do
      printf '%-8s %-6s %15s %15s %15s %14s %14s\n' "$s" "$m" \
        "$(cell "$OUT/$s.strata.$m")" "$(cell "$OUT/$s.buildkit.$m")" "$(cell "$OUT/$s.buildah.$m")" \
        "$(ratio "$OUT/$s.strata.$m" "$OUT/$s.buildkit.$m")" "$(ratio "$OUT/$s.strata.$m" "$OUT/$s.buildah.$m")"
    done
  done
  echo "(seconds, mean ±σ over the runs; ratio of the means, < 1 means strata is faster;"
  echo " cold = base import + build into an empty store, warm = no change, touch = app source changed)"
}

# ---------------------------------------------------------------------------
[ -f "$BASE_TAR" ] || { echo "no $BASE_TAR: run bench/realapp/setup.sh first" >&2; exit 1; }
mkdir -p "$OUT/run" "$LOGS"
cleanup() {
  [ "${KEEP_DOCKERD:-0}" = 1 ] || stop_dockerd
}
trap cleanup EXIT
trap 'exit 130' INT TERM
case " $TOOLS " in *" buildkit "*) start_dockerd ;; esac
{
  echo "strata: $STRATA ($(cd "$PROJECT" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "STRATA_ARGS: ${STRATA_ARGS:-none}; network: $NETWORK; runs cold/warm/touch: $RUNS_COLD/$RUNS_WARM/$RUNS_TOUCH"
  "$DOCKER" version --format 'docker {{.Server.Version}}' 2>/dev/null || true
  buildah --version
  date -u '+%Y-%m-%d %H:%M UTC'
} | tee "$OUT/info.txt"
for s in $SCENARIOS; do
  echo "== $s"
  run_scenario "$s"
done
print_table | tee "$OUT/table.txt"
echo "results: $OUT"
