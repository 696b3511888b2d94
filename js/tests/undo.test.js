import assert from "node:assert/strict";
import { test } from "node:test";
import { UndoStack, applyChanges } from "../src/undo.js";

const box = (id, x) => ({ id, category_id: 1, bbox: [x, 0, 10, 10], score: null, is_prediction: false });

test("undo and redo replay before/after", () => {
  const s = new UndoStack();
  let boxes = [box(1, 0)];
  const edit = [{ id: 1, before: box(1, 0), after: box(1, 5) }];
  s.push(edit);
  boxes = applyChanges(boxes, edit, "after");
  assert.equal(boxes[0].bbox[0], 5);
  const u = s.undo();
  boxes = applyChanges(boxes, u, "before");
  assert.equal(boxes[0].bbox[0], 0);
  assert.ok(s.canRedo && !s.canUndo);
  boxes = applyChanges(boxes, s.redo(), "after");
  assert.equal(boxes[0].bbox[0], 5);
  assert.equal(s.redo(), null);
});

test("add and delete are null sides; a new edit drops the redo branch", () => {
  const s = new UndoStack();
  s.push([{ id: 2, before: null, after: box(2, 1) }]);
  let boxes = applyChanges([], s.done[0], "after");
  assert.deepEqual(boxes.map((b) => b.id), [2]);
  boxes = applyChanges(boxes, s.undo(), "before");
  assert.deepEqual(boxes, []);
  s.push([{ id: 3, before: box(3, 0), after: null }]);
  assert.equal(s.canRedo, false);
});

test("entries are copies: later mutation of a box does not rewrite history", () => {
  const s = new UndoStack();
  const b = box(1, 0);
  s.push([{ id: 1, before: b, after: box(1, 3) }]);
  b.bbox[0] = 99;
  assert.equal(s.undo()[0].before.bbox[0], 0);
});

test("remapId follows a client id to the kernel's id", () => {
  const s = new UndoStack();
  s.push([{ id: "c-1", before: null, after: { ...box(1, 0), id: "c-1" } }]);
  s.push([{ id: "c-1", before: { ...box(1, 0), id: "c-1" }, after: { ...box(1, 4), id: "c-1" } }]);
  s.remapId("c-1", 17);
  const entry = s.undo();
  assert.equal(entry[0].id, 17);
  assert.equal(entry[0].before.id, 17);
  assert.equal(entry[0].after.id, 17);
});

test("the stack is bounded", () => {
  const s = new UndoStack(3);
  for (let i = 0; i < 5; i++) s.push([{ id: i, before: null, after: box(i, i) }]);
  assert.equal(s.done.length, 3);
  assert.equal(s.done[0][0].id, 2);
});

test("an empty edit is not recorded", () => {
  const s = new UndoStack();
  s.push([]);
  assert.equal(s.canUndo, false);
});
