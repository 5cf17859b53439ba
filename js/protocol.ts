// Messages between the page and the kernel, and decoding of their binary buffers.

import type { AnalysisKey, LayerMeta, Reply, Row, SegmentationMeta } from "./wire";

export type { AnalysisKey, LayerMeta, SegmentationMeta };
/** An analysis message (the kernel's answer to one key), as wire.ts declares it. */
export type AnalysisMeta = Reply<"analysis">;

/** One map per depth, uint8 at feature resolution; byte u stands for the raw value
 * lo + u / 255 * (hi - lo) (see scale.ts). */
export interface DepthMap extends LayerMeta {
  data: Uint8Array;
  /** All zeros: the layer's map was constant (nothing to show at this depth). */
  flat: boolean;
}

export interface Analysis {
  meta: AnalysisMeta;
  maps: DepthMap[];
  image: Uint8Array | null; // PNG bytes of the input, when sent
  /** A segmentation's predicted class per pixel (`meta.segmentation.h` x `.w`, row-major). */
  pixels: Uint8Array | Uint16Array | null;
}

export type Buffer = DataView | ArrayBuffer | Uint8Array | ArrayBufferView;

/** A Uint8Array view of whatever the widget manager hands us (DataView, ArrayBuffer, ...). */
export function toBytes(buf: Buffer): Uint8Array {
  if (buf instanceof Uint8Array) return buf;
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  const v = buf as ArrayBufferView;
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** Stable string form of a key (cache index). label null = predicted class ("pred"), "loss" =
 * the loss against the true label ("loss"); a contrast adds "|vs<class>" (a key without one
 * keeps the string it always had; a missing contrast is none). */
export function keyString(k: AnalysisKey): string {
  const label = k.label === null || k.label === undefined ? "pred" : k.label === "loss" ? "loss" : String(k.label);
  const parts: (string | number)[] = [k.model, k.slice, k.id, k.algorithm, label, k.connection];
  if (k.contrast !== null && k.contrast !== undefined) parts.push(`vs${k.contrast}`);
  return parts.join("|");
}

/** The same key explaining something else (`label`, no contrast). */
export function withLabel(k: AnalysisKey, label: AnalysisKey["label"]): AnalysisKey {
  return { ...k, label, contrast: null };
}

/** Classification tasks: a prediction is a class that can differ from the true label. */
const NOT_CLASSES = new Set(["regression", "segmentation"]);

/** What the error maps of a wrong sample explain: the prediction and the truth (a multi-label
 * sample: an "extra" class, predicted but not true (the top class if it is one), else the top
 * class, and the first true class "missed", null when none was) and how to caption them. */
export interface ErrorClasses {
  pred: number;
  truth: number | null;
  predTitle: string;
  trueTitle: string;
}

/** The sample's prediction, truth and (multi-label) class sets, from an analysis or a row. */
export interface Verdict {
  task?: string;
  prediction: number | null;
  truth: unknown;
  predictedSet?: number[] | null;
  trueSet?: number[] | null;
}

function sameSet(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((c) => b.includes(c));
}

/** The error maps' classes when the sample is known to be wrong, else null: a true class
 * other than the prediction (classification tasks only), or a multi-label sample whose
 * predicted set is not its true set. */
export function errorClasses(v: Verdict): ErrorClasses | null {
  if (v.task === "multilabel") {
    const truth = v.trueSet, predicted = v.predictedSet ?? [];
    if (!Array.isArray(truth) || sameSet(truth, predicted) || v.prediction === null) return null;
    const extra = predicted.filter((c) => !truth.includes(c));
    const missed = truth.filter((c) => !predicted.includes(c));
    const fp = extra.includes(v.prediction) ? v.prediction : extra[0];
    return {
      pred: fp ?? v.prediction,
      truth: missed.length ? missed[0] : null,
      predTitle: fp === undefined ? "predicted" : "extra",
      trueTitle: "missed",
    };
  }
  const t = v.truth;
  if (typeof t !== "number" || !Number.isInteger(t) || t < 0) return null;
  if (v.task !== undefined && NOT_CLASSES.has(v.task)) return null;
  if (typeof v.prediction !== "number" || v.prediction === t) return null;
  return { pred: v.prediction, truth: t, predTitle: "predicted", trueTitle: "true" };
}

/** An analysis's verdict. */
export function verdictOf(m: AnalysisMeta): Verdict {
  return { task: m.task, prediction: m.prediction, truth: m.true_label, predictedSet: m.predicted_set, trueSet: m.true_set };
}

/** A sample-list row's verdict (a row with a label set is a multi-label model's). */
export function verdictOfRow(r: Pick<Row, "label" | "prediction" | "label_set" | "prediction_set">): Verdict {
  return {
    task: r.label_set !== undefined ? "multilabel" : undefined,
    prediction: r.prediction,
    truth: r.label,
    predictedSet: r.prediction_set,
    trueSet: r.label_set,
  };
}

/** The sample has a true class and the model predicted another one (a multi-label sample:
 * another set of classes). */
export function misclassified(m: AnalysisMeta): boolean {
  return errorClasses(verdictOf(m)) !== null;
}

/** The per-pixel classes of a segmentation (`h * w` values of `dtype`, little-endian). */
export function decodePixels(seg: SegmentationMeta, buf: Buffer): Uint8Array | Uint16Array {
  const { h, w, dtype } = seg;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h <= 0 || w <= 0) {
    throw new Error(`segmentation: bad size ${h}x${w}`);
  }
  const per = dtype === "uint8" ? 1 : dtype === "uint16" ? 2 : 0;
  if (!per) throw new Error(`segmentation: unknown dtype ${String(dtype)}`);
  const bytes = toBytes(buf);
  if (bytes.length !== h * w * per) {
    throw new Error(`segmentation pixels have ${bytes.length} bytes, expected ${h}x${w} ${dtype}`);
  }
  if (per === 1) return bytes.slice();
  const out = new Uint16Array(h * w);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint16(2 * i, true);
  return out;
}

