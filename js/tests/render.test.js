import assert from "node:assert/strict";
import { test } from "node:test";
import { Editor } from "../src/editor.js";
import { Renderer, labelText, quantile } from "../src/render.js";

// A 2D context that records every call: enough to check what is drawn, and how often.
function fakeCanvas() {
  const calls = [];
  const ctx = new Proxy(
    { calls, measureText: (t) => ({ width: t.length * 7 }) },
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
  return { width: 300, height: 150, style: {}, calls, getContext: () => ctx };
}

function setup({ dpr = 2, boxes = [] } = {}) {
  const canvas = fakeCanvas();
  const frames = [];
  const layers = [];
  const renderer = new Renderer(canvas, {
    dpr: () => dpr,
    raf: (fn) => frames.push(fn),
    now: () => 0,
    createLayer: (w, h) => {
      const layer = fakeCanvas();
      layer.width = w;
      layer.height = h;
      layers.push(layer);
      return layer;
    },
  });
  const editor = new Editor({ now: () => 0 });
  editor.setCategories([{ id: 1, name: "<img src=x onerror=alert(1)>" }]);
  renderer.editor = editor;
  renderer.resize(400, 300);
  editor.setCanvasSize(400, 300);
  editor.setImage({ id: 1, width: 4000, height: 3000 }, boxes);
  const flush = () => {
    const pending = frames.splice(0);
    for (const fn of pending) fn();
    return pending.length;
  };
  return { canvas, renderer, editor, frames, layers, flush };
}

const box = (id, x) => ({ id, category_id: 1, bbox: [x, 100, 200, 200], score: null, is_prediction: false });

test("the backing store is sized by devicePixelRatio, the CSS size is not", () => {
  const { canvas } = setup({ dpr: 2 });
  assert.equal(canvas.width, 800);
  assert.equal(canvas.height, 600);
  assert.equal(canvas.style.width, "400px");
  assert.equal(canvas.style.height, "300px");
  const { canvas: c3 } = setup({ dpr: 1.5 });
  assert.equal(c3.width, 600);
});

test("draws only on animation frames, once however many changes came in", () => {
  const { renderer, flush } = setup();
  flush();
  const before = renderer.frames;
  for (let i = 0; i < 10; i++) renderer.invalidate();
  assert.equal(flush(), 1);
  assert.equal(renderer.frames, before + 1);
  assert.equal(flush(), 0); // nothing changed: no frame
});

test("class names are drawn as canvas text (never HTML) and predictions show their score", () => {
  const big = { ...box(1, 100), bbox: [100, 100, 2000, 1000] };
  const { layers, flush, editor } = setup({ boxes: [big] });
  flush();
  const texts = layers[0].calls.filter((c) => c[0] === "fillText").map((c) => c[1]);
  assert.ok(texts.includes("<img src=x onerror=alert(1)>"));
  assert.equal(labelText("cat", { is_prediction: true, score: 0.876 }), "cat 0.88");
  assert.equal(labelText("cat", { is_prediction: false, score: null }), "cat");
  assert.ok(editor);
});

test("predictions are dashed", () => {
  const { layers, flush } = setup({
    boxes: [{ id: 2, category_id: 1, bbox: [0, 0, 500, 500], score: 0.9, is_prediction: true }],
  });
  flush();
  const dashes = layers[0].calls.filter((c) => c[0] === "setLineDash").map((c) => c[1]);
  assert.ok(dashes.some((d) => d.length === 2 && d[0] > 0));
});

test("a drag redraws from the cached layer: 1,000 boxes are not re-stroked per frame", () => {
  const boxes = Array.from({ length: 1000 }, (_, i) => box(i + 1, (i % 50) * 70));
  const { renderer, editor, layers, canvas, flush } = setup({ boxes });
  editor.setImage({ id: 1, width: 4000, height: 3000 }, boxes);
  flush();
  const p = [(110 * editor.view.scale) + editor.view.ox, 150 * editor.view.scale + editor.view.oy];
  editor.pointerDown({ x: p[0], y: p[1] });
  renderer.invalidate();
  flush(); // selection changed: layer rebuilt once
  const layerCalls = layers.at(-1).calls.length;
  for (let i = 1; i <= 20; i++) {
    editor.pointerMove({ x: p[0] + i * 3, y: p[1] });
    renderer.invalidate();
    flush();
  }
  assert.equal(layers.at(-1).calls.length, layerCalls, "layer redrawn during the drag");
  const rects = canvas.calls.filter((c) => c[0] === "rect").length;
  assert.equal(rects, 0, "main canvas should only blit the layer and draw the dragged box");
  assert.ok(renderer.frameTimes.length >= 20);
});

test("quantile", () => {
  assert.equal(quantile([5, 1, 3, 2, 4], 0.5), 3);
  assert.equal(quantile([5, 1, 3, 2, 4], 0.95), 5);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

test("predictions get a cased dash whose opacity follows the score", async () => {
  const { predictionAlpha } = await import("../src/render.js");
  assert.equal(predictionAlpha(1), 1);
  assert.equal(predictionAlpha(0), 0.36);
  assert.ok(predictionAlpha(0.9) > predictionAlpha(0.3));
  assert.equal(predictionAlpha(null), 0.36);
});
