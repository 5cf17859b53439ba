// The reply decoder: one function per kind of kernel message, filling the page's caches.
// The table's type names every ReplyKind, so tsc fails when a kind has no decoder.
import type { App } from "./app";
import { type Analysis, type AnalysisMeta, type Buffer, decodeAnalysis, keyString, toBytes } from "./protocol";
import { decodeColumn } from "./scatter/colors";
import type { Visual } from "./state";
import { baselineKey } from "./trust";
import type { KernelReply, Reply, ReplyKind } from "./wire";

export type Decoders = { [K in ReplyKind]: (msg: Reply<K>, buffers: Buffer[]) => void };

function png(buf: Buffer): string {
  return URL.createObjectURL(new Blob([toBytes(buf) as BlobPart], { type: "image/png" }));
}

/** The decoders, writing into `app`. */
export function decoders(app: App): Decoders {
  return {
    analysis: (meta, buffers) => onAnalysis(app, meta, buffers),
    rows: (content, buffers) => {
      content.rows.forEach((r, i) => {
        const url = png(buffers[i]);
        const key = `${content.model}|${content.slice}|${r.id}`;
        app.rows.put(key, { ...r, thumb: url });
        app.values.put(key, { loss: r.loss, confidence: r.confidence ?? null });
      });
      app.valuesVersion++;
      app.sent.rows = "";
      app.answered("rows", content.rid);
      app.emit("rows");
    },
    values: (content) => {
      content.ids.forEach((id, i) => {
        app.values.put(`${content.model}|${content.slice}|${id}`, {
          loss: content.loss[i] ?? null,
          confidence: content.confidence[i] ?? null,
        });
      });
      app.valuesVersion++;
      app.sent.values = "";
      app.answered("values", content.rid);
      app.emit("rows");
    },
    stats: (content) => {
      app.stats.set(`${content.model}|${content.slice}`, content);
      app.answered("stats", content.rid);
      app.emit("stats");
    },
    visual: (content, buffers) => {
      const v: Visual = { ...content };
      if (content.kind === "image" && buffers.length) v.url = png(buffers[0]);
      app.visuals.put(`${content.name}|${content.slice}|${content.id}|${content.connection}`, v);
      app.sent.visual = "";
      app.answered("visual", content.rid);
      app.emit("visual");
    },
    plotly_js: (_content, buffers) => app.installPlotly(buffers[0]),
    population: (content, buffers) => {
      app.popReceivedAt = performance.now();
      app.answered("population", content.rid);
      onPopulation(app, content, buffers);
    },
    population_progress: (content) => {
      app.popProgress.set(`${content.model}|${content.slice}`, { phase: content.phase, done: content.done, total: content.total });
      app.emit("population-progress");
    },
    population_coords: (content, buffers) => {
      const p = app.pops.get(`${content.model}|${content.slice}`);
      if (p && buffers.length) {
        p.coords = new Float32Array(toBytes(buffers[0]).slice().buffer);
        p.method = content.method;
        p.note = content.note ?? null;
        p.umapPending = !!content.umap_pending;
        p.version++;
        app.emit("population-coords");
      }
    },
    population_error: (content) => {
      const pk = `${content.model}|${content.slice}`;
      app.popErrors.set(pk, content.message);
      app.sent.pop.delete(pk);
      app.emit("population");
    },
    similar: (content) => onSimilar(app, content),
    thumb: (content, buffers) => {
      const url = png(buffers[0]);
      app.thumbs.put(`${content.slice}|${content.id}`, url);
      if (app.sent.thumb === `${content.slice}|${content.id}`) app.sent.thumb = "";
      app.emit("thumb");
    },
    trust: (content) => {
      const ks = keyString(content.key);
      let curve = app.trust.get(ks);
      if (!curve || curve.steps !== content.steps) {
        curve = { steps: content.steps, measure: content.measure, points: new Map() };
        app.trust.put(ks, curve);
      }
      const c = curve;
      content.depths.forEach((d, i) => {
        c.points.set(d, { layer: content.layers[i], deletion: content.deletion[i], insertion: content.insertion[i] });
      });
      if (content.baselines) app.trustBaselines.put(baselineKey(content.key, content.steps), content.baselines);
      if (content.last && app.sent.trust === ks) app.sent.trust = "";
      app.emit("trust");
    },
    sanity_progress: (content) => {
      const ks = keyString(content.key);
      const run = app.sanity.get(ks);
      if (!run || run.depth !== content.depth || run.stages) return; // not the run shown
      run.done = content.done;
      run.total = content.total;
      app.emit("sanity");
    },
    sanity: (content) => {
      const ks = keyString(content.key);
      const shown = app.sanity.get(ks);
      // an older run at another depth that finished anyway: not the one now pending
      if (shown && !shown.stages && !shown.error && shown.depth !== content.depth) return;
      app.sanity.put(ks, {
        depth: content.depth,
        done: content.stages.length,
        total: content.stages.length,
        layer: content.layer,
        stages: content.stages,
        error: null,
      });
      if (app.sent.sanity === ks) app.sent.sanity = "";
      app.emit("sanity");
    },
    trust_error: (content) => {
      const ks = keyString(content.key);
      if (content.request === "trust") {
        app.trustErrors.set(ks, content.message);
        if (app.sent.trust === ks) app.sent.trust = "";
        app.emit("trust");
        return;
      }
      const run = app.sanity.get(ks);
      app.sanity.put(ks, { depth: content.depth ?? run?.depth ?? 0, done: 0, total: 0, layer: null, stages: null, error: content.message });
      if (app.sent.sanity === ks) app.sent.sanity = "";
      app.emit("sanity");
    },
    error: (content) => {
      if (content.key) {
        const ks = keyString(content.key);
        app.failed.set(ks, content.message);
        app.sent.analyze = app.sent.analyze.split(";").filter((s) => s && s !== ks).join(";");
      }
      if (content.request === "rows") app.rowsFailed = true;
      // the statistics failed: their phase (the pass's progress) is over, not running
      if (content.request === "stats") {
        app.popProgress.delete(app.popKey());
        app.emit("population-progress");
      }
      app.pushError(content.message, content.key ? "analyze" : content.request ?? null, content.rid);
    },
  };
}

