// The edit state machine: pointer and key events in, committed commands out.
// No DOM here (widget.js translates events), so every rule runs under node's test runner.
//
// Edits apply to the local box list at once (the canvas never waits for the kernel) and
// come back as commands for the kernel, which saves them and echoes the authoritative
// state; `adopt` takes that echo.

import {
  boxFromPoints,
  canvasToImage,
  fitView,
  hitHandle,
  moveBox,
  oneToOne,
  panBy,
  resizeBox,
  roundBox,
  sameBox,
  zoomAt,
} from "./geometry.js";
import { roundPolygon } from "./polygon.js";
import { annotationContains, copyAnnotation, geometryFields, moveAnnotation, resizable, resizeAnnotation } from "./shapes.js";
import { BrushTool } from "./tool_brush.js";
import { KeypointTool } from "./tool_keypoints.js";
import { PolygonTool } from "./tool_polygon.js";
import { UndoStack, applyChanges } from "./undo.js";

/** The tools, by key: B box, P polygon, M mask brush, E eraser, K keypoints. */
export const TOOLS = Object.freeze({ b: "box", p: "polygon", m: "brush", e: "eraser", k: "keypoints" });

export const KEYMAP = Object.freeze([
  ["B / P / M / E / K", "tool: box / polygon / mask brush / eraser / keypoints"],
  ["drag on the image", "box tool: draw a box with the current class"],
  ["P: click, click, …", "add polygon vertices; click the first one or Enter closes"],
  ["P: drag a vertex / an edge", "move it / insert a vertex there"],
  ["P: click a vertex, Delete", "delete that vertex (Backspace while drawing: the last)"],
  ["P: Shift+click", "start a new polygon over another object"],
  ["M / E: drag", "paint / erase the selected mask (nothing selected: a new one)"],
  ["[ / ]", "smaller / bigger brush"],
  ["K: click", "place the next keypoint of the class's skeleton (drag one to move it)"],
  ["K: S / V", "skip this keypoint / cycle visible → occluded → absent"],
  ["drag a box / a handle", "move / resize it"],
  ["click a prediction twice", "accept it"],
  ["1 … 9", "pick the class (relabels the selected box)"],
  ["Tab / Shift+Tab", "select the next / previous box"],
  ["arrows (Shift ×10)", "nudge the selected box"],
  ["D", "duplicate the selected box"],
  ["Delete / Backspace", "delete the box (rejects a prediction)"],
  ["Enter", "accept the selected prediction; none selected: mark reviewed, next"],
  ["A", "accept all shown predictions"],
  ["Space", "next image (Shift+Space: previous)"],
  ["U", "next image that needs work (unlabeled or predicted)"],
  ["Space + drag, middle drag", "pan"],
  ["wheel, + / -", "zoom"],
  ["F / 0", "fit / 1:1 (one image pixel per CSS pixel)"],
  ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"],
  ["Esc", "cancel, deselect, close help"],
  ["? or H", "show / hide this help"],
]);

const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
const HANDLE_CURSORS = {
  nw: "nwse-resize",
  se: "nwse-resize",
  ne: "nesw-resize",
  sw: "nesw-resize",
  n: "ns-resize",
  s: "ns-resize",
  e: "ew-resize",
  w: "ew-resize",
};

