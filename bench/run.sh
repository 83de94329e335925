#!/usr/bin/env bash
# strata vs. buildah and BuildKit on the peer benchmark scenarios, all tools in the
# same run: the full scenarios (with their RUN steps, network none) and COPY-only
# variants of them. Run by hand (it is not a test):
#
#   bench/run.sh                                   # all scenarios, both variants, default runs
#   VARIANT=full QUICK=1 bench/run.sh              # only the full scenarios (copy | full | both)
#   QUICK=1 SCENARIOS="deep-chain multistage-parallel" bench/run.sh
#   STRATA=target/release/strata bench/run.sh
#   bench/run.sh --clean                           # remove the work dir (contexts, images, results)
#
# The peer scripts come from ../shared/bench (relative to the project root, read-only);
# they are copied into the work dir $WORK (default /var/tmp/strata-bench) at every run
# and used from there. Everything generated (contexts, base images, stores, logs,
# results) lives under $WORK or /var/tmp; nothing is written into the project.
# See bench/README.md for the columns and the rules the numbers follow.
set -euo pipefail

WORK=${WORK:-/var/tmp/strata-bench}

# ---------------------------------------------------------------------------
# strata's actions, called by the timing loop (hyperfine or the fallback) as
#   run.sh --action strata ACTION SCENARIO
# Kept at the top so a timed call does as little as possible before the build:
# no subshell or external command before strata is exec'd (a fork costs about
# a millisecond here, which shows in the ~10 ms warm builds).
# ---------------------------------------------------------------------------
strata_action() {
  local action=$1 s=$2
  local vdir=$WORK/scenarios/$s
  local log=$WORK/logs/strata.$s.log
  [ -d "$WORK/logs" ] || mkdir -p "$WORK/logs"
  case $action in
    build)
      local -a args=(--root "$STRATA_ROOT" build "$vdir/context" -f "$vdir/$STRATA_SPEC"
        -t "bench/$s:latest" --progress plain --metadata-file "$WORK/run/strata.$s.metadata.json")
      [ -n "${STRATA_JOBS:-}" ] && args+=(--jobs "$STRATA_JOBS")
      # STRATA_ARGS: extra flags, word-split on purpose
      # shellcheck disable=SC2206
      [ -n "${STRATA_ARGS:-}" ] && args+=($STRATA_ARGS)
      # STRATA_RSS=1: each build's peak RSS (KiB, the kernel's ru_maxrss) is
      # appended to $WORK/run/strata.<scenario>.rss by GNU time (one more exec).
      if [ "${STRATA_RSS:-0}" = 1 ]; then
        exec /usr/bin/time -a -o "$WORK/run/strata.$s.rss" -f %M "$STRATA" "${args[@]}" >>"$log" 2>&1
      fi
      exec "$STRATA" "${args[@]}" >>"$log" 2>&1 ;;
    reset)
      rm -rf "$STRATA_ROOT"
      if [ -n "${STRATA_IMPORT:-}" ]; then eval "$STRATA_IMPORT" >>"$log" 2>&1; fi ;;
    wipe)
      rm -rf "$STRATA_ROOT" ;;
    touch)
      date +%s%N >"$vdir/context/last/stamp" ;;
    *) echo "unknown strata action: $action" >&2; return 2 ;;
  esac
}

# Peer actions: the peers' own lib/peer.sh (copied into $WORK). With a FROM scratch
# base (no busybox image could be made) the peers' reset, which re-imports the base,
# is replaced by emptying the store.
peer_action() {
  local peer=$1 action=$2 s=$3
  if [ "$peer" = strata ]; then strata_action "$action" "$s"; return; fi
  if [ "$action" = reset ] && [ "${BASE_MODE:-busybox}" = scratch ]; then
    case $peer in
      docker-buildkit)
        local d=${DOCKER:-/usr/bin/docker}
        $d image ls -q "bench/$s" | xargs -r "$d" rmi -f >/dev/null 2>&1 || true
        $d image prune -f >/dev/null && $d builder prune -af >/dev/null
        return ;;
      *) action=wipe ;;
    esac
  fi
  "$WORK/lib/peer.sh" "$peer" "$action" "$s"
}

if [ "${1:-}" = --action ]; then
  shift
  peer_action "$@"
  exit
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)   # <project>/bench
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")

