// Drawing an overlay: input pixels + bilinear-upsampled heat coloured through a LUT.
import { lut } from "./colormap";
import { outlineOf, paintOutline } from "./outline";
import { bilinear } from "./upsample";
import type { Analysis, DepthMap } from "./protocol";
import { mapAt } from "./protocol";
import { type Range, rangeOfMap, remap, remapTable } from "./scale";

/**
 * out = rint((1 - opacity) * base + opacity * lut[round(heat)]) per RGB channel, alpha 255
 * (rint: the clamped array's round-half-to-even, like numpy's np.rint on the Python side).
 * base: RGBA (W*H*4); heat: values in [0, 255] (W*H); out: RGBA.
 */
export function composite(
  base: Uint8ClampedArray,
  heat: Float32Array,
  table: Uint8Array,
  opacity: number,
  out: Uint8ClampedArray,
): void {
  const a = Math.max(0, Math.min(1, opacity));
  const b = 1 - a;
  const n = heat.length;
  for (let p = 0, q = 0; p < n; p++, q += 4) {
    let v = heat[p];
    v = v < 0 ? 0 : v > 255 ? 255 : v;
    const i = ((v + 0.5) | 0) * 3;
    out[q] = b * base[q] + a * table[i];
    out[q + 1] = b * base[q + 1] + a * table[i + 1];
    out[q + 2] = b * base[q + 2] + a * table[i + 2];
    out[q + 3] = 255;
  }
}

/** Display size: an integer multiple of the input size near `target` px on the long side. */
export function displaySize(h: number, w: number, target: number): [number, number] {
  const scale = Math.max(1, Math.round(target / Math.max(h, w)));
  if (Math.max(h, w) * scale > target * 1.35 && scale > 1) return [h * (scale - 1), w * (scale - 1)];
  return [h * scale, w * scale];
}

/** Thumbnail size: the input scaled to `target` px on its long side (down as well as up, at
 * `dpr` device pixels per CSS pixel); CSS shows it at `target`. */
export function thumbSize(h: number, w: number, target: number, dpr = 1): [number, number] {
  const s = (target * dpr) / Math.max(h, w);
  return [Math.max(1, Math.round(h * s)), Math.max(1, Math.round(w * s))];
}

const bitmapCache = new Map<string, Promise<ImageBitmap | HTMLImageElement>>();

/** Decode PNG bytes once per cache key. */
export function decodeImage(cacheKey: string, png: Uint8Array): Promise<ImageBitmap | HTMLImageElement> {
  let p = bitmapCache.get(cacheKey);
  if (!p) {
    const blob = new Blob([png as BlobPart], { type: "image/png" });
    if (typeof createImageBitmap === "function") {
      p = createImageBitmap(blob);
    } else {
      p = new Promise((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve(img);
        img.onerror = reject;
        img.src = URL.createObjectURL(blob);
      });
    }
    bitmapCache.set(cacheKey, p);
    if (bitmapCache.size > 256) bitmapCache.delete(bitmapCache.keys().next().value as string);
  }
  return p;
}

/** RGBA pixels of an image drawn at H x W (pixel-crisp when enlarged). */
export function pixelsOf(img: ImageBitmap | HTMLImageElement, H: number, W: number): Uint8ClampedArray {
  const c = document.createElement("canvas");
  c.width = W;
  c.height = H;
  const ctx = c.getContext("2d", { willReadFrequently: true })!;
  ctx.imageSmoothingEnabled = !(W >= (img as ImageBitmap).width && H >= (img as ImageBitmap).height);
  ctx.drawImage(img, 0, 0, W, H);
  return ctx.getImageData(0, 0, W, H).data;
}

/** Decoded input pixels per image key and display size, shared by the canvases of a panel. */
export class BaseCache {
  private pixels = new Map<string, Uint8ClampedArray>();
  private decoding = new Set<string>();

  constructor(private cap = 64) {}

  /** Give `oc` the input `ik` (PNG bytes `png`, when the page has them) at H x W. False while
   * the pixels are not decoded yet: the decoding starts and `ready` runs when it is done. */
  apply(oc: OverlayCanvas, ik: string, png: Uint8Array | undefined, H: number, W: number, ready: () => void): boolean {
    const pk = `${ik}@${W}x${H}`;
    if (oc.hasBase(pk)) return true;
    const px = this.pixels.get(pk);
    if (px) {
      oc.setBase(pk, px, H, W);
      return true;
    }
    if (png && !this.decoding.has(pk)) {
      this.decoding.add(pk);
      decodeImage(ik, png).then(
        (img) => {
          this.pixels.set(pk, pixelsOf(img, H, W));
          if (this.pixels.size > this.cap) this.pixels.delete(this.pixels.keys().next().value as string);
          this.decoding.delete(pk);
          ready();
        },
        () => this.decoding.delete(pk),
      );
    }
    return false;
  }
}

/** A canvas showing one analysis; redraws synchronously from the maps it holds. */
export class OverlayCanvas {
  readonly canvas: HTMLCanvasElement;
  private ctx: CanvasRenderingContext2D;
  private base: Uint8ClampedArray | null = null;
  private baseKey = "";
  private heat: Float32Array | null = null;
  private heatKey = "";
  private image: ImageData | null = null;
  analysis: Analysis | null = null;
  layer: DepthMap | null = null;
  /** The raw range the last drawn map was coloured on (the legend's numbers). */
  range: Range = [0, 1];
  private own: Range = [0, 1];
  private tableKey = "";
  private index = new Uint8Array(256);
  private table = new Uint8Array(768);
  drawCount = 0;

