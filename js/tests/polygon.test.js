import assert from "node:assert/strict";
import { test } from "node:test";
import {
  deleteVertex,
  hitEdge,
  hitVertex,
  insertVertex,
  moveVertex,
  pointInPolygon,
  pointInRing,
  polygonBBox,
  ringArea,
  roundPolygon,
  samePolygon,
  scalePolygon,
  segmentDistance,
  translatePolygon,
} from "../src/polygon.js";

const square = [10, 10, 110, 10, 110, 110, 10, 110];
// a "C": the notch between x 40..110, y 40..80 is outside
const cShape = [10, 10, 110, 10, 110, 40, 40, 40, 40, 80, 110, 80, 110, 110, 10, 110];

test("point in a convex ring", () => {
  assert.equal(pointInRing(square, 50, 50), true);
  assert.equal(pointInRing(square, 5, 50), false);
  assert.equal(pointInRing(square, 50, 111), false);
});

test("point in a concave ring: the notch is outside", () => {
  assert.equal(pointInRing(cShape, 20, 60), true);
  assert.equal(pointInRing(cShape, 80, 60), false); // in the notch
  assert.equal(pointInRing(cShape, 80, 95), true);
  assert.equal(pointInRing(cShape, 80, 25), true);
});

test("a polygon of several parts holds a point inside any part", () => {
  const parts = [square, [200, 200, 260, 200, 230, 260]];
  assert.equal(pointInPolygon(parts, 230, 220), true);
  assert.equal(pointInPolygon(parts, 50, 50), true);
  assert.equal(pointInPolygon(parts, 150, 150), false);
});

test("bbox of rings", () => {
  assert.deepEqual(polygonBBox([square, [200, 5, 210, 5, 205, 20]]), [10, 5, 200, 105]);
  assert.deepEqual(polygonBBox([]), [0, 0, 0, 0]);
});

test("segment distance and foot point", () => {
  const s = segmentDistance(50, 20, 0, 0, 100, 0);
  assert.equal(s.d, 20);
  assert.equal(s.t, 0.5);
  assert.equal(segmentDistance(-30, 40, 0, 0, 100, 0).d, 50); // beyond the end: distance to it
});

test("hit a vertex within tolerance, the nearest one", () => {
  assert.deepEqual(hitVertex([square], 112, 108, 5), { ring: 0, index: 2 });
  assert.equal(hitVertex([square], 60, 60, 5), null);
  assert.deepEqual(hitVertex([square, [111, 111, 130, 111, 120, 130]], 111.2, 111.2, 5), { ring: 1, index: 0 });
});

test("hit an edge, including the closing one, with the foot point", () => {
  const e = hitEdge([square], 60, 12, 4);
  assert.deepEqual(e, { ring: 0, index: 0, x: 60, y: 10 });
  const closing = hitEdge([square], 8, 60, 4); // the edge from the last vertex back to the first
  assert.equal(closing.index, 3);
  assert.equal(closing.x, 10);
  assert.equal(hitEdge([square], 60, 60, 4), null);
});

test("insert a vertex on an edge, delete one, move one", () => {
  const inserted = insertVertex(square, 0, 60, 10);
  assert.deepEqual(inserted, [10, 10, 60, 10, 110, 10, 110, 110, 10, 110]);
  const closing = insertVertex(square, 3, 10, 60); // after the last vertex: on the closing edge
  assert.deepEqual(closing, [...square, 10, 60]);
  assert.deepEqual(deleteVertex(inserted, 1), square);
  assert.equal(deleteVertex([0, 0, 10, 0, 5, 5], 0), null); // a ring keeps 3 vertices
  assert.deepEqual(moveVertex(square, 1, 120, 0), [10, 10, 120, 0, 110, 110, 10, 110]);
  assert.deepEqual(square, [10, 10, 110, 10, 110, 110, 10, 110]); // inputs untouched
});

test("translate keeps the polygon inside the image; scale maps box to box", () => {
  const moved = translatePolygon([square], -50, 1000, { width: 500, height: 300 });
  assert.deepEqual(polygonBBox(moved), [0, 200, 100, 100]);
  const scaled = scalePolygon([square], [10, 10, 100, 100], [0, 0, 50, 200]);
  assert.deepEqual(scaled, [[0, 0, 50, 0, 50, 200, 0, 200]]);
});

test("area, rounding, equality", () => {
  assert.equal(ringArea(square), 10000);
  assert.equal(ringArea(cShape), 10000 - 70 * 40);
  assert.deepEqual(roundPolygon([[1.234567, 2.5]]), [[1.23, 2.5]]);
  assert.ok(samePolygon([square], [square.slice()]));
  assert.ok(!samePolygon([square], [moveVertex(square, 0, 11, 10)]));
});
