// Page-side state and what the panels call: the traits, the keys the page needs, and a facade
// over the caches (state.ts), the request planner (requests.ts), the reply decoder
// (replies.ts), plotly.js (plotly.ts) and the event bus (events.ts).
import { Bus, type Listener, type Reason } from "./events";
import type { AnyModel, Traits } from "./model";
import { type Plotly, PlotlyLoader } from "./plotly";
import { type Analysis, type AnalysisKey, type Buffer, type ErrorClasses, errorClasses, keyString, verdictOf, verdictOfRow, withLabel } from "./protocol";
import { type Decoders, decoders, dispatch } from "./replies";
import { Requests } from "./requests";
import { GRID_MAX, PAGE_SIZE, type Population, State } from "./state";
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

export class App extends State {
  readonly model: AnyModel;
  readonly requests: Requests;
  readonly decoders: Decoders;
  private readonly bus = new Bus();
  private readonly plotly: PlotlyLoader;
  private errorSeq = 0;
  /** True once the kernel side is gone (see `setDisconnected`). */
  disconnected = false;

  constructor(model: AnyModel) {
    super();
    this.model = model;
    this.requests = new Requests(this);
    this.decoders = decoders(this);
    this.plotly = new PlotlyLoader(() => this.requests.plotly(), (text) => this.pushError(text));
  }

  // ------------------------------------------------------------------ state
  get info(): Info {
    return this.model.get("_info");
  }
  get<K extends keyof Traits>(name: K): Traits[K] {
    return this.model.get(name);
  }
  /** Set a trait locally and (unless told otherwise) send it to the kernel now. */
  setTrait<K extends keyof Traits>(name: K, value: Traits[K], save = true): void {
    this.model.set(name, value);
    if (save) this.save();
  }
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
    const sel = this.get("selected");
    const start = this.listPage * PAGE_SIZE;
    return sel.slice(start, start + PAGE_SIZE).slice(0, GRID_MAX);
  }
  pageIds(): number[] {
    const sel = this.get("selected");
    const pages = Math.max(1, Math.ceil(sel.length / PAGE_SIZE));
    if (this.listPage >= pages) this.listPage = pages - 1;
    return sel.slice(this.listPage * PAGE_SIZE, (this.listPage + 1) * PAGE_SIZE);
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
  }
  /** Ask for the population again after an error (a user action). */
  retryPopulation(): void {
    this.requests.retryPopulation();
    this.ensure();
    this.emit("population");
  }
  addSample(text: string): void {
    this.requests.addSample(text);
  }
  selectAll(): void {
    this.requests.selectAll();
  }
  fetchSimilar(k: number): void {
    this.requests.fetchSimilar(k);
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
  subscribe(fn: Listener): () => void {
    return this.bus.subscribe(fn);
  }
  /** Show the list page that holds the viewed sample. */
  followViewed(): void {
    const v = this.get("viewed");
    const i = v === null ? -1 : this.get("selected").indexOf(v);
    if (i >= 0) this.listPage = Math.floor(i / PAGE_SIZE);
  }
  emit(reason: Reason): void {
    if (reason === "viewed" || reason === "selected") this.followViewed();
    if (reason !== "depth") this.ensure();
    this.bus.emit(reason);
  }
}
