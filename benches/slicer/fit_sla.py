#!/usr/bin/env python3
"""Fits the SLA resin constants of `calculator/src/fitted.rs` on the harness's SLA fitting rows.

    benches/slicer/accuracy.sh --sla --set fit --json sla-fit.json --out sla-fit.md
    benches/slicer/fit_sla.py sla-fit.json

The farm's resin for one part (calculator/src/sla.rs) is

    part + SUPPORT_MM3_PER_MM2 × downward + SUPPORT_MM3_PER_MM2_MM × columns + pad(margin)

where `downward` is the area the supports hold (the overhangs, and the bottom when the part is
raised), `columns` their area × height (the columns from the surface below each overhang, plus the
elevation under every downward face), and the pad a slab of the preset's thickness under the area
the pillars reaching down hold, seen from above, grown by the margin as a round outline of that
area would be. The three are chosen on a grid by the lowest mean |relative error|, each row's
capped at 20 %: each row weighs the same whatever its size, and a row the model does not capture
(a tiny part, whose pad is most of its supports) cannot pull the rest as it would under least
squares. Only rows of the `fit` set are read: the held-out rows must not choose anything. Prints
the constants and the fitting rows' errors before and after.
"""
import json
import math
import statistics
import sys


def features(row, profile):
    """(prusa ml, part ml, downward mm², columns mm³, pad footprint(margin) -> ml) of one row."""
    farm = row["farm"]["raw"]
    a = farm["analysis"]
    settings = profile["settings"]
    on = settings.get("supports_enable", "1") == "1"
    raised = float(settings.get("support_object_elevation", "5")) if on else 0.0
    pad_t = float(settings.get("pad_wall_thickness", "1")) if on and settings.get("pad_enable", "1") == "1" else 0.0
    downward = (a["overhang_area_mm2"] + (a["plate_contact_area_mm2"] if raised > 0 else 0.0)) if on else 0.0
    columns = (a["support_column_volume_mm3"] + raised * downward) if on else 0.0
    # The pad lies under the pillars that reach down to it (the supported area seen from above, less
    # what stands on the part) and under the part's bottom, grown by the margin as a round outline of
    # that area would be.
    to_pad = a["support_contact_area_mm2"] - a["support_on_part_area_mm2"]
    held = (to_pad + a["plate_contact_area_mm2"]) if on else 0.0

    def pad(margin):
        return (held + 2.0 * math.sqrt(math.pi * held) * margin + math.pi * margin * margin) * pad_t / 1000.0 if held > 0 else 0.0

    return row["prusa"]["cm3"], a["volume_mm3"] / 1000.0, downward, columns, pad


def errors(rows, margin, x, y):
    return [(part + pad(margin) + (x * d + y * c) / 1000.0) / prusa - 1.0 for prusa, part, d, c, pad in rows]


def report(label, errs):
    mags = sorted(abs(e) for e in errs)
    print(f"{label}: {len(errs)} rows, median |resin error| {100 * statistics.median(mags):.1f} %, "
          f"max {100 * mags[-1]:.1f} %, median signed {100 * statistics.median(errs):+.1f} %")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as fh:
        doc = json.load(fh)
    profiles = {p["name"]: p for p in doc["profiles"]}
    rows = [features(r, profiles[r["profile"]]) for r in doc["rows"]
            if r["set"] == "fit" and r["prusa"].get("ok") and r["farm"].get("ok")]
    if not rows:
        sys.exit("no fitting rows with both tools' figures (run accuracy.sh --sla --set fit --json FILE)")
    first_guess = (3.0, 0.3, 0.125)
    report("first guess (margin 3.0 mm, 0.3 mm³/mm², 0.125 mm³/mm²/mm)", errors(rows, *first_guess))
    best = None
    for margin in (m / 4.0 for m in range(0, 21)):           # 0 to 5 mm
        pads = [part + pad(margin) for _, part, _, _, pad in rows]
        for x in (i / 50.0 for i in range(0, 51)):            # 0 to 1 mm³/mm²
            for y in (j / 200.0 for j in range(0, 61)):       # 0 to 0.3 mm³/mm²/mm
                loss = sum(min(abs((base + (x * d + y * c) / 1000.0) / prusa - 1.0), 0.2)
                           for base, (prusa, _, d, c, _) in zip(pads, rows))
                if best is None or loss < best[0] - 1e-12:
                    best = (loss, margin, x, y)
    _, margin, x, y = best
    report(f"fitted (margin {margin:.2f} mm, {x:.2f} mm³/mm², {y:.3f} mm³/mm²/mm)", errors(rows, margin, x, y))
    print(f"SLA_PAD_MARGIN_MM = {margin:.2f}\nSLA_SUPPORT_MM3_PER_MM2 = {x:.2f}\nSLA_SUPPORT_MM3_PER_MM2_MM = {y:.3f}")


if __name__ == "__main__":
    main()
