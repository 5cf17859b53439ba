// Page-side state: caches of what the kernel sent, requests (newest wins), and the panels.
import type { AnyModel } from "./model";
import type { Analysis, AnalysisKey, AnalysisMeta, Buffer } from "./protocol";
import { decodeAnalysis, keyString, toBytes } from "./protocol";
import { type Column, type ColumnMeta, decodeColumn } from "./scatter/colors";

export interface Info {
  models: string[];
  slices: Record<string, number>;
  n_inputs: Record<string, number>;
  label_names: string[];
  num_classes: number;
  algorithms: [string, string][];
  colormaps: string[];
  visualizers: string[];
  similar: boolean;
  projection?: string;
  columns?: Record<string, [string, string][]>;
}

/** The population of one (model, slice): raw 2-D coordinates and the colour-by columns. */
export interface Population {
  key: string;
  model: string;
  slice: string;
  n: number;
  coords: Float32Array; // x0 y0 x1 y1 ... as the kernel sent them
  method: string; // "pca" | "umap" | "none"
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

export interface Row {
  id: number;
  label: number | null;
  prediction: number | null;
  loss: number | null;
  thumb: string; // object URL
}

export interface Stats {
  accuracy: number | null;
  n: number;
  confusion: number[][] | null;
}

export interface Visual {
  kind: "image" | "plotly" | "text" | "error";
  text?: string;
  message?: string;
  traceback?: string;
  figure?: any;
  url?: string;
  width?: number;
  height?: number;
}

export const PAGE_SIZE = 200;
export const GRID_MAX = 16;

class LRU<V> extends Map<string, V> {
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

export class App {
  readonly model: AnyModel;
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
  /** The scatter panel (set by it; tests and debugging reach it through the root element). */
  scatter: any = null;
  /** performance.now() when the last selection left the page (for the benchmark). */
  lastSelectionSent = 0;
  /** performance.now() when the last population message arrived (for the benchmark). */
  popReceivedAt = 0;
  errors: { id: number; text: string }[] = [];
  listPage = 0;
  private rid = 0;
  private sent = { analyze: "", rows: "", stats: new Set<string>(), visual: "", pop: new Set<string>(), thumb: "" };
  private listeners = new Set<(reason: string) => void>();
  private plotly: Promise<any> | null = null;
  private plotlyResolve: ((p: any) => void) | null = null;
  private errorSeq = 0;
  lastAnswerRid = -1;
  /** A depth set by the slider and not yet sent to the kernel (null when none). */
  localDepth: number | null = null;
  rowsFailed = false;

  constructor(model: AnyModel) {
    this.model = model;
  }

  // ------------------------------------------------------------------ state
  get info(): Info {
    return this.model.get("_info") as Info;
  }
  get<T = any>(name: string): T {
    return this.model.get(name) as T;
  }
  /** Set a trait locally and (unless told otherwise) send it to the kernel now. */
  setTrait(name: string, value: any, save = true): void {
    this.model.set(name, value);
    if (save) this.model.save_changes();
  }
  labelName(i: number | null | undefined): string {
    if (i === null || i === undefined || i < 0) return "—";
    return this.info.label_names[i] ?? `class ${i}`;
  }