if [ "${1:-}" = --clean ]; then
  [ -f "$WORK/run/dockerd.pid" ] && kill -0 "$(cat "$WORK/run/dockerd.pid")" 2>/dev/null &&
    { echo "dockerd started by a bench run is still running (pid $(cat "$WORK/run/dockerd.pid")): stop it first" >&2; exit 1; }
  rm -rf "$WORK"
  echo "removed $WORK"
  exit 0
fi

# ---------------------------------------------------------------------------
# Knobs (environment)
# ---------------------------------------------------------------------------
PROJECT=$(cd "$HERE/.." && pwd)
PEER_SRC=${PEER_SRC:-$PROJECT/../shared/bench}
ALL_SCENARIOS="many-small-files big-file multistage-parallel deep-chain"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
PEERS=${PEERS-"buildah-overlay docker-buildkit"}   # PEERS="" : strata only
MODES=${MODES:-"cold warm touch"}
if [ "${QUICK:-0}" = 1 ]; then
  RUNS_COLD=${RUNS_COLD:-1} RUNS_WARM=${RUNS_WARM:-1} RUNS_TOUCH=${RUNS_TOUCH:-1}
else
  RUNS_COLD=${RUNS_COLD:-3} RUNS_WARM=${RUNS_WARM:-5} RUNS_TOUCH=${RUNS_TOUCH:-3}
fi
VARIANT=${VARIANT:-both}               # copy | full | both
case $VARIANT in
  copy) VARIANTS=copy ;; full) VARIANTS=full ;; both) VARIANTS="full copy" ;;
  *) echo "unknown VARIANT: $VARIANT (copy | full | both)" >&2; exit 2 ;;
esac
BASE=${BASE:-busybox}                  # busybox | scratch (forces FROM scratch)
STRATA_ROOT=${STRATA_ROOT:-$WORK/strata-root}
STRATA_SPEC=${STRATA_SPEC:-strata.toml} # or Dockerfile: strata builds the Dockerfile variant
STRATA_JOBS=${STRATA_JOBS:-}            # empty: strata's default
STRATA_ARGS=${STRATA_ARGS:-}
STRATA_IMPORT=${STRATA_IMPORT:-}        # command run after `rm -rf $STRATA_ROOT` in cold (not timed)
STRATA_VERIFY=${STRATA_VERIFY:-1}       # check that a "successful" strata build produced an image
STRATA_RSS=${STRATA_RSS:-1}             # 1: record strata's peak RSS per cell (needs /usr/bin/time)
KEEP_DOCKERD=${KEEP_DOCKERD:-0}         # 1: leave a dockerd started here running
REGEN=${REGEN:-0}                       # 1: regenerate the contexts
USE_HYPERFINE=${USE_HYPERFINE:-1}
OUT=${OUT:-$WORK/results/$(date +%Y%m%d-%H%M%S)-$$}
DOCKER=${DOCKER:-/usr/bin/docker}       # the Debian docker.io CLI (matches dockerd 20.10)

if [ -z "${STRATA:-}" ]; then
  tdir=${CARGO_TARGET_DIR:-$PROJECT/target}
  for c in "$tdir/release/strata" "$(command -v strata || true)" "$tdir/debug/strata"; do
    [ -n "$c" ] && [ -x "$c" ] && { STRATA=$c; break; }
  done
  STRATA=${STRATA:-strata}
fi
case $STRATA in  # absolute, since the timed commands run from another directory
  /*) ;;
  */*) [ -d "$(dirname "$STRATA")" ] && STRATA=$(cd "$(dirname "$STRATA")" && pwd)/$(basename "$STRATA") ;;
esac

for s in $SCENARIOS; do
  [[ " $ALL_SCENARIOS " == *" $s "* ]] || { echo "unknown scenario: $s (known: $ALL_SCENARIOS)" >&2; exit 2; }
done
[ -d "$PEER_SRC/lib" ] || { echo "peer scripts not found at $PEER_SRC (set PEER_SRC)" >&2; exit 1; }
PEER_SRC=$(cd "$PEER_SRC" && pwd -P)
command -v jq >/dev/null || { echo "jq is needed: apt-get install -y jq" >&2; exit 1; }

