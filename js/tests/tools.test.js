import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";
import { Editor } from "../src/editor.js";
import { decodeMask, maskArea, maskBBox, maskKey } from "../src/mask.js";

// A 400x300 image in a 416x316 canvas: fit scale 1, offset 8 px (canvas = image + 8).
let clock = 0;
const PERSON = { id: 3, name: "person", keypoints: ["nose", "left_eye", "right_eye", "left_hand"], skeleton: [[1, 2], [1, 3], [1, 4]] };
function makeEditor(anns = [], { tool = "box" } = {}) {
  const e = new Editor({ now: () => clock, clientPrefix: "t" });
  e.setCategories([{ id: 1, name: "cat" }, { id: 2, name: "dog" }, PERSON]);
  e.setCanvasSize(416, 316);
  e.setImage({ id: 7, width: 400, height: 300 }, anns);
  e.setThreshold(0.5);
  press(e, { box: "b", polygon: "p", brush: "m", eraser: "e", keypoints: "k" }[tool]);
  return e;
}
const at = (e, ix, iy) => ({ x: ix * e.view.scale + e.view.ox, y: iy * e.view.scale + e.view.oy });
function click(e, ix, iy, mods = {}) {
  const p = at(e, ix, iy);
  return [...e.pointerDown({ ...p, ...mods }).commands, ...e.pointerUp(p).commands];
}
function drag(e, from, to, steps = 6) {
  const a = at(e, ...from);
  const b = at(e, ...to);
  const cmds = [...e.pointerDown(a).commands];
  for (let i = 1; i <= steps; i++) {
    cmds.push(...e.pointerMove({ x: a.x + ((b.x - a.x) * i) / steps, y: a.y + ((b.y - a.y) * i) / steps }).commands);
  }
  cmds.push(...e.pointerUp(b).commands);
  return cmds;
}
const press = (e, key, mods = {}) => [...e.keyDown({ key, ...mods }).commands, ...e.keyUp({ key, ...mods }).commands];
const poly = (id, ring, extra = {}) => {
  const xs = ring.filter((_, i) => i % 2 === 0);
  const ys = ring.filter((_, i) => i % 2 === 1);
  const bbox = [Math.min(...xs), Math.min(...ys), Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys)];
  return { id, category_id: 1, bbox, score: null, is_prediction: false, polygon: [ring], ...extra };
};
const SQUARE = [100, 100, 200, 100, 200, 200, 100, 200];

beforeEach(() => {
  clock = 1000;
});

describe("tool selector", () => {
  test("B P M E K pick the tool; the hint says what a click does", () => {
    const e = makeEditor();
    const seen = [];
    e.onToolChange = (t) => seen.push(t);
    for (const [k, tool] of [["p", "polygon"], ["m", "brush"], ["e", "eraser"], ["k", "keypoints"], ["b", "box"]]) {
      assert.equal(e.keyDown({ key: k }).handled, true);
      assert.equal(e.tool, tool);
    }
    assert.deepEqual(seen, ["polygon", "brush", "eraser", "keypoints", "box"]);
    press(e, "p");
    assert.match(e.hint(), /polygon: click/);
    assert.equal(e.setTool("lasso"), false);
  });
});

