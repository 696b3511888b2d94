// What an annotation is made of, and the edits every tool shares (copy, hit, move, resize).
//
// An annotation on the canvas:
//   {id, category_id, bbox: [x, y, w, h], score, is_prediction,
//    polygon?: [[x0, y0, x1, y1, ...], ...]   COCO polygon rings (image pixels)
//    mask?: {key, size: [h, w]}               a COCO RLE held in the mask store under `key`
//    keypoints?: [x, y, v, ...]}              COCO keypoints
// Masks are immutable values in a store shared with the renderer (by key), so copying an
// annotation never copies pixels.

import { contains } from "./geometry.js";
import { maskContains } from "./mask.js";
import { translateKeypoints } from "./keypoints.js";
import { hitEdge, pointInPolygon, scalePolygon } from "./polygon.js";

export function copyAnnotation(a) {
  if (!a) return null;
  const out = {
    id: a.id,
    category_id: a.category_id,
    bbox: a.bbox.slice(),
    score: a.score ?? null,
    is_prediction: Boolean(a.is_prediction),
  };
  if (a.client_id != null) out.client_id = a.client_id;
  if (a.polygon) out.polygon = a.polygon.map((ring) => ring.slice());
  if (a.mask) out.mask = { key: a.mask.key, size: a.mask.size.slice() };
  if (a.keypoints) out.keypoints = a.keypoints.slice();
  return out;
}

/** Does the annotation cover image point (px, py)? Its shape when it has one, else its box. */
export function annotationContains(a, px, py, tolerance, masks) {
  if (!contains(a.bbox, px, py, tolerance)) return false;
  if (a.mask) {
    const m = masks && masks.get(a.mask.key);
    // a mask still on its way is hit by its box
    return m ? maskContains(m, px, py) || nearMaskPixel(m, px, py, tolerance) : true;
  }
  if (a.polygon) {
    return pointInPolygon(a.polygon, px, py) || hitEdge(a.polygon, px, py, tolerance) !== null;
  }
  return true;
}

function nearMaskPixel(m, px, py, tolerance) {
  const r = Math.min(Math.ceil(tolerance), 6);
  for (let dy = -r; dy <= r; dy += Math.max(1, r)) {
    for (let dx = -r; dx <= r; dx += Math.max(1, r)) if (maskContains(m, px + dx, py + dy)) return true;
  }
  return false;
}

/** Can the box handles resize this annotation? Masks change by brush only. */
export const resizable = (a) => !a.mask;

/** The annotation after its box moved from `from` to `to`: its polygon and keypoints follow. */
export function moveAnnotation(a, from, to) {
  const out = copyAnnotation(a);
  out.bbox = to.slice();
  const dx = to[0] - from[0];
  const dy = to[1] - from[1];
  if (a.polygon) out.polygon = a.polygon.map((ring) => ring.map((v, i) => v + (i % 2 ? dy : dx)));
  if (a.keypoints) out.keypoints = translateKeypoints(a.keypoints, dx, dy);
  return out;
}

/** The annotation after a handle resized its box to `to`: a polygon scales with it. */
export function resizeAnnotation(a, from, to) {
  const out = copyAnnotation(a);
  out.bbox = to.slice();
  if (a.polygon) out.polygon = scalePolygon(a.polygon, from, to);
  return out;
}

/** The fields an edit sends for an annotation's geometry (what the kernel stores). */
export function geometryFields(a) {
  const fields = { bbox: a.bbox };
  if (a.polygon) fields.polygon = a.polygon;
  if (a.keypoints) fields.keypoints = a.keypoints;
  return fields;
}