mkdir -p "$WORK" "$OUT"
NOTES=()
note() { NOTES+=("$*"); echo "note: $*" >&2; }
rss_mib() { awk '{ printf "%.0f", $1 / 1024 }' "$1"; }   # a file holding KiB -> MiB

# ---------------------------------------------------------------------------
# Work dir: a fresh copy of the peer scripts (never the generated folders)
# ---------------------------------------------------------------------------
tar -C "$PEER_SRC" --exclude=./data --exclude=./images --exclude=./results --exclude=./logs \
  --exclude=./run --exclude='./scenarios/*/context' -cf - . | tar -C "$WORK" --no-same-owner -xf -
chmod u+w "$WORK"   # the shared folder is read-only, and tar copies the mode of .
chmod -R u+w "$WORK/lib" "$WORK/scenarios" "$WORK/base" "$WORK/registry"
chmod u+w "$WORK"/*.sh
mkdir -p "$WORK/logs" "$WORK/run"

# ---------------------------------------------------------------------------
# Peers available?
# ---------------------------------------------------------------------------
STARTED_DOCKERD=0
cleanup() {
  if [ "$STARTED_DOCKERD" = 1 ] && [ "$KEEP_DOCKERD" != 1 ] && [ -f "$WORK/run/dockerd.pid" ]; then
    local pid
    pid=$(cat "$WORK/run/dockerd.pid")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && echo "dockerd (pid $pid) still stopping" >&2 || echo "stopped dockerd (pid $pid)"
    fi
    rm -f "$WORK/run/dockerd.pid"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

drop_peer() { PEERS=$(echo " $PEERS " | sed "s/ $1 / /g; s/^ *//; s/ *$//"); }

for p in $PEERS; do
  case $p in
    buildah-overlay|buildah-vfs)
      if ! command -v buildah >/dev/null || ! command -v skopeo >/dev/null; then
        note "$p skipped: buildah/skopeo not installed"; drop_peer "$p"
      fi ;;
    podman) command -v podman >/dev/null || { note "podman skipped: not installed"; drop_peer podman; } ;;
    docker-buildkit)
      if "$DOCKER" info >/dev/null 2>&1; then
        echo "docker-buildkit: using the dockerd already answering on /var/run/docker.sock"
      elif [ ! -x /usr/sbin/dockerd ] || [ ! -x "$DOCKER" ]; then
        note "docker-buildkit skipped: dockerd not installed (apt-get install -y docker.io containerd)"
        drop_peer docker-buildkit
      elif "$WORK/start-dockerd.sh"; then
        STARTED_DOCKERD=1
      else
        note "docker-buildkit skipped: dockerd did not start: $(tail -n 3 "$WORK/logs/dockerd.log" 2>/dev/null | tr '\n' ' ')"
        if [ -f "$WORK/run/dockerd.pid" ]; then kill "$(cat "$WORK/run/dockerd.pid")" 2>/dev/null || true; fi
        rm -f "$WORK/run/dockerd.pid"
        drop_peer docker-buildkit
      fi ;;
    *) echo "unknown peer: $p (buildah-overlay buildah-vfs podman docker-buildkit)" >&2; exit 2 ;;
  esac
done
TOOLS="strata $PEERS"
[ "${SKIP_STRATA:-0}" = 1 ] && TOOLS=$PEERS   # only the peers (bench/rootless.sh runs them apart)

# ---------------------------------------------------------------------------
# Base image: busybox:1 as OCI layout (strata, buildah) and docker-archive (docker),
# made by the peers' make-base-images.sh in a private containers-storage under $WORK.
# ---------------------------------------------------------------------------
BASE_OCI=$WORK/images/busybox-oci
BASE_MODE=busybox
if [ "$BASE" = scratch ]; then
  BASE_MODE=scratch
elif [ ! -f "$BASE_OCI/index.json" ] || [ ! -f "$WORK/images/busybox-docker-archive.tar" ]; then
  echo "making the busybox base image (log: $WORK/logs/make-base-images.log)"
  mkdir -p "$WORK/base-store"
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' \
    "$WORK/base-store/root" "$WORK/base-store/run" >"$WORK/base-store/storage.conf"
  if ! CONTAINERS_STORAGE_CONF=$WORK/base-store/storage.conf "$WORK/make-base-images.sh" \
      >"$WORK/logs/make-base-images.log" 2>&1 || [ ! -f "$BASE_OCI/index.json" ]; then
    BASE_MODE=scratch
    note "busybox base image could not be made ($(tail -n 2 "$WORK/logs/make-base-images.log" | tr '\n' ' ')): every tool builds FROM scratch"
  fi