/** Hand one custom message to its decoder; anything else is ignored. */
export function dispatch(table: Decoders, content: unknown, buffers: Buffer[]): void {
  if (!content || typeof content !== "object") return;
  const kind = (content as { type?: unknown }).type;
  if (typeof kind !== "string" || !Object.prototype.hasOwnProperty.call(table, kind)) return;
  const decode = table[kind as ReplyKind] as (msg: KernelReply, buffers: Buffer[]) => void;
  decode(content as KernelReply, buffers);
}

function onAnalysis(app: App, meta: AnalysisMeta, buffers: Buffer[]): void {
  let a: Analysis;
  try {
    a = decodeAnalysis(meta, buffers);
  } catch (e) {
    app.pushError(String(e));
    return;
  }
  const ks = keyString(meta.key);
  // Every answer is cached by its key; it is shown only if the page still wants that key, so a
  // stale answer can never replace a newer one on screen.
  app.analyses.put(ks, a);
  if (a.image) app.images.put(`${meta.key.slice}|${meta.key.id}|${meta.key.connection}`, a.image);
  if (typeof meta.rid === "number") app.lastAnswerRid = Math.max(app.lastAnswerRid, meta.rid);
  // answered: no longer on its way (if it is evicted and needed again, it is asked again)
  app.sent.analyze = app.sent.analyze.split(";").filter((s) => s && s !== ks).join(";");
  app.answered("analyze", meta.rid);
  app.emit("analysis");
}

/** *Fetch similar*'s answer: the new neighbours join the list, which shows their page, marks
 * them and says what happened (or, with nothing to add, why). */
function onSimilar(app: App, content: Reply<"similar">): void {
  const key = `${content.model}|${content.slice}`;
  const sims = new Map<number, number>();
  content.ids.forEach((id, i) => sims.set(id, content.similarities[i]));
  const sim = { key, query: content.query, ids: content.ids, sims, added: new Set<number>() };
  app.similar = sim;
  app.answered("similar", content.rid);
  if (key === app.popKey()) {
    const sel = app.get("selected");
    const have = new Set(sel);
    const add = content.ids.filter((i) => !have.has(i));
    add.forEach((i) => sim.added.add(i));
    if (add.length) app.setSelection([...sel, ...add]);
    if (content.note) {
      app.listNote = { text: content.note };
    } else if (!add.length) {
      app.listNote = { text: `Fetch similar: nothing new to add; the ${content.ids.length} most similar samples are in the list already.` };
    } else {
      const order = app.listIds();
      const first = order.find((i) => sim.added.has(i))!;
      app.jumpTo = first;
      app.showRow(first);
      const at = order.indexOf(first);
      const together = order.slice(at, at + add.length).every((i) => sim.added.has(i));
      const where = together ? ` as rows ${at + 1}–${at + add.length}` : "";
      app.listNote = {
        text: `Fetch similar added ${add.length} sample${add.length === 1 ? "" : "s"}${where}.`,
      };
    }
  }
  app.emit("similar");
}

function onPopulation(app: App, content: Reply<"population">, buffers: Buffer[]): void {
  const key = `${content.model}|${content.slice}`;
  const n = content.n;
  try {
    let coords: Float32Array = new Float32Array(toBytes(buffers[0]).slice().buffer);
    if (coords.length !== 2 * n) throw new Error(`population: ${coords.length / 2} points, expected ${n}`);
    const columns = content.columns.map((m, i) => decodeColumn(m, buffers[i + 1], n));
    // a reply built before the UMAP map came (the colours' second reply) keeps that map
    const had = app.pops.get(key);
    let method = content.method;
    let umapPending = !!content.umap_pending;
    let note = content.note ?? null;
    if (had && had.n === n && had.method === "umap" && !had.umapPending && method !== "umap") {
      coords = had.coords;
      method = had.method;
      umapPending = false;
      note = had.note;
    }
    app.pops.set(key, {
      key,
      model: content.model,
      slice: content.slice,
      n,
      coords,
      method,
      note,
      umapPending,
      layer: content.layer ?? null,
      columns,
      version: 0,
    });
    app.popErrors.delete(key);
  } catch (e) {
    app.popErrors.set(key, String(e));
    app.pushError(String(e));
  }
  app.emit("population");
}
