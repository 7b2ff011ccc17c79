// The interactive 3D preview: the model on its build plate, orbit with the
// mouse or a finger, faces that need support in orange. three.js (vendored
// from its npm package, MIT) draws it with WebGL; where WebGL is missing (an
// old GPU, a locked-down browser) a flat canvas drawing takes its place, so
// the preview never leaves an empty box.

import * as THREE from "three";
import { OrbitControls } from "three/addons/OrbitControls.js";
import { overhangs } from "farm/stl.js";

const PART = [0.56, 0.64, 0.74];
const OVERHANG = [0.97, 0.45, 0.09];

/// Draws `corners` (from `parseStl`) on `canvas`; returns `{ dispose() }`.
/// `angleDeg`: faces flatter than this from the horizontal, facing down,
/// need support.
export function showModel(canvas, corners, angleDeg) {
  const flags = overhangs(corners, angleDeg);
  canvas.dataset.overhangFaces = String(flags.reduce((a, b) => a + b, 0));
  canvas.dataset.triangles = String(corners.length / 9);
  try {
    return webgl(canvas, corners, flags);
  } catch (e) {
    canvas.dataset.renderer = "2d";
    return flat(canvas, corners, flags);
  }
}

function webgl(canvas, corners, flags) {
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  canvas.dataset.renderer = "webgl";
  const width = canvas.clientWidth || 480;
  const height = canvas.clientHeight || 360;
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  renderer.setSize(width, height, false);
  renderer.setClearColor(0xf4f6f8);

  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute("position", new THREE.BufferAttribute(corners, 3));
  const colours = new Float32Array(corners.length);
  for (let t = 0; t < flags.length; t++) {
    const c = flags[t] ? OVERHANG : PART;
    for (let k = 0; k < 3; k++) colours.set(c, t * 9 + k * 3);
  }
  geometry.setAttribute("color", new THREE.BufferAttribute(colours, 3));
  geometry.computeVertexNormals();
  geometry.computeBoundingBox();
  const box = geometry.boundingBox;
  const centre = new THREE.Vector3();
  box.getCenter(centre);
  const extent = new THREE.Vector3();
  box.getSize(extent);
  const radius = Math.max(extent.length() / 2, 1);

  const scene = new THREE.Scene();
  const mesh = new THREE.Mesh(geometry, new THREE.MeshLambertMaterial({ vertexColors: true, side: THREE.DoubleSide }));
  scene.add(mesh);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x667788, 1.6));
  const sun = new THREE.DirectionalLight(0xffffff, 1.4);
  sun.position.set(1, -1.5, 2);
  scene.add(sun);
  // The build plate under the part (z up, as the printer sees it).
  const plateSize = Math.ceil((Math.max(extent.x, extent.y) * 1.6) / 10) * 10 || 10;
  const grid = new THREE.GridHelper(plateSize, 10, 0x99a3ad, 0xd0d6dc);
  grid.rotation.x = Math.PI / 2;
  grid.position.set(centre.x, centre.y, box.min.z);
  scene.add(grid);

  const camera = new THREE.PerspectiveCamera(40, width / height, radius / 100, radius * 100);
  camera.up.set(0, 0, 1);
  camera.position.set(centre.x + radius * 1.6, centre.y - radius * 2.2, centre.z + radius * 1.4);
  const controls = new OrbitControls(camera, canvas);
  controls.target.copy(centre);
  controls.enableDamping = true;
  controls.update();

  let frame = 0;
  let alive = true;
  const draw = () => {
    if (!alive) return;
    controls.update();
    renderer.render(scene, camera);
    frame = requestAnimationFrame(draw);
  };
  draw();
  return {
    dispose() {
      alive = false;
      cancelAnimationFrame(frame);
      controls.dispose();
      geometry.dispose();
      mesh.material.dispose();
      renderer.dispose();
    },
  };
}

/// Without WebGL: the triangles projected and painted back to front, with
/// simple shading, turned by dragging.
function flat(canvas, corners, flags) {
  const context = canvas.getContext("2d");
  const count = corners.length / 9;
  let minX = Infinity, minY = Infinity, minZ = Infinity, maxX = -Infinity, maxY = -Infinity, maxZ = -Infinity;
  for (let i = 0; i < corners.length; i += 3) {
    minX = Math.min(minX, corners[i]); maxX = Math.max(maxX, corners[i]);
    minY = Math.min(minY, corners[i + 1]); maxY = Math.max(maxY, corners[i + 1]);
    minZ = Math.min(minZ, corners[i + 2]); maxZ = Math.max(maxZ, corners[i + 2]);
  }
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2, cz = (minZ + maxZ) / 2;
  const span = Math.max(maxX - minX, maxY - minY, maxZ - minZ) || 1;
  // Drawing millions of triangles in 2D would freeze the page: sample.
  const step = Math.max(1, Math.ceil(count / 60000));
  let yaw = -0.6, pitch = 0.5;
  const render = () => {
    const w = (canvas.width = canvas.clientWidth || 480);
    const hgt = (canvas.height = canvas.clientHeight || 360);
    context.fillStyle = "#f4f6f8";
    context.fillRect(0, 0, w, hgt);
    const scale = (Math.min(w, hgt) * 0.75) / span;
    const [sy, cyw, sp, cp] = [Math.sin(yaw), Math.cos(yaw), Math.sin(pitch), Math.cos(pitch)];
    const project = (x, y, z) => {
      const rx = (x - cx) * cyw - (y - cy) * sy;
      const ry = (x - cx) * sy + (y - cy) * cyw;
      const depth = ry * cp + (z - cz) * sp;
      const up = (z - cz) * cp - ry * sp;
      return [w / 2 + rx * scale, hgt / 2 - up * scale, depth];
    };
    const faces = [];
    for (let t = 0; t < count; t += step) {
      const o = t * 9;
      const a = project(corners[o], corners[o + 1], corners[o + 2]);
      const b = project(corners[o + 3], corners[o + 4], corners[o + 5]);
      const c = project(corners[o + 6], corners[o + 7], corners[o + 8]);
      const cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
      faces.push([a, b, c, a[2] + b[2] + c[2], Math.min(1, Math.abs(cross) / (Math.hypot(b[0] - a[0], b[1] - a[1]) * Math.hypot(c[0] - a[0], c[1] - a[1]) + 1e-9)), flags[t]]);
    }
    faces.sort((p, q) => q[3] - p[3]);
    for (const [a, b, c, , light, overhang] of faces) {
      const base = overhang ? OVERHANG : PART;
      const shade = 0.55 + 0.45 * light;
      context.fillStyle = `rgb(${base.map((v) => Math.round(v * shade * 255)).join(",")})`;
      context.beginPath();
      context.moveTo(a[0], a[1]);
      context.lineTo(b[0], b[1]);
      context.lineTo(c[0], c[1]);
      context.closePath();
      context.fill();
    }
  };
  let dragging = null;
  const down = (e) => (dragging = [e.clientX, e.clientY]);
  const move = (e) => {
    if (!dragging) return;
    yaw += (e.clientX - dragging[0]) * 0.01;
    pitch = Math.max(-1.5, Math.min(1.5, pitch + (e.clientY - dragging[1]) * 0.01));
    dragging = [e.clientX, e.clientY];
    render();
  };
  const up = () => (dragging = null);
  canvas.addEventListener("pointerdown", down);
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
  render();
  return {
    dispose() {
      canvas.removeEventListener("pointerdown", down);
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
    },
  };
}