  keyFor(id: number, model?: string): AnalysisKey {
    return {
      model: model ?? this.get("model_name"),
      slice: this.get("slice"),
      id,
      algorithm: this.get("algorithm"),
      label: this.get("label"),
      connection: this.get("connection"),
    };
  }
  /** The analysis key of the viewed sample (null when nothing is viewed). */
  currentKey(model?: string): AnalysisKey | null {
    const v = this.get<number | null>("viewed");
    return v === null || v === undefined ? null : this.keyFor(v, model);
  }
  imageKey(id: number): string {
    return `${this.get("slice")}|${id}|${this.get("connection")}`;
  }
  analysisOf(k: AnalysisKey | null): Analysis | null {
    return k ? this.analyses.get(keyString(k)) ?? null : null;
  }
  gridIds(): number[] {
    const sel = this.get<number[]>("selected");
    const start = this.listPage * PAGE_SIZE;
    return sel.slice(start, start + PAGE_SIZE).slice(0, GRID_MAX);
  }
  pageIds(): number[] {
    const sel = this.get<number[]>("selected");
    const pages = Math.max(1, Math.ceil(sel.length / PAGE_SIZE));
    if (this.listPage >= pages) this.listPage = pages - 1;
    return sel.slice(this.listPage * PAGE_SIZE, (this.listPage + 1) * PAGE_SIZE);
  }
  /** Keys the viewer needs now: viewed sample, the compared model, the grid. */
  neededKeys(): AnalysisKey[] {
    const out: AnalysisKey[] = [];
    const cur = this.currentKey();
    const tab = this.get<string>("tab");
    if (cur) out.push(cur);
    const cmp = this.get<string | null>("compare");
    if (cur && cmp && cmp !== cur.model) out.push(this.keyFor(cur.id, cmp));
    if (this.get<boolean>("grid") && tab === "CAM") {
      for (const id of this.gridIds()) {
        if (!cur || id !== cur.id) out.push(this.keyFor(id));
      }
    }
    return out;
  }
  /** True while something the page shows is waiting for the kernel. */
  waiting(): boolean {
    for (const k of this.neededKeys()) {
      const s = keyString(k);
      if (!this.analyses.has(s) && !this.failed.has(s)) return true;
    }
    if (!this.rowsFailed && this.pageIds().some((id) => !this.rows.has(this.rowKey(id)))) return true;
    const vk = this.visualKey();
    if (vk && !this.visuals.has(vk)) return true;
    return false;
  }
  popKey(): string {
    return `${this.get("model_name")}|${this.get("slice")}`;
  }
  /** The population of the current model and slice (null until the kernel sent it). */
  population(): Population | null {
    return this.pops.get(this.popKey()) ?? null;
  }
  rowKey(id: number): string {
    return `${this.get("model_name")}|${this.get("slice")}|${id}`;
  }
  visualKey(): string | null {
    const tab = this.get<string>("tab");
    const v = this.get<number | null>("viewed");
    if (v === null || tab === "CAM" || tab === "Input" || !this.info.visualizers.includes(tab)) return null;
    return `${tab}|${this.get("slice")}|${v}|${this.get("connection")}`;
  }

  // --------------------------------------------------------------- requests
  private send(content: any): void {
    this.model.send(content);
  }
  /** Ask the kernel for whatever the current state needs and the page lacks. */
  ensure(): void {
    const keys = this.neededKeys().filter((k) => {
      const s = keyString(k);
      return !this.analyses.has(s) && !this.failed.has(s);
    });
    const sig = keys.map(keyString).join(";");
    if (keys.length && sig !== this.sent.analyze) {
      const images = keys.map((k) => !this.images.has(`${k.slice}|${k.id}|${k.connection}`));
      this.send({ type: "analyze", rid: ++this.rid, keys, images });
    }
    this.sent.analyze = sig;

    const model = this.get<string>("model_name");
    const slice = this.get<string>("slice");
    const missing = this.pageIds().filter((id) => !this.rows.has(this.rowKey(id)));
    const rsig = `${model}|${slice}|${missing.join(",")}`;
    if (missing.length && rsig !== this.sent.rows && !this.rowsFailed) {
      this.send({ type: "rows", rid: ++this.rid, model, slice, ids: missing, page: this.listPage });
    }
    this.sent.rows = missing.length ? rsig : "";

    const skey = `${model}|${slice}`;
    if (this.get("viewed") !== null && !this.stats.has(skey) && !this.sent.stats.has(skey)) {
      this.sent.stats.add(skey);
      this.send({ type: "stats", rid: ++this.rid, model, slice });
    }

    const pk = this.popKey();
    if (!this.pops.has(pk) && !this.sent.pop.has(pk) && !this.popErrors.has(pk)) {
      this.sent.pop.add(pk);
      this.send({ type: "population", rid: ++this.rid, model, slice });
    }

    const vk = this.visualKey();
    if (vk && !this.visuals.has(vk) && vk !== this.sent.visual) {
      const [name, vslice, id, conn] = vk.split("|");
      this.send({ type: "visual", rid: ++this.rid, name, slice: vslice, id: Number(id), connection: Number(conn) });
    }
    this.sent.visual = vk && !this.visuals.has(vk) ? vk : "";
  }
  /** Forget failures so that the next ensure() asks again (after a user action). */
  clearFailures(): void {
    this.failed.clear();
    this.rowsFailed = false;
  }
  /** Ask for the population again after an error (a user action). */
  retryPopulation(): void {
    const pk = this.popKey();
    this.popErrors.delete(pk);
    this.sent.pop.delete(pk);
    this.ensure();
    this.emit("population");
  }
  addSample(text: string): void {
    this.send({ type: "add", rid: ++this.rid, id: text });
  }
  selectAll(): void {
    this.send({ type: "select_all", rid: ++this.rid });
  }
  fetchSimilar(k: number): void {
    this.send({
      type: "similar",
      rid: ++this.rid,
      ids: this.get("selected"),
      k,
      model: this.get("model_name"),
      slice: this.get("slice"),
    });
  }
  /** Click on a dot: the sample joins the list and is viewed. */
  pick(id: number): void {
    this.clearFailures();
    this.send({ type: "pick", rid: ++this.rid, id });
  }
  /** A box/lasso selection: the ids travel as one Uint32Array buffer (a copy, never a view). */
  selectIds(ids: Uint32Array, mode: "replace" | "add"): void {
    this.clearFailures();
    this.lastSelectionSent = performance.now();
    const buf = ids.slice();
    this.model.send({ type: "select_ids", rid: ++this.rid, mode, slice: this.get("slice"), n: ids.length }, undefined, [buf]);
  }
  /** A hover thumbnail (object URL), asked for when missing; null until it arrives. */
  thumb(id: number): string | null {
    const k = `${this.get("slice")}|${id}`;
    const hit = this.thumbs.get(k);
    if (hit) return hit;
    if (this.sent.thumb !== k) {
      this.sent.thumb = k;
      this.send({ type: "thumb", rid: ++this.rid, slice: this.get("slice"), id });
    }
    return null;
  }
  loadPlotly(): Promise<any> {
    const w = window as any;
    if (w.Plotly) return Promise.resolve(w.Plotly);
    if (!this.plotly) {
      this.plotly = new Promise((resolve) => (this.plotlyResolve = resolve));
      this.send({ type: "plotly_js", rid: ++this.rid });
    }
    return this.plotly;
  }

