import assert from "node:assert/strict";
import { test } from "node:test";
import { Editor } from "../src/editor.js";
import { encodeMask, fromFull, maskKey } from "../src/mask.js";
import { Renderer } from "../src/render.js";
import { MaskPainter, fillCanvas, rgb } from "../src/render_shapes.js";

// A 2D context that records calls; createImageData gives real pixel arrays.
function fakeCanvas(w = 300, h = 150) {
  const calls = [];
  const images = [];
  const ctx = new Proxy(
    {
      calls,
      images,
      measureText: (t) => ({ width: t.length * 7 }),
      createImageData: (iw, ih) => ({ width: iw, height: ih, data: new Uint8ClampedArray(iw * ih * 4) }),
      putImageData: (img, x, y) => images.push([img, x, y]),
    },
    {
      get(target, prop) {
        if (prop in target) return target[prop];
        return (...args) => calls.push([prop, ...args]);
      },
      set(target, prop, value) {
        calls.push([`=${String(prop)}`, value]);
        return true;
      },
    },
  );
  return { width: w, height: h, style: {}, calls, images, getContext: () => ctx };
}

function setup(anns, { tool = "box" } = {}) {
  const canvas = fakeCanvas();
  const frames = [];
  const layers = [];
  const renderer = new Renderer(canvas, {
    dpr: () => 1,
    raf: (fn) => frames.push(fn),
    now: () => 0,
    createLayer: (w, h) => {
      const layer = fakeCanvas(w, h);
      layers.push(layer);
      return layer;
    },
  });
  const editor = new Editor({ now: () => 0 });
  editor.setCategories([{ id: 1, name: "cat", color: "#ff0000" }, { id: 2, name: "person", keypoints: ["a", "b"], skeleton: [[1, 2]] }]);
  renderer.editor = editor;
  renderer.resize(416, 316);
  editor.setCanvasSize(416, 316);
  editor.setImage({ id: 1, width: 400, height: 300 }, anns);
  editor.setTool(tool);
  const flush = () => frames.splice(0).forEach((fn) => fn());
  return { canvas, renderer, editor, layers, flush };
}

function ring(cx, cy, r, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(cx + r * Math.cos((2 * Math.PI * i) / n), cy + r * Math.sin((2 * Math.PI * i) / n));
  return out;
}

test("rgb parses the palette's colours", () => {
  assert.deepEqual(rgb("#1982c4"), [25, 130, 196]);
});

test("a mask becomes a coloured, translucent canvas once, then is reused", () => {
  const full = new Uint8Array(20 * 10);
  full[3 * 20 + 4] = 1;
  full[5 * 20 + 6] = 1;
  const mask = fromFull(full, 20, 10);
  const made = [];
  const painter = new MaskPainter((w, h) => {
    const c = fakeCanvas(w, h);
    made.push(c);
    return c;
  });
  const c = painter.canvasFor("k", mask, "#ff0000", 0.5);
  assert.equal(painter.canvasFor("k", mask, "#ff0000", 0.5), c);
  assert.equal(made.length, 1);
  assert.equal([c.width, c.height].join(), "3,3");
  const [[img]] = c.images;
  const px = (x, y) => Array.from(img.data.slice(4 * (y * 3 + x), 4 * (y * 3 + x) + 4));
  assert.deepEqual(px(0, 0), [255, 0, 0, 128]);
  assert.deepEqual(px(1, 1), [0, 0, 0, 0]);
  assert.deepEqual(px(2, 2), [255, 0, 0, 128]);
});

test("fillCanvas copies a rect of a full-size array to the same place", () => {
  const c = fakeCanvas(10, 10);
  const full = new Uint8Array(100).fill(1);
  fillCanvas(c, full, 10, [2, 3, 5, 4], "#00ff00", 1);
  const [[img, x, y]] = c.images;
  assert.deepEqual([img.width, img.height, x, y], [3, 1, 2, 3]);
});

test("polygons, masks and keypoints are drawn in the cached layer", () => {
  const full = new Uint8Array(400 * 300);
  for (let y = 10; y < 20; y++) for (let x = 10; x < 30; x++) full[y * 400 + x] = 1;
  const mask = fromFull(full, 400, 300);
  const rle = encodeMask(mask);
  const key = maskKey(rle.size, rle.counts);
  const anns = [
    { id: 1, category_id: 1, bbox: [100, 100, 50, 50], polygon: [[100, 100, 150, 100, 150, 150]] },
    { id: 2, category_id: 1, bbox: [10, 10, 20, 10], mask: { key, size: rle.size } },
    { id: 3, category_id: 2, bbox: [200, 200, 20, 20], keypoints: [200, 200, 2, 220, 220, 1] },
  ];
  const { editor, layers, flush } = setup(anns);
  editor.masks.set(key, mask);
  flush();
  const calls = layers[0].calls.map((c) => c[0]);
  assert.ok(calls.includes("fill")); // the polygon's fill
  assert.ok(calls.filter((c) => c === "arc").length >= 2); // two keypoints
  assert.ok(layers[0].calls.some((c) => c[0] === "drawImage" && c[2] === 10 && c[3] === 10)); // mask at its box
});

test("dragging a vertex of one polygon among 200 redraws one polygon, not the layer", () => {
  const anns = [];
  for (let i = 0; i < 200; i++) {
    anns.push({ id: i + 1, category_id: 1, bbox: [0, 0, 1, 1], polygon: [ring(20 + (i % 20) * 19, 20 + Math.floor(i / 20) * 28, 8, 100)] });
  }
  for (const a of anns) {
    const xs = a.polygon[0].filter((_, k) => k % 2 === 0);
    const ys = a.polygon[0].filter((_, k) => k % 2 === 1);
    a.bbox = [Math.min(...xs), Math.min(...ys), Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys)];
  }
  const { canvas, editor, layers, flush, renderer } = setup(anns, { tool: "polygon" });
  const target = anns[0].polygon[0];
  const at = (x, y) => ({ x: x * editor.view.scale + editor.view.ox, y: y * editor.view.scale + editor.view.oy });
  editor.pointerUp(editor.pointerDown(at(20, 20)) && at(20, 20)); // select polygon 1
  renderer.invalidate();
  flush();
  const layerCalls = layers[0].calls.length;
  const p = at(target[0], target[1]);
  editor.pointerDown(p);
  for (let i = 1; i <= 5; i++) {
    editor.pointerMove({ x: p.x + i * 2, y: p.y + i });
    renderer.invalidate();
    canvas.calls.length = 0;
    flush();
    const lineTos = canvas.calls.filter((c) => c[0] === "lineTo").length;
    assert.ok(lineTos <= 110, `${lineTos} lineTo in a frame: only the dragged polygon`);
  }
  assert.equal(layers[0].calls.length, layerCalls); // the cached layer was not rebuilt
  const [cmd] = editor.pointerUp({ x: p.x + 10, y: p.y + 5 }).commands;
  assert.equal(cmd.type, "update");
  assert.equal(cmd.polygon[0].length, 200);
});

test("a brush stroke shows on the image-sized paint layer", () => {
  const { editor, renderer, layers, flush } = setup([], { tool: "brush" });
  const at = (x, y) => ({ x: x * editor.view.scale + editor.view.ox, y: y * editor.view.scale + editor.view.oy });
  editor.pointerDown(at(50, 50));
  editor.pointerMove(at(60, 50));
  renderer.invalidate();
  flush();
  const paint = layers.find((l) => l.width === 400 && l.height === 300 && l.images.length);
  assert.ok(paint, "an image-sized layer received the stroke's pixels");
  editor.pointerUp(at(60, 50));
});