describe("polygon tool", () => {
  test("click vertices, click the first one to close: one add with the polygon in image pixels", () => {
    const e = makeEditor([], { tool: "polygon" });
    clock = 1000;
    assert.deepEqual(click(e, 50, 60), []);
    assert.deepEqual(click(e, 150.5, 60), []);
    assert.deepEqual(click(e, 150, 160.25), []);
    assert.deepEqual(click(e, 50, 160), []);
    assert.equal(e.polygonTool.draft.points.length, 8);
    assert.match(e.hint(), /4 vertices/);
    clock = 3500;
    const [cmd] = click(e, 51, 61); // within the handle tolerance of the first vertex
    assert.deepEqual(cmd, {
      type: "add",
      client_id: "ct-1",
      category_id: 1,
      bbox: [50, 60, 100.5, 100.25],
      polygon: [[50, 60, 150.5, 60, 150, 160.25, 50, 160]],
      duration: 2.5,
    });
    assert.equal(e.polygonTool.draft, null);
    assert.equal(e.selectedId, "ct-1");
    assert.deepEqual(e.boxes[0].polygon, cmd.polygon);
  });

  test("Enter closes; Backspace drops the last vertex; Esc drops the draft", () => {
    const e = makeEditor([], { tool: "polygon" });
    click(e, 10, 10);
    click(e, 90, 10);
    assert.deepEqual(press(e, "Enter"), []);
    assert.match(e.message, /3 vertices/);
    click(e, 90, 90);
    click(e, 200, 200);
    press(e, "Backspace");
    const [cmd] = press(e, "Enter");
    assert.deepEqual(cmd.polygon, [[10, 10, 90, 10, 90, 90]]);
    click(e, 300, 10);
    press(e, "Escape");
    assert.equal(e.polygonTool.draft, null);
    assert.equal(e.boxes.length, 1);
  });

  test("vertices are clipped to the image", () => {
    const e = makeEditor([], { tool: "polygon" });
    click(e, -5, -3);
    click(e, 500, 10);
    click(e, 100, 400);
    const [cmd] = press(e, "Enter");
    assert.deepEqual(cmd.polygon, [[0, 0, 400, 10, 100, 300]]);
  });

  test("drag a vertex of the selected polygon: one update with the polygon and its new box", () => {
    const e = makeEditor([poly(5, SQUARE)], { tool: "polygon" });
    click(e, 150, 150); // inside: selects it
    assert.equal(e.selectedId, 5);
    const v0 = e.version;
    const p = at(e, 200, 200);
    e.pointerDown(p);
    e.pointerMove({ x: p.x + 20, y: p.y + 30 });
    assert.deepEqual(e.liveAnnotation(5).polygon, [[100, 100, 200, 100, 220, 230, 100, 200]]);
    assert.deepEqual(e.boxes[0].polygon, [SQUARE]); // committed list unchanged mid-drag
    const [cmd] = e.pointerUp({ x: p.x + 20, y: p.y + 30 }).commands;
    assert.deepEqual(cmd, { type: "update", id: 5, bbox: [100, 100, 120, 130], polygon: [[100, 100, 200, 100, 220, 230, 100, 200]], duration: 0 });
    assert.ok(e.version > v0);
  });

  test("press on an edge inserts a vertex there (a drag places it)", () => {
    const e = makeEditor([poly(5, SQUARE)], { tool: "polygon" });
    click(e, 150, 150);
    const [cmd] = drag(e, [150, 101], [150, 80]);
    assert.deepEqual(cmd.polygon, [[100, 100, 150, 80, 200, 100, 200, 200, 100, 200]]);
    const [insertOnly] = click(e, 201, 150); // a click on an edge inserts too
    assert.equal(insertOnly.polygon[0].length, 12);
  });

  test("click a vertex, Delete removes it; a triangle keeps its 3 vertices", () => {
    const e = makeEditor([poly(5, SQUARE)], { tool: "polygon" });
    click(e, 150, 150);
    assert.deepEqual(click(e, 200, 200), []); // selects the vertex, no edit
    assert.deepEqual(e.polygonTool.selectedVertex(), { id: 5, ring: 0, index: 2 });
    const [cmd] = press(e, "Delete");
    assert.deepEqual(cmd.polygon, [[100, 100, 200, 100, 100, 200]]);
    assert.equal(e.boxes.length, 1); // the object stays
    click(e, 100, 100);
    assert.deepEqual(press(e, "Delete"), []);
    assert.match(e.message, /at least 3 vertices/);
    press(e, "Escape"); // drops the vertex selection
    const [del] = press(e, "Delete"); // now Delete removes the object
    assert.deepEqual(del, { type: "delete", id: 5, duration: 0 });
  });

  test("undo of a vertex move puts the polygon back at once", () => {
    const e = makeEditor([poly(5, SQUARE)], { tool: "polygon" });
    click(e, 150, 150);
    drag(e, [100, 100], [90, 80]);
    assert.notDeepEqual(e.boxes[0].polygon, [SQUARE]);
    assert.deepEqual(press(e, "z", { ctrl: true }), [{ type: "undo" }]);
    assert.deepEqual(e.boxes[0].polygon, [SQUARE]);
    assert.deepEqual(e.boxes[0].bbox, [100, 100, 100, 100]);
    press(e, "z", { ctrl: true, shift: true });
    assert.deepEqual(e.boxes[0].polygon[0].slice(0, 2), [90, 80]);
  });

  test("Shift+click starts a new polygon over another object", () => {
    const e = makeEditor([poly(5, SQUARE)], { tool: "polygon" });
    click(e, 120, 120, { shift: true });
    assert.ok(e.polygonTool.draft);
    assert.equal(e.selectedId, null);
  });

  test("the box tool moves a polygon with its box and scales it with a handle", () => {
    const e = makeEditor([poly(5, SQUARE)]);
    const [moved] = drag(e, [150, 150], [160, 170]);
    assert.deepEqual(moved, { type: "update", id: 5, bbox: [110, 120, 100, 100], polygon: [[110, 120, 210, 120, 210, 220, 110, 220]], duration: 0 });
    const [scaled] = drag(e, [210, 220], [310, 220]); // the se handle
    assert.deepEqual(scaled.polygon, [[110, 120, 310, 120, 310, 220, 110, 220]]);
  });

  test("a click inside a polygon selects it, outside its box does not", () => {
    const tri = [100, 100, 300, 100, 100, 250];
    const e = makeEditor([poly(5, tri)]);
    click(e, 280, 230); // inside the box, outside the triangle
    assert.equal(e.selectedId, null);
    click(e, 120, 120);
    assert.equal(e.selectedId, 5);
  });
});

