// Binary masks for the brush and eraser: COCO RLE in and out, painting, no DOM.
//
// A mask here is the crop of a full-image mask to its pixels' bounding box:
//   {width, height, x, y, w, h, data: Uint8Array(w * h)}   (row-major, 0 or 1)
// so a small object on a big image costs a small array. COCO's RLE runs over the WHOLE image
// in column-major order (x outer, y inner), starting with a run of zeros; the compressed
// string is pycocotools' exact format, so a mask painted here and one encoded by pycocotools
// are the same text.

/** An empty mask for a width x height image. */
export function emptyMask(width, height) {
  return { width, height, x: 0, y: 0, w: 0, h: 0, data: new Uint8Array(0) };
}

// ------------------------------------------------------------------ RLE codec
/** Run lengths -> COCO's compressed string (pycocotools' rleToString). */
export function countsToString(counts) {
  let out = "";
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = true;
    while (more) {
      let c = x & 0x1f;
      x >>= 5; // arithmetic: negative differences keep their sign
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      out += String.fromCharCode(c + 48);
    }
  }
  return out;
}

/** COCO's compressed string -> run lengths (pycocotools' rleFrString); throws if malformed. */
export function stringToCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= text.length) throw new Error("RLE string ends inside a number");
      const c = text.charCodeAt(p) - 48;
      if (c < 0 || c > 63) throw new Error(`RLE string has a bad character at ${p}`);
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    if (x < 0) throw new Error("RLE string decodes to a negative run");
    counts.push(x);
  }
  return counts;
}

/** The mask's COCO RLE: {size: [height, width], counts: compressed string}. */
export function encodeMask(mask) {
  const { width: W, height: H, x: mx, y: my, w: mw, h: mh, data } = mask;
  const counts = [];
  let value = 0; // runs alternate, starting with zeros
  let run = 0;
  const zeros = (n) => {
    if (n <= 0) return;
    if (value === 1) {
      counts.push(run);
      value = 0;
      run = 0;
    }
    run += n;
  };
  zeros(mx * H);
  for (let cx = 0; cx < mw; cx++) {
    zeros(my);
    for (let cy = 0; cy < mh; cy++) {
      const v = data[cy * mw + cx];
      if (v !== value) {
        counts.push(run);
        value = v;
        run = 0;
      }
      run++;
    }
    zeros(H - my - mh);
  }
  zeros((W - mx - mw) * H);
  counts.push(run);
  return { size: [H, W], counts: countsToString(counts) };
}

/** COCO RLE ({size, counts: string or run list}) -> a cropped mask. */
export function decodeMask(rle) {
  const [H, W] = rle.size;
  const counts = typeof rle.counts === "string" ? stringToCounts(rle.counts) : rle.counts;
  let total = 0;
  for (const c of counts) total += c;
  if (total !== W * H) throw new Error(`RLE covers ${total} pixels, the mask ${H}x${W} has ${W * H}`);
  // pass 1: the columns and rows the ones touch
  let x0 = Infinity;
  let x1 = -1;
  let y0 = Infinity;
  let y1 = -1;
  let pos = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i];
    if (i % 2 === 1 && n > 0) {
      const c0 = Math.floor(pos / H);
      const c1 = Math.floor((pos + n - 1) / H);
      x0 = Math.min(x0, c0);
      x1 = Math.max(x1, c1);
      if (c0 === c1) {
        y0 = Math.min(y0, pos - c0 * H);
        y1 = Math.max(y1, pos + n - 1 - c1 * H);
      } else {
        y0 = 0;
        y1 = H - 1;
      }
    }
    pos += n;
  }
  if (x1 < 0) return emptyMask(W, H);
  const mw = x1 - x0 + 1;
  const mh = y1 - y0 + 1;
  const data = new Uint8Array(mw * mh);
  // pass 2: fill, one column segment at a time
  pos = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i];
    if (i % 2 === 1) {
      let p = pos;
      const end = pos + n;
      while (p < end) {
        const col = Math.floor(p / H);
        const row = p - col * H;
        const stop = Math.min(end, (col + 1) * H);
        let o = (row - y0) * mw + (col - x0);
        for (let q = p; q < stop; q++, o += mw) data[o] = 1;
        p = stop;
      }
    }
    pos += n;
  }
  return { width: W, height: H, x: x0, y: y0, w: mw, h: mh, data };
}

