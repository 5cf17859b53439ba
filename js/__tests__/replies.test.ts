import { afterEach, describe, expect, it, vi } from "vitest";
import { App, VIEWED_SAVE_MAX_MS } from "../app";
import type { AnyModel, Traits } from "../model";
import { type AnalysisKey, keyString } from "../protocol";
import { decoders } from "../replies";
import { type AnalyzeRequest, type PageRequest, REPLY_KINDS, REQUEST_KINDS, type RequestKind } from "../wire";

/** A fake anywidget model: traits in a plain object, sent messages recorded. */
function fakeModel(over: Partial<Traits> = {}) {
  const traits: Traits = {
    selected: [3, 7, 12],
    viewed: 7,
    algorithm: "gradcam",
    label: null,
    contrast: null,
    connection: 0,
    depth: null,
    slice: "val",
    model_name: "a",
    compare: "b",
    colormap: "jet",
    opacity: 0.5,
    tab: "CAM",
    grid: true,
    color_by: "label",
    side_panel: "errors",
    _info: {
      models: ["a", "b"],
      slices: { val: 20 },
      n_inputs: { val: 1 },
      label_names: ["cat", "dog"],
      num_classes: 2,
      algorithms: [["gradcam", "GradCAM"]],
      colormaps: ["jet"],
      visualizers: ["hist"],
      similar: true,
      projection: "pca",
      columns: { val: [["label", "label"]] },
    },
    ...over,
  };
  const sent: { content: PageRequest; buffers?: (ArrayBuffer | ArrayBufferView)[] }[] = [];
  const model: AnyModel = {
    get: (name) => traits[name],
    set: (name, value) => {
      traits[name] = value;
    },
    save_changes: () => {},
    on: () => {},
    off: () => {},
    send: (content, _callbacks, buffers) => {
      sent.push(buffers ? { content, buffers } : { content });
    },
  };
  return { model, traits, sent };
}

afterEach(() => vi.unstubAllGlobals());

/** Put an analysis of the viewed key with maps at `depths` on the page (as if it arrived). */
function withMaps(app: App, depths: number[], key: AnalysisKey = app.currentKey()!): void {
  const maps = depths.map((depth) => ({ depth, name: `l${depth}`, shape: [4, 2, 2], layout: "NCHW", aliases: [], h: 2, w: 2, lo: 0, hi: 1, data: new Uint8Array(4), flat: false }));
  app.analyses.put(keyString(key), { meta: { key } as never, maps, image: null, pixels: null });
}

const BASELINES = { random: { deletion: 0.5, insertion: 0.6, draws: [0.05, 0.1, 0.15] }, edges: { deletion: 0.4, insertion: 0.7, draws: [] } };

function trustReply(key: AnalysisKey, depths: number[], last: boolean, baselines = false) {
  return {
    type: "trust", rid: 1, key, steps: 20, measure: "p", depths, layers: depths.map((d) => `l${d}`),
    deletion: depths.map(() => 0.2), insertion: depths.map((d) => 0.2 + d / 10), last,
    ...(baselines ? { baselines: BASELINES } : {}),
  };
}

