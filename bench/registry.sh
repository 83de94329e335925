#!/usr/bin/env bash
# strata against skopeo and BuildKit on a local registry, in one run. Run by hand
# (it is not a test):
#
#   STRATA=/work/target-regbench/release/strata bench/registry.sh
#   QUICK=1 bench/registry.sh                  # one run per cell
#   PARTS=push bench/registry.sh               # only part 1 (push | cache | "push cache")
#   SIZE_MIB=256 QUICK=1 bench/registry.sh     # a smaller image, for a quick look
#
# Part 1 (push): a FROM scratch image with one incompressible SIZE_MIB layer (gzip),
#   built by strata and exported as an OCI layout. strata push vs skopeo copy
#   oci:LAYOUT -> docker://, each run into a freshly emptied registry and a fresh
#   repository name; then strata pull into an empty store vs skopeo copy docker:// -> oci:.
# Part 2 (cache): deep-chain and multistage-parallel (full variants, as bench/run.sh
#   makes them) built on "machine A" with --cache-to (strata) or an inline-cache image
#   pushed to the registry (BuildKit), then timed on "machine B" (strata: a fresh empty
#   store; BuildKit: builder cache pruned and images removed, base kept) with --cache-from.
#
# Starts its own registry (docker-registry on 127.0.0.1:$REG_PORT, storage under
# /var/tmp) and, when none answers, dockerd (the peers' start-dockerd.sh); stops what
# it started at the end, also after a failure or Ctrl-C. Uses the work dir of
# bench/run.sh ($WORK, default /var/tmp/strata-bench) for the base image and the
# scenario contexts (running bench/run.sh once, strata only, to make them if missing);
# everything of its own lives in $WORK/regbench and is removed at the end except the
# results ($WORK/results/regbench-*).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)   # <project>/bench
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")
WORK=${WORK:-/var/tmp/strata-bench}
RB=${RB:-$WORK/regbench}                               # this script's own files
REG_PORT=${REG_PORT:-5050}
REG=127.0.0.1:$REG_PORT
REG_DIR=${REG_DIR:-/var/tmp/strata-regbench-registry}   # the registry's storage
DOCKER=${DOCKER:-/usr/bin/docker}

# ---------------------------------------------------------------------------
# Actions, called by the timing loop (hyperfine or the fallback) as
#   registry.sh --action NAME [ARG]
# ---------------------------------------------------------------------------
reg_stop() {
  local f=$RB/run/registry.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}
reg_start() {  # a registry with empty storage
  mkdir -p "$RB/run" "$RB/logs"
  rm -rf "$REG_DIR"; mkdir -p "$REG_DIR"
  cat >"$RB/run/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REG_DIR
  delete:
    enabled: true
http:
  addr: $REG
EOF
  nohup /usr/bin/docker-registry serve "$RB/run/registry.yml" >>"$RB/logs/registry.log" 2>&1 &
  echo $! >"$RB/run/registry.pid"
  for _ in $(seq 1 100); do
    curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "registry did not come up on $REG; see $RB/logs/registry.log" >&2
  return 1
}
seq_next() { echo $(( $(cat "$RB/run/seq" 2>/dev/null || echo 0) + 1 )) >"$RB/run/seq"; }
seq_cur() { cat "$RB/run/seq"; }