fi
[ "$BASE_MODE" = scratch ] && [ "$BASE" = scratch ] && note "BASE=scratch: every tool builds FROM scratch"
if [ "$BASE_MODE" = scratch ] && [[ " $VARIANTS " == *" full "* ]]; then
  VARIANTS=$(echo " $VARIANTS " | sed 's/ full / /; s/^ *//; s/ *$//')
  note "full scenarios skipped: their RUN steps need the busybox base"
  [ -n "$VARIANTS" ] || { echo "nothing to run" >&2; exit 1; }
fi
export BASE_MODE

# ---------------------------------------------------------------------------
# Scenario variants: Dockerfile + strata.toml from bench/scenarios, contexts made by
# the peers' gen-context.sh, plus what the COPY-only variants need in addition.
# ---------------------------------------------------------------------------
prepare_variant() {  # scenario -> $WORK/scenarios/<scenario>-copy
  local s=$1 v=$WORK/scenarios/$1-copy
  mkdir -p "$v"
  if [ "$BASE_MODE" = scratch ]; then
    sed 's|^FROM localhost:5000/busybox:1|FROM scratch|' "$HERE/scenarios/$s/Dockerfile" >"$v/Dockerfile"
    sed -E 's|^from = \{ oci = "[^"]*", ref = "1" \}|from = "scratch"|' "$HERE/scenarios/$s/strata.toml" >"$v/strata.toml"
  else
    cp "$HERE/scenarios/$s/Dockerfile" "$v/Dockerfile"
    sed -E "s|oci = \"/var/tmp/strata-bench/images/busybox-oci\"|oci = \"$BASE_OCI\"|" \
      "$HERE/scenarios/$s/strata.toml" >"$v/strata.toml"
  fi
  if [ "$REGEN" = 1 ] || [ ! -f "$v/context.ok" ]; then
    echo "generating the context of $s (log: $WORK/logs/gen-context.$s.log)"
    rm -rf "$v/context" "$v/context.ok"
    "$WORK/scenarios/$s/gen-context.sh" >"$WORK/logs/gen-context.$s.log" 2>&1
    mv "$WORK/scenarios/$s/context" "$v/context"
    case $s in
      multistage-parallel)   # each stage copies its own subdirectory stageN/
        local i
        for i in 1 2 3 4; do
          mkdir -p "$v/context/stage$i"
          echo "stage$i" >"$v/context/stage$i/id"
          printf 'stage%s %s\n' "$i" "$(printf 'stage%s\n' "$i" | sha256sum | cut -d' ' -f1)" >"$v/context/stage$i/out$i"
        done
        find "$v/context" -exec touch -h -d @1700000000 {} + ;;
    esac
    touch "$v/context.ok"
    rm -f "$WORK/scenarios/$s-full/context.ok"
  fi
  if [[ " $VARIANTS " == *" full "* ]]; then prepare_full "$s"; fi
  reset_stamp "$s"
}
# The full variant: the peers' own Dockerfile (with its RUN steps) and
# bench/scenarios/<scenario>/strata.full.toml, on a hard-linked copy of the same
# context (no second 1 GiB file; `touch` rewrites the shared stamp in place).
prepare_full() {  # scenario -> $WORK/scenarios/<scenario>-full
  local s=$1 v=$WORK/scenarios/$1-full
  mkdir -p "$v"
  cp "$WORK/scenarios/$s/Dockerfile" "$v/Dockerfile"
  sed -E "s|oci = \"/var/tmp/strata-bench/images/busybox-oci\"|oci = \"$BASE_OCI\"|" \
    "$HERE/scenarios/$s/strata.full.toml" >"$v/strata.toml"
  if [ ! -f "$v/context.ok" ]; then
    rm -rf "$v/context"
    cp -al "$WORK/scenarios/$s-copy/context" "$v/context"
    touch "$v/context.ok"
  fi
}
reset_stamp() {
  local c=$WORK/scenarios/$1-copy/context/last
  echo "stamp 0" >"$c/stamp"; touch -h -d @1700000000 "$c/stamp"
}

