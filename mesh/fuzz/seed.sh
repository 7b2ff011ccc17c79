#!/usr/bin/env bash
# Fills the fuzz targets' seed corpora (corpus/<target>/, not tracked) from
# files in this repository: the sample models in every format, the fuzz
# regressions, a few small corpus files, and for `threemf` the model parts
# of the sample package, one in inches, and one whose component lives in a
# second part. Run from anywhere; it adds files and never deletes any.
set -euo pipefail
fuzz="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$fuzz/../.." && pwd)"
mkdir -p "$fuzz/corpus/analyze" "$fuzz/corpus/threemf" "$fuzz/corpus/obj"

cp "$repo"/tests/data/cube_20mm.{stl,3mf,obj} "$repo"/mesh/tests/fuzz_regressions/*.stl "$fuzz/corpus/analyze/"
for f in openscad_issue1580_zero_area_ascii trimesh_20mm_xyz_cube numpystl_star_empty_header \
    stlmodels_incorrect_face_counter admesh_block_ascii_uppercase; do
    cp "$repo/tests/data/corpus/files/$f.stl" "$fuzz/corpus/analyze/"
done

cp "$repo/tests/data/cube_20mm.obj" "$fuzz/corpus/obj/"
printf 'v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvt 0 0\nvn 0 0 1\nf 1/1/1 3/1/1 2/1/1\nf -4//1 -3//1 -1//1\ng side\nf 1 4 3\nf 2 3 4\r\n' \
    > "$fuzz/corpus/obj/tetra_forms.obj"
printf 'v 0 0 0\nv 4 0 0\nv 4 4 0\nv 2 1 0\nv 0 4 0\nf 1 2 3 4 5\n' > "$fuzz/corpus/obj/concave_pentagon.obj"

python3 - "$repo/tests/data/cube_20mm.3mf" "$fuzz/corpus/threemf" <<'PY'
import sys, zipfile
package, out = sys.argv[1], sys.argv[2]
root = zipfile.ZipFile(package).read("3D/3dmodel.model")
open(f"{out}/cube_mm.model", "wb").write(root)
open(f"{out}/cube_inch.model", "wb").write(root.replace(b'unit="millimeter"', b'unit="inch"'))
head = b'<?xml version="1.0" encoding="UTF-8"?><model unit="millimeter" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" xmlns:p="http://schemas.microsoft.com/3dmanufacturing/production/2015/06">'
two = (head + b'<resources><object id="2"><components><component p:path="/3D/Objects/object_1.model" objectid="1" '
       b'transform="1 0 0 0 1 0 0 0 1 5 0 0"/></components></object></resources>'
       b'<build><item objectid="2" transform="2 0 0 0 2 0 0 0 2 0 0 10"/><item objectid="2"/></build></model>'
       b'\0' + root)
open(f"{out}/component_in_second_part.model", "wb").write(two)
PY
echo "seeded: $(ls "$fuzz/corpus/analyze" | wc -l) analyze, $(ls "$fuzz/corpus/threemf" | wc -l) threemf, $(ls "$fuzz/corpus/obj" | wc -l) obj"
