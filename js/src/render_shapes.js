// Drawing masks, polygons and keypoints (the renderer's helpers for shapes beyond boxes).
// Paths are built in image pixels under the view transform and stroked under the identity,
// so line widths stay in device pixels at any zoom.

import { deviceTransform } from "./geometry.js";
import { skeletonSegments } from "./keypoints.js";

/** "#rrggbb" -> [r, g, b]. */
export function rgb(color) {
  const m = /^#?([0-9a-f]{6})$/i.exec(String(color).trim());
  if (!m) return [255, 89, 94];
  const v = parseInt(m[1], 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

/**
 * Coloured, translucent canvases of masks, by (mask key, colour, alpha): a mask is turned into
 * pixels once, then every frame is one drawImage. Least recently used first out.
 */
export class MaskPainter {
  constructor(createCanvas, limit = 400) {
    this.createCanvas = createCanvas;
    this.limit = limit;
    this.entries = new Map();
  }

  canvasFor(key, mask, color, alpha) {
    const id = `${key}|${color}|${alpha}`;
    let c = this.entries.get(id);
    if (c) {
      this.entries.delete(id);
      this.entries.set(id, c);
      return c;
    }
    c = this.createCanvas(Math.max(1, mask.w), Math.max(1, mask.h));
    fillCanvas(c, mask.data, mask.w, [0, 0, mask.w, mask.h], color, alpha);
    this.entries.set(id, c);
    while (this.entries.size > this.limit) this.entries.delete(this.entries.keys().next().value);
    return c;
  }
}

/**
 * Copy rect [x0, y0, x1, y1) of a 0/1 array (rows of `stride`) to the same place on the
 * canvas: `color` at `alpha` where set, transparent elsewhere.
 */
export function fillCanvas(canvas, data, stride, rect, color, alpha) {
  const [x0, y0, x1, y1] = rect;
  const w = x1 - x0;
  const h = y1 - y0;
  if (w <= 0 || h <= 0) return;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  if (!img || !img.data) return; // a recording context in tests
  const [r, g, b] = rgb(color);
  const a = Math.round(alpha * 255);
  const px = new Uint32Array(img.data.buffer);
  // little-endian RGBA: one 32-bit store per pixel
  const on = ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
  for (let y = 0; y < h; y++) {
    const row = (y0 + y) * stride + x0;
    for (let x = 0; x < w; x++) px[y * w + x] = data[row + x] ? on : 0;
  }
  ctx.putImageData(img, x0, y0);
}

/** Masks drawn as translucent fills (image pixels stretched by the view). */
export function drawMasks(ctx, painter, editor, anns, dpr, colorOf, { alpha = 0.4 } = {}) {
  const t = deviceTransform(editor.view, dpr);
  ctx.setTransform(...t);
  ctx.imageSmoothingEnabled = false; // crisp pixel edges when zoomed in
  for (const a of anns) {
    const m = editor.maskOf(a);
    if (!m || !m.w) continue;
    const c = painter.canvasFor(a.mask.key, m, colorOf(a), a.is_prediction ? alpha * 0.6 : alpha);
    ctx.drawImage(c, m.x, m.y, m.w, m.h);
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
}

/** Polygons of the same colour and kind in one fill and one stroke. */
export function drawPolygons(ctx, editor, anns, dpr, colorOf, { fillAlpha = 0.22, width = 1.5 } = {}) {
  const groups = new Map();
  for (const a of anns) {
    if (!a.polygon) continue;
    const color = colorOf(a);
    const k = `${color}|${a.is_prediction ? 1 : 0}`;
    if (!groups.has(k)) groups.set(k, { color, dashed: a.is_prediction, anns: [] });
    groups.get(k).anns.push(a);
  }
  const t = deviceTransform(editor.view, dpr);
  for (const g of groups.values()) {
    ctx.setTransform(...t);
    ctx.beginPath();
    for (const a of g.anns) traceRings(ctx, a.polygon);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.globalAlpha = g.dashed ? fillAlpha * 0.6 : fillAlpha;
    ctx.fillStyle = g.color;
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.strokeStyle = g.color;
    ctx.lineWidth = Math.max(1, Math.round(width * dpr));
    ctx.setLineDash(g.dashed ? [6 * dpr, 4 * dpr] : []);
    ctx.stroke();
  }
  ctx.setLineDash([]);
}

export function traceRings(ctx, rings, close = true) {
  for (const ring of rings) {
    if (ring.length < 2) continue;
    ctx.moveTo(ring[0], ring[1]);
    for (let i = 2; i < ring.length; i += 2) ctx.lineTo(ring[i], ring[i + 1]);
    if (close) ctx.closePath();
  }
}

/** Skeleton lines and keypoints: visible filled, occluded hollow, absent not drawn. */
export function drawKeypoints(ctx, editor, anns, dpr, colorOf, { radius = 3.5, selected = null } = {}) {
  const view = editor.view;
  const to = (x, y) => [(x * view.scale + view.ox) * dpr, (y * view.scale + view.oy) * dpr];
  for (const a of anns) {
    const kps = a.keypoints;
    if (!kps || !kps.length) continue;
    const color = colorOf(a);
    const cat = editor.categoryById ? editor.categoryById(a.category_id) : null;
    ctx.globalAlpha = a.is_prediction ? 0.6 : 1;
    ctx.strokeStyle = color;
    ctx.lineWidth = Math.max(1, Math.round(2 * dpr));
    ctx.beginPath();
    for (const [i, j] of skeletonSegments(kps, cat ? cat.skeleton : [])) {
      ctx.moveTo(...to(kps[3 * i], kps[3 * i + 1]));
      ctx.lineTo(...to(kps[3 * j], kps[3 * j + 1]));
    }
    ctx.stroke();
    const r = radius * dpr;
    for (let i = 0; 3 * i + 2 < kps.length; i++) {
      const v = kps[3 * i + 2];
      if (!v) continue;
      const [x, y] = to(kps[3 * i], kps[3 * i + 1]);
      ctx.beginPath();
      ctx.arc(x, y, r, 0, 2 * Math.PI);
      ctx.fillStyle = v === 2 ? color : "#fff";
      ctx.fill();
      ctx.lineWidth = Math.max(1, Math.round(1.5 * dpr));
      ctx.strokeStyle = v === 2 ? "#000" : color;
      ctx.stroke();
      if (selected && selected.id === a.id && selected.index === i) {
        ctx.beginPath();
        ctx.arc(x, y, r + 3 * dpr, 0, 2 * Math.PI);
        ctx.strokeStyle = "#fff";
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
  }
}

/** Square handles on every vertex of a polygon; the chosen vertex filled in colour. */
export function drawVertices(ctx, editor, rings, dpr, { chosen = null, color = "#fff" } = {}) {
  const view = editor.view;
  const hs = 3.5 * dpr;
  ctx.lineWidth = Math.max(1, dpr);
  ctx.strokeStyle = "#000";
  rings.forEach((ring, r) => {
    for (let i = 0; i < ring.length; i += 2) {
      const x = (ring[i] * view.scale + view.ox) * dpr;
      const y = (ring[i + 1] * view.scale + view.oy) * dpr;
      const isChosen = chosen && chosen.ring === r && chosen.index === i >> 1;
      ctx.fillStyle = isChosen ? color : "#fff";
      const s = isChosen ? hs * 1.5 : hs;
      ctx.fillRect(x - s, y - s, 2 * s, 2 * s);
      ctx.strokeRect(x - s, y - s, 2 * s, 2 * s);
    }
  });
}