describe("the Trust view's requests", () => {
  it("asks only while the Trust tab shows, for the depths it lacks, the baselines once per sample and target", () => {
    vi.stubGlobal("window", {});
    const { model, traits, sent } = fakeModel({ compare: null, grid: false });
    const app = new App(model);
    const key = app.currentKey()!;
    withMaps(app, [1, 2, 3, 4]);
    app.ensure();
    expect(sent.filter((s) => s.content.type === "trust")).toEqual([]); // hidden: nothing
    app.setSideTab("trust");
    const trust = () => sent.filter((s) => s.content.type === "trust").map((s) => s.content);
    expect(trust()).toEqual([{ type: "trust", rid: expect.any(Number), key, depth: 4, depths: null, baselines: true, steps: 20 }]);
    // the chunks arrive: nothing asked again meanwhile
    app.onMessage(trustReply(key, [4, 3, 2], false));
    app.onMessage(trustReply(key, [], false, true));
    expect(trust().length).toBe(1);
    expect(app.trust.get(keyString(key))!.points.size).toBe(3);
    // hidden before the last chunk: the computation is stopped (key null)
    app.setSideTab("errors");
    expect(trust()[1]).toEqual({ type: "trust", rid: expect.any(Number), key: null });
    // shown again: only the missing depth, no baselines (the page has them)
    app.setSideTab("trust");
    expect(trust()[2]).toMatchObject({ key, depths: [1], baselines: false });
    app.onMessage(trustReply(key, [1], true));
    expect(app.sent.trust).toBe("");
    // another algorithm: every depth again, but the same sample's baselines serve
    traits.algorithm = "layercam";
    withMaps(app, [1, 2, 3, 4]);
    app.emit("algorithm");
    expect(trust()[3]).toMatchObject({ key: { ...key, algorithm: "layercam" }, depths: null, baselines: false });
    // another sample while it runs: the old one is stopped by the newer request
    traits.viewed = 12;
    withMaps(app, [1, 2, 3, 4]);
    app.emit("viewed");
    const last = trust();
    expect(last[last.length - 1]).toMatchObject({ key: { ...key, algorithm: "layercam", id: 12 }, baselines: true });
    expect(last.length).toBe(6); // a stop (key null), then the new sample's
    expect(last[4]).toMatchObject({ key: null });
  });

  it("shows an error in the view and asks again after Retry", () => {
    vi.stubGlobal("window", {});
    const { model, sent } = fakeModel({ compare: null, grid: false });
    const app = new App(model);
    const key = app.currentKey()!;
    withMaps(app, [1, 2]);
    app.setSideTab("trust");
    app.onMessage({ type: "trust_error", rid: 1, request: "trust", key, depth: null, message: "ValueError: steps: 1 is out of range" });
    expect(app.trustErrors.get(keyString(key))).toMatch(/steps/);
    expect(app.errors).toEqual([]); // in the view, not the banner
    const n = sent.length;
    app.ensure();
    expect(sent.length).toBe(n); // not asked again by itself
    app.retryTrust();
    expect(sent.filter((s) => s.content.type === "trust").pop()!.content).toMatchObject({ type: "trust", key });
  });

  it("runs a sanity check with progress, and stops it when the sample changes", () => {
    vi.stubGlobal("window", {});
    const { model, traits, sent } = fakeModel({ compare: null, grid: false, depth: 2 });
    const app = new App(model);
    const key = app.currentKey()!;
    withMaps(app, [1, 2, 3]);
    const sanity = () => sent.filter((s) => s.content.type === "sanity").map((s) => s.content);
    app.runSanity();
    expect(sanity()).toEqual([{ type: "sanity", rid: expect.any(Number), key, depth: 2 }]);
    app.onMessage({ type: "sanity_progress", rid: 1, key, depth: 2, done: 1, total: 3 });
    expect(app.sanityRun()).toMatchObject({ depth: 2, done: 1, total: 3, stages: null });
    app.onMessage({ type: "sanity", rid: 1, key, depth: 2, layer: "l2", stages: [["fc", 0.4], ["conv", 0.1]] });
    expect(app.sanityRun()).toMatchObject({ stages: [["fc", 0.4], ["conv", 0.1]], layer: "l2" });
    app.runSanity(); // again: a second run
    traits.viewed = 3;
    app.emit("viewed");
    expect(sanity().length).toBe(3);
    expect(sanity()[2]).toMatchObject({ type: "sanity", key: null });
    traits.viewed = 7;
    expect(app.sanityRun()).toBeNull(); // the stopped run is forgotten, not shown half done
  });
});

describe("reply decoders", () => {
  it("has exactly one decoder per reply kind of wire.ts", () => {
    const { model } = fakeModel();
    const app = new App(model);
    expect(Object.keys(decoders(app)).sort()).toEqual([...REPLY_KINDS].sort());
    expect(Object.keys(app.decoders).sort()).toEqual([...REPLY_KINDS].sort());
  });

  it("ignores what is not a reply", () => {
    const { model, sent } = fakeModel();
    const app = new App(model);
    const seen: string[] = [];
    app.subscribe((r) => seen.push(r));
    for (const m of [null, undefined, 3, "rows", {}, { type: "nope" }, { type: "toString" }]) app.onMessage(m);
    expect(seen).toEqual([]);
    expect(sent).toEqual([]);
  });

  it("decodes a similar reply into the selection", () => {
    const { model, traits } = fakeModel();
    const app = new App(model);
    app.onMessage({ type: "similar", rid: 1, model: "a", slice: "val", query: [3], ids: [7, 9, 4], similarities: [1, 0.9, 0.8] });
    expect(traits.selected).toEqual([3, 7, 12, 9, 4]);
    expect(app.similar?.sims.get(9)).toBe(0.9);
  });
});

