import { afterEach, describe, expect, it, vi } from "vitest";
import { App } from "../app";
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
