#!/usr/bin/env bash
# A two-platform build (linux/amd64 and linux/arm64, one image index) of the
# multistage-parallel scenario (../shared/bench/scenarios, its full variant with
# the RUN steps): strata `build --platform A,B` against buildah
# `build --platform A,B --manifest NAME`, cold and warm, with the ratio.
# The arm64 RUN steps run through qemu-user (binfmt_misc) for both tools.
# Run by hand (it is not a test):
#
#   bench/platform.sh
#   RUNS_COLD=1 RUNS_WARM=2 bench/platform.sh
#   STRATA=target/release/strata bench/platform.sh
#   bench/platform.sh --clean          # remove the work dir
#
# Needs: the qemu-aarch64 handler with the F flag and Debian's busybox-static:arm64
# in /var/cache/strata-test/arm64 (scripts/foreign-arch.sh sets up both), the
# host's static busybox (busybox-static), buildah, skopeo, jq; hyperfine if
# installed. Everything generated lives under $WORK; nothing is written into
# the project. See bench/README.md ("Two platforms").
set -euo pipefail

WORK=${WORK:-/var/tmp/strata-bench-platform}
if [ "${1:-}" = --clean ]; then
  if [ -d "$WORK/buildah/root" ]; then
    buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" rm --all >/dev/null 2>&1 || true
    grep -o " $WORK/buildah/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  fi
  rm -rf "$WORK"
  echo "removed $WORK"
  exit 0
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)   # <project>/bench
PROJECT=$(cd "$HERE/.." && pwd)
PEER_SRC=${PEER_SRC:-$PROJECT/../shared/bench}
SCENARIO=multistage-parallel
PLATFORMS=${PLATFORMS:-linux/amd64,linux/arm64}
RUNS_COLD=${RUNS_COLD:-2}
RUNS_WARM=${RUNS_WARM:-3}
JOBS=${JOBS:-4}                      # buildah --jobs, as lib/peer.sh
RUNTIME=${RUNTIME:-/usr/bin/runc}    # as lib/peer.sh (crun fails on this VM's cgroups)
ARM64_BUSYBOX=${ARM64_BUSYBOX:-/var/cache/strata-test/arm64/bin/busybox}
HOST_BUSYBOX=${HOST_BUSYBOX:-$(command -v busybox || true)}
USE_HYPERFINE=${USE_HYPERFINE:-1}
OUT=${OUT:-$WORK/results/$(date +%Y%m%d-%H%M%S)-$$}

if [ -z "${STRATA:-}" ]; then
  tdir=${CARGO_TARGET_DIR:-$PROJECT/target}
  for c in "$tdir/release/strata" "$(command -v strata || true)" "$tdir/debug/strata"; do
    [ -n "$c" ] && [ -x "$c" ] && { STRATA=$c; break; }
  done
fi
{ [ -n "${STRATA:-}" ] && [ -x "$STRATA" ]; } || { echo "no strata binary (set STRATA=path)" >&2; exit 1; }
STRATA=$(cd "$(dirname "$STRATA")" && pwd)/$(basename "$STRATA")

# ---------------------------------------------------------------------------
# What both tools need
# ---------------------------------------------------------------------------
die() { echo "bench/platform.sh: $*" >&2; exit 1; }
for t in buildah skopeo jq; do command -v "$t" >/dev/null || die "$t is needed"; done
[ -f "$ARM64_BUSYBOX" ] || die "no arm64 busybox at $ARM64_BUSYBOX (run scripts/foreign-arch.sh)"
handler=/proc/sys/fs/binfmt_misc/qemu-aarch64
{ [ -f "$handler" ] && head -n1 "$handler" | grep -qx enabled && grep -q '^flags:.*F' "$handler"; } ||
  die "no enabled qemu-aarch64 binfmt_misc handler with the F flag (run scripts/foreign-arch.sh)"
[ "$(uname -m)" = x86_64 ] || die "the base is made for an x86_64 host"
{ [ -n "$HOST_BUSYBOX" ] && file -L "$HOST_BUSYBOX" | grep -q 'statically linked'; } ||
  die "the host's busybox must be static (apt-get install busybox-static)"
[ -d "$PEER_SRC/scenarios/$SCENARIO" ] || die "peer scenario not found at $PEER_SRC/scenarios/$SCENARIO"
HAVE_HYPERFINE=0
if [ "$USE_HYPERFINE" = 1 ] && command -v hyperfine >/dev/null; then HAVE_HYPERFINE=1; fi