action() {
  local a=$1 arg=${2:-} log=$RB/logs/actions.log
  case $a in
    # part 1: every push run starts from an empty registry, so nothing is found as
    # existing or mounted from an earlier run (strata and skopeo both try cross-repo
    # mounts of blobs they pushed before).
    fresh-registry) reg_stop; reg_start; seq_next ;;
    push-strata)
      "$STRATA" --root "$RB/store-a" push --insecure --progress plain "bench/regbig:latest" \
        "$REG/push-strata-$(seq_cur)/big:1" >>"$log" 2>&1 ;;
    push-skopeo)
      skopeo copy --quiet --dest-tls-verify=false "oci:$RB/oci-big:$OCI_TAG" \
        "docker://$REG/push-skopeo-$(seq_cur)/big:1" >>"$log" 2>&1 ;;
    empty-pull) rm -rf "$RB/store-pull" "$RB/oci-pull" ;;
    pull-strata)
      "$STRATA" --root "$RB/store-pull" pull --insecure --progress plain "$REG/pull/big:1" >>"$log" 2>&1 ;;
    pull-skopeo)
      skopeo copy --quiet --src-tls-verify=false "docker://$REG/pull/big:1" "oci:$RB/oci-pull:1" >>"$log" 2>&1 ;;
    # part 2
    strata-a) strata_build "$arg" a --cache-to "type=registry,ref=$REG/cache/$arg" ;;
    strata-b-reset) rm -rf "$RB/store-b" ;;
    strata-b) strata_build "$arg" b --cache-from "type=registry,ref=$REG/cache/$arg" ;;
    bk-a)
      DOCKER_BUILDKIT=1 "$DOCKER" build --network none --progress plain --build-arg BUILDKIT_INLINE_CACHE=1 \
        -f "$WORK/scenarios/$arg-full/Dockerfile" -t "$REG/bkcache/$arg:latest" \
        "$WORK/scenarios/$arg-full/context" >>"$RB/logs/buildkit.$arg.a.log" 2>&1
      "$DOCKER" push "$REG/bkcache/$arg:latest" >>"$RB/logs/buildkit.$arg.a.log" 2>&1 ;;
    bk-b-reset) bk_reset "$arg" ;;
    bk-b)
      DOCKER_BUILDKIT=1 "$DOCKER" build --network none --progress plain \
        --cache-from "$REG/bkcache/$arg:latest" \
        -f "$WORK/scenarios/$arg-full/Dockerfile" -t "regbench-b/$arg:latest" \
        "$WORK/scenarios/$arg-full/context" >"$RB/logs/buildkit.$arg.b.log" 2>&1 ;;   # the last run's log
    *) echo "unknown action: $a" >&2; return 2 ;;
  esac
}
strata_build() {  # scenario machine(a|b) flags...
  local s=$1 m=$2
  shift 2
  "$STRATA" --root "$RB/store-$m" build "$WORK/scenarios/$s-full/context" \
    -f "$WORK/scenarios/$s-full/strata.toml" -t "bench/$s-full:latest" --progress plain \
    --metadata-file "$RB/run/strata.$s.$m.metadata.json" "$@" >>"$RB/logs/strata.$s.$m.log" 2>&1
}
bk_reset() {  # BuildKit "machine B": no build cache, no image of the scenario; base kept
  local s=$1
  "$DOCKER" image rm -f "$REG/bkcache/$s:latest" "regbench-b/$s:latest" >/dev/null 2>&1 || true
  "$DOCKER" builder prune -af >/dev/null
  "$DOCKER" image prune -f >/dev/null
  "$DOCKER" image inspect localhost:5000/busybox:1 >/dev/null 2>&1 ||
    "$DOCKER" load -q -i "$WORK/images/busybox-docker-archive.tar" >/dev/null
}

if [ "${1:-}" = --action ]; then
  shift
  action "$@"
  exit
fi

# ---------------------------------------------------------------------------
# Knobs
# ---------------------------------------------------------------------------
PROJECT=$(cd "$HERE/.." && pwd)
PEER_SRC=${PEER_SRC:-$PROJECT/../shared/bench}
PARTS=${PARTS:-"push cache"}
SCENARIOS=${SCENARIOS:-"deep-chain multistage-parallel"}
SIZE_MIB=${SIZE_MIB:-1024}
if [ "${QUICK:-0}" = 1 ]; then RUNS=${RUNS:-1}; else RUNS=${RUNS:-3}; fi
USE_HYPERFINE=${USE_HYPERFINE:-1}
KEEP_DOCKERD=${KEEP_DOCKERD:-0}
OUT=${OUT:-$WORK/results/regbench-$(date +%Y%m%d-%H%M%S)-$$}

if [ -z "${STRATA:-}" ]; then
  tdir=${CARGO_TARGET_DIR:-$PROJECT/target}
  for c in "$tdir/release/strata" "$(command -v strata || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && { STRATA=$c; break; }
  done
fi
if [ -z "${STRATA:-}" ] || [ ! -x "$STRATA" ]; then
  echo "strata not found: build it (cargo build --release) and set STRATA=path/to/strata" >&2; exit 1
