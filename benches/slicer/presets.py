#!/usr/bin/env python3
"""Writes the harness's shop variants: a flattened vendor preset from presets/ with some keys
overridden, as a shop edits its presets (split.toml, [variants]). Called by presets.sh after
`farm profile import` has flattened the vendor presets. Standard library only."""

import os
import sys
import tomllib

HERE = os.path.dirname(os.path.realpath(__file__))
PRESETS = os.path.join(HERE, "presets")


def main():
    with open(os.path.join(HERE, "split.toml"), "rb") as fh:
        split = tomllib.load(fh)
    for name, variant in split["variants"].items():
        base = variant["base"]
        overrides = {k: str(v) for k, v in variant.items() if k not in ("set", "base")}
        with open(os.path.join(PRESETS, base + ".ini"), encoding="utf-8") as fh:
            lines = fh.read().splitlines()
        head = [line for line in lines if line.startswith("#")]
        keys = {}
        for line in lines:
            if line.startswith("#") or "=" not in line:
                continue
            k, _, v = line.partition("=")
            keys[k.strip()] = v.strip()
        # A key the base leaves out takes PrusaSlicer's default; the override sets it.
        keys.update(overrides)
        out = head + [f"# shop variant {name} of {base}: " + ", ".join(f"{k} = {v}" for k, v in overrides.items())]
        out += [f"{k} = {keys[k]}" for k in sorted(keys, key=str.encode)]
        with open(os.path.join(PRESETS, name + ".ini"), "w", encoding="utf-8") as fh:
            fh.write("\n".join(out) + "\n")
    print(f"presets.py: {len(split['variants'])} variants written to {os.path.relpath(PRESETS)}", file=sys.stderr)


if __name__ == "__main__":
    main()
