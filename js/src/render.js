// Canvas drawing. The backing store is sized by devicePixelRatio (crisp on HiDPI), and a
// frame is drawn only on requestAnimationFrame after something changed. The image and
// every box except the selected one are cached in a layer, so a drag redraws one blit and
// one box whatever the number of boxes. Class names are canvas text (fillText): a name is
// never parsed as HTML.

import { backingSize, boxToCanvas, deviceTransform, handlePoints, imageToCanvas } from "./geometry.js";
import { unionRect } from "./mask.js";
import { MaskPainter, drawKeypoints, drawMasks, drawPolygons, drawVertices, fillCanvas } from "./render_shapes.js";
import { resizable } from "./shapes.js";

export const PALETTE = [
  "#ff595e",
  "#1982c4",
  "#8ac926",
  "#ffca3a",
  "#6a4c93",
  "#ff924c",
  "#00c2a8",
  "#f15bb5",
  "#9b5de5",
  "#c5ca30",
];

const LABEL_FONT_PX = 12;
const MAX_LABELS = 400; // beyond this many boxes on screen, labels would only be noise

/** The kernel's colour for a class (shared with the Gallery), else one by position. */
export function colorFor(categories, categoryId) {
  const i = categories.findIndex((c) => c.id === categoryId);
  if (i >= 0 && typeof categories[i].color === "string") return categories[i].color;
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

const PREDICTION_CASING = "rgba(0, 0, 0, 0.75)";

/**
 * How opaque a prediction is drawn: a score of 1 fully, the weakest shown (0) at 0.36, so
 * the eye goes to the boxes the model is sure of while doubtful ones stay visible.
 * @example predictionAlpha(0.9) // 0.94 (0.02 steps, so boxes still batch per step)
 */
export function predictionAlpha(score) {
  const s = Math.min(1, Math.max(0, Number(score) || 0));
  return Math.round((0.36 + 0.64 * s) * 50) / 50;
}

export function labelText(name, box) {
  return box.is_prediction && box.score != null ? `${name} ${box.score.toFixed(2)}` : name;
}

export class Renderer {
  constructor(canvas, { dpr = () => globalThis.devicePixelRatio || 1, raf, now, createLayer } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.dprSource = dpr;
    this.raf = raf || ((fn) => globalThis.requestAnimationFrame(fn));
    this.now = now || (() => globalThis.performance.now());
    this.createLayer = createLayer || ((w, h) => makeLayer(w, h));
    this.dpr = dpr();
    this.cssW = 1;
    this.cssH = 1;
    this.bitmap = null; // {imageId, source: ImageBitmap}
    this.layer = null;
    this.layerKey = "";
    this.pending = false;
    this.editor = null;
    this.frameTimes = []; // ms spent drawing each frame (benchmarks read it)
    this.noCache = false; // benchmarks' baseline: redraw every box on every frame
    this.flushForTiming = false;
    this.frames = 0;
    this.onDrawn = null; // (imageId) => void, after the first frame showing an image
    this._drawnImage = null;
    this.masks = new MaskPainter((w, h) => this.createLayer(w, h));
    this.paintLayer = null; // image-sized canvas mirroring the brush stroke's pixels
    this.paintDrag = null;
  }

  resize(cssW, cssH) {
    this.cssW = Math.max(1, Math.round(cssW));
    this.cssH = Math.max(1, Math.round(cssH));
    this._applySize();
  }

  _applySize() {
    this.dpr = this.dprSource() || 1;
    const { width, height } = backingSize(this.cssW, this.cssH, this.dpr);
    if (this.canvas.width !== width) this.canvas.width = width;
    if (this.canvas.height !== height) this.canvas.height = height;
    if (this.canvas.style) {
      this.canvas.style.width = `${this.cssW}px`;
      this.canvas.style.height = `${this.cssH}px`;
    }
    this.layerKey = "";
    this.invalidate();
  }

  setBitmap(imageId, source) {
    this.bitmap = source ? { imageId, source } : null;
    this.layerKey = "";
    this.invalidate();
  }

  /** Ask for a frame; many calls before it runs cost one draw. */
  invalidate() {
    if (this.pending) return;
    this.pending = true;
    this.raf(() => {
      this.pending = false;
      if (this.editor) this.draw(this.editor);
    });
  }

  draw(editor) {
    const t0 = this.now();
    if ((this.dprSource() || 1) !== this.dpr) this._applySize(); // moved to another screen
    const ctx = this.ctx;
    const { width, height } = this.canvas;
    const exclude = editor.selectedId;
    const key = [
      editor.version,
      editor.viewVersion,
      exclude,
      this.bitmap ? this.bitmap.imageId : "",
      width,
      height,
    ].join("|");
    if (this.noCache || key !== this.layerKey || !this.layer) {
      if (!this.layer || this.layer.width !== width || this.layer.height !== height) {
        this.layer = this.createLayer(width, height);
      }
      this._drawStatic(this.layer.getContext("2d"), editor, exclude, width, height);
      this.layerKey = key;
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.drawImage(this.layer, 0, 0);
    this._drawDynamic(ctx, editor);
    // canvas calls are recorded and rasterised later; a 1-pixel read forces the raster
    // now, so benchmarks time the pixels too, not just the recording
    if (this.flushForTiming) ctx.getImageData(0, 0, 1, 1);
    this.frames++;
    const spent = this.now() - t0;
    this.frameTimes.push(spent);
    if (this.frameTimes.length > 5000) this.frameTimes.splice(0, 1000);
    const imageId = editor.image ? editor.image.id : null;
    if (this.bitmap && this.bitmap.imageId === imageId && this._drawnImage !== imageId) {
      this._drawnImage = imageId;
      if (this.onDrawn) this.onDrawn(imageId);
    }
  }

  _drawStatic(ctx, editor, exclude, width, height) {
    const dpr = this.dpr;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#2b2b2b";
    ctx.fillRect(0, 0, width, height);
    if (!editor.image) return;
    const [x0, y0] = imageToCanvas(editor.view, 0, 0);
    const iw = editor.image.width * editor.view.scale;
    const ih = editor.image.height * editor.view.scale;
    if (this.bitmap && this.bitmap.imageId === editor.image.id) {
      // the bitmap may be a downscaled copy: it is stretched over the ORIGINAL extent,
      // so boxes in original pixels land exactly where they belong
      ctx.imageSmoothingEnabled = editor.view.scale * dpr < 2;
      ctx.drawImage(this.bitmap.source, x0 * dpr, y0 * dpr, iw * dpr, ih * dpr);
    } else {
      ctx.fillStyle = "#3a3a3a";
      ctx.fillRect(x0 * dpr, y0 * dpr, iw * dpr, ih * dpr);
      ctx.fillStyle = "#ddd";
      ctx.font = `${14 * dpr}px sans-serif`;
      ctx.fillText("loading…", (x0 + 8) * dpr, (y0 + 20) * dpr);
    }
    const anns = editor.visibleBoxes().filter((b) => b.id !== exclude);
    this._drawShapes(ctx, editor, anns, width, height);
  }

  /** Masks, then polygons, then boxes, keypoints and labels on top. */
  _drawShapes(ctx, editor, anns, width, height) {
    const dpr = this.dpr;
    const colorOf = (a) => colorFor(editor.categories, a.category_id);
    const masks = anns.filter((a) => a.mask);
    if (masks.length) drawMasks(ctx, this.masks, editor, masks, dpr, colorOf);
    const polygons = anns.filter((a) => a.polygon && !a.mask);
    if (polygons.length) drawPolygons(ctx, editor, polygons, dpr, colorOf);
    // a shape is its own outline; boxes show for the rest, for predictions, for masks on their way
    const boxed = anns.filter((a) => (!a.mask && !a.polygon) || a.is_prediction || (a.mask && !editor.maskOf(a)));
    this._drawBoxes(ctx, editor, boxed, width, height, anns);
    const people = anns.filter((a) => a.keypoints);
    if (people.length) drawKeypoints(ctx, editor, people, dpr, colorOf);
  }

  _drawBoxes(ctx, editor, boxes, width, height, labelled = boxes) {
    const dpr = this.dpr;
    const groups = new Map(); // one stroke per (colour, dashed): 1,000 boxes, ~20 strokes
    const onScreen = [];
    const visible = (x, y, w, h) => !(x > width || y > height || x + w < 0 || y + h < 0);
    for (const b of boxes) {
      const [x, y, w, h] = boxToCanvas(editor.view, b.bbox).map((v) => v * dpr);
      if (!visible(x, y, w, h)) continue;
      const color = colorFor(editor.categories, b.category_id);
      const alpha = b.is_prediction ? predictionAlpha(b.score) : 1;
      const k = `${color}|${b.is_prediction ? 1 : 0}|${alpha}`;
      if (!groups.has(k)) groups.set(k, { color, dashed: b.is_prediction, alpha, rects: [] });
      groups.get(k).rects.push([Math.round(x) + 0.5, Math.round(y) + 0.5, Math.round(w), Math.round(h)]);
      if (labelled === boxes) onScreen.push([b, x, y, w, color]);
    }
    if (labelled !== boxes) {
      for (const b of labelled) {
        const [x, y, w, h] = boxToCanvas(editor.view, b.bbox).map((v) => v * dpr);
        if (visible(x, y, w, h)) onScreen.push([b, x, y, w, colorFor(editor.categories, b.category_id)]);
      }
    }
    const solid = Math.max(1, Math.round(1.5 * dpr));
    for (const g of groups.values()) {
      ctx.beginPath();
      for (const r of g.rects) ctx.rect(r[0], r[1], r[2], r[3]);
      if (g.dashed) {
        // a prediction: a dark casing under a wide class-colour/white dash reads on fur,
        // grass or snow alike; the surer the model, the more opaque
        ctx.globalAlpha = g.alpha;
        ctx.setLineDash([]);
        ctx.lineWidth = Math.round(4 * dpr);
        ctx.strokeStyle = PREDICTION_CASING;
        ctx.stroke();
        ctx.lineWidth = Math.round(2.5 * dpr);
        ctx.strokeStyle = "#fff";
        ctx.stroke();
        ctx.setLineDash([7 * dpr, 5 * dpr]);
        ctx.strokeStyle = g.color;
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.globalAlpha = 1;
      } else {
        ctx.lineWidth = solid;
        ctx.strokeStyle = g.color;
        ctx.stroke();
      }
    }
    ctx.lineWidth = solid;
    ctx.setLineDash([]);
    if (onScreen.length <= MAX_LABELS) {
      ctx.font = `${LABEL_FONT_PX * dpr}px sans-serif`;
      ctx.textBaseline = "bottom";
      for (const [b, x, y, w, color] of onScreen) {
        if (w < 24 * dpr) continue;
        this._label(ctx, editor, b, x, y, color);
      }
    }
  }

  _label(ctx, editor, b, x, y, color) {
    const dpr = this.dpr;
    const text = labelText(editor.categoryName(b.category_id), b);
    const tw = ctx.measureText(text).width;
    const th = (LABEL_FONT_PX + 4) * dpr;
    const ty = y >= th ? y : y + th; // inside the box when it touches the top edge
    ctx.fillStyle = color;
    ctx.globalAlpha = b.is_prediction ? predictionAlpha(b.score) * 0.85 : 0.85;
    ctx.fillRect(x, ty - th, tw + 6 * dpr, th);
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#000";
    ctx.fillText(text, x + 3 * dpr, ty - 2 * dpr);
  }

  _drawDynamic(ctx, editor) {
    const dpr = this.dpr;
    const sel = editor.selected;
    const d = editor.drag;
    const colorOf = (a) => colorFor(editor.categories, a.category_id);
    const painting = d && d.kind === "paint";
    if (painting) this._drawPaint(ctx, editor, d);
    if (sel && editor.visibleBoxes().includes(sel)) {
      const a = editor.liveAnnotation(sel.id);
      const bbox = a.bbox;
      const color = colorOf(a);
      const paintingThis = painting && d.id === sel.id;
      if (a.mask && !paintingThis) drawMasks(ctx, this.masks, editor, [a], dpr, colorOf, { alpha: 0.55 });
      if (a.polygon && !paintingThis) drawPolygons(ctx, editor, [a], dpr, colorOf, { fillAlpha: 0.3, width: 2.5 });
      const tool = editor.toolController;
      const handles = resizable(a) && (!tool || tool.boxHandles);
      const [x, y, w, h] = boxToCanvas(editor.view, bbox).map((v) => v * dpr);
      if (handles || a.is_prediction || (!a.mask && !a.polygon) || (a.mask && !editor.maskOf(a))) {
        ctx.lineWidth = Math.max(2, Math.round(2.5 * dpr));
        ctx.strokeStyle = color;
        ctx.setLineDash(sel.is_prediction ? [6 * dpr, 4 * dpr] : []);
        ctx.strokeRect(x, y, w, h);
        ctx.setLineDash([]);
      }
      ctx.font = `${LABEL_FONT_PX * dpr}px sans-serif`;
      ctx.textBaseline = "bottom";
      this._label(ctx, editor, sel, x, y, color);
      if (handles) {
        const hs = 4 * dpr;
        ctx.fillStyle = "#fff";
        ctx.strokeStyle = "#000";
        ctx.lineWidth = Math.max(1, dpr);
        for (const p of handlePoints(bbox)) {
          const [hx, hy] = imageToCanvas(editor.view, p.x, p.y).map((v) => v * dpr);
          ctx.fillRect(hx - hs, hy - hs, 2 * hs, 2 * hs);
          ctx.strokeRect(hx - hs, hy - hs, 2 * hs, 2 * hs);
        }
      }
      if (a.polygon && editor.tool === "polygon" && !paintingThis) {
        drawVertices(ctx, editor, a.polygon, dpr, { chosen: editor.polygonTool.selectedVertex(), color });
      }
      if (a.keypoints) {
        drawKeypoints(ctx, editor, [a], dpr, colorOf, { radius: 4.5, selected: editor.keypointTool.selectedKeypoint() });
      }
    }
    if (d && d.id === null && d.after && d.after.keypoints) {
      drawKeypoints(ctx, editor, [d.after], dpr, colorOf, { radius: 4.5 });
    }
    if (editor.tool === "polygon" && editor.polygonTool.draft) this._drawDraft(ctx, editor, editor.polygonTool.draft);
    if ((editor.tool === "brush" || editor.tool === "eraser") && editor.hover && editor.image) {
      const [hx, hy] = imageToCanvas(editor.view, editor.hover[0], editor.hover[1]).map((v) => v * dpr);
      const r = editor.brushTool.radius() * editor.view.scale * dpr;
      ctx.lineWidth = Math.max(1, dpr);
      for (const [color, grow] of [["#000", 1], ["#fff", 0]]) {
        ctx.strokeStyle = color;
        ctx.beginPath();
        ctx.arc(hx, hy, r + grow * dpr, 0, 2 * Math.PI);
        ctx.stroke();
      }
    }
    if (d && d.kind === "draw" && d.bbox) {
      const [x, y, w, h] = boxToCanvas(editor.view, d.bbox).map((v) => v * dpr);
      ctx.lineWidth = Math.max(1, Math.round(1.5 * dpr));
      ctx.strokeStyle = colorFor(editor.categories, editor.category);
      ctx.setLineDash([4 * dpr, 3 * dpr]);
      ctx.strokeRect(x, y, w, h);
      ctx.setLineDash([]);
    }
  }
}

Renderer.prototype._drawPaint = function drawPaint(ctx, editor, d) {
  const { width, height } = editor.image;
  if (!this.paintLayer || this.paintLayer.width !== width || this.paintLayer.height !== height) {
    this.paintLayer = this.createLayer(width, height);
    this.paintDrag = null;
  }
  if (this.paintDrag !== d) {
    // a new stroke: forget the last one's pixels
    this.paintLayer.getContext("2d").clearRect(0, 0, width, height);
    this.paintDrag = d;
    d.dirty = unionRect(d.startRect, d.rect);
  }
  const color = colorFor(editor.categories, d.categoryId);
  if (d.dirty) {
    const [x0, y0, x1, y1] = d.dirty;
    fillCanvas(this.paintLayer, d.full, width, [Math.max(0, x0), Math.max(0, y0), Math.min(width, x1), Math.min(height, y1)], color, 0.55);
    d.dirty = null;
  }
  const shown = unionRect(d.startRect, d.rect);
  if (!shown) return;
  const [x0, y0, x1, y1] = [Math.max(0, shown[0]), Math.max(0, shown[1]), Math.min(width, shown[2]), Math.min(height, shown[3])];
  if (x1 <= x0 || y1 <= y0) return;
  ctx.setTransform(...deviceTransform(editor.view, this.dpr));
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(this.paintLayer, x0, y0, x1 - x0, y1 - y0, x0, y0, x1 - x0, y1 - y0);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
};

Renderer.prototype._drawDraft = function drawDraft(ctx, editor, draft) {
  const dpr = this.dpr;
  const pts = draft.points;
  const to = (x, y) => imageToCanvas(editor.view, x, y).map((v) => v * dpr);
  const color = colorFor(editor.categories, editor.category);
  ctx.strokeStyle = color;
  ctx.lineWidth = Math.max(1, Math.round(2 * dpr));
  ctx.beginPath();
  ctx.moveTo(...to(pts[0], pts[1]));
  for (let i = 2; i < pts.length; i += 2) ctx.lineTo(...to(pts[i], pts[i + 1]));
  ctx.stroke();
  if (editor.hover) {
    ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.beginPath();
    ctx.moveTo(...to(pts[pts.length - 2], pts[pts.length - 1]));
    ctx.lineTo(...to(editor.hover[0], editor.hover[1]));
    ctx.stroke();
    ctx.setLineDash([]);
  }
  drawVertices(ctx, editor, [pts], dpr, { chosen: pts.length >= 6 ? { ring: 0, index: 0 } : null, color });
};

function makeLayer(w, h) {
  if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(w, h);
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  return c;
}

/** p-quantile (0..1) of a list of numbers (benchmarks and tests). */
export function quantile(values, q) {
  if (!values.length) return NaN;
  const s = values.slice().sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i];
}
