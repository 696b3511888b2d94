// Pure polygon geometry for the polygon tool: no DOM, unit-tested in node.
//
// A polygon is COCO's layout: a list of rings, each a flat [x0, y0, x1, y1, ...] list in
// image pixels. The rings of one annotation are separate parts of one object (COCO has no
// holes), so a point is inside the object when any ring holds it.

import { clamp } from "./geometry.js";

/** Number of vertices of a ring. */
export const vertexCount = (ring) => ring.length >> 1;

/** Even-odd test: is (px, py) inside the ring? */
export function pointInRing(ring, px, py) {
  let inside = false;
  const n = ring.length;
  for (let i = 0, j = n - 2; i < n; j = i, i += 2) {
    const xi = ring[i];
    const yi = ring[i + 1];
    const xj = ring[j];
    const yj = ring[j + 1];
    if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Is (px, py) inside any ring of the polygon? */
export function pointInPolygon(rings, px, py) {
  for (const ring of rings) if (pointInRing(ring, px, py)) return true;
  return false;
}

/** [x, y, w, h] around every vertex (COCO's bbox of a polygon annotation). */
export function polygonBBox(rings) {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const ring of rings) {
    for (let i = 0; i < ring.length; i += 2) {
      if (ring[i] < x0) x0 = ring[i];
      if (ring[i] > x1) x1 = ring[i];
      if (ring[i + 1] < y0) y0 = ring[i + 1];
      if (ring[i + 1] > y1) y1 = ring[i + 1];
    }
  }
  return x0 === Infinity ? [0, 0, 0, 0] : [x0, y0, x1 - x0, y1 - y0];
}

/** Distance from (px, py) to the segment a-b, and where along it (t in 0..1) the foot is. */
export function segmentDistance(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 ? clamp(((px - ax) * dx + (py - ay) * dy) / len2, 0, 1) : 0;
  const fx = ax + t * dx;
  const fy = ay + t * dy;
  return { d: Math.hypot(px - fx, py - fy), t, x: fx, y: fy };
}

/** The vertex nearest (px, py) within `tolerance`: {ring, index} (index of the vertex), or null. */
export function hitVertex(rings, px, py, tolerance) {
  let best = null;
  let bestD = tolerance;
  rings.forEach((ring, r) => {
    for (let i = 0; i < ring.length; i += 2) {
      const d = Math.hypot(ring[i] - px, ring[i + 1] - py);
      if (d <= bestD) {
        best = { ring: r, index: i >> 1 };
        bestD = d;
      }
    }
  });
  return best;
}

/**
 * The edge nearest (px, py) within `tolerance`: {ring, index, x, y} where the edge runs from
 * vertex `index` to the next one (the last edge closes the ring) and (x, y) is the nearest
 * point on it; or null.
 */
export function hitEdge(rings, px, py, tolerance) {
  let best = null;
  let bestD = tolerance;
  rings.forEach((ring, r) => {
    const n = ring.length;
    for (let i = 0; i < n; i += 2) {
      const j = (i + 2) % n;
      const s = segmentDistance(px, py, ring[i], ring[i + 1], ring[j], ring[j + 1]);
      if (s.d <= bestD) {
        best = { ring: r, index: i >> 1, x: s.x, y: s.y };
        bestD = s.d;
      }
    }
  });
  return best;
}

/** A new ring with (x, y) inserted after vertex `index` (on the edge index -> index + 1). */
export function insertVertex(ring, index, x, y) {
  const at = 2 * (index + 1);
  return [...ring.slice(0, at), x, y, ...ring.slice(at)];
}

/** A new ring without vertex `index`; null when fewer than 3 vertices would be left. */
export function deleteVertex(ring, index) {
  if (vertexCount(ring) <= 3) return null;
  return [...ring.slice(0, 2 * index), ...ring.slice(2 * index + 2)];
}

/** A new ring with vertex `index` at (x, y). */
export function moveVertex(ring, index, x, y) {
  const out = ring.slice();
  out[2 * index] = x;
  out[2 * index + 1] = y;
  return out;
}

/** A point kept inside the image. */
export function clampPoint(x, y, { width, height }) {
  return [clamp(x, 0, width), clamp(y, 0, height)];
}

/** Every ring moved by (dx, dy), as far as the whole polygon stays inside the image. */
export function translatePolygon(rings, dx, dy, { width, height }) {
  const [x, y, w, h] = polygonBBox(rings);
  const tx = clamp(x + dx, 0, Math.max(0, width - w)) - x;
  const ty = clamp(y + dy, 0, Math.max(0, height - h)) - y;
  return rings.map((ring) => ring.map((v, i) => v + (i % 2 ? ty : tx)));
}

/** Every vertex mapped from box `from` to box `to` (a polygon resized by its box handles). */
export function scalePolygon(rings, from, to) {
  const sx = from[2] ? to[2] / from[2] : 1;
  const sy = from[3] ? to[3] / from[3] : 1;
  return rings.map((ring) =>
    ring.map((v, i) => (i % 2 ? to[1] + (v - from[1]) * sy : to[0] + (v - from[0]) * sx)),
  );
}

/** Shoelace area of a ring (absolute). */
export function ringArea(ring) {
  let s = 0;
  const n = ring.length;
  for (let i = 0, j = n - 2; i < n; j = i, i += 2) s += ring[j] * ring[i + 1] - ring[i] * ring[j + 1];
  return Math.abs(s) / 2;
}

/** Rings rounded to `decimals` places, so committed values are stable and JSON stays short. */
export function roundPolygon(rings, decimals = 2) {
  const f = 10 ** decimals;
  return rings.map((ring) => ring.map((v) => Math.round(v * f) / f));
}

export function samePolygon(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  return a.every((ring, r) => ring.length === b[r].length && ring.every((v, i) => v === b[r][i]));
}