  constructor(className = "sl-canvas") {
    this.canvas = document.createElement("canvas");
    this.canvas.className = className;
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true })!;
  }

  /** Set the input pixels (already decoded) for an image key at H x W. */
  setBase(key: string, pixels: Uint8ClampedArray, H: number, W: number): void {
    this.baseKey = key;
    this.base = pixels;
    if (this.canvas.width !== W || this.canvas.height !== H) {
      this.canvas.width = W;
      this.canvas.height = H;
      this.canvas.style.width = `${W}px`;
      this.canvas.style.height = `${H}px`;
    }
    this.image = this.ctx.createImageData(W, H);
    this.heatKey = "";
  }

  hasBase(key: string): boolean {
    return this.base !== null && this.baseKey === key;
  }

  /** The colour table of a map of raw range `own` on the scale `range` (scale.ts): the
   * colormap's own table on the map's own range, else one remapped copy, kept while the
   * colormap and both ranges stay. */
  private tableFor(colormap: string, own: Range, range: Range): Uint8Array {
    const base = lut(colormap);
    if ((own[0] === range[0] && own[1] === range[1]) || !(range[1] > range[0])) {
      // the map's own stretch, or an empty scale (then every map is constant: its bytes are 0)
      remap(0, 1, 0, 1, this.index);
      this.tableKey = "";
      return base;
    }
    const key = `${colormap}|${own[0]}|${own[1]}|${range[0]}|${range[1]}`;
    if (key !== this.tableKey) {
      remap(own[0], own[1], range[0], range[1], this.index);
      remapTable(base, this.index, this.table);
      this.tableKey = key;
    }
    return this.table;
  }

  /** Draw the heat of `depth` over the base (and, for a segmentation when `outline`, the
   * contour of the explained class's pixels). `scale`: the raw range to colour the drawn map
   * on (scale.ts; null: the map's own). Returns false when the base is missing. */
  draw(
    analysis: Analysis,
    akey: string,
    depth: number | null,
    colormap: string,
    opacity: number,
    showHeat = true,
    outline = false,
    scale: ((m: DepthMap) => Range) | null = null,
  ): boolean {
    if (!this.base || !this.image) return false;
    const W = this.canvas.width;
    const H = this.canvas.height;
    const m = mapAt(analysis.maps, depth);
    this.analysis = analysis;
    this.layer = m;
    const hk = `${akey}#${m.depth}#${W}x${H}`;
    if (hk !== this.heatKey || !this.heat) {
      this.heat = bilinear(m.data, m.h, m.w, H, W, this.heat ?? undefined);
      this.heatKey = hk;
    }
    this.own = rangeOfMap(m);
    this.range = scale ? scale(m) : this.own;
    if (showHeat) {
      composite(this.base, this.heat, this.tableFor(colormap, this.own, this.range), opacity, this.image.data);
      // where the map's maximum lands on the colour scale (255: the top; lower: a weaker map)
      this.canvas.dataset.top = String(this.index[m.flat ? 0 : 255]);
    } else {
      this.image.data.set(this.base);
    }
    const o = outline ? outlineOf(analysis, H, W) : null; // cached per analysis and size
    if (o) {
      paintOutline(this.image.data, o);
      this.canvas.dataset.outline = String(o.inner.length);
    } else {
      delete this.canvas.dataset.outline;
    }
    this.ctx.putImageData(this.image, 0, 0);
    this.drawCount++;
    this.canvas.dataset.depth = String(m.depth);
    this.canvas.dataset.scale = `${this.range[0]},${this.range[1]}`;
    this.canvas.dataset.draws = String(this.drawCount);
    return true;
  }

  /** Draw only the input. */
  drawPlain(): boolean {
    if (!this.base || !this.image) return false;
    this.image.data.set(this.base);
    this.ctx.putImageData(this.image, 0, 0);
    this.drawCount++;
    this.canvas.dataset.draws = String(this.drawCount);
    return true;
  }

  /** Heat at canvas pixel (x, y) as a position in [0, 1] on the scale the map was drawn on
   * (on its own range: the map's byte / 255), or null. */
  valueAt(x: number, y: number): number | null {
    const v = this.rawAt(x, y);
    if (v === null) return null;
    const [lo, hi] = this.range;
    if (this.own[0] === lo && this.own[1] === hi) return this.heat![Math.floor(y) * this.canvas.width + Math.floor(x)] / 255;
    return hi > lo ? Math.max(0, Math.min(1, (v - lo) / (hi - lo))) : 0;
  }

  /** The raw map value at canvas pixel (x, y) (lo + heat / 255 * (hi - lo)), or null. */
  rawAt(x: number, y: number): number | null {
    if (!this.heat) return null;
    const W = this.canvas.width;
    const H = this.canvas.height;
    if (x < 0 || y < 0 || x >= W || y >= H) return null;
    const u = this.heat[Math.floor(y) * W + Math.floor(x)];
    return this.own[0] + (u / 255) * (this.own[1] - this.own[0]);
  }
}
