// Page-side state and what the panels call: the traits, the keys the page needs, and a facade
// over the caches (state.ts), the request planner (requests.ts), the reply decoder
// (replies.ts), plotly.js (plotly.ts) and the event bus (events.ts).
import { Bus, type Listener, type Reason } from "./events";
import { type SortSpec, pageOf, sortIds } from "./listOrder";
import type { AnyModel, Traits } from "./model";
import { type Plotly, PlotlyLoader } from "./plotly";
import { type Analysis, type AnalysisKey, type Buffer, type DepthMap, type ErrorClasses, errorClasses, keyString, verdictOf, verdictOfRow, withLabel } from "./protocol";
import { type Decoders, decoders, dispatch } from "./replies";
import { Requests } from "./requests";
import { type Range, type Scale, sameGroup, scaleRange, scoreKind } from "./scale";
import { GRID_MAX, PAGE_SIZE, type Population, State } from "./state";
import type { SanityRun } from "./trust";
import type { Info, PageRequest } from "./wire";

export type { Info } from "./wire";
export type { Reason } from "./events";
export { GRID_MAX, PAGE_SIZE } from "./state";
export type { Population, Row, Similar, Stats, Visual } from "./state";

/** The keys of the error maps of a misclassified sample, all at the viewer's other settings. */
export interface ErrorKeys {
  pred: AnalysisKey; // the predicted class
  true: AnalysisKey | null; // the true label (null: a multi-label sample that missed none)
  loss: AnalysisKey; // the loss against the true label
  classes: ErrorClasses;
}

/** The request kinds that change the selection (their errors clear when it changes). */
const SELECTION_KINDS = new Set(["add", "pick", "select_all", "select_ids"]);
/** `fn` after the next frame is painted (at once, on the next task, without frames). */
function afterNextFrame(fn: () => void): void {
  if (typeof requestAnimationFrame === "function") requestAnimationFrame(() => setTimeout(fn, 0));
  else setTimeout(fn, 0);
}
/** A new viewed sample reaches the kernel at the latest this long after the click. */
export const VIEWED_SAVE_MAX_MS = 1000;

export class App extends State {
  readonly model: AnyModel;
  readonly requests: Requests;
  readonly decoders: Decoders;
  private readonly bus = new Bus();
  private readonly plotly: PlotlyLoader;
  private errorSeq = 0;
  /** True once the kernel side is gone (see `setDisconnected`). */
  disconnected = false;
  /** How the maps are coloured (scale.ts): a page-side setting of the viewer, no trait. */
  scale: Scale = "map";
  /** The bottom-right panel's tab (the ``side_panel`` trait): the Trust curve is computed only
   * while "trust" shows. */
  get sideTab(): "errors" | "trust" {
    return this.model.get("side_panel") === "trust" ? "trust" : "errors";
  }

  constructor(model: AnyModel) {
    super();
    this.model = model;
    this.requests = new Requests(this);
    this.decoders = decoders(this);
    this.plotly = new PlotlyLoader(() => this.requests.plotly(), (text) => this.pushError(text));
    this.history.note(model.get("slice"), model.get("selected") ?? []);
  }

  // ------------------------------------------------------------------ state
  get info(): Info {
    return this.model.get("_info");
  }
  get<K extends keyof Traits>(name: K): Traits[K] {
    return this.model.get(name);
  }
  /** Set a trait locally and (unless told otherwise) send it to the kernel now. A new viewed
   * sample whose analysis the page has just asked for is sent once that analysis is drawn
   * (or after VIEWED_SAVE_MAX_MS): the trait's message, the kernel's echo and two status
   * changes then no longer reach the page before the overlay. */
  setTrait<K extends keyof Traits>(name: K, value: Traits[K], save = true): void {
    this.model.set(name, value);
    if (!save) return;
    const key = name === "viewed" && !this.disconnected ? this.currentKey() : null;
    if (key && !this.analyses.has(keyString(key)) && !this.failed.has(keyString(key))) {
      if (!this.viewedTimer) this.viewedTimer = setTimeout(() => this.save(), VIEWED_SAVE_MAX_MS) as unknown as number;
      return;
    }
    this.save();
  }
  private viewedTimer = 0;
  labelName(i: number | null | undefined): string {
    if (i === null || i === undefined || i < 0) return "—";
    return this.info.label_names[i] ?? `class ${i}`;
  }
  /** A multi-label sample's classes by name ("none" for an empty set, "—" for no label). */
  setName(set: number[] | null | undefined): string {
    if (!set) return "—";
    return set.length ? set.map((c) => this.labelName(c)).join(", ") : "none";
  }

