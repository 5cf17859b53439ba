import { describe, expect, it } from "vitest";
import { App } from "../app";
import { lut } from "../colormap";
import type { AnyModel, Traits } from "../model";
import { composite } from "../overlay";
import { scoreText } from "../panels/controller";
import type { Analysis, AnalysisKey, AnalysisMeta, DepthMap } from "../protocol";
import { fmtValue, rangeOfMap, remap, remapTable, sameGroup, scaleRange, scoreKind } from "../scale";
import type { AnalyzeRequest, PageRequest } from "../wire";

const KEY: AnalysisKey = { model: "m", slice: "val", id: 3, algorithm: "gradcam", label: 1, connection: 0, contrast: null };

function depthMap(depth: number, lo: number, hi: number): DepthMap {
  return { depth, name: `l${depth}`, shape: [4, 1, 2], layout: "NCHW", aliases: [], h: 1, w: 2, lo, hi, data: new Uint8Array([0, 255]), flat: false };
}

/** An analysis of `key` whose maps (one per depth 1, 2, ...) have the raw ranges `ranges`. */
function analysis(key: AnalysisKey, ranges: [number, number][], target = 1): Analysis {
  const maps = ranges.map(([lo, hi], i) => depthMap(i + 1, lo, hi));
  const meta = { type: "analysis", key, target, prediction: 1, layers: maps, score: 1, score_name: "logit" } as unknown as AnalysisMeta;
  return { meta, maps, image: null, pixels: null };
}

describe("remapping a map's bytes onto a shared scale", () => {
  it("two maps with ranges [0, 10] and [0, 1] across labels: the second's maximum colours at index 26", () => {
    const strong = analysis(KEY, [[0, 10]]);
    const weak = analysis({ ...KEY, label: 4 }, [[0, 1]], 4);
    const all = [strong, weak];
    // the shared range: the union of both maps' ranges
    expect(scaleRange("labels", weak, weak.maps[0], all)).toEqual([0, 10]);
    expect(scaleRange("labels", strong, strong.maps[0], all)).toEqual([0, 10]);
    // by hand: u = 255 stands for 0 + 255 / 255 * (1 - 0) = 1; on [0, 10]: 255 * 1 / 10 = 25.5 -> 26
    const index = remap(0, 1, 0, 10);
    expect(index[255]).toBe(26);
    expect(index[0]).toBe(0);
    expect(index[128]).toBe(Math.round((255 * (128 / 255)) / 10)); // 12.8 -> 13
    // the strong map keeps its bytes
    expect(Array.from(remap(0, 10, 0, 10))).toEqual(Array.from({ length: 256 }, (_, u) => u));
    // per map, both stretch to the top
    expect(scaleRange("map", weak, weak.maps[0], all)).toEqual([0, 1]);
    expect(remap(0, 1, 0, 1)[255]).toBe(255);
  });

  it("folds the remap into the colormap: the pixel work stays one lookup", () => {
    const table = remapTable(lut("gray"), remap(0, 1, 0, 10));
    expect(table.length).toBe(768);
    expect([table[3 * 255], table[3 * 255 + 1], table[3 * 255 + 2]]).toEqual([26, 26, 26]);
    const base = new Uint8ClampedArray([0, 0, 0, 255, 0, 0, 0, 255]);
    const out = new Uint8ClampedArray(8);
    composite(base, new Float32Array([0, 255]), table, 1, out);
    expect(Array.from(out)).toEqual([0, 0, 0, 255, 26, 26, 26, 255]);
    // a jet table: the weak map's top is jet's colour 26, not jet's top
    const jet = lut("jet");
    const t2 = remapTable(jet, remap(0, 1, 0, 10));
    expect(Array.from(t2.slice(765, 768))).toEqual(Array.from(jet.slice(78, 81)));
  });

  it("an offset range: a map of [2, 4] on [0, 8] runs from index 64 to 128", () => {
    const index = remap(2, 4, 0, 8);
    expect(index[0]).toBe(64); // 255 * 2 / 8 = 63.75
    expect(index[255]).toBe(128); // 255 * 4 / 8 = 127.5 -> 128
  });

  it("a constant map sits at its value; an empty scale gives 0", () => {
    expect(Array.from(new Set(remap(5, 5, 0, 10)))).toEqual([128]); // 127.5 -> 128
    expect(Array.from(new Set(remap(3, 3, 3, 3)))).toEqual([0]);
    expect(rangeOfMap({ lo: undefined as unknown as number, hi: 2 })).toEqual([0, 1]);
  });

  it("across depths: one analysis's maps share one range", () => {
    const a = analysis(KEY, [[0, 2], [1, 8], [0, 0.5]]);
    expect(scaleRange("depths", a, a.maps[2])).toEqual([0, 8]);
    expect(remap(0, 0.5, 0, 8)[255]).toBe(16); // 15.9375
  });

  it("across labels: only maps of the same sample, algorithm, connection, depth and kind of score", () => {
    const a = analysis(KEY, [[0, 1], [0, 2]]);
    const others = [
      analysis({ ...KEY, label: null }, [[0, 5], [0, 6]]), // the predicted class: yes
      analysis({ ...KEY, label: "loss" }, [[0, 100], [0, 100]]), // the loss: other units
      analysis({ ...KEY, contrast: 0 }, [[0, 100], [0, 100]]), // a logit difference
      analysis({ ...KEY, algorithm: "layercam" }, [[0, 100], [0, 100]]),
      analysis({ ...KEY, id: 4 }, [[0, 100], [0, 100]]),
      analysis({ ...KEY, connection: 1 }, [[0, 100], [0, 100]]),
      analysis({ ...KEY, model: "other" }, [[0, 100], [0, 100]]),
    ];
    expect(scaleRange("labels", a, a.maps[0], [a, ...others])).toEqual([0, 5]);
    expect(scaleRange("labels", a, a.maps[1], [a, ...others])).toEqual([0, 6]);
    expect(scoreKind({ ...KEY, label: "loss" })).toBe("loss");
    expect(scoreKind({ ...KEY, contrast: 2 })).toBe("contrast");
    expect(sameGroup({ ...KEY, contrast: 2 }, { ...KEY, label: null, contrast: 0 })).toBe(true);
    const loss = others[1];
    expect(scaleRange("labels", loss, loss.maps[0], [a, ...others])).toEqual([0, 100]);
  });

  it("is fast: 256 entries per (map, scale), whatever the canvas size", () => {
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) remapTable(lut("jet"), remap(0, Math.random(), 0, 10));
    expect(performance.now() - t0).toBeLessThan(1000); // ~1 µs each; a loose bound
  });
});

