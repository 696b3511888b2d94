// The polygon tool (P): click to add vertices, close on the first vertex or Enter; on the
// selected polygon, drag a vertex, drag an edge to insert one, click a vertex then Delete.

import { roundBox } from "./geometry.js";
import {
  clampPoint,
  deleteVertex,
  hitEdge,
  hitVertex,
  insertVertex,
  moveVertex,
  polygonBBox,
  ringArea,
  roundPolygon,
  samePolygon,
} from "./polygon.js";
import { copyAnnotation } from "./shapes.js";

const done = (commands = []) => ({ handled: true, commands });

export class PolygonTool {
  constructor(editor) {
    this.e = editor;
    this.reset();
  }

  reset() {
    this.draft = null; // {points: [x0, y0, ...], t0}: the polygon being drawn
    this.vertex = null; // {id, ring, index}: the vertex Delete removes
  }

  remapId(oldId, newId) {
    if (this.vertex && this.vertex.id === oldId) this.vertex.id = newId;
  }

  /** The selected polygon, when it is shown (what vertex edits apply to). */
  editable() {
    const sel = this.e.selected;
    return sel && sel.polygon && this.e.visibleBoxes().includes(sel) ? sel : null;
  }

  /** Box handles stay off on a polygon: its vertices are the handles. */
  get boxHandles() {
    return !this.editable();
  }

  followsPointer() {
    return this.draft !== null;
  }

  selectedVertex() {
    const v = this.vertex;
    return v && v.id === this.e.selectedId ? v : null;
  }

  hint() {
    if (this.draft) {
      const n = this.draft.points.length / 2;
      return n >= 3
        ? `polygon: ${n} vertices — click the first vertex or Enter to close; Backspace removes the last; Esc cancels`
        : `polygon: ${n} vertices — click to add the next`;
    }
    return this.editable()
      ? "polygon: drag a vertex; drag an edge to insert one; click a vertex, then Delete removes it"
      : "polygon: click to add vertices (Shift+click over another object)";
  }

  _tolerance() {
    return this.e.handlePx / this.e.view.scale;
  }

  _closable(ix, iy) {
    const p = this.draft && this.draft.points;
    return p && p.length >= 6 && Math.hypot(p[0] - ix, p[1] - iy) <= this._tolerance();
  }

  cursorAt(ix, iy) {
    if (this.draft) return this._closable(ix, iy) ? "pointer" : "crosshair";
    const sel = this.editable();
    if (sel) {
      if (hitVertex(sel.polygon, ix, iy, this._tolerance())) return "move";
      if (hitEdge(sel.polygon, ix, iy, this._tolerance())) return "copy";
    }
    return null;
  }

  pointerDown({ x, y, ix, iy, shift, t0 }) {
    const e = this.e;
    const [px, py] = clampPoint(ix, iy, e.image);
    if (this.draft) {
      if (this._closable(ix, iy)) return done(this._close());
      this.draft.points.push(px, py); // drawn in the dynamic layer: the cached one stays valid
      return done();
    }
    const sel = this.editable();
    const tolerance = this._tolerance();
    if (sel && !shift) {
      const v = hitVertex(sel.polygon, ix, iy, tolerance);
      if (v) {
        this.vertex = { id: sel.id, ...v };
        // the committed list is unchanged: the renderer's cached layer stays valid
        e.drag = { tool: this, kind: "vertex", id: sel.id, ...v, start: [x, y], base: sel.polygon, moved: false, after: null, t0 };
        return done();
      }
      const edge = hitEdge(sel.polygon, ix, iy, tolerance);
      if (edge) {
        // the new vertex exists from the press on: a click inserts it, a drag places it
        const base = sel.polygon.map((ring, r) => (r === edge.ring ? insertVertex(ring, edge.index, edge.x, edge.y) : ring));
        const index = edge.index + 1;
        this.vertex = { id: sel.id, ring: edge.ring, index };
        e.drag = { tool: this, kind: "vertex", id: sel.id, ring: edge.ring, index, start: [x, y], base, moved: false, t0 };
        e.drag.after = this._with(sel, base);
        return done();
      }
    }
    if (!shift && e.hitAt(ix, iy, { handles: !sel })) return null; // select / move another
    if (e.selectedId !== null) {
      e.selectedId = null;
      e._changed();
    }
    this.vertex = null;
    this.draft = { points: [px, py], t0 };
    return done();
  }

  pointerMove(d, { x, y, ix, iy }) {
    if (!d.moved && Math.hypot(x - d.start[0], y - d.start[1]) < this.e.dragPx) return done();
    d.moved = true;
    const [px, py] = clampPoint(ix, iy, this.e.image);
    const rings = d.base.map((ring, r) => (r === d.ring ? moveVertex(ring, d.index, px, py) : ring));
    d.after = this._with(this.e.boxes.find((b) => b.id === d.id), rings);
    return done();
  }

  pointerUp(d, duration) {
    if (!d.after) return []; // a click on a vertex only selects it
    const before = this.e.boxes.find((b) => b.id === d.id);
    const polygon = roundPolygon(d.after.polygon);
    if (!before || samePolygon(polygon, before.polygon)) return [];
    return this.e._update(d.id, this._fields(before, polygon), duration);
  }

  keyDown({ k }) {
    const e = this.e;
    if (this.draft) {
      if (k === "Enter") {
        if (this.draft.points.length >= 6) return done(this._close());
        e.message = "a polygon needs at least 3 vertices";
        return done();
      }
      if (k === "Backspace" || k === "Delete") {
        this.draft.points.splice(-2);
        if (!this.draft.points.length) this.draft = null;
        return done();
      }
      return null;
    }
    const v = this.selectedVertex();
    if ((k === "Delete" || k === "Backspace") && v) {
      const sel = e.selected;
      const ring = deleteVertex(sel.polygon[v.ring], v.index);
      let polygon;
      if (ring) polygon = sel.polygon.map((r, i) => (i === v.ring ? ring : r));
      else if (sel.polygon.length > 1) polygon = sel.polygon.filter((_, i) => i !== v.ring);
      else {
        e.message = "a polygon keeps at least 3 vertices (Esc, then Delete removes the object)";
        return done();
      }
      this.vertex = null;
      return done(e._update(sel.id, this._fields(sel, roundPolygon(polygon)), 0));
    }
    return null;
  }

  cancel() {
    if (this.draft) {
      this.draft = null;
      return true;
    }
    if (this.selectedVertex()) {
      this.vertex = null;
      return true;
    }
    return false;
  }

  _with(ann, rings) {
    const out = copyAnnotation(ann);
    out.polygon = rings;
    out.bbox = polygonBBox(rings);
    return out;
  }

  _fields(ann, polygon) {
    const fields = { bbox: roundBox(polygonBBox(polygon)), polygon };
    if (ann.keypoints) fields.keypoints = ann.keypoints;
    return fields;
  }

  _close() {
    const e = this.e;
    const draft = this.draft;
    this.draft = null;
    const polygon = roundPolygon([draft.points]);
    if (ringArea(polygon[0]) < 1) {
      e.message = "that polygon encloses no area";
      e._changed();
      return [];
    }
    const duration = (e.now() - draft.t0) / 1000;
    return e._add(roundBox(polygonBBox(polygon)), e.category, duration, { polygon });
  }
}
