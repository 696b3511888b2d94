import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeMask, fromFull, maskArea } from "../src/mask.js";
import { MaskStore, fromPixels } from "../src/mask_store.js";

function square(W, H, x0, y0, s) {
  const full = new Uint8Array(W * H);
  for (let y = y0; y < y0 + s; y++) for (let x = x0; x < x0 + s; x++) full[y * W + x] = 1;
  return fromFull(full, W, H);
}

test("a masks message: RLE entries decode at once, PNG ones when their pixels arrive", async () => {
  const rle = encodeMask(square(40, 30, 5, 6, 4));
  const text = new TextEncoder().encode(rle.counts);
  const png = new Uint8Array([1, 2, 3]); // stands for the PNG bytes of a 2x2 box at (10, 20)
  const buffer = new Uint8Array([...text, ...png]);
  const decoded = [];
  const store = new MaskStore({
    decodePng: async (bytes) => {
      decoded.push(Array.from(bytes));
      return { width: 2, height: 2, data: new Uint8ClampedArray([255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 255]) };
    },
  });
  const msg = {
    type: "masks",
    sizes: [[30, 40]],
    masks: [
      ["k1", 0, text.length],
      ["k2", 0, text.length + 3, 10, 20, 2, 2],
    ],
  };
  const done = store.receive(msg, buffer.buffer);
  assert.equal(maskArea(store.get("k1")), 16);
  assert.equal(store.get("k2"), undefined);
  assert.ok(store.has("k2")); // pending: not asked for again
  await done;
  assert.deepEqual(decoded, [[1, 2, 3]]);
  const m = store.get("k2");
  assert.deepEqual([m.x, m.y, m.w, m.h, ...m.data], [10, 20, 2, 2, 1, 0, 0, 1]);
  assert.deepEqual(store.missing([{ mask: { key: "k1" } }, { mask: { key: "k3" } }, { bbox: [] }]), ["k3"]);
});

test("least recently used masks go first", () => {
  const store = new MaskStore({ limit: 2 });
  const m = square(4, 4, 0, 0, 1);
  store.set("a", m);
  store.set("b", m);
  store.get("a");
  store.set("c", m);
  assert.deepEqual([store.has("a"), store.has("b"), store.has("c")], [true, false, true]);
});

test("fromPixels reads any bright pixel as set", () => {
  const img = { data: new Uint8ClampedArray([200, 200, 200, 255, 10, 10, 10, 255]) };
  assert.deepEqual(Array.from(fromPixels(img, [5, 5], [1, 1, 2, 1]).data), [1, 0]);
});