export class Editor {
  constructor({
    now = () => Date.now(),
    minSize = 2, // image pixels: the smallest box a resize leaves
    handlePx = 6, // CSS pixels: how close to a handle grabs it
    snapPx = 4, // CSS pixels: edges this close to the image border stick to it
    dragPx = 3, // CSS pixels: less movement than this is a click, not a drag
    clientPrefix = Math.random().toString(36).slice(2, 8),
  } = {}) {
    Object.assign(this, { now, minSize, handlePx, snapPx, dragPx, clientPrefix });
    this.image = null; // {id, width, height}
    this.boxes = [];
    this.categories = [];
    this.category = null; // current class id for new boxes
    this.threshold = 0;
    this.selectedId = null;
    this.cssW = 1;
    this.cssH = 1;
    this.view = { scale: 1, ox: 0, oy: 0 };
    this.fitMode = true;
    this.drag = null;
    this.nudge = null;
    this.spaceDown = false;
    this.spaceUsed = false;
    this.spaceShift = false;
    this.help = false;
    this.message = "";
    this.version = 0; // bumps when the committed box list or selection changes
    this.viewVersion = 0;
    this.undo = new UndoStack();
    this.pendingAdopt = null;
    this._clientSeq = 0;
    this._visible = null;
    this.tool = "box";
    this.maskMode = "instance"; // or "semantic": one mask per class, a pixel has one class
    this.brushPx = 10; // CSS pixels: the brush radius on screen
    this.hover = null; // [x, y] image pixels under the pointer (brush outline, rubber band)
    this.masks = new Map(); // mask key -> decoded mask (the widget shares its cache here)
    this.onToolChange = null;
    this.polygonTool = new PolygonTool(this);
    this.brushTool = new BrushTool(this);
    this.keypointTool = new KeypointTool(this);
  }

  /** The active tool's controller, or null for the box tool. */
  get toolController() {
    if (this.tool === "polygon") return this.polygonTool;
    if (this.tool === "brush" || this.tool === "eraser") return this.brushTool;
    if (this.tool === "keypoints") return this.keypointTool;
    return null;
  }

  setTool(tool) {
    if (!Object.values(TOOLS).includes(tool)) return false;
    if (tool === this.tool) return true;
    if (this.drag) this.drag = null;
    for (const t of [this.polygonTool, this.brushTool, this.keypointTool]) t.reset();
    this.tool = tool;
    this._changed();
    if (this.onToolChange) this.onToolChange(tool);
    return true;
  }

  /** A line telling what a click does now (shown under the canvas). */
  hint() {
    const c = this.toolController;
    return c ? c.hint() : "";
  }

  // ---------------------------------------------------------------- state in
  setCanvasSize(w, h) {
    this.cssW = Math.max(1, w);
    this.cssH = Math.max(1, h);
    if (this.fitMode) this.fit();
    this.viewVersion++;
  }

  /** A new image: boxes replace the old ones; selection, edits and history reset. */
  setImage(image, boxes = []) {
    this.image = { id: image.id, width: image.width, height: image.height };
    this.boxes = boxes.map(copyBox);
    this._visible = null;
    this.selectedId = null;
    this.drag = null;
    this.nudge = null;
    this.pendingAdopt = null;
    this.undo.clear();
    for (const t of [this.polygonTool, this.brushTool, this.keypointTool]) t.reset();
    this.fitMode = true;
    this.fit();
    this._changed();
  }

  /** The kernel's echo of the saved state. Deferred while a drag or nudge is in flight. */
  adopt(boxes, { external = false } = {}) {
    if (this.busy) {
      this.pendingAdopt = { boxes, external };
      return false;
    }
    this.boxes = boxes.map(copyBox);
    this._visible = null;
    for (const b of this.boxes) {
      if (b.client_id == null) continue;
      if (this.selectedId === b.client_id) this.selectedId = b.id;
      this.undo.remapId(b.client_id, b.id);
      for (const t of [this.polygonTool, this.brushTool, this.keypointTool]) t.remapId(b.client_id, b.id);
    }
    // a change made elsewhere (Python API, another view) invalidates the local history
    if (external) this.undo.clear();
    if (this.selectedId !== null && !this.visibleBoxes().some((b) => b.id === this.selectedId)) {
      this.selectedId = null;
    }
    this._changed();
    return true;
  }

  setCategories(categories) {
    this.categories = categories.map((c) => ({
      id: c.id,
      name: String(c.name),
      color: c.color,
      keypoints: Array.isArray(c.keypoints) ? c.keypoints.map(String) : [],
      skeleton: Array.isArray(c.skeleton) ? c.skeleton : [],
    }));
    if (!this.categories.some((c) => c.id === this.category)) {
      this.category = this.categories.length ? this.categories[0].id : null;
    }
    this._changed();
  }

