import { describe, expect, it } from "vitest";
import { GridIndex, bounds, ease, lerp, normalize, pointInPolygon, selectBox, selectPolygon } from "../scatter/geometry";

// A seeded generator, so that the brute-force comparisons are reproducible.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("normalize", () => {
  it("fits the larger extent into [-1, 1], centred, keeping the aspect ratio", () => {
    const out = normalize([10, 5, 14, 6, 12, 7]);
    // x spans 10..14 (4), y spans 5..7 (2): scale 1/2, centre (12, 6)
    expect(Array.from(out)).toEqual([-1, -0.5, 1, 0, 0, 0.5]);
    expect(bounds(out)).toEqual([-1, -0.5, 1, 0.5]);
  });
  it("puts a degenerate layout and non-finite values at the origin", () => {
    expect(Array.from(normalize([3, 3]))).toEqual([0, 0]);
    expect(Array.from(normalize([0, 0, NaN, 1, 2, 0]))).toEqual([-1, 0, 0, 0, 1, 0]);
  });
});

describe("pointInPolygon / selectPolygon", () => {
  const square = [0, 0, 2, 0, 2, 2, 0, 2];
  it("tells inside from outside for a square and a concave polygon", () => {
    expect(pointInPolygon(1, 1, square)).toBe(true);
    expect(pointInPolygon(3, 1, square)).toBe(false);
    expect(pointInPolygon(-0.1, 1, square)).toBe(false);
    // a "U": the notch (x 1..2, y 1..3) is outside
    const u = [0, 0, 3, 0, 3, 3, 2, 3, 2, 1, 1, 1, 1, 3, 0, 3];
    expect(pointInPolygon(1.5, 2, u)).toBe(false);
    expect(pointInPolygon(0.5, 2, u)).toBe(true);
    expect(pointInPolygon(2.5, 2, u)).toBe(true);
    expect(pointInPolygon(1.5, 0.5, u)).toBe(true);
  });
  it("selects exactly the points a circle test selects, for a 64-gon around a circle", () => {
    const r = rng(1);
    const n = 5000;
    const xy = new Float32Array(2 * n);
    for (let i = 0; i < 2 * n; i++) xy[i] = r() * 2 - 1;
    const poly: number[] = [];
    for (let k = 0; k < 64; k++) poly.push(0.1 + 0.5 * Math.cos((2 * Math.PI * k) / 64), -0.2 + 0.5 * Math.sin((2 * Math.PI * k) / 64));
    const got = Array.from(selectPolygon(xy, poly));
    // independent expectation: inside the inscribed circle -> in, outside the circumscribed -> out
    const rin = 0.5 * Math.cos(Math.PI / 64);
    for (let i = 0; i < n; i++) {
      const d = Math.hypot(xy[2 * i] - 0.1, xy[2 * i + 1] + 0.2);
      if (d < rin - 1e-6) expect(got.includes(i)).toBe(true);
      if (d > 0.5 + 1e-6) expect(got.includes(i)).toBe(false);
    }
    expect(got).toEqual([...got].sort((a, b) => a - b));
    expect(got.length).toBeGreaterThan(n * 0.15);
  });
  it("returns nothing for fewer than three vertices", () => {
    expect(selectPolygon([0, 0], [0, 0, 1, 1]).length).toBe(0);
  });
});

describe("selectBox", () => {
  it("takes the points inside the box, edges included, whichever corners are given", () => {
    const xy = [0, 0, 1, 1, 2, 2, 0.5, 1.5, -1, 0.5];
    expect(Array.from(selectBox(xy, 1, 2, 0, 0))).toEqual([0, 1, 3]);
    expect(Array.from(selectBox(xy, 5, 5, 6, 6))).toEqual([]);
  });
});

describe("GridIndex", () => {
  it("finds the same nearest point as a brute-force search", () => {
    const r = rng(7);
    const n = 3000;
    const xy = new Float32Array(2 * n);
    for (let i = 0; i < 2 * n; i++) xy[i] = r() * 2 - 1;
    const grid = new GridIndex(xy);
    for (let q = 0; q < 300; q++) {
      const x = r() * 2.2 - 1.1, y = r() * 2.2 - 1.1, rad = 0.01 + r() * 0.1;
      let best = -1, bd = rad * rad;
      for (let i = 0; i < n; i++) {
        const d = (xy[2 * i] - x) ** 2 + (xy[2 * i + 1] - y) ** 2;
        if (d < bd || (d === bd && i > best)) {
          bd = d;
          best = i;
        }
      }
      expect(grid.nearest(x, y, rad)).toBe(best);
    }
  });
  it("answers -1 when nothing is within the radius, and handles one point", () => {
    const grid = new GridIndex(new Float32Array([0.5, 0.5]));
    expect(grid.nearest(0.5, 0.52, 0.05)).toBe(0);
    expect(grid.nearest(-0.5, -0.5, 0.05)).toBe(-1);
  });
});

describe("morph", () => {
  it("interpolates layouts and eases from 0 to 1", () => {
    expect(Array.from(lerp(new Float32Array([0, 0]), new Float32Array([2, -4]), 0.25))).toEqual([0.5, -1]);
    expect(ease(0)).toBe(0);
    expect(ease(1)).toBe(1);
    expect(ease(0.5)).toBeCloseTo(0.5);
    expect(ease(0.25)).toBeLessThan(0.25);
  });
});