  keyFor(id: number, model?: string): AnalysisKey {
    return {
      model: model ?? this.get("model_name"),
      slice: this.get("slice"),
      id,
      algorithm: this.get("algorithm"),
      label: this.get("label") ?? null,
      connection: this.get("connection"),
      contrast: this.get("contrast") ?? null,
    };
  }
  /** The analysis key of the viewed sample (null when nothing is viewed). */
  currentKey(model?: string): AnalysisKey | null {
    const v = this.get("viewed");
    return v === null || v === undefined ? null : this.keyFor(v, model);
  }
  imageKey(id: number): string {
    return `${this.get("slice")}|${id}|${this.get("connection")}`;
  }
  analysisOf(k: AnalysisKey | null): Analysis | null {
    return k ? this.analyses.get(keyString(k)) ?? null : null;
  }
  gridIds(): number[] {
    return this.pageIds().slice(0, GRID_MAX);
  }
  pageIds(): number[] {
    const order = this.listIds();
    const pages = Math.max(1, Math.ceil(order.length / PAGE_SIZE));
    if (this.listPage >= pages) this.listPage = pages - 1;
    return order.slice(this.listPage * PAGE_SIZE, (this.listPage + 1) * PAGE_SIZE);
  }
  private orderMemo: { sel: number[]; sig: string; order: number[] } | null = null;
  /** The selection in the list's order (the sort is a view: `selected` keeps its own order). */
  listIds(): number[] {
    const sel = this.get("selected");
    const sp = this.sort;
    if (sp.by === "list") return sel;
    const sim = this.currentSimilar();
    const sig = `${sp.by}|${sp.desc}|${this.popKey()}|${this.valuesVersion}|${sim ? sim.ids.join(",") : ""}`;
    const m = this.orderMemo;
    if (m && m.sel === sel && m.sig === sig) return m.order;
    const order = sortIds(sel, sp, (id) => this.sortValue(id));
    this.orderMemo = { sel, sig, order };
    return order;
  }
  /** The value the list sorts `id` by (null: not known yet, or none). */
  sortValue(id: number): number | null {
    const by = this.sort.by;
    if (by === "similarity") return this.currentSimilar()?.sims.get(id) ?? null;
    if (by === "loss" || by === "confidence") {
      const v = this.values.get(this.rowKey(id));
      return v ? v[by] : null;
    }
    return id;
  }
  /** The last Fetch similar's answer when it is of the current model and slice. */
  currentSimilar() {
    const s = this.similar;
    return s && s.key === this.popKey() ? s : null;
  }
  /** Sort the list (its first page shows: the extremes of the column). */
  setSort(spec: SortSpec): void {
    this.sort = spec;
    this.listPage = 0;
    this.jumpTo = null;
    this.emit("page");
  }
  /** An analysis of the same sample and model as `k` (`k`'s own first): the prediction and the
   * true label do not depend on the algorithm, the label, the contrast or the connection. */
  sampleAnalysis(k: AnalysisKey | null): Analysis | null {
    if (!k) return null;
    const own = this.analysisOf(k);
    if (own) return own;
    for (const a of this.analyses.values()) {
      const q = a.meta.key;
      if (q.model === k.model && q.slice === k.slice && q.id === k.id) return a;
    }
    return null;
  }
  /** The error maps' keys when the viewed sample is known to be misclassified (else null). */
  errorKeys(): ErrorKeys | null {
    const cur = this.currentKey();
    if (!cur) return null;
    const a = this.sampleAnalysis(cur);
    let ec: ErrorClasses | null;
    if (a) {
      ec = errorClasses(verdictOf(a.meta));
    } else {
      // not analysed yet: the sample list's row already says (so all four maps go in the
      // request that the click sends, not in a second one after the first answer)
      const row = cur.model === this.get("model_name") ? this.rows.get(this.rowKey(cur.id)) : undefined;
      if (!row) return null;
      ec = errorClasses(verdictOfRow(row));
    }
    if (!ec) return null;
    return {
      pred: withLabel(cur, ec.pred),
      true: ec.truth === null ? null : withLabel(cur, ec.truth),
      loss: withLabel(cur, "loss"),
      classes: ec,
    };
  }
  setScale(s: Scale): void {
    if (s === this.scale) return;
    this.scale = s;
    this.emit("scale");
  }
  /** The raw range map `m` of `a` is coloured on under the current scale (scale.ts). */
  rangeFor(a: Analysis, m: DepthMap): Range {
    return scaleRange(this.scale, a, m, this.analyses.values());
  }
  /** With the scale "across labels": the key of the predicted class's maps, the reference the
   * viewed class is compared with, when the page holds none yet (null: not needed). */
  referenceKey(): AnalysisKey | null {
    const cur = this.currentKey();
    if (this.scale !== "labels" || !cur || scoreKind(cur) !== "class" || cur.label === null) return null;
    const own = this.sampleAnalysis(cur)?.meta;
    const row = cur.model === this.get("model_name") ? this.rows.get(this.rowKey(cur.id)) : undefined;
    const pred = own ? own.prediction : row?.prediction;
    if (typeof pred !== "number" || pred < 0 || pred === cur.label) return null;
    for (const a of this.analyses.values()) {
      if (sameGroup(a.meta.key, cur) && a.meta.target === pred) return null; // on the page
    }
    return withLabel(cur, pred);
  }
  /** Keys the viewer needs now: viewed sample, the compared model, the error maps, the grid. */
  neededKeys(): AnalysisKey[] {
    const out: AnalysisKey[] = [];
    const seen = new Set<string>();
    const add = (k: AnalysisKey) => {
      const s = keyString(k);
      if (!seen.has(s)) {
        seen.add(s);
        out.push(k);
      }
    };
    const cur = this.currentKey();
    const tab = this.get("tab");
    if (cur) add(cur);
    const cmp = this.get("compare");
    if (cur && cmp && cmp !== cur.model) add(this.keyFor(cur.id, cmp));
    const ek = this.errorKeys();
    if (ek) [ek.pred, ek.true, ek.loss].forEach((k) => k && add(k));
    const ref = this.referenceKey();
    if (ref) add(ref);
    if (this.get("grid") && tab === "CAM") {
      for (const id of this.gridIds()) {
        if (!cur || id !== cur.id) add(this.keyFor(id));
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
    const tab = this.get("tab");
    const v = this.get("viewed");
    if (v === null || tab === "CAM" || tab === "Input" || !this.info.visualizers.includes(tab)) return null;
    return `${tab}|${this.get("slice")}|${v}|${this.get("connection")}`;
  }

  // --------------------------------------------------------------- requests
  /** Ask the kernel for whatever the current state needs and the page lacks. */
  ensure(): void {
    this.requests.ensure();
  }
  /** Forget failures so that the next ensure() asks again (after a user action). */
  clearFailures(): void {
    this.failed.clear();
    this.rowsFailed = false;
    this.trustErrors.clear();
  }

  // ------------------------------------------------------------------ trust
  setSideTab(tab: "errors" | "trust"): void {
    if (tab === this.sideTab) return;
    this.setTrait("side_panel", tab);
    this.emit("side-tab");
  }
  /** The key whose Trust curve the page wants now: the viewed sample's, while the Trust tab
   * shows (null otherwise: nothing is computed for a hidden view). */
  trustKey(): AnalysisKey | null {
    return this.sideTab === "trust" ? this.currentKey() : null;
  }
  /** The depth the viewer shows: the trait, or the deepest of the viewed analysis (null: no
   * maps yet). */
  shownDepth(): number | null {
    const d = this.get("depth");
    if (d !== null) return d;
    const maps = this.analysisOf(this.currentKey())?.maps ?? [];
    return maps.length ? maps[maps.length - 1].depth : null;
  }
  /** Move the viewer to `depth`, as the controller's slider does (Custom, saved at once). */
  showDepth(depth: number): void {
    this.localDepth = null;
    this.setTrait("depth", depth);
    this.emit("depth");
  }
  /** The last sanity check of the viewed key (null: none yet). */
  sanityRun(): SanityRun | null {
    const k = this.currentKey();
    return k ? this.sanity.get(keyString(k)) ?? null : null;
  }
  /** *Sanity check*: the randomisation test of the viewed map at the depth shown. */
  runSanity(): void {
    const k = this.currentKey();
    const depth = this.shownDepth();
    if (!k || depth === null) return;
    const ks = keyString(k);
    const run = this.sanity.get(ks);
    if (this.sent.sanity === ks && run && run.depth === depth && !run.stages && !run.error) return; // running
    this.sanity.put(ks, { depth, done: 0, total: 0, layer: null, stages: null, error: null });
    this.sent.sanity = ks;
    this.requests.sanity(k, depth);
    this.emit("sanity");
  }
  /** Ask for a failed Trust curve again (its Retry button). */
  retryTrust(): void {
    const k = this.currentKey();
    if (k) this.trustErrors.delete(keyString(k));
    this.ensure();
    this.emit("trust");
  }
  /** Ask for the population again after an error (a user action). */
  retryPopulation(): void {
    this.requests.retryPopulation();
    this.ensure();
    this.emit("population");
  }
  /** The *Add* box: an integer id of the slice, else a message (the kernel checks again). */
  addSample(text: string): void {
    const t = text.trim();
    const n = this.info.slices[this.get("slice")] ?? 0;
    const slice = `slice '${this.get("slice")}'`; // worded as the kernel's check_id
    if (!/^\d+$/.test(t)) {
      const what = t ? `sample id '${t}' is not an integer` : "type a sample id (an integer)";
      this.pushError(`Add sample: ${what}; expected 0..${n - 1} for ${slice}`, "add");
      return;
    }
    const id = Number(t);
    if (id >= n) {
      this.pushError(`Add sample: sample id ${id} is out of range 0..${n - 1} for ${slice}`, "add");
      return;
    }
    this.clearFailures();
    this.requests.addSample(String(id));
  }
  selectAll(): void {
    this.requests.selectAll();
  }
  fetchSimilar(k: number): void {
    this.requests.fetchSimilar(k);
  }

  // ------------------------------------------------------- list editing
  /** The selection changed (from the page or the kernel): remember the one before for Undo;
   * a lasso or box that replaced a list says so. */
  noteSelection(): void {
    const sel = this.get("selected");
    const changed = this.history.note(this.get("slice"), sel);
    if (!changed) return;
    this.jumpTo = null;
    this.listNote = null;
    for (const e of this.errors) if (e.what && SELECTION_KINDS.has(e.what)) this.errors = [];
    const drawn = this.pendingDrawn;
    this.pendingDrawn = null;
    if (drawn && drawn.mode === "replace" && performance.now() - drawn.at < 30_000) {
      const now = new Set(sel);
      const out = drawn.before.filter((i) => !now.has(i)).length;
      if (out) {
        this.listNote = {
          text: `Lasso/box replaced the list: ${sel.length} in, ${out} of your ${drawn.before.length} out. Shift+drag adds.`,
          undo: true,
        };
      }
    }
  }
  private pendingDrawn: { before: number[]; mode: "replace" | "add"; at: number } | null = null;
  /** Set the selection from the page (Undo remembers the one before). */
  setSelection(ids: number[], viewed?: number | null): void {
    if (viewed !== undefined) this.model.set("viewed", viewed);
    this.model.set("selected", ids);
    this.save();
    this.noteSelection();
  }
  /** The row's ×: the sample leaves the list; viewed, its neighbour in the list is viewed. */
  removeSample(id: number): void {
    const sel = this.get("selected");
    if (!sel.includes(id)) return;
    const rest = sel.filter((i) => i !== id);
    let viewed: number | null | undefined;
    if (this.get("viewed") === id) {
      const order = this.listIds();
      const at = order.indexOf(id);
      viewed = order[at + 1] ?? order[at - 1] ?? null;
    }
    this.clearFailures();
    this.setSelection(rest, viewed);
    this.emit("selected");
  }
  clearList(): void {
    if (!this.get("selected").length) return;
    this.setSelection([], null);
    this.emit("selected");
  }
  /** Undo the last change of the selection (a few levels). */
  undo(): void {
    const past = this.history.undo(this.get("slice"));
    if (!past) return;
    const v = this.get("viewed");
    this.clearFailures();
    this.setSelection(past, v !== null && past.includes(v) ? v : past[0] ?? null);
    this.emit("selected");
  }
  /** The list page that holds `id` (in the list's order); false when it is not in the list. */
  showRow(id: number): boolean {
    const p = pageOf(this.listIds(), id, PAGE_SIZE);
    if (p < 0) return false;
    this.listPage = p;
    return true;
  }
  /** Click on a dot: the sample joins the list and is viewed. */
  pick(id: number): void {
    this.clearFailures();
    this.requests.pick(id);
  }
  /** A box/lasso selection: the ids travel as one Uint32Array buffer (a copy, never a view). */
  selectIds(ids: Uint32Array, mode: "replace" | "add"): void {
    this.clearFailures();
    this.lastSelectionSent = performance.now();
    this.pendingDrawn = { before: this.get("selected").slice(), mode, at: this.lastSelectionSent };
    this.requests.selectIds(ids, mode);
  }
  /** A hover thumbnail (object URL), asked for when missing; null until it arrives. */
  thumb(id: number): string | null {
    return this.requests.thumb(id);
  }
  loadPlotly(): Promise<Plotly> {
    return this.plotly.load();
  }

  // ---------------------------------------------------------------- answers
  onMessage(content: unknown, buffers: Buffer[] = []): void {
    if (this.disconnected) this.setDisconnected(false); // the kernel answers: it is there
    dispatch(this.decoders, content, buffers);
  }
  /** Send the changed traits to the kernel; without a kernel they stay on the page. */
  save(): void {
    clearTimeout(this.viewedTimer);
    this.viewedTimer = 0;
    if (this.disconnected) return;
    try {
      this.model.save_changes();
    } catch {
      this.setDisconnected(true); // the comm died before its close reached us
    }
  }
  /** Send one message to the kernel (nothing without a kernel). */
  send(content: PageRequest, buffers?: ArrayBufferView[]): void {
    if (this.disconnected) return;
    try {
      if (buffers) this.model.send(content, undefined, buffers);
      else this.model.send(content);
    } catch {
      this.setDisconnected(true);
    }
  }
  /** The widget's comm closed (a kernel restart or shutdown): nothing will answer until the
   * cell runs again. A later message from the kernel proves it back. */
  setDisconnected(gone: boolean): void {
    if (this.disconnected === gone) return;
    this.disconnected = gone;
    this.emit("connection");
  }
  installPlotly(buf: Buffer | undefined): void {
    this.plotly.install(buf);
  }

  /** Show an error: the newest only (it replaces the one shown). `what`: the request kind it
   * is about (a later success of that kind clears it); `rid`: the request that failed. */
  pushError(text: string, what: string | null = null, rid?: number | null): void {
    const kind = what ?? (typeof rid === "number" ? this.requests.kindOf(rid) : null);
    this.errors = [{ id: ++this.errorSeq, text, what: kind, after: this.requests.lastRid }];
    this.emit("error");
  }
  dismissError(id: number): void {
    this.errors = this.errors.filter((e) => e.id !== id);
    this.emit("error");
  }
  /** A reply of `kind` (a request kind) succeeded: it clears the banner when it answers a
   * request sent after the error, and is of the failed kind (any analysis clears any error). */
  answered(kind: string, rid: number | null | undefined): void {
    const e = this.errors[0];
    if (!e || typeof rid !== "number" || rid <= e.after) return;
    if (kind === "analyze" || kind === e.what || e.what === null) {
      this.errors = [];
    }
  }

  // ------------------------------------------------------------ listeners
  subscribe(fn: Listener): () => void {
    return this.bus.subscribe(fn);
  }
  /** Show the list page that holds the viewed sample. */
  followViewed(): void {
    if (this.jumpTo !== null && this.showRow(this.jumpTo)) return;
    const v = this.get("viewed");
    if (v !== null) this.showRow(v);
  }
  emit(reason: Reason): void {
    if (reason === "selected") this.noteSelection();
    if (reason === "viewed") this.jumpTo = null;
    if (reason === "viewed" || reason === "selected") this.followViewed();
    if (reason !== "depth") this.ensure();
    this.bus.emit(reason);
    // the viewed sample's overlay is drawn (or its error shown): its trait goes once that frame
    // is on screen (the kernel's echo and status changes would otherwise delay the frame)
    if (this.viewedTimer && (reason === "analysis" || reason === "error")) afterNextFrame(() => this.save());
  }
}
