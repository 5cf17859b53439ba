import { describe, expect, it } from "vitest";
import type { AnalysisMeta, SegmentationMeta } from "../protocol";
import { decodeAnalysis, decodePixels, errorClasses, keyString, mapAt, misclassified, toBytes, verdictOfRow, withLabel } from "../protocol";
import { displaySize } from "../overlay";

function meta(layers: [number, number, number][], image = false): AnalysisMeta {
  return {
    type: "analysis",
    rid: 1,
    key: { model: "m", slice: "val", id: 3, algorithm: "gradcam", label: null, connection: 0 },
    layers: layers.map(([depth, h, w]) => ({
      depth, name: `l${depth}`, shape: [4, h, w], layout: "NCHW", aliases: [], h, w, lo: 0, hi: 1,
    })),
    input_size: [8, 8],
    task: "multiclass",
    explained: "predicted class",
    target: 1,
    prediction: 1,
    true_label: 0,
    loss: 0.5,
    num_classes: 3,
    probabilities: [0.2, 0.7, 0.1],
    topk: [[1, 0.7]],
    score: 2.5,
    score_name: "logit",
    image,
  };
}

describe("binary decoding", () => {
  it("views DataViews with offsets without copying the wrong bytes", () => {
    const backing = new Uint8Array([9, 9, 1, 2, 3, 4, 9]).buffer;
    const dv = new DataView(backing, 2, 4);
    expect(Array.from(toBytes(dv))).toEqual([1, 2, 3, 4]);
    expect(Array.from(toBytes(new Uint8Array([5, 6]).buffer))).toEqual([5, 6]);
  });

  it("splits buffers into one map per depth and the image", () => {
    const m = meta([[1, 2, 2], [2, 1, 1]], true);
    const backing = new Uint8Array([0, 10, 20, 30, 255, 137, 80, 78, 71]).buffer;
    const a = decodeAnalysis(m, [new DataView(backing, 0, 4), new DataView(backing, 4, 1), new DataView(backing, 5, 4)]);
    expect(a.maps.map((x) => [x.depth, x.h, x.w, Array.from(x.data)])).toEqual([
      [1, 2, 2, [0, 10, 20, 30]],
      [2, 1, 1, [255]],
    ]);
    expect(Array.from(a.image!)).toEqual([137, 80, 78, 71]);
    expect(a.maps.map((x) => x.flat)).toEqual([false, false]);
    const z = decodeAnalysis(meta([[1, 1, 2]]), [new Uint8Array([0, 0])]);
    expect(z.maps[0].flat).toBe(true);
  });

  it("rejects a map of the wrong size and a wrong buffer count", () => {
    expect(() => decodeAnalysis(meta([[1, 2, 2]]), [new Uint8Array(3)])).toThrow(/expected 2x2/);
    expect(() => decodeAnalysis(meta([[1, 2, 2]], true), [new Uint8Array(4)])).toThrow(/2 buffers|expected 2/);
  });

  it("a segmentation's pixel classes travel in the last buffer (uint8)", () => {
    const seg: SegmentationMeta = { cls: 2, h: 2, w: 3, dtype: "uint8", share: 0.5, iou: null, pixel_accuracy: null };
    const m = { ...meta([[1, 1, 2]], true), task: "segmentation", true_label: null, segmentation: seg };
    const a = decodeAnalysis(m, [new Uint8Array([1, 2]), new Uint8Array([137, 80]), new Uint8Array([0, 2, 2, 1, 2, 0])]);
    expect(Array.from(a.maps[0].data)).toEqual([1, 2]);
    expect(Array.from(a.image!)).toEqual([137, 80]);
    expect(a.pixels).toBeInstanceOf(Uint8Array);
    expect(Array.from(a.pixels!)).toEqual([0, 2, 2, 1, 2, 0]);
    // without the image the pixels follow the maps
    const b = decodeAnalysis({ ...m, image: false }, [new Uint8Array([1, 2]), new Uint8Array([0, 2, 2, 1, 2, 0])]);
    expect(b.image).toBeNull();
    expect(Array.from(b.pixels!)).toEqual([0, 2, 2, 1, 2, 0]);
    // a classification has none
    expect(decodeAnalysis(meta([[1, 1, 1]]), [new Uint8Array(1)]).pixels).toBeNull();
  });

  it("decodes uint16 pixels little-endian from an unaligned view, and checks their size", () => {
    const seg: SegmentationMeta = { cls: 300, h: 1, w: 3, dtype: "uint16", share: 1 / 3, iou: 0.25, pixel_accuracy: 0.5 };
    const backing = new Uint8Array([9, 0x2c, 0x01, 0x01, 0x00, 0xff, 0xff, 9]).buffer; // 300, 1, 65535
    const px = decodePixels(seg, new DataView(backing, 1, 6));
    expect(px).toBeInstanceOf(Uint16Array);
    expect(Array.from(px)).toEqual([300, 1, 65535]);
    expect(() => decodePixels(seg, new Uint8Array(3))).toThrow(/3 bytes, expected 1x3 uint16/);
    expect(() => decodePixels({ ...seg, dtype: "uint8" }, new Uint8Array(6))).toThrow(/6 bytes/);
    expect(() => decodePixels({ ...seg, dtype: "int8" as never }, new Uint8Array(3))).toThrow(/dtype/);
    expect(() => decodePixels({ ...seg, h: 0 }, new Uint8Array(0))).toThrow(/size/);
    const m = { ...meta([[1, 1, 1]]), task: "segmentation", segmentation: seg };
    expect(() => decodeAnalysis(m, [new Uint8Array(1)])).toThrow(/1 buffers, expected 2/);
    expect(() => decodeAnalysis(m, [new Uint8Array(1), new Uint8Array(4)])).toThrow(/expected 1x3/);
  });

  it("keys distinguish the predicted class from an explicit label", () => {
    const k = meta([]).key;
    expect(keyString(k)).toBe("m|val|3|gradcam|pred|0");
    expect(keyString({ ...k, label: 0 })).toBe("m|val|3|gradcam|0|0");
  });

  it("keys of the loss and of a contrast are distinct from each other and from the old keys", () => {
    const k = meta([]).key;
    expect(keyString({ ...k, contrast: null })).toBe("m|val|3|gradcam|pred|0");
    expect(keyString({ ...k, label: "loss" })).toBe("m|val|3|gradcam|loss|0");
    expect(keyString({ ...k, contrast: 2 })).toBe("m|val|3|gradcam|pred|0|vs2");
    expect(keyString({ ...k, label: 1, contrast: 2 })).toBe("m|val|3|gradcam|1|0|vs2");
    expect(keyString({ ...k, label: "loss", contrast: 2 })).toBe("m|val|3|gradcam|loss|0|vs2");
    const all = [
      k, { ...k, label: 0 }, { ...k, label: 2 }, { ...k, label: "loss" as const }, { ...k, contrast: 0 },
      { ...k, contrast: 2 }, { ...k, label: 0, contrast: 2 }, { ...k, label: 2, contrast: 0 }, { ...k, connection: 2 },
      { ...k, label: "loss" as const, contrast: 0 },
    ].map(keyString);
    expect(new Set(all).size).toBe(all.length);
    expect(withLabel({ ...k, label: 1, contrast: 2 }, "loss")).toEqual({ ...k, label: "loss", contrast: null });
  });

  it("misclassified: a true class other than the prediction, classification tasks only", () => {
    const m = meta([]);
    expect(misclassified({ ...m, prediction: 1, true_label: 0 })).toBe(true);
    expect(misclassified({ ...m, prediction: 1, true_label: 1 })).toBe(false);
    expect(misclassified({ ...m, prediction: 1, true_label: null })).toBe(false);
    expect(misclassified({ ...m, task: "binary", prediction: 0, true_label: 1, probabilities: [0.3] })).toBe(true);
    expect(misclassified({ ...m, task: "regression", prediction: 0, true_label: 3, probabilities: null, topk: [] })).toBe(false);
    expect(misclassified({ ...m, task: "regression", prediction: 0, true_label: 0.5 })).toBe(false);
  });

  it("multi-label: wrong when the predicted set is not the true set; the maps show a false positive and a missed class", () => {
    const m = { ...meta([]), task: "multilabel" };
    expect(misclassified({ ...m, prediction: 1, true_set: [1, 3], predicted_set: [3, 1] })).toBe(false);
    expect(misclassified({ ...m, prediction: 1, true_set: null, predicted_set: [1] })).toBe(false);
    expect(misclassified({ ...m, prediction: 1, true_set: [], predicted_set: [] })).toBe(false);
    // the top class 4 is a false positive; 2 was missed
    expect(errorClasses({ task: "multilabel", prediction: 4, truth: null, predictedSet: [1, 4], trueSet: [1, 2] })).toEqual({
      pred: 4, truth: 2, predTitle: "extra", trueTitle: "missed",
    });
    // only a missed class: the top class (right) and the missed one
    expect(errorClasses({ task: "multilabel", prediction: 1, truth: null, predictedSet: [1], trueSet: [1, 2] })).toMatchObject({ pred: 1, truth: 2, predTitle: "predicted" });
    // only a false positive: no missed class to show
    expect(errorClasses({ task: "multilabel", prediction: 0, truth: null, predictedSet: [0, 3], trueSet: [0] })).toMatchObject({ pred: 3, truth: null });
    // a row says the same as the analysis
    const row = { label: null, prediction: 4, label_set: [1, 2], prediction_set: [1, 4] };
    expect(errorClasses(verdictOfRow(row))?.pred).toBe(4);
    expect(errorClasses(verdictOfRow({ label: 2, prediction: 2 }))).toBeNull();
    expect(errorClasses(verdictOfRow({ label: 2, prediction: 1 }))).toMatchObject({ pred: 1, truth: 2 });
  });

  it("mapAt: null is the deepest; a missing depth clamps down", () => {
    const a = decodeAnalysis(meta([[1, 1, 1], [2, 1, 1], [4, 1, 1]]), [new Uint8Array(1), new Uint8Array(1), new Uint8Array(1)]);
    expect(mapAt(a.maps, null).depth).toBe(4);
    expect(mapAt(a.maps, 2).depth).toBe(2);
    expect(mapAt(a.maps, 3).depth).toBe(2);
    expect(mapAt(a.maps, 0).depth).toBe(1);
  });

  it("display size is an integer multiple of the input", () => {
    expect(displaySize(64, 64, 400)).toEqual([384, 384]);
    expect(displaySize(224, 224, 400)).toEqual([448, 448]);
    expect(displaySize(500, 300, 400)).toEqual([500, 300]);
  });
});
