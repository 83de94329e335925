#!/usr/bin/env bash
# Builds strata, builds the bundled example image (examples/hello), and runs
# it with runc: prints "hello from strata".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked
strata=$PWD/target/release/strata
work=${STRATA_EXAMPLE_DIR:-$PWD/target/example}
rm -rf "$work" && mkdir -p "$work"
# The example's userland: Debian's static busybox (not checked in).
cp "$(command -v busybox)" examples/hello/busybox
"$strata" --root "$work/store" build examples/hello --progress plain \
  --output "type=oci,dest=$work/oci"
"$strata" --root "$work/store" graph examples/hello
if [ "$(id -u)" -eq 0 ] && command -v umoci >/dev/null && command -v runc >/dev/null; then
  umoci unpack --image "$work/oci:example/hello:latest" "$work/bundle" >/dev/null
  jq '.process.terminal = false' "$work/bundle/config.json" >"$work/bundle/config.tmp" &&
    mv "$work/bundle/config.tmp" "$work/bundle/config.json"
  echo "--- running example/hello:latest with runc"
  (cd "$work/bundle" && runc run "strata-example-$$")
else
  echo "--- built example/hello:latest into $work/oci (running it needs root, umoci and runc)"
  skopeo inspect "oci:$work/oci:example/hello:latest" 2>/dev/null || true
fi
