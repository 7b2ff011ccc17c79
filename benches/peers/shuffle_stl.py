#!/usr/bin/env python3
"""Write a shuffled copy of a binary STL, reproducibly.

    shuffle_stl.py IN.stl OUT.stl [--seed N]

The same facets in a random order, each triangle's three corners rotated
cyclically by a random 0, 1 or 2 places (which keeps the winding, so the
stored normal and every signed quantity stay the same). The permutation and
the rotations come from numpy's PCG64 generator seeded with --seed (default
17), so the same input and seed give the same bytes. The script checks the
size (84 + 50 * triangles) and that the signed volume matches the input's.

Used by compare.sh (issue 17); needs numpy only.
"""

import argparse
import os
import sys

import numpy as np

from gen_sphere import write_binary_stl  # the same folder: on sys.path when run as a script

RECORD = np.dtype([("normal", "<f4", (3,)), ("vertices", "<f4", (3, 3)), ("attr", "<u2")])


def signed_volume(tri: np.ndarray) -> float:
    t = tri.astype(np.float64)
    return float(np.einsum("ij,ij->", t[:, 0], np.cross(t[:, 1], t[:, 2])) / 6.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=17, help="generator seed (default 17)")
    args = ap.parse_args()

    size = os.path.getsize(args.src)
    with open(args.src, "rb") as fh:
        head = fh.read(84)
        if len(head) < 84:
            print(f"shuffle_stl: {args.src} is too short for a binary STL", file=sys.stderr)
            return 1
        n = int(np.frombuffer(head, dtype="<u4", count=1, offset=80)[0])
        if size != 84 + 50 * n:
            print(f"shuffle_stl: {args.src} is {size} bytes, not 84 + 50 * {n} (binary STL only)", file=sys.stderr)
            return 1
        body = np.fromfile(fh, dtype=RECORD, count=n)

    rng = np.random.default_rng(args.seed)
    order = rng.permutation(n)
    shift = rng.integers(0, 3, size=n)
    out = body[order]
    del body
    corners = (np.arange(3)[None, :] + shift[:, None]) % 3  # (n, 3): rotate left by shift
    out["vertices"] = np.take_along_axis(out["vertices"], corners[:, :, None], axis=1)
    del corners, shift, order

    vol_in = signed_volume(np.fromfile(args.src, dtype=RECORD, count=n, offset=84)["vertices"])
    vol_out = signed_volume(out["vertices"])
    if not np.isclose(vol_in, vol_out, rtol=1e-9, atol=0.0):
        print(f"shuffle_stl: signed volume changed, {vol_in} -> {vol_out}", file=sys.stderr)
        return 1

    title = f"shuffled (seed {args.seed}, corners rotated) {os.path.basename(args.src)}"
    if write_binary_stl(args.out, title, n, out) is None:
        return 1
    print(f"{args.out}: {n} triangles shuffled with seed {args.seed}, volume {vol_out:.3f} mm3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
