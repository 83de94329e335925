#!/usr/bin/env bash
# Set-up of the real-application scenarios (bench/realapp/run.sh): makes, once,
#   1. a Debian bookworm base with `debootstrap --variant=minbase`, as one docker-archive
#      ($WORK/base/debian-minbase.tar) that every tool imports (strata load, docker load,
#      skopeo copy into buildah's store);
#   2. the local sources the builds use instead of the network, per scenario under
#      $WORK/sources/<scenario>/: a local apt repository (the packages' dependency closure
#      over minbase, with a Packages index from dpkg-scanpackages), a wheelhouse (python),
#      an npm cache (node), the vendored crates (rust);
#   3. the build contexts $WORK/ctx/<scenario>/: the scenario's Dockerfile and sources
#      from bench/realapp/scenarios/ plus hard links to its local sources.
# Only this script downloads (Debian mirror, PyPI, the npm registry, crates.io);
# the timed builds are offline. Steps whose output exists are skipped (FORCE=1 redoes all).
#
#   bench/realapp/setup.sh            # everything
#   STEPS="ctx" bench/realapp/setup.sh # only re-make the contexts
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=${WORK:-/var/tmp/strata-realapp}
MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
BASE_NAME=localhost/strata-bench/debian:bookworm-minbase
STEPS=${STEPS:-"base apt python node rust ctx"}
FORCE=${FORCE:-0}
SCEN=$HERE/scenarios

say() { printf '== %s\n' "$*"; }
need() { command -v "$1" >/dev/null || { echo "missing $1 (see bench/README.md, Real applications)" >&2; exit 1; }; }
done_or_force() { [ "$FORCE" = 0 ] && [ -e "$1" ]; }
has_step() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# Per-scenario Debian packages (installed with --no-install-recommends by the Dockerfiles).
apt_pkgs() {
  case $1 in
    python) echo python3 python3-venv ;;
    node) echo nodejs npm ;;
    c) echo gcc libc6-dev make ;;
    rust) echo cargo ;;
  esac
}

mkdir -p "$WORK/base" "$WORK/sources" "$WORK/ctx" "$WORK/logs"

