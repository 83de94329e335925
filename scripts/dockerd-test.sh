#!/usr/bin/env bash
# A private dockerd (Debian's docker.io) for the BuildKit differential tests.
#
#   scripts/dockerd-test.sh start DIR   start it; its socket is DIR/docker.sock
#   scripts/dockerd-test.sh stop DIR    stop it and remove DIR
#
# Everything it owns lives under DIR: data root, exec root (where it starts
# its own containerd), pid file, socket, log. It never uses
# /var/run/docker.sock; if a system containerd is running, it uses its own
# containerd namespaces there, so it shares nothing with a dockerd the user
# runs. No bridge and no iptables: builds run with `--network none`.
# Needs root. Talk to it with DOCKER_HOST=unix://DIR/docker.sock /usr/bin/docker.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
docker=/usr/bin/docker

case "$cmd" in
start)
  [ -x /usr/sbin/dockerd ] && [ -x "$docker" ] || {
    echo "dockerd-test: Debian's docker.io is not installed (apt-get install docker.io containerd)" >&2
    exit 3
  }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/dockerd.pid" ] && kill -0 "$(cat "$dir/dockerd.pid")" 2>/dev/null; then
    echo "dockerd-test: already running, pid $(cat "$dir/dockerd.pid")" >&2
    exit 0
  fi
  # setsid: the daemon is not in the caller's process group, so a ^C in a
  # terminal reaches it only through `stop`.
  setsid /usr/sbin/dockerd \
    --data-root "$dir/data" --exec-root "$dir/exec" \
    --pidfile "$dir/dockerd.pid" --host "unix://$dir/docker.sock" \
    --containerd-namespace strata-test --containerd-plugins-namespace strata-test-plugins \
    --storage-driver overlay2 --iptables=false --ip-masq=false --bridge=none \
    >"$dir/dockerd.log" 2>&1 </dev/null &
  echo $! >"$dir/dockerd.launcher.pid"
  for _ in $(seq 1 150); do
    if DOCKER_HOST="unix://$dir/docker.sock" "$docker" version >/dev/null 2>&1; then
      exit 0
    fi
    sleep 0.2
  done
  echo "dockerd-test: dockerd did not come up; its log ($dir/dockerd.log):" >&2
  tail -n 20 "$dir/dockerd.log" >&2 || true
  exit 1
  ;;
stop)
  [ -d "$dir" ] || exit 0
  dir=$(cd "$dir" && pwd)
  pid=
  for f in "$dir/dockerd.pid" "$dir/dockerd.launcher.pid"; do
    [ -f "$f" ] && pid=$(cat "$f") && break
  done
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    # dockerd stops the containerd it started, then exits.
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "dockerd-test: dockerd $pid did not stop; killing it" >&2
      kill -9 "$pid" || true
    fi
  fi
  # Whatever is still mounted under DIR (overlays, netns, shm) goes before
  # the files do, deepest first.
  { grep -F " $dir/" /proc/self/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$dir"
  ;;
*) usage ;;
esac
