// The mask brush (M) and eraser (E). A stroke paints into a full-image working copy of the
// mask (pixels at image resolution; the renderer mirrors the touched rectangles onto an
// offscreen canvas), and is committed on mouse-up as COCO RLE: one command, one undo step.
//
// instance mode: the brush paints the selected annotation (nothing selected: a new mask of
//   the current class); the eraser clears pixels of the selected one.
// semantic mode: one mask per class; the brush paints the current class's mask and takes
//   the pixels from every other class; the eraser clears the pixels of every mask.

import { roundBox } from "./geometry.js";
import { encodeMask, fillPolygon, fromFull, maskBBox, maskKey, stampDisc, stampSegment, subtract, toFull, unionRect } from "./mask.js";
import { copyAnnotation } from "./shapes.js";

const done = (commands = []) => ({ handled: true, commands });

export class BrushTool {
  constructor(editor) {
    this.e = editor;
  }

  reset() {}

  remapId() {}

  get boxHandles() {
    return false;
  }

  get erasing() {
    return this.e.tool === "eraser";
  }

  followsPointer() {
    return true;
  }

  /** The brush radius in image pixels (a fixed size on screen, whatever the zoom). */
  radius() {
    return Math.max(0.5, this.e.brushPx / this.e.view.scale);
  }

  hint() {
    const e = this.e;
    const what = this.erasing ? "eraser" : "brush";
    const size = `[ / ] size (${Math.round(this.radius())} px)`;
    if (e.maskMode === "semantic") {
      return this.erasing
        ? `${what} (semantic): drag to clear pixels of every class — ${size}`
        : `${what} (semantic): drag to paint ${e.categoryName(e.category)} — ${size}`;
    }
    const sel = e.selected;
    if (this.erasing) return sel ? `${what}: drag to erase from the selected ${e.categoryName(sel.category_id)} — ${size}` : `${what}: click a mask to erase from — ${size}`;
    return sel
      ? `${what}: drag to paint the selected ${e.categoryName(sel.category_id)} (Esc: a new one) — ${size}`
      : `${what}: drag to paint a new ${e.categoryName(e.category)} mask — ${size}`;
  }

  cursorAt() {
    return "crosshair";
  }

  _visible(a) {
    return a && this.e.visibleBoxes().includes(a) ? a : null;
  }

  /** The annotation a stroke starting at (ix, iy) paints into (null: a new one), or false. */
  _target(ix, iy) {
    const e = this.e;
    const hitMask = () => {
      const hit = e.hitAt(ix, iy, { handles: false });
      const a = hit && e.boxes.find((b) => b.id === hit.id);
      return a && a.mask ? a : null;
    };
    if (e.maskMode === "semantic") {
      if (this.erasing) return hitMask();
      const sel = this._visible(e.selected);
      if (sel && sel.mask && sel.category_id === e.category) return sel;
      return e.boxes.find((b) => !b.is_prediction && b.mask && b.category_id === e.category) || null;
    }
    const sel = this._visible(e.selected);
    if (sel) return sel;
    if (!this.erasing) return null;
    const a = hitMask();
    if (!a) {
      e.message = "click the mask to erase from";
      return false;
    }
    return a;
  }

  pointerDown({ ix, iy, t0 }) {
    const e = this.e;
    const { width, height } = e.image;
    const target = this._target(ix, iy);
    if (target === false) return done();
    if (!target && !this.erasing && e.category == null) {
      e.message = "add a category to the project first";
      return done();
    }
    if (target && target.mask && !e.maskOf(target)) {
      e.message = "that mask is still loading";
      return done();
    }
    const full = target ? this._pixels(target) : new Uint8Array(width * height);
    const mark = new Uint8Array(width * height);
    const value = this.erasing ? 0 : 1;
    const rect = stampDisc(full, width, height, ix, iy, this.radius(), value, mark);
    const m = target && e.maskOf(target);
    const startRect = m && m.w ? [m.x, m.y, m.x + m.w, m.y + m.h] : target && target.polygon ? bboxRect(target.bbox) : null;
    if (target && e.selectedId !== target.id) {
      e.selectedId = target.id;
      e._changed();
    }
    e.drag = {
      tool: this,
      kind: "paint",
      id: target ? target.id : null,
      categoryId: target ? target.category_id : e.category,
      full,
      mark,
      value,
      rect, // what the stroke touched
      startRect,
      dirty: unionRect(startRect, rect), // what the renderer must copy since its last frame
      last: [ix, iy],
      semantic: e.maskMode === "semantic",
      version: 1,
      moved: true,
      t0,
    };
    return done();
  }

  pointerMove(d, { ix, iy }) {
    const { width, height } = this.e.image;
    const rect = stampSegment(d.full, width, height, d.last[0], d.last[1], ix, iy, this.radius(), d.value, d.mark);
    d.last = [ix, iy];
    d.rect = unionRect(d.rect, rect);
    d.dirty = unionRect(d.dirty, rect);
    d.version++;
    return done();
  }

  pointerUp(d, duration) {
    const e = this.e;
    const { width, height } = e.image;
    if (!d.rect) return [];
    const changes = [];
    const target = d.id != null ? e.boxes.find((b) => b.id === d.id) : null;
    const painted = fromFull(d.full, width, height, unionRect(d.startRect, d.rect));
    changes.push(...this._change(target, painted, d.categoryId));
    if (d.semantic) {
      // a pixel has one class: the stroke takes its pixels from every other mask
      for (const b of e.boxes) {
        if (b.is_prediction || !b.mask || (target && b.id === target.id)) continue;
        const m = e.maskOf(b);
        if (!m) continue;
        const rest = subtract(m, d.mark, d.rect);
        if (rest !== m) changes.push(...this._change(b, rest, b.category_id));
      }
    }
    return e._commit(changes, duration);
  }

  keyDown() {
    return null;
  }

  cancel() {
    return false;
  }

  /** The annotation's pixels as a full-image array (its mask, or its polygon filled). */
  _pixels(a) {
    const { width, height } = this.e.image;
    const m = this.e.maskOf(a);
    if (m) return toFull(m);
    const full = new Uint8Array(width * height);
    if (a.polygon) fillPolygon(full, width, height, a.polygon);
    return full;
  }

  /** The change (for Editor._commit) that gives `before` (null: a new one) the mask `mask`. */
  _change(before, mask, categoryId) {
    const e = this.e;
    if (!mask.w) {
      // erased to nothing: the object is gone
      return before ? [{ id: before.id, before, after: null, command: { type: "delete", id: before.id } }] : [];
    }
    const rle = encodeMask(mask);
    const key = maskKey(rle.size, rle.counts);
    if (before && before.mask && before.mask.key === key) return [];
    e.masks.set(key, mask);
    const bbox = roundBox(maskBBox(mask));
    const fields = { bbox, mask: { key, size: rle.size } };
    const wire = { bbox, mask: rle };
    if (before) {
      const after = { ...copyAnnotation(before), ...fields, is_prediction: false, score: null };
      delete after.polygon; // the mask replaces the polygon it was painted over
      const command = { type: "update", id: before.id, ...wire };
      if (before.polygon) command.polygon = null;
      return [{ id: before.id, before, after, command }];
    }
    const id = e._newClientId();
    const after = { id, category_id: categoryId, score: null, is_prediction: false, ...fields };
    return [{ id, before: null, after, command: { type: "add", client_id: id, category_id: categoryId, ...wire }, select: true }];
  }
}

function bboxRect([x, y, w, h]) {
  return [Math.floor(x), Math.floor(y), Math.ceil(x + w) + 1, Math.ceil(y + h) + 1];
}
