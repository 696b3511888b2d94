// The keypoint tool (K): place the class's keypoints in the order of its names (a click
// places the next one, a drag right after places it precisely), drag one to move it, S skips
// the next one (it stays absent), V cycles the clicked one visible -> occluded -> absent.

import {
  ABSENT,
  VISIBLE,
  boxAround,
  cycleVisibility,
  emptyKeypoints,
  hitKeypoint,
  keypointCount,
  nextToPlace,
  setKeypoint,
} from "./keypoints.js";
import { sameBox } from "./geometry.js";
import { clampPoint } from "./polygon.js";
import { copyAnnotation } from "./shapes.js";

const done = (commands = []) => ({ handled: true, commands });

export class KeypointTool {
  constructor(editor) {
    this.e = editor;
    this.reset();
  }

  reset() {
    this.cursor = null; // {id, index}: place from here on (id null: the next new annotation)
    this.selected = null; // {id, index}: the keypoint V and Delete act on
    this.memory = new Map(); // "id:index" -> [x, y] of a point made absent, for V back
  }

  remapId(oldId, newId) {
    if (this.cursor && this.cursor.id === oldId) this.cursor.id = newId;
    if (this.selected && this.selected.id === oldId) this.selected.id = newId;
    for (const [k, v] of [...this.memory]) {
      if (k.startsWith(`${oldId}:`)) {
        this.memory.delete(k);
        this.memory.set(`${newId}:${k.slice(String(oldId).length + 1)}`, v);
      }
    }
  }

  /** On a person, the keypoints are the handles; the box handles would sit on top of them. */
  get boxHandles() {
    const sel = this.e.selected;
    return !(sel && sel.keypoints && this.names(sel.category_id).length);
  }

  followsPointer() {
    return false;
  }

  names(categoryId) {
    const c = this.e.categoryById(categoryId);
    return c ? c.keypoints : [];
  }

  /** The selected annotation, when it is shown and its class has keypoints. */
  target() {
    const sel = this.e.selected;
    return sel && this.e.visibleBoxes().includes(sel) && this.names(sel.category_id).length ? sel : null;
  }

  keypointsOf(a) {
    const n = this.names(a ? a.category_id : this.e.category).length;
    return a && a.keypoints && keypointCount(a.keypoints) === n ? a.keypoints : emptyKeypoints(n);
  }

  /** The index the next click places on `a` (null: a new annotation), or -1. */
  next(a) {
    const id = a ? a.id : null;
    const from = this.cursor && this.cursor.id === id ? this.cursor.index : 0;
    return nextToPlace(this.keypointsOf(a), from);
  }

  selectedKeypoint() {
    const s = this.selected;
    return s && s.id !== null && s.id === this.e.selectedId ? s : null;
  }

  hint() {
    const e = this.e;
    const target = this.target();
    const categoryId = target ? target.category_id : e.category;
    const names = this.names(categoryId);
    const name = e.categoryName(categoryId);
    if (!names.length) return `keypoints: class ${name} has none (pick a class that has, with its digit)`;
    const index = this.next(target);
    if (index < 0) return `keypoints: all ${names.length} done — drag one to move it, V cycles its visibility; click outside for a new ${name}`;
    const whose = target ? "" : ` of a new ${name}`;
    return `keypoints: click to place "${names[index]}" (${index + 1}/${names.length})${whose} — S skips it`;
  }

  _tolerance() {
    return this.e.handlePx / this.e.view.scale;
  }

  cursorAt(ix, iy) {
    const sel = this.e.selected;
    if (sel && sel.keypoints && hitKeypoint(sel.keypoints, ix, iy, this._tolerance()) >= 0) return "move";
    const target = this.target();
    return target && this.next(target) >= 0 ? "crosshair" : null;
  }

  pointerDown({ x, y, ix, iy, t0 }) {
    const e = this.e;
    const sel = e.selected && e.visibleBoxes().includes(e.selected) ? e.selected : null;
    if (sel && sel.keypoints) {
      const i = hitKeypoint(sel.keypoints, ix, iy, this._tolerance());
      if (i >= 0) {
        this.selected = { id: sel.id, index: i };
        e.drag = { tool: this, kind: "keypoint", id: sel.id, index: i, start: [x, y], base: sel.keypoints, placed: false, moved: false, after: null, t0 };
        return done();
      }
    }
    let target = this.target();
    let index = target ? this.next(target) : -1;
    if (index < 0) {
      if (e.hitAt(ix, iy)) return null; // select / move another object
      const names = this.names(e.category);
      if (!names.length) {
        e.message = `class ${e.categoryName(e.category)} has no keypoints: pick one that has`;
        return done();
      }
      target = null;
      index = this.next(null);
      if (index < 0) index = 0;
      if (e.selectedId !== null) {
        e.selectedId = null;
        e._changed();
      }
    }
    const base = this.keypointsOf(target);
    e.drag = {
      tool: this,
      kind: "keypoint",
      id: target ? target.id : null,
      categoryId: target ? target.category_id : e.category,
      index,
      start: [x, y],
      base,
      placed: true,
      moved: true,
      after: null,
      t0,
    };
    this._placeAt(e.drag, ix, iy);
    this.selected = { id: target ? target.id : null, index };
    return done();
  }