# ---------------------------------------------------------------------------
# 1. the base
# ---------------------------------------------------------------------------
make_base() {
  local b=$WORK/base
  if done_or_force "$b/debian-minbase.tar"; then say "base: $b/debian-minbase.tar exists"; return; fi
  need debootstrap; need buildah; need skopeo
  if [ "$FORCE" = 1 ] || [ ! -d "$b/rootfs" ]; then
    rm -rf "$b/rootfs" "$b/rootfs.tmp"
    say "base: debootstrap --variant=minbase $SUITE from $MIRROR (1-3 min)"
    debootstrap --variant=minbase "$SUITE" "$b/rootfs.tmp" "$MIRROR" >"$b/debootstrap.log" 2>&1
    mv "$b/rootfs.tmp" "$b/rootfs"
  fi
  rm -rf "$b/rootfs"/var/cache/apt/archives/*.deb "$b/rootfs"/var/lib/apt/lists/*
  # One layer, sorted, numeric owners. The files keep the mtimes the packages gave them.
  tar -C "$b/rootfs" --numeric-owner --sort=name -cf "$b/rootfs.tar" .
  # buildah (a private store) turns the tar into an image; skopeo writes the one
  # docker-archive that all three tools import.
  local st=$b/buildah-store
  rm -rf "$st"
  local bf=(--root "$st/root" --runroot "$st/run" --storage-driver vfs)
  local c
  c=$(buildah "${bf[@]}" from scratch)
  buildah "${bf[@]}" add --quiet "$c" "$b/rootfs.tar" /
  buildah "${bf[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash "$c"
  buildah "${bf[@]}" commit --quiet --timestamp 0 "$c" "$BASE_NAME" >/dev/null
  buildah "${bf[@]}" rm "$c" >/dev/null
  rm -f "$b/debian-minbase.tar.tmp"
  skopeo copy --quiet "containers-storage:[vfs@$st/root+$st/run]$BASE_NAME" \
    "docker-archive:$b/debian-minbase.tar.tmp:$BASE_NAME"
  buildah "${bf[@]}" rmi --all >/dev/null 2>&1 || true
  rm -rf "$st" "$b/rootfs.tar"
  mv "$b/debian-minbase.tar.tmp" "$b/debian-minbase.tar"
  say "base: $b/debian-minbase.tar ($(du -m "$b/debian-minbase.tar" | cut -f1) MiB), $BASE_NAME"
}

# ---------------------------------------------------------------------------
# 2a. local apt repositories: the host's apt with Dir= pointing at a copy of the
#     base's apt and dpkg state, so it resolves exactly what minbase lacks.
# ---------------------------------------------------------------------------
make_apt() {
  local ar=$WORK/apt-root s
  rm -rf "$ar"
  mkdir -p "$ar/etc" "$ar/var/lib" "$ar/var/lib/apt/lists/partial" "$ar/var/cache/apt/archives/partial"
  cp -a "$WORK/base/rootfs/etc/apt" "$ar/etc/"
  cp -a "$WORK/base/rootfs/var/lib/dpkg" "$ar/var/lib/"
  local -a o=(-o "Dir=$ar" -o "Dir::State::status=$ar/var/lib/dpkg/status" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  say "apt: apt-get update against the base's sources ($(grep -h '^deb ' "$ar/etc/apt/sources.list" | head -1))"
  apt-get "${o[@]}" update -qq >"$WORK/logs/apt-update.log" 2>&1
  for s in python node c rust; do
    local repo=$WORK/sources/$s/repo
    if done_or_force "$repo/Packages"; then say "apt: $repo exists"; continue; fi
    rm -rf "$repo"; mkdir -p "$repo/partial"
    # shellcheck disable=SC2046
    apt-get "${o[@]}" -o "Dir::Cache::archives=$repo" install -y -qq -d --no-install-recommends \
      $(apt_pkgs "$s") >"$WORK/logs/apt-$s.log" 2>&1
    rm -rf "$repo/partial" "$repo/lock"
    (cd "$repo" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null)
    say "apt: $s: $(find "$repo" -name "*.deb" | wc -l) packages, $(du -sm "$repo" | cut -f1) MiB ($(apt_pkgs "$s"))"
  done
  rm -rf "$ar"
}

# ---------------------------------------------------------------------------
# 2b. python wheelhouse (for bookworm's python3.11, x86_64)
# ---------------------------------------------------------------------------
make_python() {
  local w=$WORK/sources/python/wheels
  if done_or_force "$w/requirements.txt"; then say "python: $w exists"; return; fi
  rm -rf "$w"; mkdir -p "$w"
  python3 -m pip download --quiet --only-binary=:all: --platform manylinux2014_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311 \
    -r "$SCEN/python/requirements.txt" -d "$w"
  cp "$SCEN/python/requirements.txt" "$w/requirements.txt"
  say "python: $(find "$w" -name "*.whl" | wc -l) wheels: $(find "$w" -name "*.whl" -printf '%f ')"
}

# ---------------------------------------------------------------------------
# 2c. npm cache filled from the committed package-lock.json
# ---------------------------------------------------------------------------
make_node() {
  local c=$WORK/sources/node/npm-cache
  if done_or_force "$c/_cacache"; then say "node: $c exists"; return; fi
  need npm
  rm -rf "$c" "$WORK/sources/node/fill"; mkdir -p "$WORK/sources/node/fill"
  cp "$SCEN/node/app/package.json" "$SCEN/node/app/package-lock.json" "$WORK/sources/node/fill/"
  (cd "$WORK/sources/node/fill" && npm ci --cache "$c" --no-audit --no-fund --ignore-scripts --loglevel=error)
  rm -rf "$WORK/sources/node/fill" "$c/_logs"
  say "node: npm cache $(du -sm "$c" | cut -f1) MiB, $(find "$c/_cacache/content-v2" -type f | wc -l) tarballs"
}

# ---------------------------------------------------------------------------
# 2d. vendored crates (from the committed Cargo.toml / Cargo.lock)
# ---------------------------------------------------------------------------
make_rust() {
  local v=$WORK/sources/rust/vendor
  if done_or_force "$v/.done"; then say "rust: $v exists"; return; fi
  need cargo
  local t=$WORK/sources/rust/crate
  rm -rf "$v" "$t"; mkdir -p "$t/src"
  cp "$SCEN/rust/src/Cargo.toml" "$SCEN/rust/src/Cargo.lock" "$t/"
  cp "$SCEN/rust/src/src/main.rs" "$t/src/"
  (cd "$t" && CARGO_HOME=$WORK/sources/rust/cargo-home cargo vendor --locked --versioned-dirs "$v" >"$WORK/logs/cargo-vendor.log" 2>&1)
  rm -rf "$t" "$WORK/sources/rust/cargo-home"
  touch "$v/.done"
  say "rust: vendor $(du -sm "$v" | cut -f1) MiB: $(find "$v" -mindepth 1 -maxdepth 1 -type d -printf '%f ')"
}

# ---------------------------------------------------------------------------
# 3. contexts: the scenario files plus hard links to the local sources (same
#    inodes every time, so the tools' stat caches see them unchanged)
# ---------------------------------------------------------------------------
make_ctx() {
  local s
  for s in python node c rust; do
    local cx=$WORK/ctx/$s
    rm -rf "$cx"; mkdir -p "$cx"
    cp -a "$SCEN/$s/." "$cx/"
    rm -f "$cx/requirements.txt"
    cp -al "$WORK/sources/$s/repo" "$cx/repo"
    case $s in
      python) cp -al "$WORK/sources/python/wheels" "$cx/wheels" ;;
      node) cp -al "$WORK/sources/node/npm-cache" "$cx/npm-cache" ;;
      rust) cp -al "$WORK/sources/rust/vendor" "$cx/src/vendor" ;;
    esac
    say "ctx: $cx ($(du -sm "$cx" | cut -f1) MiB)"
  done
}

has_step base && make_base
has_step apt && make_apt
has_step python && make_python
has_step node && make_node
has_step rust && make_rust
has_step ctx && make_ctx
say "set-up done: $WORK"
