#!/usr/bin/env python3
"""trimesh peer for compare.sh: load one STL and print what farm analyze reports.

    trimesh_analyze.py FILE.stl

Loads with trimesh.load(path, file_type='stl', force='mesh') (trimesh merges
coincident vertices on load), then computes volume, area, bounds,
is_watertight and the number of connected bodies via
split(only_watertight=False) (needs networkx or scipy), and prints JSON.
"""

import json
import sys

import trimesh


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = sys.argv[1]
    m = trimesh.load(path, file_type="stl", force="mesh")
    result = {
        "trimesh": trimesh.__version__,
        "triangles": int(len(m.faces)),
        "vertices": int(len(m.vertices)),
        "volume_mm3": float(m.volume),
        "surface_area_mm2": float(m.area),
        "bounds": m.bounds.tolist(),
        "watertight": bool(m.is_watertight),
        "bodies": len(m.split(only_watertight=False)),
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