  pointerMove(d, { x, y, ix, iy }) {
    if (!d.moved && Math.hypot(x - d.start[0], y - d.start[1]) < this.e.dragPx) return done();
    d.moved = true;
    this._placeAt(d, ix, iy);
    return done();
  }

  _placeAt(d, ix, iy) {
    const e = this.e;
    const [px, py] = clampPoint(ix, iy, e.image);
    const v = d.placed ? VISIBLE : d.base[3 * d.index + 2] || VISIBLE;
    const keypoints = setKeypoint(d.base, d.index, px, py, v);
    const before = d.id !== null ? e.boxes.find((b) => b.id === d.id) : null;
    const after = before
      ? copyAnnotation(before)
      : { id: null, category_id: d.categoryId, bbox: null, score: null, is_prediction: false };
    after.keypoints = keypoints;
    const bounds = { ...e.image, minSize: 1 };
    // a box that is just the points' box follows them; a box a person drew only grows
    const auto = before && before.keypoints && sameBox(before.bbox, boxAround(null, before.keypoints, bounds) || []);
    after.bbox = boxAround(before && !auto ? before.bbox : null, keypoints, bounds);
    d.after = after;
  }

  pointerUp(d, duration) {
    const e = this.e;
    if (!d.after) return []; // a click on a keypoint only selects it
    const keypoints = rounded(d.after.keypoints);
    const bbox = d.after.bbox.map((v) => Math.round(v * 100) / 100);
    if (d.id === null) {
      const commands = e._add(bbox, d.categoryId, duration, { keypoints });
      const id = e.selectedId;
      this.cursor = { id, index: d.index + 1 };
      this.selected = { id, index: d.index };
      return commands;
    }
    if (d.placed) this.cursor = { id: d.id, index: d.index + 1 };
    const fields = { bbox, keypoints };
    if (d.after.polygon) fields.polygon = d.after.polygon;
    return e._update(d.id, fields, duration);
  }

  keyDown({ k }) {
    const e = this.e;
    if (k === "s") {
      const target = this.target();
      if (!target && !this.names(e.category).length) return null;
      const index = this.next(target);
      if (index >= 0) this.cursor = { id: target ? target.id : null, index: index + 1 };
      e._changed();
      return done();
    }
    const sk = this.selectedKeypoint();
    if (k === "v") {
      if (!sk) {
        e.message = "click a keypoint first";
        return done();
      }
      return done(this._setVisibility(sk, null));
    }
    if ((k === "Delete" || k === "Backspace") && sk) return done(this._setVisibility(sk, ABSENT));
    return null;
  }

  /** Keypoint `sk` made `v` (null: the next in the V cycle); absent points remember where they were. */
  _setVisibility(sk, v) {
    const e = this.e;
    const ann = e.boxes.find((b) => b.id === sk.id);
    if (!ann || !ann.keypoints) return [];
    const i = sk.index;
    const old = ann.keypoints[3 * i + 2];
    const next = v === null ? cycleVisibility(old) : v;
    if (next === old) return [];
    let x = ann.keypoints[3 * i];
    let y = ann.keypoints[3 * i + 1];
    const memo = `${ann.id}:${i}`;
    if (next === ABSENT) this.memory.set(memo, [x, y]);
    if (old === ABSENT) {
      if (!this.memory.has(memo)) {
        this.cursor = { id: ann.id, index: i }; // nowhere to put it back: the next click does
        e._changed();
        return [];
      }
      [x, y] = this.memory.get(memo);
    }
    const fields = { bbox: ann.bbox, keypoints: rounded(setKeypoint(ann.keypoints, i, x, y, next)) };
    if (ann.polygon) fields.polygon = ann.polygon;
    return e._update(ann.id, fields, 0);
  }

  cancel() {
    if (this.selectedKeypoint()) {
      this.selected = null;
      return true;
    }
    return false;
  }
}

function rounded(keypoints) {
  return keypoints.map((v, i) => (i % 3 === 2 ? v : Math.round(v * 100) / 100));
}
