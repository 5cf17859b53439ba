// Colour-by columns of the population scatter: decoding their buffers and packing one RGBA
// colour per point. Pure (tested with vitest).
import { lut } from "../colormap";
import { type Buffer, toBytes } from "../protocol";
import type { ColumnMeta } from "../wire";

export type { ColumnMeta };

export interface Column extends ColumnMeta {
  data: Uint8Array | Uint16Array | Uint32Array | Float32Array;
}

export const MISSING: [number, number, number] = [176, 176, 176];
const TAB10 = [
  "1f77b4", "ff7f0e", "2ca02c", "d62728", "9467bd", "8c564b", "e377c2", "7f7f7f", "bcbd22", "17becf",
];
const TAB20 = [
  "1f77b4", "aec7e8", "ff7f0e", "ffbb78", "2ca02c", "98df8a", "d62728", "ff9896", "9467bd", "c5b0d5",
  "8c564b", "c49c94", "e377c2", "f7b6d2", "7f7f7f", "c7c7c7", "bcbd22", "dbdb8d", "17becf", "9edae5",
];
const CORRECT = ["d1242f", "2da44e"]; // incorrect, correct

function hex(h: string): [number, number, number] {
  return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
}

function hsl(h: number, s: number, l: number): [number, number, number] {
  const f = (n: number) => {
    const k = (n + h / 30) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

/** The colour of category `i` of `n` (tab10 up to 10, tab20 up to 20, golden-angle hues beyond). */
export function categoryColor(i: number, n: number, palette?: string | null): [number, number, number] {
  if (palette === "correct" && i < 2) return hex(CORRECT[i]);
  if (n <= 10) return hex(TAB10[i % 10]);
  if (n <= 20) return hex(TAB20[i % 20]);
  return hsl((i * 137.508) % 360, 0.62, 0.5);
}

/** A column's values as a typed array over its bytes (copied, so alignment is never an issue). */
export function decodeColumn(meta: ColumnMeta, buf: Buffer, n: number): Column {
  const bytes = toBytes(buf).slice();
  const ctor =
    meta.dtype === "float32" ? Float32Array : meta.dtype === "uint32" ? Uint32Array : meta.dtype === "uint16" ? Uint16Array : Uint8Array;
  if (bytes.byteLength !== n * ctor.BYTES_PER_ELEMENT) {
    throw new Error(`column ${meta.key}: ${bytes.byteLength} bytes, expected ${n} ${meta.dtype} values`);
  }
  return { ...meta, data: new ctor(bytes.buffer) };
}

/** One RGBA colour per point (alpha 255). Categories: palette; values: viridis over [min, max]. */
export function columnColors(col: Column, n: number, out = new Uint8Array(n * 4)): Uint8Array {
  if (col.kind === "category") {
    const k = col.categories?.length ?? 0;
    const table = Array.from({ length: k }, (_, i) => categoryColor(i, k, col.palette));
    for (let i = 0; i < n; i++) {
      const c = col.data[i];
      const rgb = c < k ? table[c] : MISSING;
      out[4 * i] = rgb[0];
      out[4 * i + 1] = rgb[1];
      out[4 * i + 2] = rgb[2];
      out[4 * i + 3] = 255;
    }
    return out;
  }
  const t = lut("viridis");
  const lo = col.min ?? 0;
  const hi = col.max ?? 1;
  const span = hi > lo ? hi - lo : 1;
  for (let i = 0; i < n; i++) {
    const v = col.data[i];
    if (!Number.isFinite(v)) {
      out.set([...MISSING, 255], 4 * i);
      continue;
    }
    const j = Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255))) * 3;
    out[4 * i] = t[j];
    out[4 * i + 1] = t[j + 1];
    out[4 * i + 2] = t[j + 2];
    out[4 * i + 3] = 255;
  }
  return out;
}

/** A readable text for point `i` of a column (category name or number). */
export function columnText(col: Column, i: number, names?: (string | number | boolean)[]): string {
  const v = col.data[i];
  if (col.kind === "category") {
    const cats = names ?? col.categories ?? [];
    return v < cats.length ? String(cats[v]) : "—";
  }
  return Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)) : "—";
}