describe("brush and eraser", () => {
  test("a stroke with nothing selected paints a new mask, sent as COCO RLE on mouse-up", () => {
    const e = makeEditor([], { tool: "brush" });
    e.brushPx = 5;
    const cmds = drag(e, [50, 50], [150, 50], 10);
    assert.equal(cmds.length, 1);
    const [cmd] = cmds;
    assert.equal(cmd.type, "add");
    assert.equal(cmd.category_id, 1);
    assert.deepEqual(cmd.mask.size, [300, 400]);
    const painted = decodeMask(cmd.mask);
    assert.deepEqual(cmd.bbox, maskBBox(painted));
    assert.deepEqual(cmd.bbox, [45, 45, 110, 10]);
    const area = maskArea(painted);
    assert.ok(Math.abs(area - (100 * 10 + Math.PI * 25)) < 40, `area ${area}`);
    // the canvas keeps the mask by its content key
    const ann = e.boxes[0];
    assert.equal(ann.mask.key, maskKey(cmd.mask.size, cmd.mask.counts));
    assert.equal(e.masks.get(ann.mask.key), e.maskOf(ann));
    assert.equal(e.selectedId, ann.id);
  });

  test("the next stroke paints into the selected mask; the eraser clears from it", () => {
    const e = makeEditor([], { tool: "brush" });
    e.brushPx = 5;
    drag(e, [50, 50], [150, 50]);
    const id = e.selectedId;
    const [more] = drag(e, [150, 50], [150, 150]);
    assert.equal(more.type, "update");
    assert.equal(more.id, id);
    assert.deepEqual(more.bbox, [45, 45, 110, 110]);
    press(e, "e");
    const [erased] = drag(e, [100, 40], [100, 60]);
    const m = decodeMask(erased.mask);
    assert.equal(m.data[(50 - m.y) * m.w + (100 - m.x)], 0);
    assert.equal(m.data[(50 - m.y) * m.w + (60 - m.x)], 1);
    // erasing everything deletes the object
    e.brushPx = 200;
    const [gone] = drag(e, [100, 100], [101, 101]);
    assert.deepEqual(gone, { type: "delete", id, duration: 0 });
    assert.equal(e.boxes.length, 0);
  });

  test("undo of a brush stroke restores the mask before it", () => {
    const e = makeEditor([], { tool: "brush" });
    e.brushPx = 5;
    drag(e, [50, 50], [150, 50]);
    const first = e.boxes[0].mask.key;
    drag(e, [150, 50], [150, 150]);
    assert.notEqual(e.boxes[0].mask.key, first);
    press(e, "z", { ctrl: true });
    assert.equal(e.boxes[0].mask.key, first);
    assert.deepEqual(e.boxes[0].bbox, [45, 45, 110, 10]);
  });

  test("painting a polygon turns it into a mask that keeps the polygon's pixels", () => {
    const e = makeEditor([poly(5, SQUARE)], { tool: "brush" });
    click(e, 150, 150); // nothing selected: this paints a new mask
    press(e, "z", { ctrl: true });
    e.selectedId = 5;
    e.brushPx = 3;
    const [cmd] = drag(e, [195, 150], [230, 150]);
    assert.equal(cmd.type, "update");
    assert.equal(cmd.polygon, null); // the kernel drops the polygon
    const m = decodeMask(cmd.mask);
    assert.ok(maskArea(m) >= 100 * 100);
    assert.equal(e.boxes[0].polygon, undefined);
  });

  test("the eraser with nothing selected asks for a mask", () => {
    const e = makeEditor([], { tool: "eraser" });
    assert.deepEqual(drag(e, [10, 10], [20, 20]), []);
    assert.match(e.message, /mask to erase/);
  });

  test("semantic mode: one mask per class; painting takes the pixels from the other classes", () => {
    const e = makeEditor([], { tool: "brush" });
    e.setMaskMode("semantic");
    e.brushPx = 10;
    drag(e, [50, 100], [250, 100]); // class 1
    const catId = e.boxes[0].id;
    press(e, "Escape");
    press(e, "2");
    const [batch] = drag(e, [150, 50], [150, 150]); // class 2 across it
    assert.equal(batch.type, "batch");
    assert.deepEqual(batch.edits.map((c) => c.type), ["add", "update"]);
    assert.equal(batch.edits[0].category_id, 2);
    assert.equal(batch.edits[1].id, catId);
    const cat = decodeMask(batch.edits[1].mask);
    assert.equal(cat.data[(100 - cat.y) * cat.w + (150 - cat.x)], 0); // now the dog's
    assert.equal(cat.data[(100 - cat.y) * cat.w + (60 - cat.x)], 1);
    // painting class 2 again extends the same mask, not a new one
    press(e, "Escape");
    const [again] = drag(e, [300, 200], [320, 200]);
    assert.equal(again.type, "update");
    assert.equal(e.boxes.filter((b) => b.category_id === 2).length, 1);
    // one undo step reverts the whole batch
    press(e, "z", { ctrl: true });
    press(e, "z", { ctrl: true });
    assert.equal(e.boxes.length, 1);
    assert.equal(maskArea(e.maskOf(e.boxes[0])) > 0, true);
  });
});

