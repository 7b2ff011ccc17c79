#!/usr/bin/env python3
"""Write a closed UV sphere as a binary STL, deterministically and fast.

    gen_sphere.py SEGMENTS RINGS OUT.stl [--radius MM]

A UV sphere with S segments and R rings has 2 poles, R-1 rings of S vertices
and 2*S*(R-1) triangles (S at each pole cap, 2*S per band between rings).
Every vertex is computed once, in float32, and shared by index, so the
triangles that meet at a vertex carry bit-identical coordinates (exact weld).
Winding is counter-clockwise seen from outside (outward normals); the script
checks that the signed volume is positive and that the file size is
84 + 50 * triangles before it reports success.

Used by compare.sh; needs numpy only.
"""

import argparse
import os
import sys

import numpy as np


def sphere_faces(segments: int, rings: int) -> np.ndarray:
    """Triangle vertex indices, shape (2*S*(R-1), 3), CCW from outside."""
    s, r = segments, rings
    north = 0
    south = 1 + (r - 1) * s

    def ring_vertex(i, j):
        # i: ring 1..R-1 from north to south; j: segment, wraps at S.
        return 1 + (i - 1) * s + (j % s)

    j = np.arange(s, dtype=np.int64)
    parts = []
    # North cap: (pole, ring1[j], ring1[j+1]).
    parts.append(np.stack([np.full(s, north), ring_vertex(1, j), ring_vertex(1, j + 1)], axis=1))
    # Bands between ring i and i+1: quad a(i,j) b(i+1,j) c(i+1,j+1) d(i,j+1)
    # split as (a, b, c) and (a, c, d).
    if r > 2:
        i = np.arange(1, r - 1, dtype=np.int64)[:, None]
        a = ring_vertex(i, j[None, :]).ravel()
        b = ring_vertex(i + 1, j[None, :]).ravel()
        c = ring_vertex(i + 1, j[None, :] + 1).ravel()
        d = ring_vertex(i, j[None, :] + 1).ravel()
        band = np.empty((a.size * 2, 3), dtype=np.int64)
        band[0::2] = np.stack([a, b, c], axis=1)
        band[1::2] = np.stack([a, c, d], axis=1)
        parts.append(band)
    # South cap: (ring[R-1][j], pole, ring[R-1][j+1]).
    parts.append(np.stack([ring_vertex(r - 1, j), np.full(s, south), ring_vertex(r - 1, j + 1)], axis=1))
    return np.concatenate(parts)


def sphere_vertices(segments: int, rings: int, radius: float) -> np.ndarray:
    """Vertex positions, float32, shape (2 + S*(R-1), 3)."""
    s, r = segments, rings
    polar = np.pi * np.arange(1, r, dtype=np.float64) / r  # ring angles from +Z
    azim = 2.0 * np.pi * np.arange(s, dtype=np.float64) / s
    sp, cp = np.sin(polar)[:, None], np.cos(polar)[:, None]
    ring = np.empty((r - 1, s, 3), dtype=np.float64)
    ring[..., 0] = radius * sp * np.cos(azim)[None, :]
    ring[..., 1] = radius * sp * np.sin(azim)[None, :]
    ring[..., 2] = radius * cp
    verts = np.empty((2 + s * (r - 1), 3), dtype=np.float64)
    verts[0] = (0.0, 0.0, radius)
    verts[1:-1] = ring.reshape(-1, 3)
    verts[-1] = (0.0, 0.0, -radius)
    return verts.astype("<f4")


def write_binary_stl(out: str, title: str, n: int, body: np.ndarray) -> "int | None":
    """Writes a binary STL of `n` facets (`body`, the 50-byte records) to
    `out` through a `.part` file renamed into place; its size, or None (with
    the reason on stderr) when the file is not the size `n` says."""
    header = f"{title}, farm benches/peers".encode()[:80].ljust(80, b" ")
    tmp = out + ".part"
    with open(tmp, "wb") as fh:
        fh.write(header)
        fh.write(np.uint32(n).astype("<u4").tobytes())
        body.tofile(fh)
    size = os.path.getsize(tmp)
    if size != 84 + 50 * n:
        print(f"{os.path.basename(sys.argv[0])}: {tmp} is {size} bytes, expected {84 + 50 * n}", file=sys.stderr)
        return None
    os.replace(tmp, out)
    return size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("segments", type=int)
    ap.add_argument("rings", type=int)
    ap.add_argument("out")
    ap.add_argument("--radius", type=float, default=20.0, help="mm (default 20)")
    args = ap.parse_args()
    if args.segments < 3 or args.rings < 2:
        ap.error("need segments >= 3 and rings >= 2")

    verts = sphere_vertices(args.segments, args.rings, args.radius)
    faces = sphere_faces(args.segments, args.rings)
    n = faces.shape[0]
    assert n == 2 * args.segments * (args.rings - 1), n
    if n >= 2**32:
        ap.error("too many triangles for binary STL")

    tri = verts[faces]  # (n, 3, 3) float32, exact shared coordinates
    t64 = tri.astype(np.float64)
    cross = np.cross(t64[:, 1] - t64[:, 0], t64[:, 2] - t64[:, 0])
    signed_volume = float(np.einsum("ij,ij->", t64[:, 0], np.cross(t64[:, 1], t64[:, 2])) / 6.0)
    if not signed_volume > 0.0:
        print(f"gen_sphere: signed volume {signed_volume} is not positive", file=sys.stderr)
        return 1
    length = np.linalg.norm(cross, axis=1)
    length[length == 0.0] = 1.0
    normals = (cross / length[:, None]).astype("<f4")
    del t64, cross, length

    record = np.dtype([("normal", "<f4", (3,)), ("vertices", "<f4", (3, 3)), ("attr", "<u2")])
    assert record.itemsize == 50
    body = np.zeros(n, dtype=record)
    body["normal"] = normals
    body["vertices"] = tri
    del tri, normals

    size = write_binary_stl(args.out, f"UV sphere S={args.segments} R={args.rings} r={args.radius:g}mm", n, body)
    if size is None:
        return 1
    exact = 4.0 / 3.0 * np.pi * args.radius**3
    print(f"{args.out}: {n} triangles, {size} bytes, volume {signed_volume:.3f} mm3 (sphere {exact:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
