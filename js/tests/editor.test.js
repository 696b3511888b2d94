import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";
import { Editor } from "../src/editor.js";

// A 4000x3000 image in an 816x616 canvas: fit scale 0.2, offset 8 px.
let clock = 0;
function makeEditor(boxes = []) {
  const e = new Editor({ now: () => clock, clientPrefix: "t" });
  e.setCategories([
    { id: 1, name: "raccoon" },
    { id: 2, name: "<b>dog</b>" },
  ]);
  e.setCanvasSize(816, 616);
  e.setImage({ id: 7, width: 4000, height: 3000 }, boxes);
  e.setThreshold(0.5);
  return e;
}
const toCanvas = (e, ix, iy) => ({ x: ix * e.view.scale + e.view.ox, y: iy * e.view.scale + e.view.oy });
function drag(e, from, to, steps = 5) {
  const cmds = [...e.pointerDown(from).commands];
  for (let i = 1; i <= steps; i++) {
    const p = { x: from.x + ((to.x - from.x) * i) / steps, y: from.y + ((to.y - from.y) * i) / steps };
    cmds.push(...e.pointerMove(p).commands);
  }
  cmds.push(...e.pointerUp(to).commands);
  return cmds;
}
const press = (e, key, mods = {}) => [
  ...e.keyDown({ key, ...mods }).commands,
  ...e.keyUp({ key, ...mods }).commands,
];
const human = (id, bbox, category_id = 1) => ({ id, category_id, bbox, score: null, is_prediction: false });
const pred = (id, bbox, score) => ({ id, category_id: 1, bbox, score, is_prediction: true });

beforeEach(() => {
  clock = 1000;
});

describe("drawing", () => {
  test("a drag draws a box in ORIGINAL image pixels, sent once on mouse-up", () => {
    const e = makeEditor();
    assert.equal(e.view.scale, 0.2);
    const down = e.pointerDown(toCanvas(e, 100, 200));
    assert.deepEqual(down.commands, []);
    e.pointerMove(toCanvas(e, 300, 300));
    clock += 1500;
    const up = e.pointerUp(toCanvas(e, 600, 700));
    assert.equal(up.commands.length, 1);
    const [cmd] = up.commands;
    assert.equal(cmd.type, "add");
    assert.equal(cmd.category_id, 1);
    assert.deepEqual(cmd.bbox, [100, 200, 500, 500]);
    assert.equal(cmd.duration, 1.5);
    assert.equal(cmd.client_id, "ct-1");
    assert.deepEqual(e.boxes.map((b) => b.id), ["ct-1"]);
    assert.equal(e.selectedId, "ct-1");
  });

  test("moves in between send nothing", () => {
    const e = makeEditor();
    e.pointerDown({ x: 100, y: 100 });
    for (let i = 0; i < 50; i++) assert.deepEqual(e.pointerMove({ x: 100 + i, y: 100 + i }).commands, []);
  });

  test("a click or a tiny drag draws nothing", () => {
    const e = makeEditor();
    assert.deepEqual(drag(e, { x: 100, y: 100 }, { x: 101, y: 101 }), []);
    assert.equal(e.boxes.length, 0);
  });

  test("a box drawn past the border is clipped to the image", () => {
    const e = makeEditor();
    const [cmd] = drag(e, toCanvas(e, 3900, 2900), { x: 815, y: 615 });
    assert.deepEqual(cmd.bbox, [3900, 2900, 100, 100]);
  });

  test("the current class is the last digit pressed", () => {
    const e = makeEditor();
    press(e, "2");
    const [cmd] = drag(e, toCanvas(e, 100, 100), toCanvas(e, 400, 400));
    assert.equal(cmd.category_id, 2);
  });

  test("without categories nothing is added and the user is told why", () => {
    const e = makeEditor();
    e.setCategories([]);
    assert.deepEqual(drag(e, toCanvas(e, 100, 100), toCanvas(e, 400, 400)), []);
    assert.match(e.message, /category/);
  });
});