mkdir -p "$WORK/logs" "$OUT"
BASE=$WORK/images/busybox-multi       # OCI layout: an index of both platforms
BASE_REF=localhost:5000/busybox:1     # the name the peer Dockerfile builds on
SCEN=$WORK/scenario
BSTORE=$WORK/buildah
SROOT=$WORK/strata-root
B=(buildah --root "$BSTORE/root" --runroot "$BSTORE/run" --storage-driver overlay)

# ---------------------------------------------------------------------------
# The base: busybox for both platforms, made by strata itself from the two
# static busyboxes (FROM scratch, the binary, `busybox --install`), written as
# an OCI layout holding one index. Not timed.
# ---------------------------------------------------------------------------
if [ ! -f "$BASE/index.json" ]; then
  echo "making the two-platform busybox base ($BASE)"
  rm -rf "$WORK/base"; mkdir -p "$WORK/base"
  cp "$HOST_BUSYBOX" "$WORK/base/busybox-amd64"
  cp "$ARM64_BUSYBOX" "$WORK/base/busybox-arm64"
  cat >"$WORK/base/strata.toml" <<EOF
[stage.busybox]
from = "scratch"
args = ["TARGETARCH"]
steps = [
  { copy = ["busybox-\${TARGETARCH}"], to = "/bin/busybox" },
  { run = ["/bin/busybox", "--install", "-s", "/bin"], network = "none" },
]

[image.busybox]
tags = ["$BASE_REF"]
platforms = ["linux/amd64", "linux/arm64"]
EOF
  "$STRATA" --root "$WORK/base-root" build "$WORK/base" -o "type=oci,dest=$BASE" \
    --progress plain >"$WORK/logs/base.log" 2>&1 || die "making the base failed (see $WORK/logs/base.log)"
  rm -rf "$WORK/base-root"
fi

# ---------------------------------------------------------------------------
# The scenario: the peer Dockerfile as is, strata's full-variant spec with the
# two-platform base, the peer's context.
# ---------------------------------------------------------------------------
mkdir -p "$SCEN"
cp "$PEER_SRC/scenarios/$SCENARIO/Dockerfile" "$SCEN/Dockerfile"
sed -E "s|oci = \"/var/tmp/strata-bench/images/busybox-oci\", ref = \"1\"|oci = \"$BASE\", ref = \"$BASE_REF\"|" \
  "$HERE/scenarios/$SCENARIO/strata.full.toml" >"$SCEN/strata.toml"
grep -q "$BASE" "$SCEN/strata.toml" || die "could not point $HERE/scenarios/$SCENARIO/strata.full.toml at $BASE"
if [ ! -d "$SCEN/context" ]; then
  cp "$PEER_SRC/scenarios/$SCENARIO/gen-context.sh" "$SCEN/gen-context.sh"
  bash "$SCEN/gen-context.sh" >"$WORK/logs/gen-context.log" 2>&1
fi

# ---------------------------------------------------------------------------
# Actions, called by the timing loop as `platform.sh --action TOOL ACTION`
# ---------------------------------------------------------------------------
buildah_wipe() {   # the store, with the mounts containers-storage keeps in it
  if [ -d "$BSTORE/root" ]; then
    "${B[@]}" rm --all >/dev/null 2>&1 || true
    grep -o " $BSTORE/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  fi
  rm -rf "$BSTORE"
}
buildah_reset() {
  buildah_wipe
  mkdir -p "$BSTORE"
  # skopeo 1.9 cannot copy an index into containers-storage: each platform's
  # image goes in alone, and a manifest list of the two takes the base's name
  # (buildah resolves FROM through it for each platform).
  local a
  for a in amd64 arm64; do
    skopeo copy --quiet --override-arch "$a" "oci:$BASE:$BASE_REF" \
      "containers-storage:[overlay@$BSTORE/root+$BSTORE/run]localhost/busybox-$a:1"
  done
  "${B[@]}" manifest create "$BASE_REF" >/dev/null
  for a in amd64 arm64; do
    "${B[@]}" manifest add "$BASE_REF" "containers-storage:localhost/busybox-$a:1" >/dev/null
  done
}
action() {
  local tool=$1 what=$2
  case $tool:$what in
    strata:build)
      exec "$STRATA" --root "$SROOT" build "$SCEN/context" -f "$SCEN/strata.toml" \
        --platform "$PLATFORMS" -t bench/mp:latest --progress plain >>"$WORK/logs/strata.log" 2>&1 ;;
    strata:reset) rm -rf "$SROOT" ;;
    buildah:build)
      exec "${B[@]}" build --runtime "$RUNTIME" --layers --jobs "$JOBS" --network none --pull=never \
        --platform "$PLATFORMS" --manifest bench/mp-list -f "$SCEN/Dockerfile" "$SCEN/context" \
        >>"$WORK/logs/buildah.log" 2>&1 ;;
    buildah:reset) buildah_reset >>"$WORK/logs/buildah.log" 2>&1 ;;
    *) echo "unknown action: $tool $what" >&2; return 2 ;;
  esac
}
if [ "${1:-}" = --action ]; then
  shift
  action "$@"
  exit