fi
case $STRATA in /*) ;; *) STRATA=$(cd "$(dirname "$STRATA")" && pwd)/$(basename "$STRATA") ;; esac
for p in $PARTS; do case $p in push|cache) ;; *) echo "unknown part: $p (push | cache)" >&2; exit 2 ;; esac; done
for t in jq curl skopeo /usr/bin/docker-registry; do
  command -v "$t" >/dev/null || { echo "$t is needed (see bench/README.md, setup)" >&2; exit 1; }
done
if curl -fsS "http://$REG/v2/" >/dev/null 2>&1; then
  echo "something already answers on $REG: set REG_PORT to a free port" >&2; exit 1
fi

# Disk: part 1 holds the image about 4 times at once (store, OCI export, registry,
# one pulled copy), plus the context file until the build is done.
need_mib=$(( SIZE_MIB * 5 + 512 ))
avail_mib=$(df -Pm /var/tmp | awk 'NR == 2 { print $4 }')
if [[ " $PARTS " == *" push "* ]] && [ "$avail_mib" -lt "$need_mib" ]; then
  echo "not enough disk under /var/tmp for SIZE_MIB=$SIZE_MIB: $avail_mib MiB free, $need_mib MiB needed" >&2
  exit 1
fi

mkdir -p "$RB/run" "$RB/logs" "$OUT"
rm -f "$RB/run/seq" "$RB/logs/"*.log
NOTES=()
note() { NOTES+=("$*"); echo "note: $*" >&2; }

STARTED_DOCKERD=0
cleanup() {
  reg_stop
  rm -rf "$REG_DIR"
  if [ "$STARTED_DOCKERD" = 1 ] && [ "$KEEP_DOCKERD" != 1 ] && [ -f "$WORK/run/dockerd.pid" ]; then
    local pid
    pid=$(cat "$WORK/run/dockerd.pid")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && echo "dockerd (pid $pid) still stopping" >&2 || echo "stopped dockerd (pid $pid)"
    fi
    rm -f "$WORK/run/dockerd.pid"
  fi
  # the big files: context, store, OCI layouts, pulled copies
  rm -rf "$RB/big-ctx" "$RB/store-a" "$RB/store-b" "$RB/store-pull" "$RB/oci-big" "$RB/oci-pull"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# Timing: hyperfine when installed, else a loop writing the same JSON fields
# ---------------------------------------------------------------------------
HAVE_HYPERFINE=0
if [ "$USE_HYPERFINE" = 1 ] && command -v hyperfine >/dev/null; then HAVE_HYPERFINE=1; fi
export WORK RB REG_PORT REG_DIR DOCKER STRATA

time_cmd() {  # name prepare(or "") command -> $OUT/name.json; output in $OUT/name.txt
  local name=$1 prep=$2 cmd=$3 json=$OUT/$1.json i t0 t1 times=()
  {
    if [ "$HAVE_HYPERFINE" = 1 ]; then
      local -a hf=(hyperfine --style basic --runs "$RUNS" --export-json "$json" -n "$name")
      [ -n "$prep" ] && hf+=(--prepare "$prep")
      "${hf[@]}" "$cmd"
    else
      for ((i = 0; i < RUNS; i++)); do
        if [ -n "$prep" ]; then bash -c "$prep" || return 1; fi
        t0=$(date +%s%N); bash -c "$cmd" || return 1; t1=$(date +%s%N)
        times+=("$(( t1 - t0 ))")
      done
      printf '%s\n' "${times[@]}" | awk -v name="$name" '
        { t[NR] = $1 / 1e9; s += t[NR] }
        END { m = s / NR; v = 0; for (i = 1; i <= NR; i++) v += (t[i] - m)^2
              sd = (NR > 1) ? sqrt(v / (NR - 1)) : 0
              printf "{\"results\":[{\"command\":\"%s\",\"mean\":%.6f,\"stddev\":%.6f,\"times\":[", name, m, sd
              for (i = 1; i <= NR; i++) printf "%s%.6f", (i > 1 ? "," : ""), t[i]
              printf "]}]}\n" }' >"$json"
    fi
  } >"$OUT/$name.txt" 2>&1 || { rm -f "$json"; echo failed >"$OUT/$name.failed"; return 1; }
}
cell() {  # name -> "mean ±sd" or FAILED / -
  local f=$OUT/$1.json
  if [ -f "$f" ]; then
    jq -r '.results[0] | "\(.mean) \(.stddev // 0)"' "$f" | awk '{ printf "%.2f ±%.2f", $1, $2 }'
  elif [ -f "$OUT/$1.failed" ]; then echo FAILED
  else echo -; fi
}
ratio() {  # a b -> mean(a)/mean(b)
  local a=$OUT/$1.json b=$OUT/$2.json
  if [ -f "$a" ] && [ -f "$b" ]; then
    awk -v a="$(jq -r '.results[0].mean' "$a")" -v b="$(jq -r '.results[0].mean' "$b")" \
      'BEGIN { if (b > 0) printf "%.3gx", a / b; else print "-" }'
  else echo -; fi
}
act() { printf '%q --action %s' "$SELF" "$*"; }

{
  echo "# strata registry bench $(date -Is) $(uname -r) $(nproc) cores"
  echo "project: $PROJECT ($(git -C "$PROJECT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "strata: $STRATA ($("$STRATA" --version 2>/dev/null | head -n 1))"
  skopeo --version
  /usr/bin/docker-registry --version 2>/dev/null | head -n 1 || true
  if [ "$HAVE_HYPERFINE" = 1 ]; then hyperfine --version; else echo "timing: shell loop"; fi
  echo "registry: $REG (storage $REG_DIR); runs: $RUNS; parts: $PARTS"
} | tee "$OUT/versions.txt"

reg_start || exit 1

# ---------------------------------------------------------------------------
# Part 1: push and pull of a SIZE_MIB image
# ---------------------------------------------------------------------------
OCI_TAG=latest
export OCI_TAG
if [[ " $PARTS " == *" push "* ]]; then
  echo "=== part 1: push/pull of a $SIZE_MIB MiB image (one incompressible layer, gzip)"
  rm -rf "$RB/big-ctx" "$RB/store-a" "$RB/oci-big"
  mkdir -p "$RB/big-ctx"
  head -c "$(( SIZE_MIB * 1024 * 1024 ))" /dev/urandom >"$RB/big-ctx/big.bin"
  cat >"$RB/big-ctx/strata.toml" <<'EOF'
# registry bench: one incompressible layer on scratch
[stage.main]
from = "scratch"
steps = [{ copy = ["big.bin"], to = "/big.bin" }]
EOF
  t0=$(date +%s%N)
  if ! "$STRATA" --root "$RB/store-a" build "$RB/big-ctx" -t bench/regbig:latest --compression gzip \
      --output "type=oci,dest=$RB/oci-big" --progress plain >"$RB/logs/strata.big.build.log" 2>&1; then
    echo "strata could not build the big image: $(tail -n 3 "$RB/logs/strata.big.build.log" | tr '\n' ' ')" >&2
    exit 1
  fi
  t1=$(date +%s%N)
  rm -rf "$RB/big-ctx"   # the store and the OCI export hold the layer now
  OCI_TAG=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"] // empty' "$RB/oci-big/index.json")
  [ -n "$OCI_TAG" ] || { echo "the OCI export has no ref.name annotation: $RB/oci-big/index.json" >&2; exit 1; }
  layer_mib=$(jq -r '.manifests[0].digest' "$RB/oci-big/index.json" | sed 's/^sha256://' |
    xargs -I{} jq -r '[.layers[].size] | add' "$RB/oci-big/blobs/sha256/{}" | awk '{ printf "%.0f", $1 / 1048576 }')
  echo "  built in $(awk -v n=$(( t1 - t0 )) 'BEGIN { printf "%.1f", n / 1e9 }') s (not timed); layer $layer_mib MiB; OCI export tag $OCI_TAG"

  echo "  push: strata"
  time_cmd push.strata "$(act fresh-registry)" "$(act push-strata)" || echo "  strata push FAILED (see $OUT/push.strata.txt, $RB/logs/actions.log)"
  echo "  push: skopeo"
  time_cmd push.skopeo "$(act fresh-registry)" "$(act push-skopeo)" || echo "  skopeo push FAILED (see $OUT/push.skopeo.txt, $RB/logs/actions.log)"

  # the image to pull, pushed once (not timed) into an empty registry
  reg_stop; reg_start
  if ! "$STRATA" --root "$RB/store-a" push --insecure --progress plain bench/regbig:latest "$REG/pull/big:1" \
      >>"$RB/logs/actions.log" 2>&1; then
    skopeo copy --quiet --dest-tls-verify=false "oci:$RB/oci-big:$OCI_TAG" "docker://$REG/pull/big:1" >>"$RB/logs/actions.log" 2>&1 ||
      { echo "could not put the image to pull into the registry (see $RB/logs/actions.log)" >&2; exit 1; }
    note "the image to pull was pushed by skopeo (strata push failed)"
  fi
  rm -rf "$RB/oci-big"
  echo "  pull: strata"
  time_cmd pull.strata "$(act empty-pull)" "$(act pull-strata)" || echo "  strata pull FAILED (see $OUT/pull.strata.txt, $RB/logs/actions.log)"
  echo "  pull: skopeo"
  time_cmd pull.skopeo "$(act empty-pull)" "$(act pull-skopeo)" || echo "  skopeo pull FAILED (see $OUT/pull.skopeo.txt, $RB/logs/actions.log)"
  rm -rf "$RB/store-a" "$RB/store-pull" "$RB/oci-pull"
  reg_stop; reg_start   # free the registry's copy
fi

# ---------------------------------------------------------------------------
# Part 2: cross-machine cached builds
# ---------------------------------------------------------------------------
HAVE_BK=0
if [[ " $PARTS " == *" cache "* ]]; then
  echo "=== part 2: cross-machine cached builds ($SCENARIOS)"
  # base image and scenario contexts: made by bench/run.sh (strata alone, one cold
  # build per scenario) when this work dir does not have them yet
  missing=0
  [ -f "$WORK/images/busybox-oci/index.json" ] && [ -f "$WORK/images/busybox-docker-archive.tar" ] || missing=1
  for s in $SCENARIOS; do [ -f "$WORK/scenarios/$s-full/context.ok" ] || missing=1; done
  if [ "$missing" = 1 ]; then
    echo "  setting up base image and contexts with bench/run.sh (log: $RB/logs/run-setup.log)"
    STRATA=$STRATA WORK=$WORK PEERS="" VARIANT=full MODES=cold QUICK=1 SCENARIOS=$SCENARIOS \
      OUT=$OUT/run-setup "$HERE/run.sh" >"$RB/logs/run-setup.log" 2>&1 || true
  else
    # fresh copies of the peer scripts (start-dockerd.sh, scenarios), as run.sh does
    tar -C "$PEER_SRC" --exclude=./data --exclude=./images --exclude=./results --exclude=./logs \
      --exclude=./run --exclude='./scenarios/*/context' -cf - . | tar -C "$WORK" -xf -
    chmod -R u+w "$WORK/lib" "$WORK/scenarios" "$WORK/base" "$WORK/registry"
    chmod u+w "$WORK"/*.sh
    mkdir -p "$WORK/logs" "$WORK/run"
  fi
  ok_scen=""
  for s in $SCENARIOS; do
    if [ -f "$WORK/scenarios/$s-full/context.ok" ] && grep -q 'oci = ' "$WORK/scenarios/$s-full/strata.toml" 2>/dev/null; then
      ok_scen="$ok_scen $s"
    else
      note "$s skipped: no full variant with the busybox base in $WORK/scenarios/$s-full (see $RB/logs/run-setup.log)"
    fi
  done

  # BuildKit: dockerd 20.10 (the one answering, or started here)
  if [ -n "$ok_scen" ]; then
    if "$DOCKER" info >/dev/null 2>&1; then
      HAVE_BK=1; echo "  docker: using the dockerd already answering on /var/run/docker.sock"
    elif [ ! -x /usr/sbin/dockerd ]; then
      note "BuildKit skipped: dockerd not installed"
    elif "$WORK/start-dockerd.sh" >"$RB/logs/start-dockerd.log" 2>&1; then
      STARTED_DOCKERD=1 HAVE_BK=1
    else
      note "BuildKit skipped: dockerd did not start: $(tail -n 3 "$WORK/logs/dockerd.log" 2>/dev/null | tr '\n' ' ')"
      if [ -f "$WORK/run/dockerd.pid" ]; then kill "$(cat "$WORK/run/dockerd.pid")" 2>/dev/null || true; fi
      rm -f "$WORK/run/dockerd.pid"
    fi
  fi

  for s in $ok_scen; do
    echo "  $s: strata on machine A (--cache-to, not timed)"
    rm -rf "$RB/store-a"
    if ! action strata-a "$s"; then
      echo "  $s: strata --cache-to FAILED (see $RB/logs/strata.$s.a.log)"
      echo failed >"$OUT/cache.$s.strata.failed"
    else
      echo "  $s: strata on machine B (--cache-from)"
      time_cmd "cache.$s.strata" "$(act strata-b-reset)" "$(act strata-b "$s")" ||
        echo "  $s: strata --cache-from FAILED (see $RB/logs/strata.$s.b.log)"
      # the image on B must be complete (every blob local), not only its manifest
      if [ -f "$OUT/cache.$s.strata.json" ] && ! "$STRATA" --root "$RB/store-b" save --format oci \
          "bench/$s-full:latest" 2>>"$RB/logs/strata.$s.b.log" | cat >/dev/null; then
        note "strata $s: the image on machine B cannot be saved (blobs missing?): see $RB/logs/strata.$s.b.log"
      fi
      if [ -f "$RB/run/strata.$s.b.metadata.json" ]; then
        jq -r '"cache hits \(.cache.hits // "?"), misses \(.cache.misses // "?") (last run)"' \
          "$RB/run/strata.$s.b.metadata.json" >"$OUT/cache.$s.strata.hits" 2>/dev/null || true
      fi
    fi
    rm -rf "$RB/store-a" "$RB/store-b"

    [ "$HAVE_BK" = 1 ] || continue
    echo "  $s: BuildKit on machine A (inline cache, push; not timed)"
    bk_reset "$s"
    if ! action bk-a "$s"; then
      note "BuildKit $s: build or push on machine A failed: $(tail -n 3 "$RB/logs/buildkit.$s.a.log" | tr '\n' ' ')"
      echo failed >"$OUT/cache.$s.buildkit.failed"
      continue
    fi
    echo "  $s: BuildKit on machine B (--cache-from)"
    time_cmd "cache.$s.buildkit" "$(act bk-b-reset "$s")" "$(act bk-b "$s")" ||
      note "BuildKit $s: --cache-from build failed: $(tail -n 3 "$RB/logs/buildkit.$s.b.log" | tr '\n' ' ')"
    # steps BuildKit took from the cache in the last run (plain progress: "#N CACHED")
    { echo "CACHED $(grep -cE '^#[0-9]+ CACHED$' "$RB/logs/buildkit.$s.b.log") of" \
        "$(grep -oE '^#[0-9]+ \[[^]]*[0-9]+/[0-9]+\]' "$RB/logs/buildkit.$s.b.log" | sort -u | wc -l) steps (last run)"
    } >"$OUT/cache.$s.buildkit.hits" 2>/dev/null || true
    bk_reset "$s"
  done
fi

# ---------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------
table() {
  printf '%-46s %16s %16s %12s\n' operation "strata s" "peer s" strata/peer
  if [[ " $PARTS " == *" push "* ]]; then
    printf '%-46s %16s %16s %12s\n' "push ${SIZE_MIB} MiB (vs skopeo)" "$(cell push.strata)" "$(cell push.skopeo)" "$(ratio push.strata push.skopeo)"
    printf '%-46s %16s %16s %12s\n' "pull ${SIZE_MIB} MiB (vs skopeo)" "$(cell pull.strata)" "$(cell pull.skopeo)" "$(ratio pull.strata pull.skopeo)"
  fi
  if [[ " $PARTS " == *" cache "* ]]; then
    for s in $SCENARIOS; do
      printf '%-46s %16s %16s %12s\n' "cache-from $s (vs BuildKit)" "$(cell "cache.$s.strata")" "$(cell "cache.$s.buildkit")" \
        "$(ratio "cache.$s.strata" "cache.$s.buildkit")"
    done
  fi
  echo "(seconds, mean ±σ over $RUNS run(s); strata/peer = ratio of the means, < 1 means strata is faster)"
  echo "(push: each run into an emptied registry and a new repository; pull: into an empty store / OCI dir)"
  echo "(cache-from: machine B = empty store (strata) or pruned builder cache and removed images, base kept (BuildKit))"
  for s in $SCENARIOS; do
    for t in strata buildkit; do
      [ -f "$OUT/cache.$s.$t.hits" ] && echo "$s, $t on machine B: $(cat "$OUT/cache.$s.$t.hits")"
    done
  done
  for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "note: $n"; done
}
echo
table | tee "$OUT/table.txt"
echo "results in $OUT; logs in $RB/logs"