describe("selecting, moving, resizing", () => {
  test("drag inside a box moves it; commit on mouse-up only", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    const cmds = drag(e, toCanvas(e, 1200, 1200), toCanvas(e, 1300, 1100));
    assert.deepEqual(cmds, [{ type: "update", id: 5, bbox: [1100, 900, 500, 400], duration: 0 }]);
    assert.deepEqual(e.boxes[0].bbox, [1100, 900, 500, 400]);
  });

  test("while dragging, the live box moves but the committed list does not", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    const v0 = e.version;
    e.pointerDown(toCanvas(e, 1200, 1200));
    const v1 = e.version;
    assert.ok(v1 > v0); // selected
    e.pointerMove(toCanvas(e, 1300, 1300));
    assert.deepEqual(e.liveBox(5), [1100, 1100, 500, 400]);
    assert.deepEqual(e.boxes[0].bbox, [1000, 1000, 500, 400]);
    assert.equal(e.version, v1); // the renderer's cached layer stays valid during a drag
    e.pointerUp(toCanvas(e, 1300, 1300));
    const v2 = e.version;
    e.pointerDown(toCanvas(e, 1400, 1400)); // press on the box already selected
    assert.equal(e.version, v2);
  });

  test("resize by the se handle", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    e.pointerUp(e.pointerDown(toCanvas(e, 1200, 1200)) && toCanvas(e, 1200, 1200)); // select
    const cmds = drag(e, toCanvas(e, 1500, 1400), toCanvas(e, 1600, 1450));
    assert.deepEqual(cmds, [{ type: "update", id: 5, bbox: [1000, 1000, 600, 450], duration: 0 }]);
  });

  test("resize by the w handle never flips the box", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    press(e, "Tab");
    const [cmd] = drag(e, toCanvas(e, 1000, 1200), toCanvas(e, 2000, 1200));
    assert.deepEqual(cmd.bbox, [1498, 1000, 2, 400]);
  });

  test("a click on empty space deselects", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    press(e, "Tab");
    assert.equal(e.selectedId, 5);
    drag(e, { x: 5, y: 5 }, { x: 5, y: 5 });
    assert.equal(e.selectedId, null);
  });

  test("Escape during a drag drops it", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    e.pointerDown(toCanvas(e, 1200, 1200));
    e.pointerMove(toCanvas(e, 1500, 1500));
    assert.deepEqual(e.keyDown({ key: "Escape" }).commands, []);
    assert.equal(e.drag, null);
    assert.deepEqual(e.boxes[0].bbox, [1000, 1000, 500, 400]);
  });

  test("cursor shows what a press would do", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    assert.equal(e.cursorAt(5, 5), "crosshair");
    const p = toCanvas(e, 1200, 1200);
    assert.equal(e.cursorAt(p.x, p.y), "move");
    press(e, "Tab");
    const c = toCanvas(e, 1500, 1400);
    assert.equal(e.cursorAt(c.x, c.y), "nwse-resize");
  });
});