describe("population replies", () => {
  const coords = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
  const pop = (method: string, pending: boolean, columns: unknown[] = []) => ({
    type: "population", rid: null, model: "a", slice: "val", n: 2, layer: "l", source: "disk",
    method, note: null, umap_pending: pending, columns,
  });

  it("a later reply with the colours keeps the UMAP map that came before it", () => {
    const { model } = fakeModel();
    const app = new App(model);
    app.onMessage(pop("pca", true), [coords([0, 0, 1, 1])]); // the dots, UMAP running
    app.onMessage({ type: "population_coords", model: "a", slice: "val", method: "umap", note: null, umap_pending: false }, [coords([5, 5, 6, 6])]);
    const column = { key: "label", title: "True label", kind: "category", dtype: "uint8", categories: ["cat", "dog"] };
    // built before the UMAP map landed: says PCA, pending
    app.onMessage(pop("pca", true, [column]), [coords([0, 0, 1, 1]), new Uint8Array([0, 1])]);
    const p = app.pops.get("a|val")!;
    expect(p.method).toBe("umap");
    expect(p.umapPending).toBe(false);
    expect(Array.from(p.coords)).toEqual([5, 5, 6, 6]);
    expect(p.columns.map((c) => c.key)).toEqual(["label"]);
  });

  it("a failed statistics request ends the pass's phase on the page", () => {
    const { model } = fakeModel();
    const app = new App(model);
    app.onMessage({ type: "population_progress", model: "a", slice: "val", phase: "statistics", done: 5, total: 20 });
    expect(app.popProgress.get("a|val")?.done).toBe(5);
    app.onMessage({ type: "error", rid: 3, message: "ValueError: bad label", request: "stats" });
    expect(app.popProgress.has("a|val")).toBe(false);
  });
});

describe("request planner", () => {
  it("sends only request kinds of wire.ts, each with a fresh rid", () => {
    vi.stubGlobal("window", {});
    const { model, traits, sent } = fakeModel();
    const app = new App(model);
    app.ensure(); // analyze (viewed, compared, grid), rows, stats, population
    traits.tab = "hist";
    app.emit("tab"); // visual
    app.addSample("5");
    app.selectAll();
    app.fetchSimilar(4);
    app.pick(2);
    app.selectIds(new Uint32Array([1, 2, 3]), "add");
    app.setSort({ by: "loss", desc: true }); // values (the whole list's sort column)
    expect(app.thumb(9)).toBeNull();
    void app.loadPlotly();
    withMaps(app, [1, 2, 3]);
    app.setSideTab("trust"); // trust (the Trust tab shows)
    app.runSanity(); // sanity

    const kinds = sent.map((s) => s.content.type);
    for (const k of kinds) expect(REQUEST_KINDS).toContain(k);
    expect(new Set(kinds)).toEqual(new Set<RequestKind>(REQUEST_KINDS));
    const rids = sent.map((s) => s.content.rid);
    expect(rids).toEqual(rids.map((_, i) => i + 1));

    const analyze = sent.find((s) => s.content.type === "analyze")!.content;
    expect(analyze).toMatchObject({ type: "analyze", rid: 1 });
    expect(Object.keys(analyze)).toEqual(["type", "rid", "keys", "images"]);
    const sel = sent.find((s) => s.content.type === "select_ids")!;
    expect(sel.content).toEqual({ type: "select_ids", rid: sel.content.rid, mode: "add", slice: "val", n: 3 });
    expect(Array.from(sel.buffers![0] as Uint32Array)).toEqual([1, 2, 3]);
    expect(sent.filter((s) => s.buffers).length).toBe(1);
  });

  it("asks once for what is in flight", () => {
    const { model, sent } = fakeModel();
    const app = new App(model);
    app.ensure();
    const n = sent.length;
    app.ensure();
    expect(sent.length).toBe(n);
  });
});

/** The kernel's answer to `key`: one 1x1 map, the input's PNG when `image`. */
function answer(app: App, key: AnalysisKey, over: Record<string, unknown> = {}, image = true): void {
  const meta = {
    type: "analysis",
    rid: 1,
    key: { ...key, contrast: key.contrast ?? null },
    layers: [{ depth: 1, name: "l1", shape: [4, 1, 1], layout: "NCHW", aliases: [], h: 1, w: 1 }],
    input_size: [8, 8],
    task: "multiclass",
    explained: "predicted class",
    target: 1,
    prediction: 1,
    true_label: 0,
    loss: 1.2,
    num_classes: 2,
    probabilities: [0.3, 0.7],
    topk: [[1, 0.7], [0, 0.3]],
    image,
    ...over,
  };
  app.onMessage(meta, image ? [new Uint8Array([7]), new Uint8Array([137, 80, 78, 71])] : [new Uint8Array([7])]);
}

function analyzeRequests(sent: { content: PageRequest }[]): AnalyzeRequest[] {
  return sent.map((s) => s.content).filter((c): c is AnalyzeRequest => c.type === "analyze");
}

