// Pure geometry for the box editor: no DOM, so every rule is unit-tested in node.
//
// Coordinate spaces:
//   image  - ORIGINAL image pixels (what the store keeps); boxes are [x, y, w, h] here.
//   canvas - CSS pixels relative to the canvas' top-left corner (pointer events land here).
//   device - backing-store pixels of the canvas: canvas * devicePixelRatio.
// A view {scale, ox, oy} maps image -> canvas: canvas = image * scale + offset.

/** The 8 resize handles, clockwise from the top-left corner. */
export const HANDLES = Object.freeze(["nw", "n", "ne", "e", "se", "s", "sw", "w"]);

/** Which edges each handle drags: [left, top, right, bottom]. */
const HANDLE_EDGES = {
  nw: [1, 1, 0, 0],
  n: [0, 1, 0, 0],
  ne: [0, 1, 1, 0],
  e: [0, 0, 1, 0],
  se: [0, 0, 1, 1],
  s: [0, 0, 0, 1],
  sw: [1, 0, 0, 1],
  w: [1, 0, 0, 0],
};

export const clamp = (v, lo, hi) => (v < lo ? lo : v > hi ? hi : v);

/** The 8 handle positions of a box, in image coordinates. */
export function handlePoints([x, y, w, h]) {
  const cx = x + w / 2;
  const cy = y + h / 2;
  const r = x + w;
  const b = y + h;
  return [
    { name: "nw", x, y },
    { name: "n", x: cx, y },
    { name: "ne", x: r, y },
    { name: "e", x: r, y: cy },
    { name: "se", x: r, y: b },
    { name: "s", x: cx, y: b },
    { name: "sw", x, y: b },
    { name: "w", x, y: cy },
  ];
}

/** Is the image point inside the box (edges included, grown by `pad`)? */
export function contains([x, y, w, h], px, py, pad = 0) {
  return px >= x - pad && px <= x + w + pad && py >= y - pad && py <= y + h + pad;
}

/** Which handle of `bbox` is within `tolerance` (image units) of the point, or null. */
export function hitHandle(bbox, px, py, tolerance) {
  let best = null;
  let bestD = Infinity;
  for (const h of handlePoints(bbox)) {
    const d = Math.max(Math.abs(h.x - px), Math.abs(h.y - py));
    if (d <= tolerance && d < bestD) {
      best = h.name;
      bestD = d;
    }
  }
  return best;
}

/**
 * What is under an image point: {id, part} with part a handle name or "inside", or null.
 * The selected box's handles win (they may stick out of the box); then the SMALLEST box
 * containing the point, so nested boxes stay reachable.
 */
export function hitTest(boxes, px, py, { selectedId = null, tolerance = 0 } = {}) {
  if (selectedId !== null) {
    const sel = boxes.find((b) => b.id === selectedId);
    if (sel) {
      const handle = hitHandle(sel.bbox, px, py, tolerance);
      if (handle) return { id: sel.id, part: handle };
    }
  }
  let best = null;
  let bestArea = Infinity;
  for (const b of boxes) {
    if (!contains(b.bbox, px, py, tolerance / 2)) continue;
    const area = b.bbox[2] * b.bbox[3];
    // ties go to the later (topmost drawn) box
    if (area <= bestArea) {
      best = b;
      bestArea = area;
    }
  }
  return best ? { id: best.id, part: "inside" } : null;
}

/** Snap a coordinate to 0 or `max` when it is within `snap` of it, and keep it inside. */
export function snapToBounds(v, max, snap = 0) {
  if (v <= snap) return 0;
  if (v >= max - snap) return max;
  return v;
}

/**
 * Resize `bbox` by dragging `handle` by (dx, dy) image pixels. The opposite edges stay put,
 * the box never flips, never gets smaller than `minSize`, and stays inside the image
 * (edges within `snap` of the border stick to it).
 */
export function resizeBox(bbox, handle, dx, dy, { width, height, minSize = 1, snap = 0 }) {
  const edges = HANDLE_EDGES[handle];
  if (!edges) throw new Error(`unknown handle ${handle}`);
  const [x, y, w, h] = bbox;
  let l = x;
  let t = y;
  let r = x + w;
  let b = y + h;
  const min = Math.min(minSize, width, height);
  if (edges[0]) l = clamp(snapToBounds(l + dx, width, snap), 0, r - min);
  if (edges[1]) t = clamp(snapToBounds(t + dy, height, snap), 0, b - min);
  if (edges[2]) r = clamp(snapToBounds(r + dx, width, snap), l + min, width);
  if (edges[3]) b = clamp(snapToBounds(b + dy, height, snap), t + min, height);
  return [l, t, r - l, b - t];
}

