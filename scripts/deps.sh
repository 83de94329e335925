#!/usr/bin/env bash
# Installs what strata's tests and examples use, from Debian's packages:
# skopeo, umoci and podman check strata's output; busybox-static is the
# example's userland; runc runs the example image; docker.io and
# containerd are the reference for the BuildKit differential test (which
# starts a private dockerd of its own: scripts/dockerd-test.sh);
# apache2-utils gives htpasswd for the login test's registry; uidmap gives
# newuidmap/newgidmap for the rootless tests. Needs root (or sudo);
# without it, prints what is missing and continues (tests that need a
# missing tool skip themselves with a visible message).
set -euo pipefail
pkgs=(skopeo umoci podman buildah runc busybox-static docker-registry jq file docker.io containerd apache2-utils uidmap)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "deps: missing ${missing[*]} and not root: install them with apt-get (tests needing them will skip)" >&2
    exit 0
  fi
else
  SUDO=
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