  setThreshold(t) {
    this.threshold = Number(t) || 0;
    this._visible = null;
    if (this.selectedId !== null && !this.visibleBoxes().some((b) => b.id === this.selectedId)) {
      this.selectedId = null;
    }
    this._changed();
  }

  get busy() {
    return this.drag !== null || this.nudge !== null;
  }

  setMaskMode(mode) {
    this.maskMode = mode === "semantic" ? "semantic" : "instance";
  }

  categoryById(id) {
    return this.categories.find((c) => c.id === id) || null;
  }

  // -------------------------------------------------------------- state out
  /** Boxes shown and editable: people's boxes, and predictions at or above the threshold. */
  visibleBoxes() {
    if (!this._visible) {
      this._visible = this.boxes.filter((b) => !b.is_prediction || (b.score ?? 0) >= this.threshold);
    }
    return this._visible;
  }

  /** The bbox to draw for a box id (the live one while it is dragged or nudged). */
  liveBox(id) {
    if (this.drag && this.drag.id === id && this.drag.bbox) return this.drag.bbox;
    if (this.nudge && this.nudge.id === id) return this.nudge.bbox;
    const b = this.boxes.find((x) => x.id === id);
    return b ? b.bbox : null;
  }

  /** The annotation as drawn now: its live shape while a drag or nudge changes it. */
  liveAnnotation(id) {
    const d = this.drag;
    if (d && d.id === id && d.after) return d.after;
    const b = this.boxes.find((x) => x.id === id);
    if (!b) return null;
    if (d && d.id === id && d.bbox && (d.kind === "move" || d.kind === "resize")) {
      return d.kind === "move" ? moveAnnotation(b, d.startBox, d.bbox) : resizeAnnotation(b, d.startBox, d.bbox);
    }
    if (this.nudge && this.nudge.id === id) return moveAnnotation(b, this.nudge.startBox, this.nudge.bbox);
    return b;
  }

  /** The decoded mask of an annotation, or null (none, or still on its way). */
  maskOf(a) {
    return a && a.mask ? this.masks.get(a.mask.key) || null : null;
  }

  /** What is under image point (ix, iy): {id, part} (a handle name or "inside"), or null. */
  hitAt(ix, iy, { handles = true } = {}) {
    const tolerance = this.handlePx / this.view.scale;
    const vis = this.visibleBoxes();
    const sel = this.selected;
    if (handles && sel && resizable(sel) && vis.includes(sel)) {
      const handle = hitHandle(sel.bbox, ix, iy, tolerance);
      if (handle) return { id: sel.id, part: handle };
    }
    let best = null;
    let bestArea = Infinity;
    for (const b of vis) {
      if (!annotationContains(b, ix, iy, tolerance / 2, this.masks)) continue;
      const area = b.bbox[2] * b.bbox[3];
      // the smallest wins (nested objects stay reachable); ties go to the topmost drawn
      if (area <= bestArea) {
        best = b;
        bestArea = area;
      }
    }
    return best ? { id: best.id, part: "inside" } : null;
  }

  get selected() {
    return this.selectedId === null ? null : this.boxes.find((b) => b.id === this.selectedId) || null;
  }

  categoryName(id) {
    const c = this.categories.find((x) => x.id === id);
    return c ? c.name : String(id);
  }

  cursorAt(x, y) {
    if (this.drag && this.drag.kind === "pan") return "grabbing";
    if (this.spaceDown) return "grab";
    if (!this.image) return "default";
    const [ix, iy] = canvasToImage(this.view, x, y);
    const tool = this.toolController;
    const special = tool ? tool.cursorAt(ix, iy) : null;
    if (special) return special;
    const hit = this.hitAt(ix, iy);
    if (!hit) return "crosshair";
    if (hit.part !== "inside") return HANDLE_CURSORS[hit.part];
    const a = this.boxes.find((b) => b.id === hit.id);
    return a && a.mask ? "pointer" : "move"; // masks change by brush, not by dragging
  }

  // ------------------------------------------------------------------- view
  fit() {
    if (!this.image) return;
    this.view = fitView(this.image.width, this.image.height, this.cssW, this.cssH);
    this.fitMode = true;
    this.viewVersion++;
  }