/** Move `bbox` by (dx, dy), keeping all of it inside the image (snapping to its edges). */
export function moveBox([x, y, w, h], dx, dy, { width, height, snap = 0 }) {
  let nx = clamp(x + dx, 0, Math.max(0, width - w));
  let ny = clamp(y + dy, 0, Math.max(0, height - h));
  if (nx <= snap) nx = 0;
  else if (nx + w >= width - snap) nx = Math.max(0, width - w);
  if (ny <= snap) ny = 0;
  else if (ny + h >= height - snap) ny = Math.max(0, height - h);
  return [nx, ny, w, h];
}

/** The box spanned by two image points (any drag direction), clipped to the image. */
export function boxFromPoints(x0, y0, x1, y1, { width, height, snap = 0 }) {
  const l = snapToBounds(clamp(Math.min(x0, x1), 0, width), width, snap);
  const t = snapToBounds(clamp(Math.min(y0, y1), 0, height), height, snap);
  const r = snapToBounds(clamp(Math.max(x0, x1), 0, width), width, snap);
  const b = snapToBounds(clamp(Math.max(y0, y1), 0, height), height, snap);
  return [l, t, r - l, b - t];
}

/** Clip a box into the image and grow it to `minSize` (used for pasted/duplicated boxes). */
export function clampBox([x, y, w, h], { width, height, minSize = 1 }) {
  const nw = clamp(Math.max(w, minSize), 0, width);
  const nh = clamp(Math.max(h, minSize), 0, height);
  return [clamp(x, 0, width - nw), clamp(y, 0, height - nh), nw, nh];
}

/** Round a box to `decimals` places so committed values are stable and JSON stays short. */
export function roundBox(bbox, decimals = 2) {
  const f = 10 ** decimals;
  return bbox.map((v) => Math.round(v * f) / f);
}

export function sameBox(a, b, eps = 1e-9) {
  return a.length === 4 && b.length === 4 && a.every((v, i) => Math.abs(v - b[i]) <= eps);
}

// ------------------------------------------------------------------ view mapping

export function imageToCanvas(view, x, y) {
  return [x * view.scale + view.ox, y * view.scale + view.oy];
}

export function canvasToImage(view, cx, cy) {
  return [(cx - view.ox) / view.scale, (cy - view.oy) / view.scale];
}

/** A box in image pixels -> [x, y, w, h] in canvas CSS pixels. */
export function boxToCanvas(view, [x, y, w, h]) {
  return [x * view.scale + view.ox, y * view.scale + view.oy, w * view.scale, h * view.scale];
}

/**
 * Pointer client coordinates -> canvas CSS pixels. `rect` is getBoundingClientRect(); when
 * the page is CSS-zoomed the rect differs from the canvas' CSS size, hence the ratio.
 */
export function clientToCanvas(clientX, clientY, rect, cssWidth, cssHeight) {
  const sx = rect.width ? cssWidth / rect.width : 1;
  const sy = rect.height ? cssHeight / rect.height : 1;
  return [(clientX - rect.left) * sx, (clientY - rect.top) * sy];
}

/** Backing-store size for a canvas of CSS size (w, h) on a screen of pixel ratio dpr. */
export function backingSize(cssWidth, cssHeight, dpr) {
  const r = dpr > 0 ? dpr : 1;
  return { width: Math.max(1, Math.round(cssWidth * r)), height: Math.max(1, Math.round(cssHeight * r)) };
}

/** The 2D transform (for ctx.setTransform) that draws image pixels onto the device canvas. */
export function deviceTransform(view, dpr) {
  const s = view.scale * dpr;
  return [s, 0, 0, s, view.ox * dpr, view.oy * dpr];
}

/** Device (backing-store) pixel -> image pixel. */
export function deviceToImage(view, dpr, dx, dy) {
  return canvasToImage(view, dx / dpr, dy / dpr);
}

/** The view that shows the whole image centred in the canvas, with a small margin. */
export function fitView(imgW, imgH, cssW, cssH, margin = 8) {
  const availW = Math.max(1, cssW - 2 * margin);
  const availH = Math.max(1, cssH - 2 * margin);
  const scale = Math.min(availW / imgW, availH / imgH);
  return { scale, ox: (cssW - imgW * scale) / 2, oy: (cssH - imgH * scale) / 2 };
}

export const MIN_SCALE = 0.01;
export const MAX_SCALE = 64;

/** Zoom by `factor` keeping the image point under canvas point (cx, cy) fixed. */
export function zoomAt(view, factor, cx, cy, { min = MIN_SCALE, max = MAX_SCALE } = {}) {
  const scale = clamp(view.scale * factor, min, max);
  const [ix, iy] = canvasToImage(view, cx, cy);
  return { scale, ox: cx - ix * scale, oy: cy - iy * scale };
}

/** 1:1 = one original image pixel per CSS pixel, centred on canvas point (cx, cy). */
export function oneToOne(view, cx, cy) {
  return zoomAt(view, 1 / view.scale, cx, cy);
}

export function panBy(view, dx, dy) {
  return { scale: view.scale, ox: view.ox + dx, oy: view.oy + dy };
}