describe("keypoints tool", () => {
  test("clicks place the class's keypoints in order on a new annotation", () => {
    const e = makeEditor([], { tool: "keypoints" });
    press(e, "3");
    assert.match(e.hint(), /"nose" \(1\/4\) of a new person/);
    const [add] = click(e, 100, 50);
    assert.deepEqual(add, {
      type: "add",
      client_id: "ct-1",
      category_id: 3,
      bbox: [100, 50, 1, 1],
      keypoints: [100, 50, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      duration: 0,
    });
    assert.match(e.hint(), /"left_eye" \(2\/4\)/);
    const [u1] = click(e, 110, 40);
    assert.deepEqual(u1.keypoints, [100, 50, 2, 110, 40, 2, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(u1.bbox, [100, 40, 10, 10]);
    press(e, "s"); // skip right_eye
    assert.match(e.hint(), /"left_hand"/);
    const [u2] = click(e, 80, 120);
    assert.deepEqual(u2.keypoints, [100, 50, 2, 110, 40, 2, 0, 0, 0, 80, 120, 2]);
    assert.match(e.hint(), /all 4 done/);
  });

  test("a drag right after the press places the point where the drag ends", () => {
    const e = makeEditor([], { tool: "keypoints" });
    press(e, "3");
    const [add] = drag(e, [100, 50], [130, 70]);
    assert.deepEqual(add.keypoints.slice(0, 3), [130, 70, 2]);
  });

  test("drag a placed keypoint to move it; V cycles its visibility 2 -> 1 -> 0 -> 2", () => {
    const person = { id: 9, category_id: 3, bbox: [90, 30, 40, 40], score: null, is_prediction: false, keypoints: [100, 50, 2, 110, 40, 2, 0, 0, 0, 0, 0, 0] };
    const e = makeEditor([person], { tool: "keypoints" });
    click(e, 120, 60); // inside the box: selects the person (2 points still to place)
    assert.equal(e.selectedId, 9);
    const [moved] = drag(e, [110, 40], [115, 35]);
    assert.deepEqual(moved.keypoints.slice(3, 6), [115, 35, 2]);
    assert.deepEqual(moved.bbox, [90, 30, 40, 40]); // inside the drawn box: the box stays
    const [v1] = press(e, "v");
    assert.deepEqual(v1.keypoints.slice(3, 6), [115, 35, 1]);
    const [v0] = press(e, "v");
    assert.deepEqual(v0.keypoints.slice(3, 6), [0, 0, 0]); // absent: 0, 0 per COCO
    const [v2] = press(e, "v");
    assert.deepEqual(v2.keypoints.slice(3, 6), [115, 35, 2]); // back where it was
  });

  test("undo of a placement removes the point; of the first one, the annotation", () => {
    const e = makeEditor([], { tool: "keypoints" });
    press(e, "3");
    click(e, 100, 50);
    click(e, 110, 40);
    press(e, "z", { ctrl: true });
    assert.deepEqual(e.boxes[0].keypoints, [100, 50, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    press(e, "z", { ctrl: true });
    assert.equal(e.boxes.length, 0);
  });

  test("the kernel's id for a new person keeps the placement going", () => {
    const e = makeEditor([], { tool: "keypoints" });
    press(e, "3");
    click(e, 100, 50);
    const local = e.boxes[0];
    e.adopt([{ ...local, id: 41, client_id: local.id }]);
    assert.equal(e.selectedId, 41);
    const [u] = click(e, 110, 40);
    assert.equal(u.type, "update");
    assert.equal(u.id, 41);
    assert.deepEqual(u.keypoints.slice(3, 6), [110, 40, 2]);
  });

  test("a class without keypoints says so", () => {
    const e = makeEditor([], { tool: "keypoints" });
    assert.deepEqual(click(e, 10, 10), []);
    assert.match(e.message, /no keypoints/);
  });

  test("predicted keypoints show with the threshold and are accepted like boxes", () => {
    const pred = { id: 4, category_id: 3, bbox: [10, 10, 50, 50], score: 0.8, is_prediction: true, keypoints: [20, 20, 2, 30, 30, 2, 0, 0, 0, 0, 0, 0] };
    const e = makeEditor([pred]);
    e.setThreshold(0.9);
    assert.equal(e.visibleBoxes().length, 0);
    e.setThreshold(0.5);
    click(e, 40, 40);
    assert.deepEqual(press(e, "Enter"), [{ type: "accept", id: 4, duration: 0 }]);
    assert.equal(e.boxes[0].is_prediction, false);
    assert.deepEqual(e.boxes[0].keypoints, pred.keypoints);
  });
});
