import { afterEach, describe, expect, it, vi } from "vitest";
import { App } from "../app";
import type { AnyModel, Traits } from "../model";
import { decoders } from "../replies";
import { type PageRequest, REPLY_KINDS, REQUEST_KINDS, type RequestKind } from "../wire";

/** A fake anywidget model: traits in a plain object, sent messages recorded. */
function fakeModel(over: Partial<Traits> = {}) {
  const traits: Traits = {
    selected: [3, 7, 12],
    viewed: 7,
    algorithm: "gradcam",
    label: null,
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