  // ---------------------------------------------------------------- answers
  onMessage(content: any, buffers: Buffer[] = []): void {
    if (!content || typeof content !== "object") return;
    switch (content.type) {
      case "analysis":
        this.onAnalysis(content as AnalysisMeta, buffers);
        break;
      case "rows": {
        content.rows.forEach((r: any, i: number) => {
          const url = URL.createObjectURL(new Blob([toBytes(buffers[i]) as BlobPart], { type: "image/png" }));
          this.rows.put(`${content.model}|${content.slice}|${r.id}`, { ...r, thumb: url });
        });
        this.sent.rows = "";
        this.emit("rows");
        break;
      }
      case "stats":
        this.stats.set(`${content.model}|${content.slice}`, content as Stats);
        this.emit("stats");
        break;
      case "visual": {
        const v: Visual = { ...content };
        if (content.kind === "image" && buffers.length) {
          v.url = URL.createObjectURL(new Blob([toBytes(buffers[0]) as BlobPart], { type: "image/png" }));
        }
        this.visuals.put(`${content.name}|${content.slice}|${content.id}|${content.connection}`, v);
        this.sent.visual = "";
        this.emit("visual");
        break;
      }
      case "plotly_js":
        this.installPlotly(buffers[0]);
        break;
      case "population":
        this.popReceivedAt = performance.now();
        this.onPopulation(content, buffers);
        break;
      case "population_progress":
        this.popProgress.set(`${content.model}|${content.slice}`, { done: content.done, total: content.total });
        this.emit("population-progress");
        break;
      case "population_coords": {
        const p = this.pops.get(`${content.model}|${content.slice}`);
        if (p && buffers.length) {
          p.coords = new Float32Array(toBytes(buffers[0]).slice().buffer);
          p.method = content.method;
          p.note = content.note ?? null;
          p.umapPending = !!content.umap_pending;
          p.version++;
          this.emit("population-coords");
        }
        break;
      }
      case "population_error": {
        const pk = `${content.model}|${content.slice}`;
        this.popErrors.set(pk, content.message);
        this.sent.pop.delete(pk);
        this.emit("population");
        break;
      }
      case "similar": {
        const key = `${content.model}|${content.slice}`;
        const sims = new Map<number, number>();
        content.ids.forEach((id: number, i: number) => sims.set(id, content.similarities[i]));
        this.similar = { key, query: content.query, ids: content.ids, sims };
        if (key === this.popKey()) {
          const sel = this.get<number[]>("selected");
          const have = new Set(sel);
          const add = (content.ids as number[]).filter((i) => !have.has(i));
          if (add.length) this.setTrait("selected", [...sel, ...add]);
        }
        this.emit("similar");
        break;
      }
      case "thumb": {
        const url = URL.createObjectURL(new Blob([toBytes(buffers[0]) as BlobPart], { type: "image/png" }));
        this.thumbs.put(`${content.slice}|${content.id}`, url);
        if (this.sent.thumb === `${content.slice}|${content.id}`) this.sent.thumb = "";
        this.emit("thumb");
        break;
      }
      case "error":
        if (content.key) this.failed.set(keyString(content.key), content.message);
        if (content.request === "rows") this.rowsFailed = true;
        this.pushError(content.message);
        break;
    }
  }