  zoom(factor, cx = this.cssW / 2, cy = this.cssH / 2) {
    this.view = zoomAt(this.view, factor, cx, cy);
    this.fitMode = false;
    this.viewVersion++;
  }

  actualSize(cx = this.cssW / 2, cy = this.cssH / 2) {
    this.view = oneToOne(this.view, cx, cy);
    this.fitMode = false;
    this.viewVersion++;
  }

  wheel({ x, y, deltaY }) {
    this.zoom(Math.exp(-deltaY * 0.0015), x, y);
    return result(true);
  }

  // ----------------------------------------------------------------- pointer
  pointerDown({ x, y, button = 0, shift = false }) {
    const out = result(true);
    if (this.nudge) out.commands.push(...this._commitNudge());
    if (!this.image) return out;
    if (button === 1 || (button === 0 && this.spaceDown)) {
      this.spaceUsed = this.spaceDown;
      this.drag = { kind: "pan", last: [x, y] };
      return out;
    }
    if (button !== 0) return result(false);
    const [ix, iy] = canvasToImage(this.view, x, y);
    const t0 = this.now();
    const selectedBefore = this.selectedId;
    const tool = this.toolController;
    if (tool) {
      const handled = tool.pointerDown({ x, y, ix, iy, shift, t0 });
      if (handled) {
        out.commands.push(...handled.commands);
        return out;
      }
    }
    const hit = this.hitAt(ix, iy, { handles: !tool || tool.boxHandles });
    if (!hit) {
      this.selectedId = null;
      this.drag = { kind: "draw", id: null, start: [x, y], startImg: [ix, iy], bbox: null, moved: false, t0 };
    } else {
      const wasSelected = this.selectedId === hit.id;
      this.selectedId = hit.id;
      const box = this.boxes.find((b) => b.id === hit.id);
      // masks change by brush only: pressing one selects it (a second press accepts it)
      const kind = hit.part !== "inside" ? "resize" : box.mask ? "select" : "move";
      this.drag = {
        kind,
        part: hit.part,
        id: hit.id,
        start: [x, y],
        startImg: [ix, iy],
        startBox: box.bbox.slice(),
        bbox: box.bbox.slice(),
        moved: false,
        wasSelected,
        t0,
      };
    }
    // pressing on the selected box changes nothing yet: the renderer's cache stays valid
    if (this.selectedId !== selectedBefore) this._changed();
    return out;
  }

  pointerMove({ x, y }) {
    const d = this.drag;
    if (!d) return result(false);
    if (d.kind === "pan") {
      this.view = panBy(this.view, x - d.last[0], y - d.last[1]);
      d.last = [x, y];
      this.fitMode = false;
      this.viewVersion++;
      return result(true);
    }
    if (d.tool) {
      const [ix, iy] = canvasToImage(this.view, x, y);
      this.hover = [ix, iy];
      return d.tool.pointerMove(d, { x, y, ix, iy });
    }
    if (d.kind === "select") return result(false);
    if (!d.moved && Math.hypot(x - d.start[0], y - d.start[1]) < this.dragPx) return result(false);
    d.moved = true;
    const [ix, iy] = canvasToImage(this.view, x, y);
    const bounds = this._bounds();
    const dx = ix - d.startImg[0];
    const dy = iy - d.startImg[1];
    if (d.kind === "move") d.bbox = moveBox(d.startBox, dx, dy, bounds);
    else if (d.kind === "resize") d.bbox = resizeBox(d.startBox, d.part, dx, dy, bounds);
    else d.bbox = boxFromPoints(d.startImg[0], d.startImg[1], ix, iy, bounds);
    return result(true);
  }

