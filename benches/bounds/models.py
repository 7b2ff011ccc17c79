#!/usr/bin/env python3
"""Write the models the bounds are measured on, as binary STL files.

    models.py OUT_DIR

- needle.stl: the issue's 1 MB model, 20,000 needle-thin triangles 29 m tall
  on a 20 mm plate (the same shape as `mesh::needles(20_000, 29_000.0, 20.0)`).
- needle_dense.stl: 40,000 needles 340 mm tall: fits a machine, 45 million
  triangle-layer crossings (under the default limit of 100 million).
- needle_crowded.stl: 120,000 needles 340 mm tall: over the shell limit.
- sphere_1m.stl: a closed UV sphere of 1,000,000 triangles (1000 segments,
  501 rings), radius 40 mm.

    models.py --family NAME --scale N OUT_FILE

writes one model of a family whose cost grows with N, for the budget sweep
(budget.sh): each family loads a different stage of the analysis.

- needles: N needles 340 mm tall on a 20 mm plate (contour tracing).
- sphere: a closed UV sphere of about N triangles (the weld and topology).
- cubes: N separate 1 mm cubes on a 3D grid (shells).
- shelves: N floating horizontal slabs stacked in columns (support columns).
- soup: N unconnected triangles in a 100 mm box (the nearby weld: every edge
  is open).
- comb: closed comb outlines with N teeth in all, in rows, 100 mm tall (long
  contours: many crossings in every layer).

Standard library only, deterministic.
"""

import math
import struct
import sys
from pathlib import Path


def write_stl(path: Path, triangles) -> None:
    triangles = list(triangles)
    with path.open("wb") as out:
        out.write(b"pricing-farm bounds benchmark".ljust(80, b"\0"))
        out.write(struct.pack("<I", len(triangles)))
        pack = struct.Struct("<12fH").pack
        for a, b, c in triangles:
            out.write(pack(0.0, 0.0, 0.0, *a, *b, *c, 0))


def needles(count: int, height: float, plate: float):
    across = max(1, math.ceil(math.sqrt(count)))
    pitch = plate / across
    width = min(0.01, pitch / 2.0)
    for n in range(count):
        x, y = (n % across) * pitch, (n // across) * pitch
        yield (x, y, 0.0), (x + width, y, 0.0), (x + width / 2.0, y + width / 2.0, height)


def uv_sphere(segments: int, rings: int, radius: float):
    def vertex(ring: int, segment: int):
        theta = math.pi * ring / rings
        phi = 2.0 * math.pi * segment / segments
        return (
            radius * math.sin(theta) * math.cos(phi),
            radius * math.sin(theta) * math.sin(phi),
            radius * math.cos(theta),
        )

    north, south = (0.0, 0.0, radius), (0.0, 0.0, -radius)
    for s in range(segments):
        yield north, vertex(1, s), vertex(1, s + 1)
        yield south, vertex(rings - 1, s + 1), vertex(rings - 1, s)
    for r in range(1, rings - 1):
        for s in range(segments):
            a, b = vertex(r, s), vertex(r, s + 1)
            c, d = vertex(r + 1, s), vertex(r + 1, s + 1)
            yield a, c, b
            yield b, c, d


def box(x0, y0, z0, x1, y1, z1):
    """A closed axis-aligned box, outward normals."""
    v = [(x, y, z) for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)]
    faces = [(0, 2, 1), (1, 2, 3), (4, 5, 6), (5, 7, 6), (0, 1, 4), (1, 5, 4),
             (2, 6, 3), (3, 6, 7), (0, 4, 2), (2, 4, 6), (1, 3, 5), (3, 7, 5)]
    for a, b, c in faces:
        yield v[a], v[b], v[c]


def cubes(count: int):
    """On a grid 100 across and 100 deep, in layers: fits a machine up to a
    million cubes."""
    for n in range(count):
        layer, cell = divmod(n, 10_000)
        x, y, z = (cell % 100) * 2.0, (cell // 100) * 2.0, layer * 2.0
        yield from box(x, y, z, x + 1.0, y + 1.0, z + 1.0)


def shelves(count: int):
    """Slabs 0.5 mm thick, 1.5 mm apart, in columns of 50 on a 2 mm grid."""
    per_column = 50
    columns = max(1, math.ceil(count / per_column))
    across = max(1, math.ceil(math.sqrt(columns)))
    for n in range(count):
        column, level = divmod(n, per_column)
        x, y = (column % across) * 2.0, (column // across) * 2.0
        z = 1.0 + level * 2.0
        yield from box(x, y, z, x + 1.5, y + 1.5, z + 0.5)


def soup(count: int):
    state = 12345

    def rand() -> float:
        nonlocal state
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return (state >> 11) / float(1 << 53) * 100.0

    for _ in range(count):
        x, y, z = rand(), rand(), rand()
        yield (x, y, z), (x + 0.5, y, z + 0.2), (x, y + 0.5, z + 0.4)


def comb(teeth: int, height: float = 100.0):
    """Combs of up to 400 teeth (0.2 mm wide, 5 mm long, on a 0.4 mm
    pitch) in rows 7 mm apart, extruded to `height`: their walls, and their
    tops and bottoms fanned from a point inside the spine."""
    for row in range(math.ceil(teeth / 400)):
        yield from comb_row(min(400, teeth - row * 400), row * 7.0, height)


def comb_row(teeth: int, y0: float, height: float):
    outline = [(0.0, y0)]
    for t in range(teeth):
        x = t * 0.4
        outline += [(x, y0 + 1.0), (x, y0 + 6.0), (x + 0.2, y0 + 6.0), (x + 0.2, y0 + 1.0)]
    outline += [(teeth * 0.4, y0 + 1.0), (teeth * 0.4, y0)]
    outline.reverse()
    n = len(outline)
    for i in range(n):
        (x0, y0_), (x1, y1) = outline[i], outline[(i + 1) % n]
        a, b = (x0, y0_, 0.0), (x1, y1, 0.0)
        c, d = (x0, y0_, height), (x1, y1, height)
        yield a, b, d
        yield a, d, c
    # Caps: not a valid triangulation of the outline, but every edge is
    # shared, which is all the analysis needs to run every stage.
    centre = (0.0, y0 + 0.5)
    for i in range(n):
        (x0, y0_), (x1, y1) = outline[i], outline[(i + 1) % n]
        yield (*centre, 0.0), (x1, y1, 0.0), (x0, y0_, 0.0)
        yield (*centre, height), (x0, y0_, height), (x1, y1, height)


def sphere(triangles: int):
    segments = max(8, int(math.sqrt(triangles)))
    rings = max(4, triangles // (2 * segments) + 1)
    return uv_sphere(segments, rings, 40.0)


FAMILIES = {
    "needles": lambda n: needles(n, 340.0, 20.0),
    "sphere": sphere,
    "cubes": cubes,
    "shelves": shelves,
    "soup": soup,
    "comb": comb,
}


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--family" and sys.argv[3] == "--scale":
        write_stl(Path(sys.argv[5]), FAMILIES[sys.argv[2]](int(sys.argv[4])))
        return
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    write_stl(out / "needle.stl", needles(20_000, 29_000.0, 20.0))
    write_stl(out / "needle_dense.stl", needles(40_000, 340.0, 20.0))
    write_stl(out / "needle_crowded.stl", needles(120_000, 340.0, 20.0))
    write_stl(out / "sphere_1m.stl", uv_sphere(1000, 501, 40.0))


if __name__ == "__main__":
    main()
