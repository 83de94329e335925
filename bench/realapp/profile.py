#!/usr/bin/env python3
"""Helpers of profile.sh.


    profile.py instrument DOCKERFILE > OUT   # every RUN prints how long its command took
    profile.py report LOG                    # per step: the tool's time, the command's, the rest
                                             # (strata's or BuildKit's --progress plain log)

`instrument` wraps each RUN's shell command as
    t0=$(date +%s.%N); ( CMD ); rc=$?; awk ... 'CMDTIME <seconds>'; exit $rc
keeping its flags (mounts), so the difference between strata's step time and
CMDTIME is what strata spends around the command: preparing the root (snapshots
of the parent layers, mounts), then turning the upper dir into a layer (tar,
compression, digest) and a snapshot.
"""
import re
import sys


def instructions(text):
    """Dockerfile lines joined over backslash continuations (comments dropped)."""
    out, cur = [], ""
    for line in text.splitlines():
        if not cur and (line.lstrip().startswith("#") or not line.strip()):
            out.append(line)
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        out.append(cur + line)
        cur = ""
    if cur:
        out.append(cur)
    return out


def instrument(path):
    for ins in instructions(open(path).read()):
        m = re.match(r"^(RUN\s+)((?:--\S+\s+)*)(.*)$", ins)
        if not m or m.group(3).startswith("["):
            print(ins)
            continue
        cmd = m.group(3).strip()
        wrapped = (
            "t0=$(date +%s.%N); ( " + cmd + " ); rc=$?; "
            "awk -v a=\"$t0\" -v b=\"$(date +%s.%N)\" "
            "'BEGIN { printf \"CMDTIME %.2f\\n\", b - a }'; exit $rc"
        )
        print(m.group(1) + m.group(2) + wrapped)


def report(path):
    steps = []
    cmd = {}
    names = {}
    for line in open(path, errors="replace"):
        # BuildKit's plain progress: "#6 [2/6] RUN …", "#6 12.3 CMDTIME 10.5", "#6 DONE 25.5s"
        m = re.match(r"^#(\d+) (\[[^\]]+\] .*)$", line)
        if m:
            names[m.group(1)] = m.group(2).strip()
            continue
        m = re.match(r"^#(\d+) [0-9.]+ CMDTIME ([0-9.]+)", line)
        if m:
            cmd[m.group(1)] = float(m.group(2))
            continue
        m = re.match(r"^#(\d+) DONE ([0-9.]+)s", line)
        if m and m.group(1) in names:
            steps.append((m.group(1), float(m.group(2)), names[m.group(1)]))
            continue
        # strata's: "   [0/1] CMDTIME 10.5", "=> [0/1] DONE 25.5s RUN …"
        m = re.match(r"^\s*\[([^\]]+)\] CMDTIME ([0-9.]+)", line)
        if m:
            cmd[m.group(1)] = float(m.group(2))
            continue
        m = re.match(r"^=> \[([^\]]+)\] DONE ([0-9.]+)s (.*)$", line)
        if m:
            steps.append((m.group(1), float(m.group(2)), m.group(3)))
    print(f"{'step':<10} {'tool s':>9} {'command s':>10} {'around s':>9}  instruction")
    tot = tot_cmd = 0.0
    for sid, secs, what in steps:
        c = cmd.get(sid)
        tot += secs
        if c is not None:
            tot_cmd += c
        what = re.sub(r"--mount=\S+ ", "", what).replace("/bin/sh -c ", "")
        what = re.sub(r"t0=\$\(date \+%s\.%N\); \( ", "", what)
        what = re.sub(r" \); rc=\$\?; awk .*$", "", what)
        what = (what[:60] + "…") if len(what) > 61 else what
        around = f"{secs - c:9.2f}" if c is not None else f"{'':>9}"
        cs = f"{c:10.2f}" if c is not None else f"{'-':>10}"
        print(f"{sid:<10} {secs:9.2f} {cs} {around}  {what}")
    print(f"{'sum':<10} {tot:9.2f} {tot_cmd:10.2f} {tot - tot_cmd:9.2f}  (steps may overlap when stages run in parallel)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "instrument":
        instrument(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "report":
        report(sys.argv[2])
    else:
        sys.exit("usage: profile.py instrument DOCKERFILE | report LOG")
