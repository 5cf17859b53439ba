// Pure geometry of the population scatter: layout normalisation, box/lasso selection, and a
// uniform grid index for nearest-point hit testing. No DOM, no WebGL (tested with vitest).

/** Bounds of interleaved (x, y) coordinates, skipping non-finite values. */
export function bounds(xy: ArrayLike<number>): [number, number, number, number] {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i + 1 < xy.length; i += 2) {
    const x = xy[i], y = xy[i + 1];
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  if (x0 > x1) return [0, 0, 0, 0];
  return [x0, y0, x1, y1];
}

/**
 * Fit coordinates into [-1, 1]^2, centred, keeping the aspect ratio (the larger extent spans
 * [-1, 1]). A degenerate layout (one point, all equal) goes to the origin; non-finite values too.
 */
export function normalize(xy: ArrayLike<number>): Float32Array {
  const [x0, y0, x1, y1] = bounds(xy);
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const half = Math.max(x1 - x0, y1 - y0) / 2;
  const s = half > 0 ? 1 / half : 0;
  const out = new Float32Array(xy.length);
  for (let i = 0; i + 1 < xy.length; i += 2) {
    const x = xy[i], y = xy[i + 1];
    const ok = Number.isFinite(x) && Number.isFinite(y);
    out[i] = ok ? (x - cx) * s : 0;
    out[i + 1] = ok ? (y - cy) * s : 0;
  }
  return out;
}

/** Even-odd ray casting: is (x, y) inside the polygon [x0, y0, x1, y1, ...]? */
export function pointInPolygon(x: number, y: number, poly: ArrayLike<number>): boolean {
  let inside = false;
  const n = poly.length >> 1;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = poly[2 * i], yi = poly[2 * i + 1];
    const xj = poly[2 * j], yj = poly[2 * j + 1];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Indices (ascending) of the points inside a polygon (at least 3 vertices). */
export function selectPolygon(xy: ArrayLike<number>, poly: ArrayLike<number>): Uint32Array {
  const n = xy.length >> 1;
  if (poly.length < 6) return new Uint32Array(0);
  const [px0, py0, px1, py1] = bounds(poly);
  const hits = new Uint32Array(n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    if (x < px0 || x > px1 || y < py0 || y > py1) continue;
    if (pointInPolygon(x, y, poly)) hits[k++] = i;
  }
  return hits.slice(0, k);
}

/** Indices (ascending) of the points inside the box spanned by two corners (edges included). */
export function selectBox(xy: ArrayLike<number>, ax: number, ay: number, bx: number, by: number): Uint32Array {
  const x0 = Math.min(ax, bx), x1 = Math.max(ax, bx), y0 = Math.min(ay, by), y1 = Math.max(ay, by);
  const n = xy.length >> 1;
  const hits = new Uint32Array(n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    if (x >= x0 && x <= x1 && y >= y0 && y <= y1) hits[k++] = i;
  }
  return hits.slice(0, k);
}

/** A uniform grid over points in a square [lo, hi]^2 for fast nearest-point queries. */
export class GridIndex {
  readonly g: number;
  readonly lo: number;
  readonly hi: number;
  private start: Uint32Array;
  private items: Uint32Array;

  constructor(readonly xy: ArrayLike<number>, lo = -1, hi = 1) {
    const n = xy.length >> 1;
    this.g = Math.max(1, Math.min(512, Math.ceil(Math.sqrt(n / 4))));
    this.lo = lo;
    this.hi = hi;
    const cells = this.g * this.g;
    const count = new Uint32Array(cells + 1);
    const cellOf = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const c = this.cell(xy[2 * i], xy[2 * i + 1]);
      cellOf[i] = c;
      count[c + 1]++;
    }
    for (let c = 0; c < cells; c++) count[c + 1] += count[c];
    const fill = count.slice(0, cells);
    this.items = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.items[fill[cellOf[i]]++] = i;
    this.start = count;
  }

  private axis(v: number): number {
    const t = Math.floor(((v - this.lo) / (this.hi - this.lo)) * this.g);
    return Math.max(0, Math.min(this.g - 1, Number.isFinite(t) ? t : 0));
  }
  private cell(x: number, y: number): number {
    return this.axis(y) * this.g + this.axis(x);
  }

  /** The nearest point within `r` of (x, y), or -1. Ties: the higher index (drawn on top). */
  nearest(x: number, y: number, r: number): number {
    const cx0 = this.axis(x - r), cx1 = this.axis(x + r);
    const cy0 = this.axis(y - r), cy1 = this.axis(y + r);
    let best = -1, bestD = r * r;
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        const c = cy * this.g + cx;
        for (let j = this.start[c]; j < this.start[c + 1]; j++) {
          const i = this.items[j];
          const dx = this.xy[2 * i] - x, dy = this.xy[2 * i + 1] - y;
          const d = dx * dx + dy * dy;
          if (d < bestD || (d === bestD && i > best)) {
            bestD = d;
            best = i;
          }
        }
      }
    }
    return best;
  }
}

/** Interpolate two layouts: (1 - t) a + t b. */
export function lerp(a: Float32Array, b: Float32Array, t: number, out = new Float32Array(a.length)): Float32Array {
  for (let i = 0; i < a.length; i++) out[i] = a[i] + (b[i] - a[i]) * t;
  return out;
}

/** Smooth start and stop for the morph (cubic ease in-out), t in [0, 1]. */
export function ease(t: number): number {
  t = Math.max(0, Math.min(1, t));
  return t < 0.5 ? 4 * t * t * t : 1 - Math.pow(-2 * t + 2, 3) / 2;
}