  pointerUp({ x, y }) {
    const d = this.drag;
    if (!d) return result(false);
    this.pointerMove({ x, y });
    this.drag = null;
    const out = result(true);
    const duration = (this.now() - (d.t0 ?? this.now())) / 1000;
    if (d.tool) {
      out.commands.push(...d.tool.pointerUp(d, duration));
      this._afterBusy(out.commands.length > 0);
      this._changed();
      return out;
    }
    if (d.kind === "draw" && d.moved && d.bbox) {
      const bbox = roundBox(d.bbox);
      const onScreen = Math.min(bbox[2], bbox[3]) * this.view.scale;
      if (onScreen >= this.dragPx && Math.min(bbox[2], bbox[3]) >= this.minSize) {
        out.commands.push(...this._add(bbox, this.category, duration));
      }
    } else if ((d.kind === "move" || d.kind === "resize") && d.moved) {
      const bbox = roundBox(d.bbox);
      if (!sameBox(bbox, d.startBox)) {
        const box = this.boxes.find((b) => b.id === d.id);
        const after = d.kind === "move" ? moveAnnotation(box, d.startBox, bbox) : resizeAnnotation(box, d.startBox, bbox);
        out.commands.push(...this._update(d.id, roundedGeometry(after), duration));
      }
    } else if ((d.kind === "move" || d.kind === "select") && !d.moved && d.wasSelected) {
      const box = this.boxes.find((b) => b.id === d.id);
      if (box && box.is_prediction) out.commands.push(...this._accept([box.id], duration));
    }
    this._afterBusy(out.commands.length > 0);
    this._changed();
    return out;
  }

  /** The pointer moved with no button held: tools that follow it (brush, rubber band) redraw. */
  hoverAt({ x, y }) {
    if (!this.image) return result(false);
    const [ix, iy] = canvasToImage(this.view, x, y);
    this.hover = [ix, iy];
    const tool = this.toolController;
    return result(Boolean(tool && tool.followsPointer()));
  }

  pointerLeave() {
    this.hover = null;
    return result(true);
  }

  /** Esc during a drag: drop it, nothing is committed. */
  cancel() {
    const tool = this.toolController;
    if (!this.drag && tool && tool.cancel()) {
      this._changed();
      return result(true);
    }
    if (this.drag) {
      this.drag = null;
    } else if (this.nudge) {
      this.nudge = null;
    } else if (this.help) {
      this.help = false;
    } else {
      this.selectedId = null;
    }
    this._afterBusy(false);
    this._changed();
    return result(true);
  }

  // -------------------------------------------------------------------- keys
  keyDown({ key, shift = false, ctrl = false, meta = false, alt = false, repeat = false }) {
    const mod = ctrl || meta;
    const k = key.length === 1 ? key.toLowerCase() : key;
    if (mod) {
      if (k === "z") return this._history(shift ? "redo" : "undo");
      if (k === "y") return this._history("redo");
      if (k === "d") return this._duplicate();
      return result(false);
    }
    if (alt) return result(false);
    const tool = this.toolController;
    if (tool && !this.drag) {
      const handled = tool.keyDown({ key, k, shift, repeat });
      if (handled) return handled;
    }
    if (!repeat && TOOLS[k] && !shift) {
      this.setTool(TOOLS[k]);
      return result(true);
    }
    if (k === "[" || k === "]") {
      this.brushPx = Math.min(200, Math.max(1, this.brushPx * (k === "]" ? 1.25 : 0.8)));
      this._changed();
      return result(true);
    }
    if (key === " ") {
      if (!repeat && !this.spaceDown) {
        this.spaceDown = true;
        this.spaceUsed = false;
        this.spaceShift = shift;
      }
      return result(true);
    }
    if (ARROWS[key]) return this._nudge(ARROWS[key], shift ? 10 : 1);
    if (/^[1-9]$/.test(key)) return this._pickClass(Number(key) - 1);
    switch (k) {
      case "Escape":
        return this.cancel();
      case "Tab":
        return this._cycle(shift ? -1 : 1);
      case "Delete":
      case "Backspace":
        return this._deleteSelected();
      case "Enter":
        return this._enter();
      case "a":
        return this._acceptAll();
      case "d":
        return this._duplicate();
      case "u":
        return result(true, [{ type: "next_unlabeled" }]);
      case "PageDown":
        return result(true, [{ type: "next" }]);
      case "PageUp":
        return result(true, [{ type: "previous" }]);
      case "+":
      case "=":
        this.zoom(1.25);
        return result(true);
      case "-":
      case "_":
        this.zoom(0.8);
        return result(true);
      case "f":
        this.fit();
        return result(true);
      case "0":
        this.actualSize();
        return result(true);
      case "?":
      case "h":
        this.help = !this.help;
        this._changed();
        return result(true);
      default:
        return result(false);
    }
  }

