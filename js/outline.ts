// A segmentation's mask outline: the contour of the pixels predicted as the explained class,
// at the canvas resolution, drawn over the overlay (white inside, a dark 1-px halo outside).
import type { Analysis } from "./protocol";

/** Canvas pixel indices (y * W + x) on the contour: `inner` are of the class and have a
 * 4-neighbour that is not, `outer` are not of it and have a 4-neighbour that is. */
export interface Outline {
  inner: Uint32Array;
  outer: Uint32Array;
}

/** The outline of class `cls` in `pixels` (h x w classes, row-major) scaled nearest-neighbour
 * to H x W (source row floor(y * h / H), as torch's "nearest"). Neighbours outside the canvas
 * do not count: a region touching the border is open there. */
export function maskOutline(
  pixels: ArrayLike<number>,
  h: number,
  w: number,
  cls: number,
  H: number,
  W: number,
): Outline {
  const sx = new Uint32Array(W);
  for (let x = 0; x < W; x++) sx[x] = Math.min(w - 1, Math.floor((x * w) / W));
  const mask = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) {
    const row = Math.min(h - 1, Math.floor((y * h) / H)) * w;
    const o = y * W;
    for (let x = 0; x < W; x++) mask[o + x] = pixels[row + sx[x]] === cls ? 1 : 0;
  }
  const inner: number[] = [];
  const outer: number[] = [];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = y * W + x;
      const v = mask[p];
      const differs =
        (x > 0 && mask[p - 1] !== v) ||
        (x < W - 1 && mask[p + 1] !== v) ||
        (y > 0 && mask[p - W] !== v) ||
        (y < H - 1 && mask[p + W] !== v);
      if (differs) (v ? inner : outer).push(p);
    }
  }
  return { inner: Uint32Array.from(inner), outer: Uint32Array.from(outer) };
}

const cache = new WeakMap<Analysis, Map<string, Outline>>();

/** The outline of an analysis's explained class at H x W (null: not a segmentation), computed
 * once per analysis and canvas size. */
export function outlineOf(a: Analysis, H: number, W: number): Outline | null {
  const seg = a.meta.segmentation;
  if (!seg || !a.pixels) return null;
  let per = cache.get(a);
  if (!per) {
    per = new Map();
    cache.set(a, per);
  }
  const key = `${seg.cls}@${W}x${H}`;
  let o = per.get(key);
  if (!o) {
    o = maskOutline(a.pixels, seg.h, seg.w, seg.cls, H, W);
    per.set(key, o);
  }
  return o;
}

/** Paint an outline into RGBA pixels: the inner contour white, the outer halo black. */
export function paintOutline(out: Uint8ClampedArray, o: Outline): void {
  paint(out, o.inner, 255);
  paint(out, o.outer, 0);
}

/** Set pixels (indices into an RGBA buffer) to one opaque grey level. */
function paint(out: Uint8ClampedArray, pixels: ArrayLike<number>, v: number): void {
  for (let i = 0; i < pixels.length; i++) {
    const q = pixels[i] * 4;
    out[q] = v;
    out[q + 1] = v;
    out[q + 2] = v;
    out[q + 3] = 255;
  }
}
