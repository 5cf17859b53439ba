import { describe, expect, it } from "vitest";
import { axisWeights, bilinear } from "../upsample";

// Expected values worked out by hand for torch's bilinear, align_corners=False:
// output x samples source coordinate (x + 0.5) * (in / out) - 0.5, clamped to [0, in - 1].
describe("bilinear", () => {
  it("doubles a 2x2 map like torch (align_corners=False)", () => {
    const out = bilinear([0, 10, 20, 30], 2, 2, 4, 4);
    expect(Array.from(out)).toEqual([
      0, 2.5, 7.5, 10,
      5, 7.5, 12.5, 15,
      15, 17.5, 22.5, 25,
      20, 22.5, 27.5, 30,
    ]);
  });

  it("keeps a 1x1 map constant", () => {
    expect(Array.from(bilinear([7], 1, 1, 3, 2))).toEqual([7, 7, 7, 7, 7, 7]);
  });

  it("handles non-square and non-integer ratios", () => {
    // 1x3 row [0, 30, 60] to width 2: x=0 -> s = 0.5*1.5-0.5 = 0.25 -> 7.5; x=1 -> s = 1.75 -> 52.5
    expect(Array.from(bilinear([0, 30, 60], 1, 3, 1, 2))).toEqual([7.5, 52.5]);
  });

  it("is the identity at the same size", () => {
    const src = [1, 2, 3, 4, 5, 6];
    expect(Array.from(bilinear(src, 2, 3, 2, 3))).toEqual(src);
  });

  it("axis weights clamp at both edges", () => {
    const a = axisWeights(2, 4);
    expect(Array.from(a.i0)).toEqual([0, 0, 0, 1]);
    expect(Array.from(a.i1)).toEqual([1, 1, 1, 1]);
    expect(Array.from(a.w1)).toEqual([0, 0.25, 0.75, 0]);
  });

  it("reuses an output buffer of the right size", () => {
    const buf = new Float32Array(4);
    const out = bilinear([1, 1, 1, 1], 2, 2, 2, 2, buf);
    expect(out).toBe(buf);
  });
});