  keyUp({ key }) {
    if (key === " ") {
      const wasDown = this.spaceDown;
      this.spaceDown = false;
      if (wasDown && !this.spaceUsed && !this.drag) {
        return result(true, [{ type: this.spaceShift ? "previous" : "next" }]);
      }
      return result(true);
    }
    if (ARROWS[key] && this.nudge) return result(true, this._commitNudge());
    return result(false);
  }

  // ------------------------------------------------------------ edit actions
  _pickClass(index) {
    const cat = this.categories[index];
    if (!cat) {
      this.message = `no class number ${index + 1}`;
      return result(true);
    }
    this.category = cat.id;
    const sel = this.selected;
    const out = result(true);
    if (sel && sel.category_id !== cat.id) {
      out.commands.push(...this._update(sel.id, { category_id: cat.id }, 0));
    }
    this._changed();
    return out;
  }

  _cycle(step) {
    const vis = this.visibleBoxes();
    if (!vis.length) return result(true);
    const i = vis.findIndex((b) => b.id === this.selectedId);
    const next = i < 0 ? (step > 0 ? 0 : vis.length - 1) : (i + step + vis.length) % vis.length;
    this.selectedId = vis[next].id;
    this._changed();
    return result(true);
  }

  _deleteSelected() {
    const sel = this.selected;
    if (!sel) return result(true);
    this.nudge = null;
    this._record([{ id: sel.id, before: sel, after: null }]);
    this.selectedId = null;
    return result(true, [{ type: "delete", id: sel.id, duration: 0 }]);
  }

  _enter() {
    const sel = this.selected;
    if (sel && sel.is_prediction) return result(true, this._accept([sel.id], 0));
    return result(true, [{ type: "submit" }]);
  }

  _acceptAll() {
    const ids = this.visibleBoxes().filter((b) => b.is_prediction).map((b) => b.id);
    if (!ids.length) return result(true);
    this._accept(ids, 0);
    return result(true, [{ type: "accept_all", threshold: this.threshold, duration: 0 }]);
  }

  _accept(ids, duration) {
    const changes = ids.map((id) => {
      const before = this.boxes.find((b) => b.id === id);
      return { id, before, after: { ...before, is_prediction: false, score: null } };
    });
    this._record(changes);
    return ids.length === 1 ? [{ type: "accept", id: ids[0], duration }] : [];
  }

  _duplicate() {
    const sel = this.selected;
    if (!sel || !this.image) return result(true);
    if (sel.mask) {
      this.message = "a mask cannot be duplicated: paint a new one (M)";
      return result(true);
    }
    const off = Math.max(4, 12 / this.view.scale);
    const bbox = roundBox(moveBox(sel.bbox, off, off, this._bounds()));
    const copy = roundedGeometry(moveAnnotation(sel, sel.bbox, bbox));
    return result(true, this._add(bbox, sel.category_id, 0, copy));
  }

  /**
   * A new annotation: recorded for undo, selected, and the "add" command for the kernel.
   * `fields` holds its geometry as the canvas keeps it (polygon, keypoints, mask ref);
   * `wire` what the command carries instead (a mask's RLE rather than its key).
   */
  _add(bbox, categoryId, duration, fields = {}, wire = null) {
    if (categoryId === null || categoryId === undefined) {
      this.message = "add a category to the project first";
      return [];
    }
    const id = `c${this.clientPrefix}-${++this._clientSeq}`;
    const box = { id, category_id: categoryId, score: null, is_prediction: false, ...fields, bbox };
    this._record([{ id, before: null, after: box }]);
    this.selectedId = id;
    const extra = { ...fields, ...(wire || {}) };
    delete extra.bbox;
    return [{ type: "add", client_id: id, category_id: categoryId, bbox, ...extra, duration }];
  }