# ---------------------------------------------------------------------------
# Timing: hyperfine when installed, else a simple loop writing the same JSON fields
# ---------------------------------------------------------------------------
if [ "$STRATA_RSS" = 1 ] && [ ! -x /usr/bin/time ]; then
  STRATA_RSS=0; note "no peak RSS column: /usr/bin/time (GNU time) is not installed"
fi
HAVE_HYPERFINE=0
if [ "$USE_HYPERFINE" = 1 ] && command -v hyperfine >/dev/null; then HAVE_HYPERFINE=1; fi
export WORK STRATA STRATA_ROOT STRATA_SPEC STRATA_JOBS STRATA_ARGS STRATA_IMPORT STRATA_RSS DOCKER

loop_time() {  # runs warmup prepare(or "") build json name
  local runs=$1 warmup=$2 prepare=$3 build=$4 json=$5 name=$6 i t0 t1 times=()
  for ((i = 0; i < warmup; i++)); do bash -c "$build" || return 1; done
  for ((i = 0; i < runs; i++)); do
    if [ -n "$prepare" ]; then bash -c "$prepare" || return 1; fi
    t0=$(date +%s%N)
    bash -c "$build" || return 1
    t1=$(date +%s%N)
    times+=("$(( t1 - t0 ))")
    echo "  run $((i + 1)): $(awk -v n="$(( t1 - t0 ))" 'BEGIN{printf "%.3f s", n/1e9}')"
  done
  printf '%s\n' "${times[@]}" | awk -v name="$name" '
    { t[NR] = $1 / 1e9; s += t[NR]; if (NR == 1 || t[NR] < mn) mn = t[NR]; if (t[NR] > mx) mx = t[NR] }
    END { m = s / NR; v = 0; for (i = 1; i <= NR; i++) v += (t[i] - m)^2
          sd = (NR > 1) ? sqrt(v / (NR - 1)) : 0
          printf "{\"results\":[{\"command\":\"%s\",\"mean\":%.6f,\"stddev\":%.6f,\"min\":%.6f,\"max\":%.6f,\"times\":[", name, m, sd, mn, mx
          for (i = 1; i <= NR; i++) printf "%s%.6f", (i > 1 ? "," : ""), t[i]
          printf "]}]}\n" }' >"$json"
  printf '  Time (mean ± σ): %s s\n' "$(cell "$json")"
}

run_mode() {  # tool scenario mode json
  local tool=$1 s=$2 mode=$3 json=$4 build prep runs warmup=0
  if [ "$tool" = strata ]; then
    build="$(printf '%q' "$SELF") --action strata build $s"
    prep="$(printf '%q' "$SELF") --action strata"
  else
    build="$WORK/lib/peer.sh $tool build $s"
    prep="$(printf '%q' "$SELF") --action $tool"
  fi
  case $mode in
    cold)  runs=$RUNS_COLD; prep="$prep reset $s" ;;
    warm)  runs=$RUNS_WARM; warmup=1; prep="" ;;
    touch) runs=$RUNS_TOUCH; prep="$prep touch $s"
           bash -c "$build" || return 1 ;;   # the cache holds the current state first
  esac
  # Only the timed builds (and hyperfine's warmup) count towards the peak.
  [ "$tool" = strata ] && rm -f "$WORK/run/strata.$s.rss"
  if [ "$HAVE_HYPERFINE" = 1 ]; then
    local -a hf=(hyperfine --style basic --runs "$runs" --warmup "$warmup" --export-json "$json" -n "$tool/$s/$mode")
    [ -n "$prep" ] && hf+=(--prepare "$prep")
    "${hf[@]}" "$build"
  else
    loop_time "$runs" "$warmup" "$prep" "$build" "$json" "$tool/$s/$mode"
  fi
}

