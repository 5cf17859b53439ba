// What the page holds: caches of what the kernel sent (bounded, oldest out first), the
// requests in flight, and the kinds of things the panels show.
import { LIST_ORDER, SelectionHistory, type SortSpec } from "./listOrder";
import type { Analysis } from "./protocol";
import type { Column } from "./scatter/colors";
import type { SanityRun, TrustCurve } from "./trust";
import type { Row as WireRow, StatsReply, TrustBaselines, VisualReply } from "./wire";

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
  /** the ids this fetch added to the list (marked there) */
  added: Set<number>;
}

/** A line under the list's toolbar: what the last list action did, in words. */
export interface ListNote {
  text: string;
  /** offer Undo beside it (a lasso that replaced a list) */
  undo?: boolean;
}

/** The sort columns of one row (from a rows or a values reply). */
export interface RowValues {
  loss: number | null;
  confidence: number | null;
}

/** The error banner: the newest error only. `what`: the request kind that failed (a reply of
 * that kind, or any analysis, sent after `after` clears it). */
export interface PageError {
  id: number;
  text: string;
  what: string | null;
  after: number;
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
  values: string;
  visual: string;
  pop: Set<string>;
  thumb: string;
  /** the key (keyString) whose Trust curve is being computed ("" none) */
  trust: string;
  /** the key (keyString) whose sanity check runs ("" none) */
  sanity: string;
}

/** Where the slice's pass is: ``features`` (the one pass giving features and statistics) or
 * ``statistics`` (features from the cache; the scatter shows, its colours wait). */
export interface PassProgress {
  phase: "features" | "statistics";
  done: number;
  total: number;
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
  popProgress = new Map<string, PassProgress>();
  popErrors = new Map<string, string>();
  similar: Similar | null = null;
  thumbs = new LRU<string>(256, (u) => URL.revokeObjectURL(u));
  /** performance.now() when the last selection left the page (for the benchmark). */
  lastSelectionSent = 0;
  /** performance.now() when the last population message arrived (for the benchmark). */
  popReceivedAt = 0;
  /** the error banner: at most one, the newest */
  errors: PageError[] = [];
  listPage = 0;
  /** the list's order (a view: `selected` keeps its own) */
  sort: SortSpec = LIST_ORDER;
  /** loss and confidence per row key, for sorting the whole list */
  values = new LRU<RowValues>(200_000);
  /** bumped when `values` gains entries (the list's sort looks again) */
  valuesVersion = 0;
  /** the selections before the last changes (Undo) */
  history = new SelectionHistory(10);
  listNote: ListNote | null = null;
  /** the first row a Fetch similar added: the list shows its page until the user moves on */
  jumpTo: number | null = null;
  lastAnswerRid = -1;
  /** A depth set by the slider and not yet sent to the kernel (null when none). */
  localDepth: number | null = null;
  rowsFailed = false;
  /** Trust curves by key (keyString), filled a few depths at a time */
  trust = new LRU<TrustCurve>(32);
  /** the random and edge baselines by sample and target (trust.ts `baselineKey`: no algorithm) */
  trustBaselines = new LRU<TrustBaselines>(64);
  /** why a key's Trust curve failed (cleared by a user action) */
  trustErrors = new Map<string, string>();
  /** the last sanity check of each key */
  sanity = new LRU<SanityRun>(32);
  readonly sent: Sent = { analyze: "", rows: "", stats: new Set<string>(), values: "", visual: "", pop: new Set<string>(), thumb: "", trust: "", sanity: "" };
}
