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


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    write_stl(out / "needle.stl", needles(20_000, 29_000.0, 20.0))
    write_stl(out / "needle_dense.stl", needles(40_000, 340.0, 20.0))
    write_stl(out / "needle_crowded.stl", needles(120_000, 340.0, 20.0))
    write_stl(out / "sphere_1m.stl", uv_sphere(1000, 501, 40.0))


if __name__ == "__main__":
    main()
