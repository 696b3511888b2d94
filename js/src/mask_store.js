// The masks a page holds, by content key (see mask.js maskKey), shared by the views of one
// widget model. The kernel sends each mask once, as whichever is smaller of its RLE text and
// a PNG of its bounding box, in one binary buffer per message; this store decodes them.
// Message: {type: "masks", sizes: [[h, w], ...], masks: [entry, ...]}, see receive().

import { decodeMask } from "./mask.js";

const textDecoder = new TextDecoder();

export class MaskStore {
  constructor({ limit = 2000, decodePng = null } = {}) {
    this.limit = limit; // masks kept (least recently used out); the kernel resends on demand
    this.decodePng = decodePng; // (bytes, mime) => Promise<ImageData-like {width, height, data}>
    this.entries = new Map(); // key -> mask
    this.pending = new Map(); // key -> Promise while a PNG decodes
  }

  get(key) {
    const m = this.entries.get(key);
    if (m) {
      this.entries.delete(key);
      this.entries.set(key, m);
    }
    return m;
  }

  has(key) {
    return this.entries.has(key) || this.pending.has(key);
  }

  set(key, mask) {
    this.entries.delete(key);
    this.entries.set(key, mask);
    while (this.entries.size > this.limit) this.entries.delete(this.entries.keys().next().value);
  }

  /** Keys of `annotations`' masks this page does not hold (to ask the kernel for). */
  missing(annotations) {
    const out = [];
    for (const a of annotations) if (a.mask && !this.has(a.mask.key) && !out.includes(a.mask.key)) out.push(a.mask.key);
    return out;
  }

  /**
   * Take a "masks" message: RLE entries are decoded at once, PNG ones resolve later.
   * Returns a promise that settles when every mask of the message is decoded.
   */
  receive(msg, buffer) {
    const bytes = new Uint8Array(buffer.buffer ? buffer.buffer : buffer, buffer.byteOffset || 0, buffer.byteLength);
    const waits = [];
    let start = 0;
    // an entry: [key, size index, end] (RLE text) or [key, size index, end, x, y, w, h] (PNG)
    for (const [key, sizeIndex, end, ...box] of msg.masks || []) {
      const size = msg.sizes[sizeIndex];
      const chunk = bytes.subarray(start, end);
      start = end;
      if (!box.length) {
        this.set(key, decodeMask({ size, counts: textDecoder.decode(chunk) }));
      } else if (this.decodePng) {
        const copy = chunk.slice(); // the message buffer may be reused
        const p = this.decodePng(copy, "image/png")
          .then((img) => this.set(key, fromPixels(img, size, box)))
          .finally(() => this.pending.delete(key));
        this.pending.set(key, p);
        waits.push(p);
      }
    }
    return Promise.all(waits);
  }
}

/** A decoded PNG of a mask's box (any channel > 127 is set) -> a cropped mask. */
export function fromPixels(img, size, box) {
  const [H, W] = size;
  const [x, y, w, h] = box;
  const data = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) data[i] = img.data[4 * i] > 127 ? 1 : 0;
  return { width: W, height: H, x, y, w, h, data };
}

/** Browser PNG decoding: bytes -> ImageData, through an ImageBitmap and an offscreen canvas. */
export async function decodePngInBrowser(bytes, mime) {
  const bitmap = await createImageBitmap(new Blob([bytes], { type: mime }));
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  if (bitmap.close) bitmap.close();
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}
