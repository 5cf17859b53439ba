import { describe, expect, it } from "vitest";
import { App } from "../app";
import type { AnyModel, Traits } from "../model";
import type { PageRequest } from "../wire";

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
    compare: null,
    colormap: "jet",
    opacity: 0.5,
    tab: "CAM",
    grid: false,
    color_by: "label",
    side_panel: "errors",
    _info: {
      models: ["a"],
      slices: { val: 500 },
      n_inputs: { val: 1 },
      label_names: ["cat", "dog"],
      num_classes: 2,
      algorithms: [["gradcam", "GradCAM"]],
      colormaps: ["jet"],
      visualizers: [],
      similar: true,
      projection: "pca",
      columns: { val: [["label", "label"]] },
    },
    ...over,
  };
  const sent: PageRequest[] = [];
  const model: AnyModel = {
    get: (name) => traits[name],
    set: (name, value) => {
      traits[name] = value;
    },
    save_changes: () => {},
    on: () => {},
    off: () => {},
    send: (content) => {
      sent.push(content);
    },
  };
  return { model, traits, sent };
}

describe("list editing", () => {
  it("removes a row, clears, and undoes each change", () => {
    const { model, traits } = fakeModel();
    const app = new App(model);
    app.removeSample(7); // the viewed one: its neighbour is viewed
    expect(traits.selected).toEqual([3, 12]);
    expect(traits.viewed).toBe(12);
    app.clearList();
    expect(traits.selected).toEqual([]);
    expect(traits.viewed).toBeNull();
    app.undo();
    expect(traits.selected).toEqual([3, 12]);
    app.undo();
    expect(traits.selected).toEqual([3, 7, 12]);
    expect(app.history.size("val")).toBe(0);
    app.undo(); // nothing more: unchanged
    expect(traits.selected).toEqual([3, 7, 12]);
  });

  it("remembers changes that came from the kernel (a lasso, Select all)", () => {
    const { model, traits } = fakeModel();
    const app = new App(model);
    app.selectIds(new Uint32Array([40, 41]), "replace");
    traits.selected = [40, 41]; // the kernel's answer
    app.emit("selected");
    expect(app.listNote?.text).toContain("replaced the list");
    expect(app.listNote?.undo).toBe(true);
    app.undo();
    expect(traits.selected).toEqual([3, 7, 12]);
    expect(app.listNote).toBeNull();
  });

  it("sorts the whole list by the values the kernel sent, and asks for the missing", () => {
    const { model, traits, sent } = fakeModel({ selected: Array.from({ length: 300 }, (_, i) => i), viewed: 0 });
    const app = new App(model);
    app.setSort({ by: "loss", desc: true });
    const ask = sent.find((m) => m.type === "values");
    expect(ask && ask.type === "values" && ask.ids.length).toBe(300);
    const loss = traits.selected.map((i) => (i * 37) % 101);
    app.onMessage({ type: "values", rid: 9, model: "a", slice: "val", ids: traits.selected, loss, confidence: loss.map(() => null) });
    const order = app.listIds();
    const want = [...traits.selected].sort((a, b) => loss[b] - loss[a] || a - b);
    expect(order).toEqual(want);
    expect(app.pageIds()).toEqual(want.slice(0, 200));
    expect(traits.selected[0]).toBe(0); // the selection keeps its own order
  });

  it("shows the page of the rows Fetch similar added and marks them", () => {
    const sel = Array.from({ length: 339 }, (_, i) => i);
    const { model, traits } = fakeModel({ selected: sel, viewed: 0 });
    const app = new App(model);
    expect(app.listPage).toBe(0);
    const ids = [400, 401, 402];
    app.onMessage({ type: "similar", rid: 3, model: "a", slice: "val", query: sel, ids, similarities: [0.9, 0.8, 0.7] });
    expect(traits.selected.slice(-3)).toEqual(ids);
    expect(app.listPage).toBe(1);
    expect(app.jumpTo).toBe(400);
    expect(app.pageIds()).toContain(401);
    expect([...app.similar!.added]).toEqual(ids);
    expect(app.listNote?.text).toContain("added 3 samples as rows 340–342");
    app.undo();
    expect(traits.selected).toEqual(sel);
  });

  it("says why Fetch similar added nothing", () => {
    const { model, traits } = fakeModel();
    const app = new App(model);
    const note = "Fetch similar: nothing left to add: all 500 samples of slice 'val' are in the list already.";
    app.onMessage({ type: "similar", rid: 3, model: "a", slice: "val", query: [3], ids: [], similarities: [], note });
    expect(app.listNote?.text).toBe(note);
    expect(traits.selected).toEqual([3, 7, 12]);
  });
});

describe("the error banner", () => {
  it("shows the newest error only, cleared by a later success of what failed", () => {
    const { model, traits, sent } = fakeModel();
    const app = new App(model);
    app.addSample("1e2");
    app.addSample("1.5");
    expect(app.errors.map((e) => e.text)).toEqual(["Add sample: sample id '1.5' is not an integer; expected 0..499 for slice 'val'"]);
    app.addSample("");
    expect(app.errors).toHaveLength(1);
    expect(app.errors[0].text).toContain("type a sample id");
    expect(sent.filter((m) => m.type === "add")).toEqual([]);
    app.addSample(" 42 ");
    expect(sent.filter((m) => m.type === "add").map((m) => m.type === "add" && m.id)).toEqual(["42"]);
    traits.selected = [3, 7, 12, 42]; // the kernel's answer
    app.emit("selected");
    expect(app.errors).toEqual([]);
  });

  it("keeps a kernel error until an answer sent after it succeeds", () => {
    const { model } = fakeModel();
    const app = new App(model);
    app.ensure();
    const last = app.requests.lastRid;
    app.onMessage({ type: "error", message: "ValueError: boom", rid: last, request: "rows" });
    app.onMessage({ type: "error", message: "ValueError: bang", rid: last, request: "rows" });
    expect(app.errors.map((e) => e.text)).toEqual(["ValueError: bang"]);
    app.answered("rows", last); // the same (or an older) request: stays
    expect(app.errors).toHaveLength(1);
    app.answered("stats", last + 5); // another kind: stays
    expect(app.errors).toHaveLength(1);
    app.answered("analyze", last + 1); // any later analysis
    expect(app.errors).toEqual([]);
    app.pushError("x");
    app.dismissError(app.errors[0].id);
    expect(app.errors).toEqual([]);
  });
});