/** Turn an analysis message and its buffers into maps; validates the sizes. Buffers: one map
 * per layer, the input's PNG if `meta.image`, a segmentation's pixel classes (the last one). */
export function decodeAnalysis(meta: AnalysisMeta, buffers: Buffer[]): Analysis {
  const n = meta.layers.length;
  const seg = meta.segmentation ?? null;
  const expected = n + (meta.image ? 1 : 0) + (seg ? 1 : 0);
  if (buffers.length !== expected) {
    throw new Error(`analysis message has ${buffers.length} buffers, expected ${expected}`);
  }
  const maps: DepthMap[] = meta.layers.map((l, i) => {
    const data = toBytes(buffers[i]);
    if (data.length !== l.h * l.w) {
      throw new Error(`map of depth ${l.depth} has ${data.length} bytes, expected ${l.h}x${l.w}`);
    }
    const copy = data.slice();
    let flat = true;
    for (let j = 0; j < copy.length && flat; j++) if (copy[j] !== 0) flat = false;
    const { depth, name, shape, layout, aliases, lo, hi } = l;
    return { depth, name, shape, layout, aliases, h: l.h, w: l.w, lo, hi, data: copy, flat };
  });
  const image = meta.image ? toBytes(buffers[n]).slice() : null;
  const pixels = seg ? decodePixels(seg, buffers[expected - 1]) : null;
  return { meta, maps, image, pixels };
}

/** The map that stands for `depth` (null: the deepest); an out-of-range depth is clamped. */
export function mapAt(maps: DepthMap[], depth: number | null): DepthMap {
  if (depth === null || maps.length === 0) return maps[maps.length - 1];
  let best = maps[0];
  for (const m of maps) {
    if (m.depth <= depth) best = m;
  }
  return best;
}
