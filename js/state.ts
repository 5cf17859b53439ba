// What the page holds: caches of what the kernel sent (bounded, oldest out first), the
// requests in flight, and the kinds of things the panels show.
import type { Analysis } from "./protocol";
import type { Column } from "./scatter/colors";
import type { Row as WireRow, StatsReply, VisualReply } from "./wire";

/** The population of one (model, slice): raw 2-D coordinates and the colour-by columns. */
export interface Population {
  key: string;
  model: string;
  slice: string;
  n: number;
  coords: Float32Array; // x0 y0 x1 y1 ... as the kernel sent them
  method: string | null; // "pca" | "umap" | "none"
  note: string | null;
  umapPending: boolean;
  layer: string | null;
  columns: Column[];
  version: number; // bumped when the coordinates change (a morph)
}

export interface Similar {
  key: string;
  query: number[];
  ids: number[];
  sims: Map<number, number>;
}

/** A row of the sample list, with its thumbnail. */
export interface Row extends WireRow {
  thumb: string; // object URL
}

export type Stats = Pick<StatsReply, "accuracy" | "accuracy_title" | "n" | "confusion">;

export interface Visual extends Pick<VisualReply, "kind" | "text" | "message" | "traceback" | "figure" | "width" | "height"> {
  url?: string;
}

export const PAGE_SIZE = 200;
export const GRID_MAX = 16;

export class LRU<V> extends Map<string, V> {
  constructor(private cap: number, private onEvict?: (v: V) => void) {
    super();
  }
  put(k: string, v: V): void {
    this.delete(k);
    this.set(k, v);
    while (this.cap > 0 && this.size > this.cap) {
      const first = this.keys().next().value as string;
      const old = this.get(first);
      this.delete(first);
      if (old !== undefined && this.onEvict) this.onEvict(old);
    }
  }
}

/** What the page asked for and has no answer to yet (a newer request replaces an older one). */
export interface Sent {
  analyze: string;
  rows: string;
  stats: Set<string>;
  visual: string;
  pop: Set<string>;
  thumb: string;
}

/** The page's caches and bookkeeping (App extends it; requests.ts and replies.ts fill it). */
export class State {
  analyses = new LRU<Analysis>(64);
  images = new LRU<Uint8Array>(128);
  rows = new LRU<Row>(4000, (r) => URL.revokeObjectURL(r.thumb));
  stats = new Map<string, Stats>();
  visuals = new LRU<Visual>(64, (v) => v.url && URL.revokeObjectURL(v.url));
  failed = new Map<string, string>();
  pops = new Map<string, Population>();
  popProgress = new Map<string, { done: number; total: number }>();
  popErrors = new Map<string, string>();
  similar: Similar | null = null;
  thumbs = new LRU<string>(256, (u) => URL.revokeObjectURL(u));
  /** performance.now() when the last selection left the page (for the benchmark). */
  lastSelectionSent = 0;
  /** performance.now() when the last population message arrived (for the benchmark). */
  popReceivedAt = 0;
  errors: { id: number; text: string }[] = [];
  listPage = 0;
  lastAnswerRid = -1;
  /** A depth set by the slider and not yet sent to the kernel (null when none). */
  localDepth: number | null = null;
  rowsFailed = false;
  readonly sent: Sent = { analyze: "", rows: "", stats: new Set<string>(), visual: "", pop: new Set<string>(), thumb: "" };
}