  private onAnalysis(meta: AnalysisMeta, buffers: Buffer[]): void {
    let a: Analysis;
    try {
      a = decodeAnalysis(meta, buffers);
    } catch (e) {
      this.pushError(String(e));
      return;
    }
    const ks = keyString(meta.key);
    // Every answer is cached by its key; it is shown only if the page still wants that key, so a
    // stale answer can never replace a newer one on screen.
    this.analyses.put(ks, a);
    if (a.image) this.images.put(`${meta.key.slice}|${meta.key.id}|${meta.key.connection}`, a.image);
    if (typeof meta.rid === "number") this.lastAnswerRid = Math.max(this.lastAnswerRid, meta.rid);
    if (this.sent.analyze.split(";").includes(ks)) this.sent.analyze = "";
    this.emit("analysis");
  }

  private onPopulation(content: any, buffers: Buffer[]): void {
    const key = `${content.model}|${content.slice}`;
    const n = content.n as number;
    try {
      const coords = new Float32Array(toBytes(buffers[0]).slice().buffer);
      if (coords.length !== 2 * n) throw new Error(`population: ${coords.length / 2} points, expected ${n}`);
      const columns = (content.columns as ColumnMeta[]).map((m, i) => decodeColumn(m, buffers[i + 1], n));
      this.pops.set(key, {
        key,
        model: content.model,
        slice: content.slice,
        n,
        coords,
        method: content.method,
        note: content.note ?? null,
        umapPending: !!content.umap_pending,
        layer: content.layer ?? null,
        columns,
        version: 0,
      });
      this.popErrors.delete(key);
    } catch (e) {
      this.popErrors.set(key, String(e));
      this.pushError(String(e));
    }
    this.emit("population");
  }

  private installPlotly(buf: Buffer | undefined): void {
    if (!buf) return;
    const code = new TextDecoder().decode(toBytes(buf));
    const w = window as any;
    try {
      // plotly.min.js is a UMD bundle: run it with a CommonJS `module` of its own, so that it
      // hands its export to us whatever module loader the page has.
      const mod: any = { exports: {} };
      new Function("module", "exports", code)(mod, mod.exports);
      const P = mod.exports && mod.exports.newPlot ? mod.exports : w.Plotly;
      if (!w.Plotly) w.Plotly = P;
      this.plotlyResolve?.(P);
    } catch (e) {
      this.pushError(`could not load plotly.js: ${e}`);
    }
  }

  pushError(text: string): void {
    this.errors.push({ id: ++this.errorSeq, text });
    if (this.errors.length > 3) this.errors.shift();
    this.emit("error");
  }
  dismissError(id: number): void {
    this.errors = this.errors.filter((e) => e.id !== id);
    this.emit("error");
  }

  // ------------------------------------------------------------ listeners
  subscribe(fn: (reason: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  /** Show the list page that holds the viewed sample. */
  followViewed(): void {
    const v = this.get<number | null>("viewed");
    const i = v === null ? -1 : this.get<number[]>("selected").indexOf(v);
    if (i >= 0) this.listPage = Math.floor(i / PAGE_SIZE);
  }
  emit(reason: string): void {
    if (reason === "viewed" || reason === "selected") this.followViewed();
    if (reason !== "depth") this.ensure();
    for (const fn of this.listeners) fn(reason);
  }
}