// -------------------------------------------------------------- keys (cache)
function fnv1a(text, seed) {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/**
 * A content key for an RLE: the same text in the kernel (annowidget.widgets._masks.mask_key),
 * so a mask this page painted is known to be held here without sending it back.
 */
export function maskKey(size, counts) {
  const text = `${size[0]}x${size[1]}:${counts}`;
  return fnv1a(text, 0x811c9dc5) + fnv1a(text, 0x01000193);
}

// ------------------------------------------------------------- measurements
export function maskArea(mask) {
  let n = 0;
  for (let i = 0; i < mask.data.length; i++) n += mask.data[i];
  return n;
}

/** COCO bbox [x, y, w, h] of the mask's pixels (pycocotools' toBbox), [0,0,0,0] if empty. */
export function maskBBox(mask) {
  return mask.w ? [mask.x, mask.y, mask.w, mask.h] : [0, 0, 0, 0];
}

/** Is image pixel (px, py) set in the mask? */
export function maskContains(mask, px, py) {
  const cx = Math.floor(px) - mask.x;
  const cy = Math.floor(py) - mask.y;
  if (cx < 0 || cy < 0 || cx >= mask.w || cy >= mask.h) return false;
  return mask.data[cy * mask.w + cx] === 1;
}

// ---------------------------------------------------- full-size working copies
/** The mask as a full-image Uint8Array (row-major): the brush paints into this. */
export function toFull(mask) {
  const full = new Uint8Array(mask.width * mask.height);
  for (let r = 0; r < mask.h; r++) {
    full.set(mask.data.subarray(r * mask.w, (r + 1) * mask.w), (mask.y + r) * mask.width + mask.x);
  }
  return full;
}

/**
 * A full-image array -> a tight cropped mask. `hint` [x0, y0, x1, y1) limits the scan to
 * where pixels may be (the old mask's box united with the stroke's).
 */
export function fromFull(full, width, height, hint = [0, 0, width, height]) {
  const [hx0, hy0, hx1, hy1] = [
    Math.max(0, hint[0]),
    Math.max(0, hint[1]),
    Math.min(width, hint[2]),
    Math.min(height, hint[3]),
  ];
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -1;
  let y1 = -1;
  for (let y = hy0; y < hy1; y++) {
    const row = y * width;
    for (let x = hx0; x < hx1; x++) {
      if (full[row + x]) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        y1 = y;
      }
    }
  }
  if (x1 < 0) return emptyMask(width, height);
  const w = x1 - x0 + 1;
  const h = y1 - y0 + 1;
  const data = new Uint8Array(w * h);
  for (let r = 0; r < h; r++) data.set(full.subarray((y0 + r) * width + x0, (y0 + r) * width + x0 + w), r * w);
  return { width, height, x: x0, y: y0, w, h, data };
}

/** Pixels of `stroke` (full-size) cleared from `mask`; the same object when none were set. */
export function subtract(mask, stroke, strokeRect) {
  const [sx0, sy0, sx1, sy1] = strokeRect;
  if (!mask.w || sx1 <= mask.x || sy1 <= mask.y || sx0 >= mask.x + mask.w || sy0 >= mask.y + mask.h) {
    return mask;
  }
  const full = toFull(mask);
  let changed = false;
  for (let y = Math.max(sy0, mask.y); y < Math.min(sy1, mask.y + mask.h); y++) {
    const row = y * mask.width;
    for (let x = Math.max(sx0, mask.x); x < Math.min(sx1, mask.x + mask.w); x++) {
      if (stroke[row + x] && full[row + x]) {
        full[row + x] = 0;
        changed = true;
      }
    }
  }
  return changed ? fromFull(full, mask.width, mask.height, [mask.x, mask.y, mask.x + mask.w, mask.y + mask.h]) : mask;
}

// ------------------------------------------------------------------ painting
/**
 * Set (value 1) or clear (0) the disc of radius `r` around (cx, cy) in a full-size array:
 * the pixels whose centres lie within r. Returns the touched rect [x0, y0, x1, y1), or null.
 */
export function stampDisc(full, width, height, cx, cy, r, value, mark = null) {
  const x0 = Math.max(0, Math.floor(cx - r));
  const y0 = Math.max(0, Math.floor(cy - r));
  const x1 = Math.min(width, Math.ceil(cx + r) + 1);
  const y1 = Math.min(height, Math.ceil(cy + r) + 1);
  if (x0 >= x1 || y0 >= y1) return null;
  const r2 = r * r;
  for (let y = y0; y < y1; y++) {
    const dy = y + 0.5 - cy;
    const row = y * width;
    for (let x = x0; x < x1; x++) {
      const dx = x + 0.5 - cx;
      if (dx * dx + dy * dy <= r2) {
        full[row + x] = value;
        if (mark) mark[row + x] = 1;
      }
    }
  }
  return [x0, y0, x1, y1];
}

/** Discs along the segment (ax, ay) -> (bx, by), close enough to leave no gap. */
export function stampSegment(full, width, height, ax, ay, bx, by, r, value, mark = null) {
  const steps = Math.max(1, Math.ceil(Math.hypot(bx - ax, by - ay) / Math.max(0.5, r / 2)));
  let rect = null;
  for (let i = 0; i <= steps; i++) {
    const t = i / steps;
    rect = unionRect(rect, stampDisc(full, width, height, ax + (bx - ax) * t, ay + (by - ay) * t, r, value, mark));
  }
  return rect;
}

export function unionRect(a, b) {
  if (!a) return b;
  if (!b) return a;
  return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])];
}

/** Rasterise polygon rings into a full-size array (pixel centres inside, even-odd per ring). */
export function fillPolygon(full, width, height, rings) {
  for (const ring of rings) {
    const n = ring.length >> 1;
    if (n < 3) continue;
    let top = Infinity;
    let bottom = -Infinity;
    for (let i = 1; i < ring.length; i += 2) {
      top = Math.min(top, ring[i]);
      bottom = Math.max(bottom, ring[i]);
    }
    const ys = Math.max(0, Math.floor(top));
    const ye = Math.min(height - 1, Math.ceil(bottom));
    const xs = [];
    for (let y = ys; y <= ye; y++) {
      const py = y + 0.5;
      xs.length = 0;
      for (let i = 0, j = n - 1; i < n; j = i++) {
        const yi = ring[2 * i + 1];
        const yj = ring[2 * j + 1];
        if (yi > py !== yj > py) {
          xs.push(ring[2 * i] + ((py - yi) * (ring[2 * j] - ring[2 * i])) / (yj - yi));
        }
      }
      xs.sort((a, b) => a - b);
      for (let k = 0; k + 1 < xs.length; k += 2) {
        const a = Math.max(0, Math.ceil(xs[k] - 0.5));
        const b = Math.min(width - 1, Math.floor(xs[k + 1] - 0.5));
        for (let x = a; x <= b; x++) full[y * width + x] = 1;
      }
    }
  }
}