describe("keyboard edits", () => {
  test("arrows nudge by 1 px, Shift by 10; one update on key-up", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    press(e, "Tab");
    assert.deepEqual(e.keyDown({ key: "ArrowRight" }).commands, []);
    assert.deepEqual(e.keyDown({ key: "ArrowRight", repeat: true }).commands, []);
    assert.deepEqual(e.keyDown({ key: "ArrowDown", shift: true }).commands, []);
    assert.deepEqual(e.liveBox(5), [1002, 1010, 500, 400]);
    const up = e.keyUp({ key: "ArrowDown" }).commands;
    assert.deepEqual(up, [{ type: "update", id: 5, bbox: [1002, 1010, 500, 400], duration: 0 }]);
    assert.deepEqual(e.keyUp({ key: "ArrowRight" }).commands, []);
  });

  test("nudging stops at the border", () => {
    const e = makeEditor([human(5, [3, 0, 10, 10])]);
    press(e, "Tab");
    const cmds = press(e, "ArrowLeft", { shift: true });
    assert.deepEqual(cmds[0].bbox, [0, 0, 10, 10]);
  });

  test("digit relabels the selected box", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    press(e, "Tab");
    assert.deepEqual(press(e, "2"), [{ type: "update", id: 5, category_id: 2, duration: 0 }]);
    assert.equal(e.boxes[0].category_id, 2);
    assert.deepEqual(press(e, "2"), []); // same class: nothing to save
    assert.deepEqual(press(e, "9"), []);
    assert.match(e.message, /no class number 9/);
  });

  test("Tab cycles boxes, Shift+Tab backwards", () => {
    const e = makeEditor([human(1, [0, 0, 10, 10]), human(2, [20, 0, 10, 10]), human(3, [40, 0, 10, 10])]);
    const seen = [];
    for (let i = 0; i < 4; i++) {
      press(e, "Tab");
      seen.push(e.selectedId);
    }
    assert.deepEqual(seen, [1, 2, 3, 1]);
    press(e, "Tab", { shift: true });
    assert.equal(e.selectedId, 3);
  });

  test("Delete removes the selected box", () => {
    const e = makeEditor([human(1, [0, 0, 10, 10]), human(2, [20, 0, 10, 10])]);
    press(e, "Tab");
    assert.deepEqual(press(e, "Delete"), [{ type: "delete", id: 1, duration: 0 }]);
    assert.deepEqual(e.boxes.map((b) => b.id), [2]);
    assert.equal(e.selectedId, null);
    assert.deepEqual(press(e, "Delete"), []);
  });

  test("D duplicates with an offset, inside the image", () => {
    const e = makeEditor([human(1, [3950, 2950, 50, 50], 2)]);
    press(e, "Tab");
    const [cmd] = press(e, "d");
    assert.equal(cmd.type, "add");
    assert.equal(cmd.category_id, 2);
    assert.deepEqual(cmd.bbox, [3950, 2950, 50, 50]); // clamped: no room to offset
    const e2 = makeEditor([human(1, [100, 100, 50, 50])]);
    press(e2, "Tab");
    assert.deepEqual(press(e2, "d", { ctrl: true })[0].bbox, [160, 160, 50, 50]); // 12 px / 0.2
  });

  test("unknown keys are not handled (they reach the page)", () => {
    const e = makeEditor();
    assert.equal(e.keyDown({ key: "q" }).handled, false);
    assert.equal(e.keyDown({ key: "c", ctrl: true }).handled, false);
  });
});

describe("predictions", () => {
  const boxes = () => [human(1, [0, 0, 100, 100]), pred(2, [500, 500, 100, 100], 0.9), pred(3, [800, 800, 100, 100], 0.3)];

  test("the threshold hides low scores from view and from the mouse", () => {
    const e = makeEditor(boxes());
    assert.deepEqual(e.visibleBoxes().map((b) => b.id), [1, 2]);
    e.pointerDown(toCanvas(e, 850, 850));
    assert.equal(e.selectedId, null);
    e.pointerUp(toCanvas(e, 850, 850));
    e.setThreshold(0.2);
    assert.deepEqual(e.visibleBoxes().map((b) => b.id), [1, 2, 3]);
  });

  test("lowering the threshold past a selected prediction deselects it", () => {
    const e = makeEditor(boxes());
    e.setThreshold(0.2);
    press(e, "Tab", { shift: true });
    assert.equal(e.selectedId, 3);
    e.setThreshold(0.5);
    assert.equal(e.selectedId, null);
  });

  test("Enter accepts the selected prediction", () => {
    const e = makeEditor(boxes());
    press(e, "Tab");
    press(e, "Tab");
    assert.equal(e.selectedId, 2);
    assert.deepEqual(press(e, "Enter"), [{ type: "accept", id: 2, duration: 0 }]);
    assert.equal(e.boxes[1].is_prediction, false);
    assert.equal(e.boxes[1].score, null);
  });

  test("Enter with no prediction selected submits the image", () => {
    const e = makeEditor(boxes());
    assert.deepEqual(press(e, "Enter"), [{ type: "submit" }]);
  });

  test("a second click on a selected prediction accepts it; the first only selects", () => {
    const e = makeEditor(boxes());
    const p = toCanvas(e, 550, 550);
    assert.deepEqual(drag(e, p, p), []);
    assert.equal(e.selectedId, 2);
    assert.deepEqual(drag(e, p, p), [{ type: "accept", id: 2, duration: 0 }]);
  });

  test("A accepts every shown prediction, not the hidden ones", () => {
    const e = makeEditor(boxes());
    assert.deepEqual(press(e, "a"), [{ type: "accept_all", threshold: 0.5, duration: 0 }]);
    assert.deepEqual(e.boxes.map((b) => b.is_prediction), [false, false, true]);
    assert.deepEqual(press(e, "a"), []); // nothing left to accept
  });

  test("Delete rejects a prediction", () => {
    const e = makeEditor(boxes());
    press(e, "Tab");
    press(e, "Tab");
    assert.deepEqual(press(e, "Backspace"), [{ type: "delete", id: 2, duration: 0 }]);
  });

  test("editing a prediction makes it a person's box", () => {
    const e = makeEditor(boxes());
    drag(e, toCanvas(e, 550, 550), toCanvas(e, 650, 550));
    const b = e.boxes.find((x) => x.id === 2);
    assert.equal(b.is_prediction, false);
    assert.equal(b.score, null);
    assert.deepEqual(b.bbox, [600, 500, 100, 100]);
  });
});

