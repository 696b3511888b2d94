// Keypoints per COCO: a flat [x1, y1, v1, x2, y2, v2, ...] list in image pixels, one triple
// per name of the category's `keypoints`, with v = 0 absent (not labelled, x = y = 0),
// 1 labelled but occluded, 2 labelled and visible. The skeleton lists 1-based index pairs.
// Pure functions: placement order, visibility cycling, hit testing.

export const ABSENT = 0;
export const OCCLUDED = 1;
export const VISIBLE = 2;

/** The visibility after a press of V: visible -> occluded -> absent -> visible. */
export function cycleVisibility(v) {
  return v === VISIBLE ? OCCLUDED : v === OCCLUDED ? ABSENT : VISIBLE;
}

export function emptyKeypoints(count) {
  return new Array(3 * count).fill(0);
}

export const keypointCount = (kps) => Math.floor((kps ? kps.length : 0) / 3);

/** Is keypoint i labelled (v > 0)? */
export const isLabeled = (kps, i) => kps[3 * i + 2] > 0;

/**
 * The keypoint to place next: the first absent one at or after `from` (the names' order, so
 * a skipped point stays behind), or -1 when none is left.
 */
export function nextToPlace(kps, from = 0) {
  for (let i = Math.max(0, from); i < keypointCount(kps); i++) if (!isLabeled(kps, i)) return i;
  return -1;
}

/** A new list with keypoint i at (x, y) with visibility v (absent zeroes x and y, per COCO). */
export function setKeypoint(kps, i, x, y, v = VISIBLE) {
  const out = kps.slice();
  out[3 * i] = v === ABSENT ? 0 : x;
  out[3 * i + 1] = v === ABSENT ? 0 : y;
  out[3 * i + 2] = v;
  return out;
}

/** The labelled keypoint nearest (px, py) within `tolerance`, or -1. */
export function hitKeypoint(kps, px, py, tolerance) {
  let best = -1;
  let bestD = tolerance;
  for (let i = 0; i < keypointCount(kps); i++) {
    if (!isLabeled(kps, i)) continue;
    const d = Math.hypot(kps[3 * i] - px, kps[3 * i + 1] - py);
    if (d <= bestD) {
      best = i;
      bestD = d;
    }
  }
  return best;
}

/** [x, y, w, h] around the labelled keypoints, or null when none is. */
export function keypointsBBox(kps) {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (let i = 0; i < keypointCount(kps); i++) {
    if (!isLabeled(kps, i)) continue;
    x0 = Math.min(x0, kps[3 * i]);
    x1 = Math.max(x1, kps[3 * i]);
    y0 = Math.min(y0, kps[3 * i + 1]);
    y1 = Math.max(y1, kps[3 * i + 1]);
  }
  return x0 === Infinity ? null : [x0, y0, x1 - x0, y1 - y0];
}

/**
 * The box of a keypoint annotation after an edit: it grows to hold every labelled point
 * (a box a person drew around them stays), at least `minSize` on each side.
 */
export function boxAround(bbox, kps, { width, height, minSize = 1 }) {
  const pts = keypointsBBox(kps);
  if (!pts) return bbox;
  let [x0, y0, x1, y1] = [pts[0], pts[1], pts[0] + pts[2], pts[1] + pts[3]];
  if (bbox && bbox[2] > 0 && bbox[3] > 0) {
    x0 = Math.min(x0, bbox[0]);
    y0 = Math.min(y0, bbox[1]);
    x1 = Math.max(x1, bbox[0] + bbox[2]);
    y1 = Math.max(y1, bbox[1] + bbox[3]);
  }
  if (x1 - x0 < minSize) x1 = Math.min(width, x0 + minSize);
  if (x1 - x0 < minSize) x0 = Math.max(0, x1 - minSize);
  if (y1 - y0 < minSize) y1 = Math.min(height, y0 + minSize);
  if (y1 - y0 < minSize) y0 = Math.max(0, y1 - minSize);
  return [x0, y0, x1 - x0, y1 - y0];
}

/** Skeleton segments to draw: 0-based [i, j] pairs whose two ends are labelled. */
export function skeletonSegments(kps, skeleton) {
  const n = keypointCount(kps);
  const out = [];
  for (const [a, b] of skeleton || []) {
    const i = a - 1;
    const j = b - 1;
    if (i >= 0 && j >= 0 && i < n && j < n && isLabeled(kps, i) && isLabeled(kps, j)) out.push([i, j]);
  }
  return out;
}

/** Every labelled keypoint moved by (dx, dy) (absent ones stay at 0, 0). */
export function translateKeypoints(kps, dx, dy) {
  return kps.map((v, k) => (k % 3 === 2 || !kps[k - (k % 3) + 2] ? v : v + (k % 3 === 0 ? dx : dy)));
}
