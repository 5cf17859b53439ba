// Honest scales. A map's bytes u stand for the raw CAM values lo + u / 255 * (hi - lo) (the
// kernel min-max normalised each map on its own; LayerMeta.lo/hi are its raw range). The colour
// index of u is where that value falls on the chosen scale:
//   "map"    each map on its own range (the stretch the maps always had);
//   "labels" the maps of one sample, model, algorithm, connection and depth that explain
//            different classes share one range (a map of an unlikely class looks weak);
//   "depths" one analysis's maps at every depth share one range.
// The per-pixel work stays one lookup: a 256-entry remap per (map, scale), folded into the
// colormap's table.
import type { Analysis, AnalysisKey, DepthMap } from "./protocol";

export type Scale = "map" | "labels" | "depths";
export type Range = [number, number];

/** The Scale select's options: value, text, tooltip. */
export const SCALES: [Scale, string, string][] = [
  ["map", "per map", "Each map stretched to its own range"],
  ["labels", "across labels", "Maps of this sample that explain different classes share one range (at each depth)"],
  ["depths", "across depths", "This map's depths share one range"],
];

export function isScale(v: unknown): v is Scale {
  return SCALES.some(([s]) => s === v);
}

/** The kind of value a key's maps explain: class scores, the loss, or a contrast (a difference
 * of class scores). Maps of different kinds are in different units: they never share a scale. */
export function scoreKind(k: AnalysisKey): "class" | "loss" | "contrast" {
  if (k.label === "loss") return "loss";
  return k.contrast !== null && k.contrast !== undefined ? "contrast" : "class";
}

/** The two keys' maps may share an "across labels" scale: the same sample, model, algorithm,
 * connection and kind of score. */
export function sameGroup(a: AnalysisKey, b: AnalysisKey): boolean {
  return (
    a.model === b.model &&
    a.slice === b.slice &&
    a.id === b.id &&
    a.algorithm === b.algorithm &&
    a.connection === b.connection &&
    scoreKind(a) === scoreKind(b)
  );
}

/** A map's raw range (a map without finite lo/hi reads as 0..1: the normalised units). */
export function rangeOfMap(m: Pick<DepthMap, "lo" | "hi">): Range {
  return Number.isFinite(m.lo) && Number.isFinite(m.hi) ? [m.lo, m.hi] : [0, 1];
}

/** The range map `m` (one of `a`'s) is coloured on under `scale`. `others`: the analyses the
 * page holds (for "labels": those of `a`'s group, `a` among them or not, count at `m`'s depth). */
export function scaleRange(scale: Scale, a: Analysis, m: DepthMap, others: Iterable<Analysis> = []): Range {
  let [lo, hi] = rangeOfMap(m);
  const widen = (x: DepthMap) => {
    const [l, h] = rangeOfMap(x);
    if (l < lo) lo = l;
    if (h > hi) hi = h;
  };
  if (scale === "depths") {
    a.maps.forEach(widen);
  } else if (scale === "labels") {
    for (const g of others) {
      if (g === a || !sameGroup(g.meta.key, a.meta.key)) continue;
      const x = g.maps.find((y) => y.depth === m.depth && y.name === m.name);
      if (x) widen(x);
    }
  }
  return [lo, hi];
}

/** Colour index of byte u for a map of raw range [lo, hi] on the scale [sLo, sHi]:
 * round(255 * (lo + u / 255 * (hi - lo) - sLo) / (sHi - sLo)), clamped; an empty scale (sHi <=
 * sLo: every map constant and equal) gives 0, as a constant map always had. */
export function remap(lo: number, hi: number, sLo: number, sHi: number, out = new Uint8Array(256)): Uint8Array {
  const span = sHi - sLo;
  if (!(span > 0)) {
    out.fill(0);
    return out;
  }
  if (lo === sLo && hi === sHi) {
    for (let u = 0; u < 256; u++) out[u] = u; // the map's own range: exactly the bytes
    return out;
  }
  for (let u = 0; u < 256; u++) {
    const v = lo + (u / 255) * (hi - lo);
    const i = Math.round((255 * (v - sLo)) / span);
    out[u] = i < 0 ? 0 : i > 255 ? 255 : i;
  }
  return out;
}

/** A colormap's 256x3 table seen through a remap: entry u is table[index[u]]. */
export function remapTable(table: Uint8Array, index: Uint8Array, out = new Uint8Array(768)): Uint8Array {
  for (let u = 0; u < 256; u++) {
    const i = index[u] * 3;
    out[3 * u] = table[i];
    out[3 * u + 1] = table[i + 1];
    out[3 * u + 2] = table[i + 2];
  }
  return out;
}

/** A legend number: short, and exact enough to read a range (3 significant digits). */
export function fmtValue(x: number): string {
  if (!Number.isFinite(x)) return "—";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e4 || a < 1e-3) return x.toExponential(2);
  return String(Number(x.toPrecision(3)));
}