  _update(id, fields, duration, wire = null) {
    const before = this.boxes.find((b) => b.id === id);
    if (!before) return [];
    const after = { ...before, ...fields, is_prediction: false, score: null };
    this._record([{ id, before, after }]);
    return [{ type: "update", id, ...fields, ...(wire || {}), duration }];
  }

  /**
   * Changes made by one user action ({id, before, after, command}, `select` on the one to
   * select): one undo step, and one command for the kernel (a "batch" when several).
   */
  _commit(changes, duration) {
    if (!changes.length) return [];
    this._record(changes.map(({ id, before, after }) => ({ id, before, after })));
    const chosen = changes.find((c) => c.select);
    if (chosen) this.selectedId = chosen.id;
    if (this.selectedId !== null && !this.boxes.some((b) => b.id === this.selectedId)) this.selectedId = null;
    const commands = changes.map((c) => c.command);
    if (commands.length === 1) return [{ ...commands[0], duration }];
    return [{ type: "batch", edits: commands, duration }];
  }

  /** A client id for an annotation this page creates (the kernel maps it to its own). */
  _newClientId() {
    return `c${this.clientPrefix}-${++this._clientSeq}`;
  }

  _nudge([dx, dy], step) {
    const sel = this.selected;
    if (!sel || !this.image) return result(true);
    if (sel.mask) return result(true); // masks change by brush only
    if (!this.nudge || this.nudge.id !== sel.id) {
      this.nudge = { id: sel.id, startBox: sel.bbox.slice(), bbox: sel.bbox.slice(), t0: this.now() };
    }
    this.nudge.bbox = moveBox(this.nudge.bbox, dx * step, dy * step, { ...this._bounds(), snap: 0 });
    return result(true);
  }

  _commitNudge() {
    const n = this.nudge;
    this.nudge = null;
    if (!n) return [];
    const bbox = roundBox(n.bbox);
    const box = this.boxes.find((b) => b.id === n.id);
    const commands =
      sameBox(bbox, n.startBox) || !box
        ? []
        : this._update(n.id, roundedGeometry(moveAnnotation(box, n.startBox, bbox)), (this.now() - n.t0) / 1000);
    this._afterBusy(commands.length > 0);
    this._changed();
    return commands;
  }

  _history(kind) {
    if (this.busy) return result(true);
    for (const t of [this.polygonTool, this.brushTool, this.keypointTool]) t.reset();
    const entry = kind === "undo" ? this.undo.undo() : this.undo.redo();
    if (entry) {
      this.boxes = applyChanges(this.boxes, entry, kind === "undo" ? "before" : "after");
      this._visible = null;
      if (!this.boxes.some((b) => b.id === this.selectedId)) this.selectedId = null;
      this._changed();
    }
    // the kernel undoes from its action log even when this view has no local history
    return result(true, [{ type: kind }]);
  }

  _record(changes) {
    this.undo.push(changes);
    this.boxes = applyChanges(this.boxes, changes, "after");
    this._changed();
  }

  _afterBusy(committed) {
    if (this.busy || !this.pendingAdopt) return;
    const pending = this.pendingAdopt;
    this.pendingAdopt = null;
    // a fresher echo will follow a committed edit; an older one would undo it for a moment
    if (!committed) this.adopt(pending.boxes, { external: pending.external });
  }

  _bounds() {
    return {
      width: this.image.width,
      height: this.image.height,
      minSize: this.minSize,
      snap: this.snapPx / this.view.scale,
    };
  }

  _changed() {
    this._visible = null;
    this.version++;
  }
}

function result(handled, commands = []) {
  return { handled, commands };
}

function copyBox(b) {
  return copyAnnotation(b);
}

/** The geometry fields of an edited annotation, rounded for the wire and the store. */
export function roundedGeometry(a) {
  const fields = geometryFields(a);
  fields.bbox = roundBox(fields.bbox);
  if (fields.polygon) fields.polygon = roundPolygon(fields.polygon);
  if (fields.keypoints) fields.keypoints = fields.keypoints.map((v, i) => (i % 3 === 2 ? v : Math.round(v * 100) / 100));
  return fields;
}

export { result };

