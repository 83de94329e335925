#!/usr/bin/env bash
# Checks of the python scenario's image, strata's against BuildKit's (issue 12):
#   1. `python3 -X importtime -c 'import flask'`: flask's cumulative import time, and the
#      wall time of `python3 -c 'import flask'`, median of $RUNS runs, in each image;
#   2. `python3 -v -c 'import flask'`: how many "bytecode is stale" lines;
#   3. the size of each layer (uncompressed tar), strata's against BuildKit's matching one.
# Both images run the same way: unpacked with umoci into a directory, run under chroot as
# the image's user (`app`, who cannot write /venv, so stale .pyc files stay stale), with
# an empty environment except PATH. The images are the ones bench/realapp/run.sh builds;
# when one is missing this script builds the python scenario once with both tools.
# Prints PASS/FAIL per criterion and exits 1 when one fails.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-/var/tmp/strata-realapp}
STRATA_ROOT=${STRATA_ROOT:-$WORK/strata-root}
if [ -z "${STRATA:-}" ]; then
  for c in "${CARGO_TARGET_DIR:-$PROJECT/target}/release/strata" "$(command -v strata || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && { STRATA=$c; break; }
  done
fi
STRATA=${STRATA:?no strata binary: cargo build --release, or set STRATA}
export STRATA
DOCKER=${DOCKER:-/usr/bin/docker}
DOCKERD_DIR=${DOCKERD_DIR:-$WORK/dockerd}
export DOCKER_HOST=unix://$DOCKERD_DIR/docker.sock
RUNS=${RUNS:-15}
CW=${CW:-$WORK/check-python}
IMG=realapp/python:latest

started_dockerd=0
if ! "$DOCKER" info >/dev/null 2>&1; then
  "$HERE/run.sh" --start-dockerd >/dev/null
  started_dockerd=1
fi
# shellcheck disable=SC2317  # called by the trap
cleanup() {
  if [ "$started_dockerd" = 1 ]; then "$HERE/run.sh" --stop-dockerd; fi
  rm -rf "$CW"/*-rootfs "$CW"/*-oci
}
trap cleanup EXIT

if ! "$STRATA" --root "$STRATA_ROOT" inspect "$IMG" >/dev/null 2>&1 ||
   ! "$DOCKER" image inspect "$IMG" >/dev/null 2>&1; then
  echo "== building the python scenario with strata and BuildKit (run.sh, cold, one run)"
  KEEP_STORES=1 KEEP_DOCKERD=1 SCENARIOS=python MODES=cold QUICK=1 TOOLS="strata buildkit" \
    "$HERE/run.sh" >/dev/null
fi

rm -rf "$CW"; mkdir -p "$CW"
"$STRATA" --root "$STRATA_ROOT" save -o "$CW/strata.tar" "$IMG"
"$DOCKER" save -o "$CW/buildkit.tar" "$IMG"
for t in strata buildkit; do
  skopeo copy --quiet "docker-archive:$CW/$t.tar" "oci:$CW/$t-oci:img"
  umoci raw unpack --image "$CW/$t-oci:img" "$CW/$t-rootfs" >/dev/null 2>&1
done

uid_of() { awk -F: '$1 == "app" { print $3 ":" $4 }' "$1/etc/passwd"; }
in_image() {     # $1 rootfs, rest: the command, as user app, empty environment
  local r=$1; shift
  env -i PATH=/venv/bin:/usr/local/bin:/usr/bin:/bin HOME=/home/app \
    /usr/sbin/chroot --userspec="$(uid_of "$r")" "$r" "$@"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# The two images' runs alternate (strata, BuildKit, strata, ...), so that a
# change in the machine's load during the check reaches both alike.
declare -A imp wall stale
for t in strata buildkit; do
  in_image "$CW/$t-rootfs" python3 -c 'import flask' # one warm-up (page cache)
  : >"$CW/$t.imp"; : >"$CW/$t.wall"
done
: >"$CW/strata-nocheck.imp"
for _ in $(seq 1 "$RUNS"); do
  for t in strata buildkit; do
    r=$CW/$t-rootfs
    # importtime: "import time: self | cumulative | name"; flask's own line is the last one
    in_image "$r" python3 -X importtime -c 'import flask' 2>&1 |
      awk -F'|' '$3 ~ /^ flask$/ { print $2 + 0 }' >>"$CW/$t.imp"
    t0=$EPOCHREALTIME; in_image "$r" python3 -c 'import flask'; t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }' >>"$CW/$t.wall"
  done
  # What checking hash-based .pyc files against their sources costs (a RUN
  # has SOURCE_DATE_EPOCH, so Python writes them checked): the same import
  # in strata's image with the check off.
  in_image "$CW/strata-rootfs" python3 --check-hash-based-pycs never -X importtime -c 'import flask' 2>&1 |
    awk -F'|' '$3 ~ /^ flask$/ { print $2 + 0 }' >>"$CW/strata-nocheck.imp"
done
for t in strata buildkit; do
  imp[$t]=$(median <"$CW/$t.imp")
  wall[$t]=$(median <"$CW/$t.wall")
  stale[$t]=$(in_image "$CW/$t-rootfs" python3 -v -c 'import flask' 2>&1 | grep -c 'bytecode is stale' || true)
done

echo "== python image checks (median of $RUNS runs; strata $("$STRATA" --version 2>/dev/null || echo '?'))"
printf '%-44s %12s %12s %8s\n' check strata buildkit ratio
printf '%-44s %12s %12s %8s\n' "import flask, cumulative importtime (us)" "${imp[strata]}" "${imp[buildkit]}" \
  "$(awk -v a="${imp[strata]}" -v b="${imp[buildkit]}" 'BEGIN { printf "%.2fx", a / b }')"
printf '%-44s %12s %12s %8s\n' "python3 -c 'import flask', wall (ms)" "${wall[strata]}" "${wall[buildkit]}" \
  "$(awk -v a="${wall[strata]}" -v b="${wall[buildkit]}" 'BEGIN { printf "%.2fx", a / b }')"
printf '%-44s %12s %12s %8s\n' "  strata's with --check-hash-based-pycs never" "$(median <"$CW/strata-nocheck.imp")" "${imp[buildkit]}" \
  "$(awk -v a="$(median <"$CW/strata-nocheck.imp")" -v b="${imp[buildkit]}" 'BEGIN { printf "%.2fx", a / b }')"
printf '%-44s %12s %12s\n' "python3 -v: 'bytecode is stale' lines" "${stale[strata]}" "${stale[buildkit]}"
echo
python3 "$HERE/layer-sizes.py" "$CW/strata.tar" "$CW/buildkit.tar" | tee "$CW/layers.txt"
echo
# "no slower": within 5 %, a little slack for a noisy machine
fail=0
verdict() {      # $1: 1 = pass; prints the line, remembers a failure
  local v=PASS
  [ "$1" = 1 ] || { v=FAIL; fail=1; }
  printf '%-50s %s\n' "$2" "$v"
}
verdict "$(awk -v a="${imp[strata]}" -v b="${imp[buildkit]}" 'BEGIN { print (a <= 1.05 * b) ? 1 : 0 }')" \
  "importtime no slower than BuildKit's (<= 1.05x):"
verdict "$([ "${stale[strata]}" = 0 ] && echo 1 || echo 0)" "no stale bytecode:"
verdict "$(grep -q '^MAX-RATIO-OK' "$CW/layers.txt" && echo 1 || echo 0)" "every layer <= 1.1x BuildKit's matching layer:"
exit $fail
