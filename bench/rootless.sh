#!/usr/bin/env bash
# Rootless strata beside root strata and rootless buildah, on the bench
# scenarios, in one run (issue 15). Run by hand as root (it is not a test):
#
#   bench/rootless.sh                                  # all scenarios, full variant
#   QUICK=1 SCENARIOS=deep-chain bench/rootless.sh
#   STRATA=target/release/strata bench/rootless.sh
#
# It makes (once) a bench user with subordinate ids, copies strata where that
# user can run it, runs bench/run.sh as that user (strata rootless and
# buildah-overlay rootless) after a run as root with strata only (which also makes the base), and prints, per
# scenario and mode, the rootless/root and strata/buildah ratios of the mean
# times. Work dirs: /var/tmp/strata-bench-rootless (the user's) and
# /var/tmp/strata-bench-rootful; nothing is written into the project.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$HERE/.." && pwd)
BENCH_USER=${BENCH_USER:-strata-bench}
RANGE=${RANGE:-500000-565535}
W_USER=${W_USER:-/var/tmp/strata-bench-rootless}
W_ROOT=${W_ROOT:-/var/tmp/strata-bench-rootful}
export VARIANT=${VARIANT:-full} SCENARIOS=${SCENARIOS:-} QUICK=${QUICK:-0}
[ -n "$SCENARIOS" ] || unset SCENARIOS

[ "$(id -u)" = 0 ] || { echo "run as root: it creates the bench user" >&2; exit 1; }
for t in useradd usermod runuser newuidmap jq; do
  command -v "$t" >/dev/null || { echo "$t is needed (apt-get install -y passwd util-linux uidmap jq)" >&2; exit 1; }
done
if [ -z "${STRATA:-}" ]; then
  tdir=${CARGO_TARGET_DIR:-$PROJECT/target}
  STRATA=$tdir/release/strata
  [ -x "$STRATA" ] || STRATA=$tdir/debug/strata
fi
[ -x "$STRATA" ] || { echo "no strata binary (build it, or set STRATA)" >&2; exit 1; }

id "$BENCH_USER" >/dev/null 2>&1 || useradd --no-create-home --shell /bin/sh "$BENCH_USER"
grep -q "^$BENCH_USER:" /etc/subuid || usermod --add-subuids "$RANGE" --add-subgids "$RANGE" "$BENCH_USER"

mkdir -p "$W_USER" "$W_ROOT"
chown "$BENCH_USER:" "$W_USER"
install -m 0755 "$STRATA" "$W_USER/strata"
# The project and the peer scripts must be readable by the bench user.
PEER_SRC=${PEER_SRC:-$PROJECT/../shared/bench}
stamp=$(date +%Y%m%d-%H%M%S)
OUT_USER=$W_USER/results/$stamp OUT_ROOT=$W_ROOT/results/$stamp

echo "=== root: strata"
env WORK="$W_ROOT" OUT="$OUT_ROOT" PEERS= STRATA="$STRATA" PEER_SRC="$PEER_SRC" \
  ${MODES:+MODES="$MODES"} "$HERE/run.sh" || echo "(the root run reported failures; see $OUT_ROOT)"

# The base images the root run made (rootless buildah cannot make them with
# the peers' script), handed to the bench user.
rm -rf "$W_USER/images"
cp -a "$W_ROOT/images" "$W_USER/images"
chown -R "$BENCH_USER:" "$W_USER/images"
OUT_BUILDAH=$W_USER/results/$stamp-buildah
as_user() {
  runuser -u "$BENCH_USER" -- env HOME="$W_USER" XDG_RUNTIME_DIR="$W_USER/run-user" \
    WORK="$W_USER" STRATA="$W_USER/strata" STORE="$W_USER/bench-store" PEER_SRC="$PEER_SRC" \
    VARIANT="$VARIANT" QUICK="$QUICK" ${SCENARIOS:+SCENARIOS="$SCENARIOS"} ${MODES:+MODES="$MODES"} "$@"
}
echo "=== rootless: strata as $BENCH_USER"
as_user OUT="$OUT_USER" PEERS= "$HERE/run.sh" || echo "(the rootless strata run reported failures; see $OUT_USER)"
# buildah's store holds files of subordinate ids that only its namespace may
# delete, and the peers' script deletes it with rm: run it inside `buildah unshare`.
echo "=== rootless: buildah-overlay as $BENCH_USER (in buildah unshare)"
as_user OUT="$OUT_BUILDAH" PEERS=buildah-overlay SKIP_STRATA=1 buildah unshare "$HERE/run.sh" ||
  echo "(the rootless buildah run reported failures; see $OUT_BUILDAH)"

mean() { [ -f "$1" ] && jq -r '.results[0].mean * 1000 | round / 1000' "$1" || echo ""; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }' || echo "-"; }
echo
echo "| scenario | mode | strata rootless s | strata root s | buildah rootless s | rootless/root | rootless strata/buildah |"
echo "|---|---|---|---|---|---|---|"
for j in "$OUT_USER"/*.strata.*.json; do
  [ -e "$j" ] || continue
  f=$(basename "$j" .json)             # <scenario>-<variant>.strata.<mode>
  v=${f%%.strata.*} mode=${f##*.}
  u=$(mean "$j") r=$(mean "$OUT_ROOT/$v.strata.$mode.json") b=$(mean "$OUT_BUILDAH/$v.buildah-overlay.$mode.json")
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$v" "$mode" "${u:--}" "${r:--}" "${b:--}" \
    "$(ratio "$u" "$r")" "$(ratio "$u" "$b")"
done
