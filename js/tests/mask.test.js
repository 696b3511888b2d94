import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  countsToString,
  decodeMask,
  encodeMask,
  fillPolygon,
  fromFull,
  maskArea,
  maskBBox,
  maskContains,
  maskKey,
  stampDisc,
  stampSegment,
  stringToCounts,
  subtract,
  toFull,
} from "../src/mask.js";

const fixture = JSON.parse(readFileSync(new URL("./rle_fixture.json", import.meta.url)));

// The 7x9 mask pycocotools encodes as "5160L2ON12ON12ON12ON500001" (area 22, bbox 0,1,9,6).
function smallFull() {
  const W = 9;
  const H = 7;
  const full = new Uint8Array(W * H);
  for (let y = 1; y < 4; y++) for (let x = 2; x < 6; x++) full[y * W + x] = 1;
  for (let x = 0; x < 9; x++) full[5 * W + x] = 1;
  full[6 * W + 8] = 1;
  return { full, W, H };
}

test("compressed counts match pycocotools' text both ways", () => {
  assert.deepEqual(stringToCounts(";230004"), [11, 2, 3, 2, 3, 2, 7]);
  assert.equal(countsToString([11, 2, 3, 2, 3, 2, 7]), ";230004");
  const runs = [0, 5, 123456, 3, 1, 70000, 2];
  assert.deepEqual(stringToCounts(countsToString(runs)), runs);
  assert.throws(() => stringToCounts("5\u00ff"), /bad character/);
});

test("a mask painted here encodes to pycocotools' exact RLE", () => {
  const { full, W, H } = smallFull();
  const mask = fromFull(full, W, H);
  assert.deepEqual(maskBBox(mask), [0, 1, 9, 6]);
  assert.equal(maskArea(mask), 22);
  assert.deepEqual(encodeMask(mask), { size: [7, 9], counts: "5160L2ON12ON12ON12ON500001" });
});

test("decode(pycocotools RLE) crops to the pixels and encodes back to the same text", () => {
  const { size, counts, area } = fixture.circle_and_bar;
  const mask = decodeMask({ size, counts });
  assert.equal(maskArea(mask), area);
  assert.deepEqual(maskBBox(mask), [5, 10, 385, 220]);
  assert.ok(maskContains(mask, 200, 150));
  assert.ok(!maskContains(mask, 200, 240));
  assert.deepEqual(encodeMask(mask), { size, counts });
  // uncompressed run lists decode too
  assert.equal(maskArea(decodeMask({ size, counts: stringToCounts(counts) })), area);
});

test("an RLE that does not cover the image is refused", () => {
  assert.throws(() => decodeMask({ size: [2, 2], counts: [1, 2] }), /covers 3 pixels/);
});

test("empty masks round-trip", () => {
  const empty = fromFull(new Uint8Array(12), 4, 3);
  assert.equal(empty.w, 0);
  const rle = encodeMask(empty);
  assert.deepEqual(stringToCounts(rle.counts), [12]);
  assert.equal(decodeMask(rle).w, 0);
});

test("toFull / fromFull are inverse", () => {
  const { full, W, H } = smallFull();
  assert.deepEqual(toFull(fromFull(full, W, H)), full);
});

test("a disc stamps the pixels whose centres are within the radius", () => {
  const W = 100;
  const H = 80;
  const full = new Uint8Array(W * H);
  const rect = stampDisc(full, W, H, 50, 40, 10, 1);
  const area = full.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(area - Math.PI * 100) < 12, `area ${area}`);
  assert.deepEqual(rect, [40, 30, 61, 51]);
  // clipped at the border
  stampDisc(full, W, H, 0, 0, 5, 1);
  assert.equal(full[0], 1);
});

test("a segment leaves no gap and marks what it touched; erasing clears", () => {
  const W = 200;
  const H = 50;
  const full = new Uint8Array(W * H);
  const mark = new Uint8Array(W * H);
  stampSegment(full, W, H, 10, 25, 190, 25, 3, 1, mark);
  for (let x = 10; x < 190; x++) assert.equal(full[25 * W + x], 1, `gap at x=${x}`);
  assert.deepEqual(mark, full);
  stampSegment(full, W, H, 100, 0, 100, 49, 4, 0);
  assert.equal(full[25 * W + 100], 0);
  assert.equal(full[25 * W + 50], 1);
});

test("subtract clears a stroke's pixels from a mask, and returns the same mask if none", () => {
  const { full, W, H } = smallFull();
  const mask = fromFull(full, W, H);
  const stroke = new Uint8Array(W * H);
  stroke[5 * W + 4] = 1;
  const rest = subtract(mask, stroke, [4, 5, 5, 6]);
  assert.equal(maskArea(rest), 21);
  const none = new Uint8Array(W * H);
  none[0] = 1;
  assert.equal(subtract(mask, none, [0, 0, 1, 1]), mask);
});

test("a polygon fills about the area pycocotools gives it", () => {
  const W = 80;
  const H = 64;
  const full = new Uint8Array(W * H);
  fillPolygon(full, W, H, [[10.5, 10.2, 60.3, 12.0, 55.0, 48.7, 30.0, 30.0, 12.0, 40.0]]);
  const area = full.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(area - 1256) / 1256 < 0.05, `area ${area} vs pycocotools 1256`);
});

test("mask keys are content keys, the same in the kernel", () => {
  // annowidget.widgets._masks.mask_key([7, 9], "5160L2ON12ON12ON12ON500001") gives the same
  assert.equal(maskKey([7, 9], "5160L2ON12ON12ON12ON500001"), KERNEL_KEY);
  assert.notEqual(maskKey([7, 9], "5160L2ON12ON12ON12ON500002"), KERNEL_KEY);
});

const KERNEL_KEY = "090bbc0eb0a410b0";