describe("undo / redo", () => {
  test("Ctrl+Z reverts locally at once and asks the kernel to undo", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    drag(e, toCanvas(e, 1200, 1200), toCanvas(e, 1300, 1200));
    assert.deepEqual(press(e, "z", { ctrl: true }), [{ type: "undo" }]);
    assert.deepEqual(e.boxes[0].bbox, [1000, 1000, 500, 400]);
    assert.deepEqual(press(e, "z", { ctrl: true, shift: true }), [{ type: "redo" }]);
    assert.deepEqual(e.boxes[0].bbox, [1100, 1000, 500, 400]);
    assert.deepEqual(press(e, "y", { ctrl: true }), [{ type: "redo" }]); // nothing local; kernel decides
  });

  test("undo of an add removes the box; accept_all undoes as one step", () => {
    const e = makeEditor([pred(2, [500, 500, 100, 100], 0.9), pred(3, [800, 800, 100, 100], 0.8)]);
    drag(e, toCanvas(e, 100, 100), toCanvas(e, 300, 300));
    press(e, "a");
    assert.equal(e.boxes.filter((b) => b.is_prediction).length, 0);
    press(e, "z", { meta: true });
    assert.equal(e.boxes.filter((b) => b.is_prediction).length, 2);
    assert.equal(e.boxes.length, 3);
    press(e, "z", { ctrl: true });
    assert.equal(e.boxes.length, 2);
  });
});

