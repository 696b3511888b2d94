import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  HANDLES,
  backingSize,
  boxFromPoints,
  boxToCanvas,
  canvasToImage,
  clampBox,
  clientToCanvas,
  deviceToImage,
  deviceTransform,
  fitView,
  handlePoints,
  hitHandle,
  hitTest,
  imageToCanvas,
  moveBox,
  oneToOne,
  resizeBox,
  roundBox,
  zoomAt,
} from "../src/geometry.js";

const near = (a, b, eps = 1e-9) => {
  assert.equal(a.length, b.length);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= eps, `${a} != ${b} at ${i}`));
};

const IMG = { width: 4000, height: 3000 };

describe("handles and hit testing", () => {
  test("8 handles at corners and edge midpoints", () => {
    const pts = handlePoints([10, 20, 100, 50]);
    assert.deepEqual(pts.map((p) => p.name), HANDLES);
    assert.deepEqual(pts.find((p) => p.name === "nw"), { name: "nw", x: 10, y: 20 });
    assert.deepEqual(pts.find((p) => p.name === "e"), { name: "e", x: 110, y: 45 });
    assert.deepEqual(pts.find((p) => p.name === "s"), { name: "s", x: 60, y: 70 });
  });

  test("handle hit within tolerance only", () => {
    assert.equal(hitHandle([10, 20, 100, 50], 12, 22, 3), "nw");
    assert.equal(hitHandle([10, 20, 100, 50], 14, 22, 3), null);
    assert.equal(hitHandle([10, 20, 100, 50], 111, 71, 3), "se");
  });

  const boxes = [
    { id: 1, bbox: [0, 0, 200, 200] },
    { id: 2, bbox: [50, 50, 20, 20] },
  ];

  test("smallest containing box wins, so nested boxes stay reachable", () => {
    assert.deepEqual(hitTest(boxes, 60, 60), { id: 2, part: "inside" });
    assert.deepEqual(hitTest(boxes, 150, 150), { id: 1, part: "inside" });
    assert.equal(hitTest(boxes, 300, 300), null);
  });

  test("the selected box's handles win over boxes under them", () => {
    // (50, 50) is inside box 1 and on box 2's nw corner
    assert.deepEqual(hitTest(boxes, 50, 50, { selectedId: 1, tolerance: 2 }), { id: 2, part: "inside" });
    assert.deepEqual(hitTest(boxes, 199, 100, { selectedId: 1, tolerance: 2 }), { id: 1, part: "e" });
    assert.deepEqual(hitTest(boxes, 50, 50, { selectedId: 2, tolerance: 2 }), { id: 2, part: "nw" });
    // a handle sticking out of the box is still grabbed
    assert.deepEqual(hitTest(boxes, 48.5, 60, { selectedId: 2, tolerance: 2 }), { id: 2, part: "w" });
  });
});

describe("resize", () => {
  const box = [100, 100, 200, 100];

  test("each handle moves only its edges", () => {
    assert.deepEqual(resizeBox(box, "se", 10, 20, IMG), [100, 100, 210, 120]);
    assert.deepEqual(resizeBox(box, "nw", 10, 20, IMG), [110, 120, 190, 80]);
    assert.deepEqual(resizeBox(box, "n", 10, 20, IMG), [100, 120, 200, 80]);
    assert.deepEqual(resizeBox(box, "e", 10, 20, IMG), [100, 100, 210, 100]);
    assert.deepEqual(resizeBox(box, "w", -10, 20, IMG), [90, 100, 210, 100]);
    assert.deepEqual(resizeBox(box, "sw", -10, 5, IMG), [90, 100, 210, 105]);
    assert.deepEqual(resizeBox(box, "ne", 5, -5, IMG), [100, 95, 205, 105]);
    assert.deepEqual(resizeBox(box, "s", 5, -5, IMG), [100, 100, 200, 95]);
  });

  test("never flips and keeps the minimum size", () => {
    assert.deepEqual(resizeBox(box, "e", -500, 0, { ...IMG, minSize: 4 }), [100, 100, 4, 100]);
    assert.deepEqual(resizeBox(box, "nw", 1000, 1000, { ...IMG, minSize: 4 }), [296, 196, 4, 4]);
  });

  test("stays inside the image and snaps to its border", () => {
    assert.deepEqual(resizeBox(box, "nw", -500, -500, IMG), [0, 0, 300, 200]);
    assert.deepEqual(resizeBox(box, "se", 9000, 9000, IMG), [100, 100, 3900, 2900]);
    assert.deepEqual(resizeBox(box, "w", -97, 0, { ...IMG, snap: 4 }), [0, 100, 300, 100]);
    assert.deepEqual(resizeBox(box, "w", -90, 0, { ...IMG, snap: 4 }), [10, 100, 290, 100]);
  });

  test("unknown handle is an error", () => {
    assert.throws(() => resizeBox(box, "x", 0, 0, IMG), /unknown handle/);
  });
});