describe("error maps", () => {
  const single = { compare: null, grid: false } as const;

  it("asks for the prediction's, the true label's and the loss's maps of a misclassified sample", () => {
    const { model, traits, sent } = fakeModel({ ...single, contrast: 1 });
    const app = new App(model);
    app.ensure();
    const [first] = analyzeRequests(sent);
    const cur = app.currentKey()!;
    expect(cur).toEqual({ model: "a", slice: "val", id: 7, algorithm: "gradcam", label: null, connection: 0, contrast: 1 });
    expect(first.keys).toEqual([cur]);
    expect(first.images).toEqual([true]);

    answer(app, cur); // predicted dog (1), true cat (0)
    const second = analyzeRequests(sent)[1];
    const base = { model: "a", slice: "val", id: 7, algorithm: "gradcam", connection: 0, contrast: null };
    expect(second.keys).toEqual([
      { ...base, label: 1 },
      { ...base, label: 0 },
      { ...base, label: "loss" },
    ]);
    expect(second.images).toEqual([false, false, false]); // the input came with the first answer
    expect(app.errorKeys()).toMatchObject({ pred: second.keys[0], true: second.keys[1], loss: second.keys[2] });
    // (each answer re-asks what is still missing: the kernel keeps only the newest request)
    for (const k of second.keys) answer(app, k, {}, false);
    const n = analyzeRequests(sent).length;
    app.ensure();
    expect(analyzeRequests(sent).length).toBe(n);
    expect(app.neededKeys().every((k) => app.analyses.has(keyString(k)))).toBe(true);

    // Another algorithm: the sample is known to be misclassified, so one request asks for all
    // four, and the one input they share comes once.
    app.images.clear();
    traits.algorithm = "layercam";
    app.emit("algorithm");
    expect(analyzeRequests(sent).length).toBe(n + 1);
    const third = analyzeRequests(sent)[n];
    const keys = third.keys.map(keyString);
    expect(keys).toEqual([
      "a|val|7|layercam|pred|0|vs1",
      "a|val|7|layercam|1|0",
      "a|val|7|layercam|0|0",
      "a|val|7|layercam|loss|0",
    ]);
    expect(third.images).toEqual([true, false, false, false]);
  });

  it("does not ask for them when the prediction is right, without a true label, or for a regression", () => {
    const cases: Record<string, unknown>[] = [
      { prediction: 0, true_label: 0 },
      { prediction: 1, true_label: null, loss: null },
      { task: "regression", prediction: 0, true_label: 3, probabilities: null, topk: [], loss: null },
    ];
    for (const over of cases) {
      const { model, sent } = fakeModel(single);
      const app = new App(model);
      app.ensure();
      answer(app, app.currentKey()!, over);
      expect(analyzeRequests(sent).length).toBe(1);
      expect(app.errorKeys()).toBeNull();
    }
  });

  it("a key that is already needed is not asked twice (label = loss)", () => {
    const { model, sent } = fakeModel({ ...single, label: "loss" });
    const app = new App(model);
    app.ensure();
    answer(app, app.currentKey()!);
    const second = analyzeRequests(sent)[1];
    expect(second.keys.map((k) => k.label)).toEqual([1, 0]);
    expect(app.neededKeys().map(keyString)).toEqual([
      "a|val|7|gradcam|loss|0",
      "a|val|7|gradcam|1|0",
      "a|val|7|gradcam|0|0",
    ]);
  });
});

describe("a new viewed sample reaches the kernel", () => {
  function counting() {
    const made = fakeModel({ compare: null, grid: false });
    let saves = 0;
    made.model.save_changes = () => {
      saves += 1;
    };
    return { ...made, saves: () => saves };
  }

  it("after its analysis arrived, not before: the overlay's reply does not queue behind it", () => {
    vi.useFakeTimers();
    try {
      const { model, sent, saves } = counting();
      const app = new App(model);
      app.setTrait("viewed", 12);
      app.emit("viewed"); // what the model's change event does (index.ts)
      const asked = sent.map((s) => s.content).filter((c) => c.type === "analyze");
      expect(asked.length).toBe(1); // the analysis is asked for at once
      expect(saves()).toBe(0); // the trait waits for it
      withMaps(app, [1, 2]);
      app.emit("analysis");
      expect(saves()).toBe(0); // after the panels drew, on the next task
      vi.advanceTimersByTime(0);
      expect(saves()).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it("at once when the page has its analysis, and within VIEWED_SAVE_MAX_MS when no reply comes", () => {
    vi.useFakeTimers();
    try {
      const { model, saves } = counting();
      const app = new App(model);
      withMaps(app, [1, 2], app.keyFor(3));
      app.setTrait("viewed", 3);
      expect(saves()).toBe(1);
      app.setTrait("viewed", 12); // nothing of 12 on the page, and no answer comes
      expect(saves()).toBe(1);
      vi.advanceTimersByTime(VIEWED_SAVE_MAX_MS);
      expect(saves()).toBe(2);
      app.setTrait("algorithm", "gradcam"); // any other trait goes at once
      expect(saves()).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });
});
