import assert from "node:assert/strict";
import { test } from "node:test";
import {
  boxAround,
  cycleVisibility,
  emptyKeypoints,
  hitKeypoint,
  keypointsBBox,
  nextToPlace,
  setKeypoint,
  skeletonSegments,
  translateKeypoints,
} from "../src/keypoints.js";

test("V cycles visible -> occluded -> absent -> visible (COCO v = 2, 1, 0)", () => {
  assert.equal(cycleVisibility(2), 1);
  assert.equal(cycleVisibility(1), 0);
  assert.equal(cycleVisibility(0), 2);
});

test("placement follows the names' order; a skipped point stays behind", () => {
  let kps = emptyKeypoints(4);
  assert.equal(nextToPlace(kps), 0);
  kps = setKeypoint(kps, 0, 10, 20);
  assert.equal(nextToPlace(kps), 1);
  assert.equal(nextToPlace(kps, 2), 2); // 1 was skipped: placing resumes at 2
  kps = setKeypoint(kps, 2, 30, 40);
  kps = setKeypoint(kps, 3, 50, 60, 1);
  assert.equal(nextToPlace(kps, 3), -1);
  assert.equal(nextToPlace(kps, 0), 1); // from the start, the skipped one is next
  assert.deepEqual(kps, [10, 20, 2, 0, 0, 0, 30, 40, 2, 50, 60, 1]);
});

test("an absent point is stored at 0, 0 as COCO says", () => {
  assert.deepEqual(setKeypoint([5, 6, 2], 0, 5, 6, 0), [0, 0, 0]);
});

test("hit testing sees labelled points only", () => {
  const kps = [10, 10, 2, 0, 0, 0, 12, 10, 1];
  assert.equal(hitKeypoint(kps, 11.5, 10, 3), 2);
  assert.equal(hitKeypoint(kps, 0, 0, 3), -1);
  assert.equal(hitKeypoint(kps, 50, 50, 3), -1);
});

test("the box grows around the labelled points and keeps a drawn box", () => {
  const kps = [10, 10, 2, 0, 0, 0, 40, 30, 1];
  assert.deepEqual(keypointsBBox(kps), [10, 10, 30, 20]);
  const bounds = { width: 100, height: 100, minSize: 1 };
  assert.deepEqual(boxAround(null, kps, bounds), [10, 10, 30, 20]);
  assert.deepEqual(boxAround([0, 0, 20, 20], kps, bounds), [0, 0, 40, 30]);
  assert.deepEqual(boxAround(null, [99.5, 50, 2], bounds), [99, 50, 1, 1]); // one point: 1 px, inside
});

test("skeleton pairs are 1-based; a segment shows when both ends are labelled", () => {
  const kps = [0, 0, 2, 5, 5, 1, 0, 0, 0];
  assert.deepEqual(skeletonSegments(kps, [[1, 2], [2, 3], [3, 1], [9, 1]]), [[0, 1]]);
});

test("moving the points leaves absent ones at 0, 0", () => {
  assert.deepEqual(translateKeypoints([10, 20, 2, 0, 0, 0, 5, 5, 1], 3, -4), [13, 16, 2, 0, 0, 0, 8, 1, 1]);
});
