#!/usr/bin/env python3
"""Per-layer sizes of two images saved as docker-archives (strata's and BuildKit's).

    layer-sizes.py STRATA.tar BUILDKIT.tar

For each layer: the uncompressed tar size and the sum of its regular files'
sizes, paired with the other image's layer at the same position (layers that
carry no history entry's `empty_layer` are counted in order). Prints a table,
then `MAX-RATIO-OK` when no strata layer's tar is more than 1.1x its match,
else `MAX-RATIO-EXCEEDED`.
"""
import gzip
import io
import json
import sys
import tarfile

LIMIT = 1.1


class Counter(io.RawIOBase):
    """A stream that counts what goes through it."""

    def __init__(self, f):
        self.f = f
        self.n = 0

    def readable(self):
        return True

    def readinto(self, b):
        data = self.f.read(len(b))
        self.n += len(data)
        b[: len(data)] = data
        return len(data)


def layer_stats(outer, name):
    raw = outer.extractfile(name)
    head = raw.read(2)
    raw.seek(0)
    src = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
    counted = Counter(src)
    files = 0
    content = 0
    with tarfile.open(fileobj=io.BufferedReader(counted), mode="r|") as t:
        for m in t:
            files += 1
            if m.isreg():
                content += m.size
    # drain the end-of-archive blocks so the count is the whole tar
    while counted.read(1 << 16):
        pass
    return counted.n, content, files


def image(path):
    with tarfile.open(path) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        config = json.load(outer.extractfile(manifest["Config"]))
        steps = [
            h.get("created_by", "")
            for h in config.get("history", [])
            if not h.get("empty_layer", False)
        ]
        layers = [layer_stats(outer, n) for n in manifest["Layers"]]
    if len(steps) != len(layers):
        steps = [""] * len(layers)
    return list(zip(steps, layers))


def short(step):
    for p in ("/bin/sh -c ", "|1 ", "|0 "):
        step = step.replace(p, "")
    step = step.replace("#(nop) ", "").strip()
    return (step[:48] + "…") if len(step) > 49 else step


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: layer-sizes.py STRATA.tar BUILDKIT.tar")
    ours = image(sys.argv[1])
    theirs = image(sys.argv[2])
    if len(ours) != len(theirs):
        print(f"note: strata has {len(ours)} layers, BuildKit {len(theirs)}; paired in order")
    print(
        f"{'#':>2} {'step (BuildKit history)':<50} {'strata tar':>12} {'buildkit tar':>12}"
        f" {'ratio':>7} {'strata files':>12} {'bk files':>9}"
    )
    worst = 0.0
    for i, (a, b) in enumerate(zip(ours, theirs)):
        (_, (ta, ca, fa)), (step, (tb, cb, fb)) = a, b
        r = ta / tb if tb else float("inf")
        worst = max(worst, r)
        print(f"{i:>2} {short(step):<50} {ta:>12} {tb:>12} {r:>6.2f}x {fa:>12} {fb:>9}")
    for extra in ours[len(theirs):]:
        print(f"   strata only: {extra[1][0]} bytes")
        worst = float("inf")
    print(f"largest ratio: {worst:.2f}x (limit {LIMIT}x)")
    print("MAX-RATIO-OK" if worst <= LIMIT else "MAX-RATIO-EXCEEDED")


if __name__ == "__main__":
    main()
