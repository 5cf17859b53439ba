import { describe, expect, it } from "vitest";
import { COLORMAP_NAMES, colorOf, gradientCss, lut } from "../colormap";
import { composite } from "../overlay";

describe("colormaps", () => {
  it("offers the tables the Python side offers", () => {
    expect(COLORMAP_NAMES).toEqual(expect.arrayContaining(["jet", "viridis", "inferno", "gray"]));
    for (const n of COLORMAP_NAMES) expect(lut(n).length).toBe(768);
  });

  it("gray is the identity ramp", () => {
    const t = lut("gray");
    for (const i of [0, 1, 77, 128, 255]) expect([t[3 * i], t[3 * i + 1], t[3 * i + 2]]).toEqual([i, i, i]);
  });

  it("jet runs dark blue -> dark red; viridis purple -> yellow", () => {
    // matplotlib: jet(0) = (0, 0, 0.5), jet(1) = (0.5, 0, 0); viridis(0) = #440154, viridis(1) = #fde725
    expect(colorOf("jet", 0)).toEqual([0, 0, 128]);
    expect(colorOf("jet", 1)).toEqual([128, 0, 0]);
    expect(colorOf("viridis", 0)).toEqual([0x44, 0x01, 0x54]);
    expect(colorOf("viridis", 1)).toEqual([0xfd, 0xe7, 0x25]);
  });

  it("rounds and clamps the heat index", () => {
    expect(colorOf("gray", 0.5)).toEqual([128, 128, 128]); // round(127.5) = 128
    expect(colorOf("gray", -1)).toEqual([0, 0, 0]);
    expect(colorOf("gray", 2)).toEqual([255, 255, 255]);
  });

  it("unknown names fall back to jet", () => {
    expect(lut("nope")).toEqual(lut("jet"));
  });

  it("builds a CSS gradient", () => {
    expect(gradientCss("gray", "to top", 2)).toBe(
      "linear-gradient(to top, rgb(0,0,0) 0.0%, rgb(128,128,128) 50.0%, rgb(255,255,255) 100.0%)",
    );
  });
});

describe("composite", () => {
  it("blends (1 - a) * base + a * lut[round(heat)], alpha 255", () => {
    const base = new Uint8ClampedArray([100, 50, 0, 255, 0, 0, 0, 255]);
    const heat = new Float32Array([255, 10.4]);
    const out = new Uint8ClampedArray(8);
    composite(base, heat, lut("gray"), 0.25, out);
    // pixel 0: 0.75*100 + 0.25*255 = 138.75 -> 139; 0.75*50 + 63.75 = 101.25 -> 101; 63.75 -> 64
    // pixel 1: heat 10.4 -> index 10 -> 0.25*10 = 2.5 -> 2 (half to even, as numpy's rint)
    expect(Array.from(out)).toEqual([139, 101, 64, 255, 2, 2, 2, 255]);
  });

  it("opacity 0 shows the input, 1 the colour only", () => {
    const base = new Uint8ClampedArray([9, 8, 7, 255]);
    const out = new Uint8ClampedArray(4);
    composite(base, new Float32Array([255]), lut("jet"), 0, out);
    expect(Array.from(out)).toEqual([9, 8, 7, 255]);
    composite(base, new Float32Array([255]), lut("jet"), 1, out);
    expect(Array.from(out)).toEqual([128, 0, 0, 255]);
  });
});
