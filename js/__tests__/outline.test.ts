import { describe, expect, it } from "vitest";
import { maskOutline, outlineOf, paintOutline } from "../outline";
import type { Analysis, AnalysisMeta } from "../protocol";

/** The outline as a picture: "#" inner, "o" outer, "." neither. */
function picture(o: { inner: Uint32Array; outer: Uint32Array }, H: number, W: number): string[] {
  const c = Array.from({ length: H * W }, () => ".");
  for (const p of o.inner) c[p] = "#";
  for (const p of o.outer) c[p] = "o";
  return Array.from({ length: H }, (_, y) => c.slice(y * W, (y + 1) * W).join(""));
}

describe("mask outline", () => {
  it("marks the class's pixels with a 4-neighbour of another class, and their halo", () => {
    // 4x4 classes, class 1 is the 2x2 block in the middle
    const px = new Uint8Array([0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    expect(picture(maskOutline(px, 4, 4, 1, 4, 4), 4, 4)).toEqual([".oo.", "o##o", "o##o", ".oo."]);
    // scaled 2x nearest-neighbour: a 1-px contour at the canvas resolution
    expect(picture(maskOutline(px, 4, 4, 1, 8, 8), 8, 8)).toEqual([
      "........",
      "..oooo..",
      ".o####o.",
      ".o#..#o.",
      ".o#..#o.",
      ".o####o.",
      "..oooo..",
      "........",
    ]);
  });

  it("leaves a region open at the canvas border; a whole-image class has no outline", () => {
    const px = new Uint16Array([2, 2, 0, 2, 2, 0]); // 2 rows, class 2 in the left two columns
    expect(picture(maskOutline(px, 2, 3, 2, 2, 3), 2, 3)).toEqual([".#o", ".#o"]); // no contour on the left edge
    const all = maskOutline(new Uint8Array(4).fill(3), 2, 2, 3, 6, 6);
    expect(all.inner.length + all.outer.length).toBe(0);
    const none = maskOutline(new Uint8Array(4), 2, 2, 3, 6, 6);
    expect(none.inner.length + none.outer.length).toBe(0);
  });

  it("scales to a canvas that is not a multiple of the map", () => {
    const px = new Uint8Array([0, 1]); // 1x2: right half is class 1
    const o = maskOutline(px, 1, 2, 1, 1, 5); // columns 0,1,2 -> 0 (floor(x*2/5)), 3,4 -> 1
    expect(picture(o, 1, 5)).toEqual(["..o#."]);
  });

  it("is computed once per analysis and size, and paints white inside, black outside", () => {
    const meta = {
      task: "segmentation",
      segmentation: { cls: 1, h: 2, w: 2, dtype: "uint8", share: 0.25, iou: null, pixel_accuracy: null },
    } as unknown as AnalysisMeta;
    const a: Analysis = { meta, maps: [], image: null, pixels: new Uint8Array([1, 0, 0, 0]) };
    const o = outlineOf(a, 4, 4)!;
    expect(outlineOf(a, 4, 4)).toBe(o);
    expect(outlineOf(a, 2, 2)).not.toBe(o);
    expect(outlineOf({ ...a, meta: { ...meta, segmentation: undefined }, pixels: null }, 4, 4)).toBeNull();
    const rgba = new Uint8ClampedArray(16 * 4).fill(100);
    paintOutline(rgba, o);
    const at = (p: number) => Array.from(rgba.slice(p * 4, p * 4 + 4));
    expect(at(1)).toEqual([255, 255, 255, 255]); // (0, 1): class 1, right neighbour is not
    expect(at(2)).toEqual([0, 0, 0, 255]); // (0, 2): the halo
    expect(at(0)).toEqual([100, 100, 100, 100]); // interior
    expect(at(15)).toEqual([100, 100, 100, 100]);
  });
});