describe("legend numbers and the explained score", () => {
  it("formats raw values short", () => {
    expect(fmtValue(0)).toBe("0");
    expect(fmtValue(0.0123456)).toBe("0.0123");
    expect(fmtValue(3.21)).toBe("3.21");
    expect(fmtValue(1234.5)).toBe("1230");
    expect(fmtValue(123456)).toBe("1.23e+5");
    expect(fmtValue(0.00001234)).toBe("1.23e-5");
  });

  it("names the score and the probability", () => {
    const m = { score: 3.2104, score_name: "logit" } as AnalysisMeta;
    expect(scoreText(m, 0.9731)).toBe(" · score (logit) 3.210 · p 0.973");
    expect(scoreText({ ...m, score_name: "loss" }, null)).toBe(" · score (loss) 3.210");
    expect(scoreText({ ...m, score: null }, 0.5)).toBe(" · p 0.500");
  });
});

describe("the page asks for the predicted class's maps as the reference", () => {
  function fakeModel(over: Partial<Traits> = {}) {
    const traits = {
      selected: [3], viewed: 3, algorithm: "gradcam", label: 4, contrast: null, connection: 0, depth: null,
      slice: "val", model_name: "m", compare: null, colormap: "jet", opacity: 0.5, tab: "CAM", grid: false,
      color_by: "label",
      side_panel: "errors",
      _info: {
        models: ["m"], slices: { val: 10 }, n_inputs: { val: 1 }, label_names: ["a", "b", "c", "d", "e"],
        num_classes: 5, algorithms: [["gradcam", "GradCAM"]], colormaps: ["jet"], visualizers: [],
        similar: false, projection: "pca", columns: {},
      },
      ...over,
    } as Traits;
    const sent: PageRequest[] = [];
    const model = {
      get: (name: keyof Traits) => traits[name],
      set: (name: keyof Traits, value: never) => { traits[name] = value; },
      save_changes: () => {},
      on: () => {},
      off: () => {},
      send: (content: PageRequest) => { sent.push(content); },
    } as unknown as AnyModel;
    return { model, sent };
  }
  const answer = (app: App, key: AnalysisKey, target: number, hi: number) =>
    app.onMessage(
      {
        type: "analysis", rid: 1, key, layers: [{ depth: 1, name: "l1", shape: [4, 1, 2], layout: "NCHW", aliases: [], h: 1, w: 2, lo: 0, hi }],
        input_size: [8, 8], task: "multiclass", explained: `class ${target}`, target, prediction: 1, true_label: 1, loss: 0.1,
        num_classes: 5, probabilities: [0.1, 0.6, 0.1, 0.1, 0.1], topk: [], score: 1, score_name: "logit", image: false,
      },
      [new Uint8Array([0, 255])],
    );
  const asked = (sent: PageRequest[]) =>
    sent.filter((c): c is AnalyzeRequest => c.type === "analyze").flatMap((c) => c.keys.map((k) => k.label));

  it("across labels, viewing an unlikely class asks for the prediction too; per map it does not", () => {
    const { model, sent } = fakeModel();
    const app = new App(model);
    const cur = app.currentKey()!;
    answer(app, cur, 4, 1);
    expect(app.referenceKey()).toBeNull(); // per map: no reference needed
    app.setScale("labels");
    expect(app.referenceKey()).toEqual({ ...cur, label: 1, contrast: null });
    expect(asked(sent)).toContain(1);
    const a = app.analysisOf(cur)!;
    expect(app.rangeFor(a, a.maps[0])).toEqual([0, 1]); // only itself so far
    answer(app, { ...cur, label: 1 }, 1, 10);
    expect(app.referenceKey()).toBeNull(); // on the page now
    expect(app.rangeFor(a, a.maps[0])).toEqual([0, 10]);
    app.setScale("map");
    expect(app.rangeFor(a, a.maps[0])).toEqual([0, 1]);
  });

  it("viewing the predicted class needs no reference", () => {
    const { model } = fakeModel({ label: null });
    const app = new App(model);
    app.setScale("labels");
    answer(app, app.currentKey()!, 1, 10);
    expect(app.referenceKey()).toBeNull();
  });
});