fi
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")
export WORK STRATA PLATFORMS JOBS RUNTIME PEER_SRC ARM64_BUSYBOX HOST_BUSYBOX

# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------
mean_of() { jq -r '.results[0].mean' "$1"; }
time_mode() {  # tool mode -> $OUT/tool.mode.json
  local tool=$1 mode=$2 json=$OUT/$1.$2.json runs warmup=0 prep=""
  local build
  build="$(printf '%q' "$SELF") --action $tool build"
  case $mode in
    cold) runs=$RUNS_COLD; prep="$(printf '%q' "$SELF") --action $tool reset" ;;
    warm) runs=$RUNS_WARM; warmup=1 ;;
  esac
  if [ "$HAVE_HYPERFINE" = 1 ]; then
    local -a hf=(hyperfine --style basic --runs "$runs" --warmup "$warmup" --export-json "$json" -n "$tool/$mode")
    [ -n "$prep" ] && hf+=(--prepare "$prep")
    "${hf[@]}" "$build"
  else
    local i t0 t1 times=()
    for ((i = 0; i < warmup; i++)); do bash -c "$build"; done
    for ((i = 0; i < runs; i++)); do
      [ -n "$prep" ] && bash -c "$prep"
      t0=$(date +%s%N); bash -c "$build"; t1=$(date +%s%N)
      times+=("$(( t1 - t0 ))")
    done
    printf '%s\n' "${times[@]}" | awk -v n="$tool/$mode" '{ s += $1 / 1e9 } END {
      printf "{\"results\":[{\"command\":\"%s\",\"mean\":%.6f}]}\n", n, s / NR }' >"$json"
    echo "  $tool/$mode: mean $(mean_of "$json") s"
  fi
}

# What each tool made must be an index of both platforms.
verify() {
  local tool=$1 raw
  case $tool in
    strata) raw=$(skopeo inspect --raw "oci:$SROOT:bench/mp:latest") ;;
    buildah) raw=$("${B[@]}" manifest inspect bench/mp-list) ;;
  esac
  echo "$raw" | jq -r '[.manifests[].platform | "\(.os)/\(.architecture)"] | sort | unique | join(",")'
}

{
  echo "# strata platform bench $(date -Is) $(uname -r) $(nproc) cores"
  echo "project: $PROJECT ($(git -C "$PROJECT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "strata: $STRATA"
  case $STRATA in */debug/*) echo "WARNING: strata is a debug build: its times are not representative" ;; esac
  buildah --version
  echo "scenario: $SCENARIO (full, with RUN), platforms: $PLATFORMS; base: $BASE"
  echo "runs: cold=$RUNS_COLD warm=$RUNS_WARM; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/versions.txt"

for tool in strata buildah; do
  echo "=== $tool"
  "$SELF" --action "$tool" reset
  for mode in cold warm; do
    time_mode "$tool" "$mode" >"$OUT/$tool.$mode.txt" 2>&1 ||
      die "$tool $mode failed (see $OUT/$tool.$mode.txt and $WORK/logs/$tool.log)"
    grep -E 'Time \(|mean' "$OUT/$tool.$mode.txt" | sed "s|^ *|  $mode: |" || true
  done
  made=$(verify "$tool")
  [ "$made" = "$(echo "$PLATFORMS" | tr ',' '\n' | sort | paste -sd,)" ] ||
    die "$tool made an index of [$made], not of $PLATFORMS"
  echo "  made an index of $made"
done

{
  echo
  printf '%-6s %12s %12s\n' mode strata buildah
  for mode in cold warm; do
    s=$(mean_of "$OUT/strata.$mode.json"); b=$(mean_of "$OUT/buildah.$mode.json")
    awk -v m="$mode" -v s="$s" -v b="$b" \
      'BEGIN { printf "%-6s %11.3fs %11.3fs   strata/buildah = %.2f\n", m, s, b, s / b }'
  done
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/table.txt"
# Both stores hold about 2 GB of layers (and buildah's overlay mounts): free them.
buildah_wipe
rm -rf "$SROOT"
echo "results: $OUT"