describe("navigation, zoom, pan, help", () => {
  test("Space alone goes to the next image, on key-up", () => {
    const e = makeEditor();
    assert.deepEqual(e.keyDown({ key: " " }).commands, []);
    assert.deepEqual(e.keyDown({ key: " ", repeat: true }).commands, []);
    assert.deepEqual(e.keyUp({ key: " " }).commands, [{ type: "next" }]);
    e.keyDown({ key: " ", shift: true });
    assert.deepEqual(e.keyUp({ key: " " }).commands, [{ type: "previous" }]);
    assert.deepEqual(press(e, "u"), [{ type: "next_unlabeled" }]);
  });

  test("Space + drag pans and does not change image", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    e.keyDown({ key: " " });
    const ox = e.view.ox;
    const cmds = drag(e, toCanvas(e, 1200, 1200), { ...toCanvas(e, 1200, 1200), x: toCanvas(e, 1200, 1200).x + 40 });
    assert.deepEqual(cmds, []);
    assert.equal(e.view.ox, ox + 40);
    assert.deepEqual(e.boxes[0].bbox, [1000, 1000, 500, 400]); // the box under the pan did not move
    assert.deepEqual(e.keyUp({ key: " " }).commands, []);
  });

  test("middle button pans too", () => {
    const e = makeEditor();
    const oy = e.view.oy;
    e.pointerDown({ x: 100, y: 100, button: 1 });
    e.pointerMove({ x: 100, y: 130 });
    e.pointerUp({ x: 100, y: 130 });
    assert.equal(e.view.oy, oy + 30);
  });

  test("+ / - zoom about the centre, F fits, 0 is 1:1", () => {
    const e = makeEditor();
    const centre = [(408 - e.view.ox) / e.view.scale, (308 - e.view.oy) / e.view.scale];
    press(e, "+");
    assert.ok(Math.abs(e.view.scale - 0.25) < 1e-12);
    assert.ok(Math.abs((408 - e.view.ox) / e.view.scale - centre[0]) < 1e-9);
    press(e, "-");
    assert.ok(Math.abs(e.view.scale - 0.2) < 1e-12);
    press(e, "0");
    assert.equal(e.view.scale, 1);
    press(e, "f");
    assert.equal(e.view.scale, 0.2);
  });

  test("wheel zooms at the cursor; a drawn box after zooming is still in image pixels", () => {
    const e = makeEditor();
    e.wheel({ x: 200, y: 200, deltaY: -500 });
    assert.ok(e.view.scale > 0.2);
    const [cmd] = drag(e, toCanvas(e, 100, 100), toCanvas(e, 200, 250));
    assert.deepEqual(cmd.bbox, [100, 100, 100, 150]);
  });

  test("a resize of the canvas refits until the user zooms", () => {
    const e = makeEditor();
    e.setCanvasSize(416, 316);
    assert.equal(e.view.scale, 0.1);
    press(e, "+");
    e.setCanvasSize(816, 616);
    assert.ok(Math.abs(e.view.scale - 0.125) < 1e-12);
  });

  test("? and H toggle help; Esc closes it", () => {
    const e = makeEditor();
    press(e, "?");
    assert.equal(e.help, true);
    press(e, "Escape");
    assert.equal(e.help, false);
    press(e, "H");
    assert.equal(e.help, true);
  });
});

describe("kernel echo", () => {
  test("adopt maps client ids to the kernel's ids, keeping selection and history", () => {
    const e = makeEditor();
    const [cmd] = drag(e, toCanvas(e, 100, 100), toCanvas(e, 300, 300));
    e.visibleBoxes(); // the renderer drew in between
    e.adopt([{ ...human(41, cmd.bbox), client_id: cmd.client_id }]);
    assert.equal(e.selectedId, 41);
    assert.deepEqual(e.visibleBoxes().map((b) => b.id), [41]);
    press(e, "z", { ctrl: true });
    assert.equal(e.boxes.length, 0);
    press(e, "z", { ctrl: true, shift: true });
    assert.deepEqual(e.boxes.map((b) => b.id), [41]);
  });

  test("an echo arriving mid-drag waits for the drag to end", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    e.pointerDown(toCanvas(e, 5, 5)); // a click on nothing
    assert.equal(e.adopt([human(5, [0, 0, 10, 10])]), false);
    assert.deepEqual(e.boxes[0].bbox, [1000, 1000, 500, 400]);
    e.pointerUp(toCanvas(e, 5, 5));
    assert.deepEqual(e.boxes[0].bbox, [0, 0, 10, 10]);
  });

  test("an echo older than an edit committed at mouse-up is dropped", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    e.pointerDown(toCanvas(e, 1200, 1200));
    e.pointerMove(toCanvas(e, 1300, 1200));
    e.adopt([human(5, [1000, 1000, 500, 400])]);
    e.pointerUp(toCanvas(e, 1300, 1200));
    assert.deepEqual(e.boxes[0].bbox, [1100, 1000, 500, 400]);
  });

  test("an external change clears the local history", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    drag(e, toCanvas(e, 1200, 1200), toCanvas(e, 1300, 1200));
    e.adopt([human(5, [0, 0, 10, 10])], { external: true });
    assert.equal(e.undo.canUndo, false);
  });

  test("a new image resets selection and history and refits", () => {
    const e = makeEditor([human(5, [1000, 1000, 500, 400])]);
    press(e, "Tab");
    press(e, "+");
    e.setImage({ id: 8, width: 800, height: 600 }, []);
    assert.equal(e.selectedId, null);
    assert.equal(e.undo.canUndo, false);
    assert.equal(e.view.scale, 1);
  });
});
