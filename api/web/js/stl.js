// STL in the browser, for the 3D preview: binary or ASCII, into a flat
// array of triangle corners (x, y, z × 3 per triangle). The farm analyses
// the file again on its own; this only draws it.

export class StlError extends Error {}

/// Triangles a preview draws at most; a larger model is priced, not drawn.
export const MAX_PREVIEW_TRIANGLES = 3_000_000;

/// The corners of every triangle of an STL file.
export function parseStl(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length >= 84) {
    const count = new DataView(buffer).getUint32(80, true);
    if (84 + count * 50 === bytes.length) return parseBinary(buffer, count);
  }
  const start = bytes.subarray(0, Math.min(bytes.length, 512));
  const head = new TextDecoder().decode(start).trimStart();
  if (head.toLowerCase().startsWith("solid")) return parseAscii(new TextDecoder().decode(bytes));
  // A 3MF is a zip; an OBJ is text. Neither is drawn here, and their bytes
  // must not be read as a binary STL's triangles.
  const zip = bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 3 && bytes[3] === 4;
  const text = start.length > 0 && start.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
  if (zip || text) throw new StlError("not an STL file");
  if (bytes.length >= 84) {
    // A binary file whose count disagrees with its size: read what is there.
    const count = Math.floor((bytes.length - 84) / 50);
    if (count > 0) return parseBinary(buffer, count);
  }
  throw new StlError("not an STL file");
}

function parseBinary(buffer, count) {
  if (count > MAX_PREVIEW_TRIANGLES) throw new StlError("too many triangles to preview");
  const view = new DataView(buffer);
  const corners = new Float32Array(count * 9);
  for (let i = 0; i < count; i++) {
    const at = 84 + i * 50 + 12;
    for (let k = 0; k < 9; k++) corners[i * 9 + k] = view.getFloat32(at + k * 4, true);
  }
  return corners;
}

function parseAscii(text) {
  const values = [];
  const pattern = /vertex\s+(\S+)\s+(\S+)\s+(\S+)/gi;
  let match;
  while ((match = pattern.exec(text)) !== null) {
    values.push(Number(match[1]), Number(match[2]), Number(match[3]));
    if (values.length > MAX_PREVIEW_TRIANGLES * 9) throw new StlError("too many triangles to preview");
  }
  const whole = values.length - (values.length % 9);
  if (whole === 0 || values.some((v) => !Number.isFinite(v))) throw new StlError("not an STL file");
  return Float32Array.from(values.slice(0, whole));
}

/// For each triangle, whether it faces down steeply enough to need support
/// (its slope from the horizontal under `angleDeg`), leaving out faces that
/// rest on the build plate.
export function overhangs(corners, angleDeg) {
  const count = corners.length / 9;
  const flags = new Uint8Array(count);
  let minZ = Infinity;
  for (let i = 2; i < corners.length; i += 3) minZ = Math.min(minZ, corners[i]);
  const limit = Math.cos((angleDeg * Math.PI) / 180);
  for (let t = 0; t < count; t++) {
    const o = t * 9;
    const ux = corners[o + 3] - corners[o], uy = corners[o + 4] - corners[o + 1], uz = corners[o + 5] - corners[o + 2];
    const vx = corners[o + 6] - corners[o], vy = corners[o + 7] - corners[o + 1], vz = corners[o + 8] - corners[o + 2];
    const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
    const length = Math.hypot(nx, ny, nz);
    if (length === 0) continue;
    // Facing down, and closer to flat than the angle: -nz/|n| = cos(slope).
    const down = -nz / length;
    const onPlate = Math.max(corners[o + 2], corners[o + 5], corners[o + 8]) - minZ < 0.05;
    if (down > limit && !onPlate) flags[t] = 1;
  }
  return flags;
}
