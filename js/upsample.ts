// Bilinear resize of a single-channel map, with the same sampling grid as
// torch.nn.functional.interpolate(mode="bilinear", align_corners=False):
// output pixel centre (x + 0.5) * (w / W) - 0.5 in source coordinates, clamped at the edges.

/** Precomputed source indices and weights along one axis. */
export interface AxisWeights {
  i0: Int32Array;
  i1: Int32Array;
  w1: Float32Array;
}

export function axisWeights(src: number, dst: number): AxisWeights {
  const i0 = new Int32Array(dst);
  const i1 = new Int32Array(dst);
  const w1 = new Float32Array(dst);
  const scale = src / dst;
  for (let x = 0; x < dst; x++) {
    let s = (x + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    let a = Math.floor(s);
    if (a > src - 1) a = src - 1;
    const b = a < src - 1 ? a + 1 : a;
    i0[x] = a;
    i1[x] = b;
    w1[x] = b === a ? 0 : s - a;
  }
  return { i0, i1, w1 };
}

/**
 * Resize `src` (h x w, row-major, any numeric array) to H x W.
 * Returns a Float32Array in the source's units; `out` may be passed to avoid allocation.
 */
export function bilinear(
  src: ArrayLike<number>,
  h: number,
  w: number,
  H: number,
  W: number,
  out?: Float32Array,
): Float32Array {
  const dst = out && out.length === H * W ? out : new Float32Array(H * W);
  const ax = axisWeights(w, W);
  const ay = axisWeights(h, H);
  // First pass: resize each source row horizontally (h x W), then blend rows.
  const rows = new Float32Array(h * W);
  for (let y = 0; y < h; y++) {
    const base = y * w;
    const ob = y * W;
    for (let x = 0; x < W; x++) {
      const a = src[base + ax.i0[x]];
      const b = src[base + ax.i1[x]];
      rows[ob + x] = a + (b - a) * ax.w1[x];
    }
  }
  for (let y = 0; y < H; y++) {
    const r0 = ay.i0[y] * W;
    const r1 = ay.i1[y] * W;
    const t = ay.w1[y];
    const ob = y * W;
    for (let x = 0; x < W; x++) {
      const a = rows[r0 + x];
      dst[ob + x] = a + (rows[r1 + x] - a) * t;
    }
  }
  return dst;
}