describe("move, draw, clamp", () => {
  test("move keeps the whole box inside", () => {
    assert.deepEqual(moveBox([100, 100, 50, 50], 10, -5, IMG), [110, 95, 50, 50]);
    assert.deepEqual(moveBox([100, 100, 50, 50], -500, 9000, IMG), [0, 2950, 50, 50]);
    assert.deepEqual(moveBox([100, 100, 50, 50], -98, 0, { ...IMG, snap: 3 }), [0, 100, 50, 50]);
  });

  test("draw from any corner, clipped to the image", () => {
    assert.deepEqual(boxFromPoints(50, 60, 10, 20, IMG), [10, 20, 40, 40]);
    assert.deepEqual(boxFromPoints(-20, -20, 4100, 10, IMG), [0, 0, 4000, 10]);
  });

  test("clampBox pulls a box back in and grows it to the minimum", () => {
    assert.deepEqual(clampBox([3990, 10, 50, 0.5], { ...IMG, minSize: 2 }), [3950, 10, 50, 2]);
  });

  test("roundBox", () => {
    assert.deepEqual(roundBox([1.23456, 2.0049, 3.005, 4]), [1.23, 2, 3.01, 4]);
  });
});

describe("coordinate mapping under zoom, pan and devicePixelRatio", () => {
  test("image <-> canvas round-trip", () => {
    const view = { scale: 0.25, ox: 12, oy: -30 };
    near(imageToCanvas(view, 400, 300), [112, 45]);
    near(canvasToImage(view, 112, 45), [400, 300]);
    near(boxToCanvas(view, [400, 300, 40, 80]), [112, 45, 10, 20]);
  });

  test("fit centres the whole image", () => {
    const v = fitView(4000, 3000, 816, 616, 8);
    assert.equal(v.scale, 0.2);
    near(imageToCanvas(v, 0, 0), [8, 8]);
    near(imageToCanvas(v, 4000, 3000), [808, 608]);
  });

  test("zoom keeps the point under the cursor fixed", () => {
    const v = { scale: 0.2, ox: 8, oy: 8 };
    const before = canvasToImage(v, 300, 200);
    const z = zoomAt(v, 3, 300, 200);
    assert.ok(Math.abs(z.scale - 0.6) < 1e-12);
    near(canvasToImage(z, 300, 200), before);
    const one = oneToOne(z, 100, 100);
    assert.equal(one.scale, 1);
    near(canvasToImage(one, 100, 100), canvasToImage(z, 100, 100));
  });

  test("zoom is bounded", () => {
    assert.equal(zoomAt({ scale: 1, ox: 0, oy: 0 }, 1e6, 0, 0).scale, 64);
    assert.equal(zoomAt({ scale: 1, ox: 0, oy: 0 }, 1e-6, 0, 0).scale, 0.01);
  });

  for (const dpr of [1, 1.5, 2, 3]) {
    test(`device pixels at devicePixelRatio ${dpr}`, () => {
      const size = backingSize(801, 601, dpr);
      assert.equal(size.width, Math.round(801 * dpr));
      assert.equal(size.height, Math.round(601 * dpr));
      const view = { scale: 0.5, ox: 10, oy: 20 };
      // the transform maps image pixels to device pixels...
      const [a, , , d, e, f] = deviceTransform(view, dpr);
      const dev = [100 * a + e, 60 * d + f];
      near(dev, [(100 * 0.5 + 10) * dpr, (60 * 0.5 + 20) * dpr]);
      // ...and the inverse brings a device pixel back to the same image point
      near(deviceToImage(view, dpr, dev[0], dev[1]), [100, 60], 1e-9);
    });
  }

  test("client coordinates on a CSS-scaled canvas", () => {
    const rect = { left: 100, top: 50, width: 400, height: 300 }; // shown at half its CSS size
    near(clientToCanvas(300, 200, rect, 800, 600), [400, 300]);
    near(clientToCanvas(100, 50, rect, 800, 600), [0, 0]);
  });
});
