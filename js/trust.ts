// The Trust view's data and chart geometry (pure: no DOM). A curve is insertion − deletion of
// one key's map at each depth (the kernel's `trust` replies, a few depths each), read against
// two model-free baselines: random rankings (a band: the draws' min..max, and their mean) and
// the input's edges (a line).
import type { AnalysisKey, TrustBaselines } from "./wire";

/** The steps of the page's Trust curves (the engine's default). */
export const TRUST_STEPS = 20;

/** One depth of a curve: its layer and areas (null: not finite). */
export interface TrustPoint {
  layer: string;
  deletion: number | null;
  insertion: number | null;
}

export interface TrustCurve {
  steps: number;
  measure: string;
  points: Map<number, TrustPoint>;
}

/** The last sanity check of a key: its depth, progress, result or error. */
export interface SanityRun {
  depth: number;
  done: number;
  total: number;
  layer: string | null;
  stages: [string, number | null][] | null;
  error: string | null;
}

/** The baselines' cache key: they depend on the sample, the target and the input, not on the
 * algorithm (the random and edge rankings are the map's stand-ins). */
export function baselineKey(k: AnalysisKey, steps: number): string {
  const label = k.label === null || k.label === undefined ? "pred" : String(k.label);
  return [k.model, k.slice, k.id, label, k.contrast ?? "", k.connection, steps].join("|");
}

/** insertion − deletion (null when either is unknown). */
export function scoreOf(p: { deletion: number | null; insertion: number | null }): number | null {
  return p.deletion === null || p.insertion === null ? null : p.insertion - p.deletion;
}

/** The depths of `all` that `have` lacks, in order. */
export function missingDepths(all: readonly number[], have: ReadonlyMap<number, unknown> | undefined): number[] {
  return all.filter((d) => !have || !have.has(d));
}

/** A baseline as drawn: its score and its band (lo..hi; lo = hi for a single map). */
export interface Band {
  score: number | null;
  lo: number | null;
  hi: number | null;
}

export function bandsOf(b: TrustBaselines): { random: Band; edges: Band } {
  const one = (a: TrustBaselines["random"]): Band => {
    const score = scoreOf(a);
    const draws = a.draws.filter((v: number | null): v is number => v !== null);
    return draws.length ? { score, lo: Math.min(...draws), hi: Math.max(...draws) } : { score, lo: score, hi: score };
  };
  return { random: one(b.random), edges: one(b.edges) };
}

/** The best score a map has to beat: the higher of the two baselines' (null: none known). */
export function bar(b: TrustBaselines | null | undefined): number | null {
  if (!b) return null;
  const s = [scoreOf(b.random), scoreOf(b.edges)].filter((v): v is number => v !== null);
  return s.length ? Math.max(...s) : null;
}

/** "Round" tick values covering lo..hi, about `count` of them (1, 2 or 5 times a power of 10). */
export function niceTicks(lo: number, hi: number, count = 4): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw * 0.999) ?? 10 * p;
  const out: number[] = [];
  const first = Math.ceil(lo / step - 1e-9) * step;
  for (let v = first; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toFixed(12)));
  return out;
}

/** Integer ticks over the depths lo..hi, at most `max` of them (a step of 1, 2, 5, 10, ...). */
export function depthTicks(lo: number, hi: number, max = 8): number[] {
  if (hi < lo) return [];
  let step = 1;
  for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500]) {
    step = m;
    if ((hi - lo) / m + 1 <= max) break;
  }
  const out: number[] = [];
  for (let d = Math.ceil(lo / step) * step; d <= hi; d += step) out.push(d);
  if (!out.length || out[0] !== lo) out.unshift(lo);
  return out;
}

export interface Box {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export interface Geometry {
  /** the plot's inner box, in the chart's coordinates */
  x0: number;
  x1: number;
  y0: number; // top
  y1: number; // bottom
  lo: number;
  hi: number;
  xOf: (depth: number) => number;
  yOf: (value: number) => number;
  yTicks: number[];
  xTicks: number[];
}

/** The chart's scales: depths `d0..d1` across, the values (and 0) up, with a little room. */
export function geometry(d0: number, d1: number, values: readonly (number | null)[], box: Box): Geometry {
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  let lo = Math.min(0, ...finite);
  let hi = Math.max(0, ...finite);
  if (hi - lo < 0.1) {
    const mid = (hi + lo) / 2;
    lo = Math.min(lo, mid - 0.05);
    hi = Math.max(hi, mid + 0.05);
  }
  const pad = (hi - lo) * 0.06;
  lo -= pad;
  hi += pad;
  const yTicks = niceTicks(lo, hi, 4).filter((t) => t >= lo && t <= hi);
  const x0 = box.left;
  const x1 = box.width - box.right;
  const y0 = box.top;
  const y1 = box.height - box.bottom;
  const span = d1 - d0;
  const xOf = (d: number) => (span > 0 ? x0 + ((d - d0) / span) * (x1 - x0) : (x0 + x1) / 2);
  const yOf = (v: number) => y1 - ((v - lo) / (hi - lo)) * (y1 - y0);
  return { x0, x1, y0, y1, lo, hi, xOf, yOf, yTicks, xTicks: depthTicks(d0, d1) };
}

/** The depth of `depths` whose x is nearest `x` (null when there are none). */
export function nearestDepth(x: number, depths: readonly number[], xOf: (d: number) => number): number | null {
  let best: number | null = null;
  let gap = Infinity;
  for (const d of depths) {
    const g = Math.abs(xOf(d) - x);
    if (g < gap) {
      gap = g;
      best = d;
    }
  }
  return best;
}

/** The line of a curve: "M x y L x y ..." through the known points in depth order, broken
 * where a score is unknown. */
export function linePath(points: readonly [number, number | null][], g: Pick<Geometry, "xOf" | "yOf">): string {
  const parts: string[] = [];
  let pen = false;
  for (const [d, v] of [...points].sort((a, b) => a[0] - b[0])) {
    if (v === null) {
      pen = false;
      continue;
    }
    parts.push(`${pen ? "L" : "M"}${g.xOf(d).toFixed(1)} ${g.yOf(v).toFixed(1)}`);
    pen = true;
  }
  return parts.join(" ");
}

/** The curve in words: the best depth and where the map beats both baselines. */
export function verdict(curve: TrustCurve, baselines: TrustBaselines | null | undefined, total: number): string {
  const scored = [...curve.points].map(([d, p]) => [d, scoreOf(p)] as const).filter((e): e is readonly [number, number] => e[1] !== null);
  if (!scored.length) return "";
  const [bd, bs] = scored.reduce((a, b) => (b[1] > a[1] ? b : a));
  const best = `best: depth ${bd} (${bs.toFixed(3)})`;
  const line = bar(baselines);
  if (line === null) return best;
  const wins = scored.filter(([, s]) => s > line).length;
  const partial = curve.points.size < total;
  return `${best} · above both baselines at ${wins} of ${partial ? curve.points.size : total} depths${partial ? " so far" : ""}`;
}