# A strata build that exits 0 must also have produced an image: the metadata file
# or a tag in the store's index.json (strata's CLI is young; this keeps a stub honest).
strata_verify() {  # variant (<scenario>-copy | <scenario>-full)
  local tag=bench/$1:latest meta=$WORK/run/strata.$1.metadata.json
  [ "$STRATA_VERIFY" = 1 ] || return 0
  [ -s "$meta" ] && return 0
  [ -f "$STRATA_ROOT/index.json" ] && jq -e --arg t "$tag" \
    '[.manifests[]?.annotations["org.opencontainers.image.ref.name"]?] | any(. == $t or . == "latest")' \
    "$STRATA_ROOT/index.json" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------
{
  echo "# strata bench $(date -Is) $(uname -r) $(nproc) cores; variants: $VARIANTS of $PEER_SRC/scenarios"
  echo "project: $PROJECT ($(git -C "$PROJECT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  if [ -x "$STRATA" ] || command -v "$STRATA" >/dev/null 2>&1; then
    echo "strata: $STRATA ($("$STRATA" --version 2>/dev/null | head -n 1 | grep . || echo 'no --version'))"
    case $STRATA in */debug/*) echo "WARNING: strata is a debug build: its times are not representative" ;; esac
  else
    echo "strata: $STRATA not found (set STRATA=path/to/strata): its cells will be FAILED"
  fi
  for p in $PEERS; do case $p in
    buildah-*) buildah --version ;;
    podman) podman --version ;;
    docker-buildkit) "$DOCKER" version --format 'docker client {{.Client.Version}} / dockerd {{.Server.Version}} (BuildKit)' 2>/dev/null || true ;;
  esac; done | sort -u
  if [ "$HAVE_HYPERFINE" = 1 ]; then hyperfine --version; else echo "timing: shell loop (hyperfine not installed)"; fi
  echo "base: $([ "$BASE_MODE" = scratch ] && echo 'FROM scratch (no busybox image)' || echo "busybox:1 ($BASE_OCI)")"
  echo "runs: cold=$RUNS_COLD warm=$RUNS_WARM touch=$RUNS_TOUCH; modes: $MODES; tools: $TOOLS"
} | tee "$OUT/versions.txt"

# ---------------------------------------------------------------------------
# Run: per scenario, every tool, every mode
# ---------------------------------------------------------------------------
for s in $SCENARIOS; do prepare_variant "$s"; done

for s in $SCENARIOS; do for var in $VARIANTS; do
  v=$s-$var
  reset_stamp "$s"
  for tool in $TOOLS; do
    echo "=== $s ($var) / $tool"
    echo "=== bench/run.sh $(date -Is): $tool, modes: $MODES (results: $OUT)" >>"$WORK/logs/$tool.$v.log"
    # Start from a clean store holding only the base image (not timed), so that
    # warm/touch work even when cold is not among the modes.
    if ! peer_action "$tool" reset "$v" >"$OUT/$v.$tool.reset.txt" 2>&1; then
      echo "  $tool: FAILED to reset its store (see $OUT/$v.$tool.reset.txt)"
      for mode in $MODES; do echo failed >"$OUT/$v.$tool.$mode.failed"; done
      continue
    fi
    skip=0
    for mode in $MODES; do
      json=$OUT/$v.$tool.$mode.json
      if [ "$skip" = 1 ]; then echo skipped >"$OUT/$v.$tool.$mode.skipped"; continue; fi
      rm -f "$WORK/run/strata.$v.metadata.json"
      ok=1 why=""
      if ! run_mode "$tool" "$v" "$mode" "$json" >"$OUT/$v.$tool.$mode.txt" 2>&1; then ok=0
      elif [ "$tool" = strata ] && ! strata_verify "$v"; then
        ok=0 why=" (exit 0, but no --metadata-file and no tag bench/$v:latest in $STRATA_ROOT/index.json)"
      fi
      if [ "$ok" = 1 ]; then
        grep -E 'Time \(' "$OUT/$v.$tool.$mode.txt" | sed "s|^ *|  $mode: |" || true
        if [ "$tool" = strata ] && [ -s "$WORK/run/strata.$v.rss" ]; then
          # the largest peak of the cell's builds, in KiB
          sort -n "$WORK/run/strata.$v.rss" | tail -n 1 >"$OUT/$v.strata.$mode.rss"
          echo "  $mode: strata peak RSS $(rss_mib "$OUT/$v.strata.$mode.rss") MiB"
        fi
      else
        rm -f "$json"
        echo "failed$why" >"$OUT/$v.$tool.$mode.failed"
        if [ "$tool" = strata ]; then
          echo "  $mode: strata: FAILED$why (see log: $WORK/logs/strata.$v.log, $OUT/$v.$tool.$mode.txt)"
        else
          echo "  $mode: $tool: FAILED (see $OUT/$v.$tool.$mode.txt and $WORK/logs/$tool.$v.log)"
        fi
        skip=1   # later modes depend on this one's cache
      fi
    done
    if [ "$tool" = strata ] && [ -x "$STRATA" ] && ls "$OUT/$v.strata."*.json >/dev/null 2>&1; then
      # what strata plans after the runs (expected: everything cached); for the log only
      { echo "--- dry-run after the runs"
        "$STRATA" --root "$STRATA_ROOT" build "$WORK/scenarios/$v/context" -f "$WORK/scenarios/$v/$STRATA_SPEC" \
          -t "bench/$v:latest" --dry-run 2>&1 || echo "(dry-run failed)"; } >>"$WORK/logs/strata.$v.log" 2>&1 || true
    fi
    peer_action "$tool" wipe "$v" >/dev/null 2>&1 || true   # free the disk between scenarios
  done
  reset_stamp "$s"
done; done

# ---------------------------------------------------------------------------
# Table: mean ±σ seconds per tool, and strata/peer ratios of the means
# ---------------------------------------------------------------------------
cell() {  # json -> "mean ±sd" (3 decimals below 10 s, so fast warm builds stay readable)
  jq -r '.results[0] | "\(.mean) \(.stddev // 0)"' "$1" |
    awk '{ p = ($1 < 10) ? 3 : 2; printf "%.*f ±%.*f", p, $1, p, $2 }'
}
mean() { jq -r '.results[0].mean' "$1"; }
short() { case $1 in docker-buildkit) echo buildkit ;; buildah-overlay) echo buildah ;; *) echo "$1" ;; esac; }

table() {
  printf '%-20s %-5s %-6s' scenario var mode
  for t in $TOOLS; do printf ' %16s' "$(short "$t") s"; done
  for p in $PEERS; do printf ' %16s' "strata/$(short "$p")"; done
  [ "$STRATA_RSS" = 1 ] && [[ " $TOOLS " == *" strata "* ]] && printf ' %14s' "strata MiB"
  echo
  for s in $SCENARIOS; do for var in $VARIANTS; do for mode in $MODES; do
    v=$s-$var
    printf '%-20s %-5s %-6s' "$s" "$var" "$mode"
    for t in $TOOLS; do
      f=$OUT/$v.$t.$mode.json
      if [ -f "$f" ]; then printf ' %16s' "$(cell "$f")"
      elif [ -f "$OUT/$v.$t.$mode.failed" ]; then printf ' %16s' FAILED
      elif [ -f "$OUT/$v.$t.$mode.skipped" ]; then printf ' %16s' skipped
      else printf ' %16s' -; fi
    done
    for p in $PEERS; do
      a=$OUT/$v.strata.$mode.json b=$OUT/$v.$p.$mode.json
      if [ -f "$a" ] && [ -f "$b" ]; then
        printf ' %16s' "$(awk -v a="$(mean "$a")" -v b="$(mean "$b")" 'BEGIN{ if (b > 0) printf "%.3gx", a/b; else print "-" }')"
      else printf ' %16s' -; fi
    done
    if [ "$STRATA_RSS" = 1 ] && [[ " $TOOLS " == *" strata "* ]]; then
      if [ -f "$OUT/$v.strata.$mode.rss" ]; then printf ' %14s' "$(rss_mib "$OUT/$v.strata.$mode.rss")"
      else printf ' %14s' -; fi
    fi
    echo
  done; done; done
  echo "(var: full = the peer scenario with its RUN steps (network none), copy = its COPY-only variant;"
  echo " seconds: mean ±σ over the runs; strata/peer = ratio of means, < 1 means strata is faster;"
  echo " cold = empty store + base re-imported before each run, warm = no change, touch = last COPY's input changed;"
  [ "$STRATA_RSS" = 1 ] && echo " strata MiB = the largest peak RSS (GNU time's %M, ru_maxrss) among strata's builds of that cell;"
  echo " skipped = not run because an earlier mode of that tool failed)"
  for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "note: $n"; done
  if ls "$OUT"/*.strata.*.failed >/dev/null 2>&1; then
    echo "strata: FAILED (see log) in some cells: $WORK/logs/strata.<scenario>-<var>.log"
  fi
}
echo
table | tee "$OUT/table.txt"
echo "results in $OUT"
