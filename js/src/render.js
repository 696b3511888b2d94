// Canvas drawing. The backing store is sized by devicePixelRatio (crisp on HiDPI), and a
// frame is drawn only on requestAnimationFrame after something changed. The image and
// every box except the selected one are cached in a layer, so a drag redraws one blit and
// one box whatever the number of boxes. Class names are canvas text (fillText): a name is
// never parsed as HTML.

import { backingSize, boxToCanvas, handlePoints, imageToCanvas } from "./geometry.js";

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
    const boxes = editor.visibleBoxes().filter((b) => b.id !== exclude);
    this._drawBoxes(ctx, editor, boxes, width, height);
  }

  _drawBoxes(ctx, editor, boxes, width, height) {
    const dpr = this.dpr;
    const groups = new Map(); // one stroke per (colour, dashed): 1,000 boxes, ~20 strokes
    const onScreen = [];
    for (const b of boxes) {
      const [x, y, w, h] = boxToCanvas(editor.view, b.bbox).map((v) => v * dpr);
      if (x > width || y > height || x + w < 0 || y + h < 0) continue;
      const color = colorFor(editor.categories, b.category_id);
      const k = `${color}|${b.is_prediction ? 1 : 0}`;
      if (!groups.has(k)) groups.set(k, { color, dashed: b.is_prediction, rects: [] });
      groups.get(k).rects.push([Math.round(x) + 0.5, Math.round(y) + 0.5, Math.round(w), Math.round(h)]);
      onScreen.push([b, x, y, w, color]);
    }
    ctx.lineWidth = Math.max(1, Math.round(1.5 * dpr));
    for (const g of groups.values()) {
      ctx.strokeStyle = g.color;
      ctx.setLineDash(g.dashed ? [6 * dpr, 4 * dpr] : []);
      ctx.beginPath();
      for (const r of g.rects) ctx.rect(r[0], r[1], r[2], r[3]);
      ctx.stroke();
    }
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
    ctx.globalAlpha = b.is_prediction ? 0.6 : 0.85;
    ctx.fillRect(x, ty - th, tw + 6 * dpr, th);
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#000";
    ctx.fillText(text, x + 3 * dpr, ty - 2 * dpr);
  }

  _drawDynamic(ctx, editor) {
    const dpr = this.dpr;
    const sel = editor.selected;
    if (sel && editor.visibleBoxes().includes(sel)) {
      const bbox = editor.liveBox(sel.id);
      const color = colorFor(editor.categories, sel.category_id);
      const [x, y, w, h] = boxToCanvas(editor.view, bbox).map((v) => v * dpr);
      ctx.lineWidth = Math.max(2, Math.round(2.5 * dpr));
      ctx.strokeStyle = color;
      ctx.setLineDash(sel.is_prediction ? [6 * dpr, 4 * dpr] : []);
      ctx.strokeRect(x, y, w, h);
      ctx.setLineDash([]);
      ctx.font = `${LABEL_FONT_PX * dpr}px sans-serif`;
      ctx.textBaseline = "bottom";
      this._label(ctx, editor, sel, x, y, color);
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
    const d = editor.drag;
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
