import { describe, expect, it } from "vitest";
import { bandsOf, bar, baselineKey, depthTicks, geometry, linePath, missingDepths, nearestDepth, niceTicks, scoreOf, verdict } from "../trust";
import type { AnalysisKey, TrustBaselines } from "../wire";

const KEY: AnalysisKey = { model: "m", slice: "val", id: 3, algorithm: "gradcam", label: null, connection: 0, contrast: null };
const BASE: TrustBaselines = {
  random: { deletion: 0.5, insertion: 0.6, draws: [0.05, 0.1, 0.15] },
  edges: { deletion: 0.4, insertion: 0.7, draws: [] },
};
const BOX = { width: 250, height: 170, left: 40, right: 10, top: 10, bottom: 30 };

describe("baselines", () => {
  it("are keyed by sample and target, not by the algorithm", () => {
    expect(baselineKey(KEY, 20)).toBe(baselineKey({ ...KEY, algorithm: "layercam" }, 20));
    expect(baselineKey(KEY, 20)).not.toBe(baselineKey({ ...KEY, label: 2 }, 20));
    expect(baselineKey(KEY, 20)).not.toBe(baselineKey({ ...KEY, id: 4 }, 20));
    expect(baselineKey(KEY, 20)).not.toBe(baselineKey({ ...KEY, contrast: 1 }, 20));
    expect(baselineKey(KEY, 20)).not.toBe(baselineKey(KEY, 10));
  });

  it("are drawn as the random draws' min..max and the edges' single score", () => {
    const b = bandsOf(BASE);
    expect(b.random.score).toBeCloseTo(0.1, 12);
    expect([b.random.lo, b.random.hi]).toEqual([0.05, 0.15]);
    expect(b.edges.score).toBeCloseTo(0.3, 12);
    expect(b.edges.lo).toBe(b.edges.score);
    expect(bar(BASE)).toBeCloseTo(0.3, 12); // the higher of the two
    expect(bar(null)).toBeNull();
  });
});

describe("scores and missing depths", () => {
  it("insertion minus deletion, unknown when either is", () => {
    expect(scoreOf({ deletion: 0.2, insertion: 0.9 })).toBeCloseTo(0.7, 12);
    expect(scoreOf({ deletion: null, insertion: 0.9 })).toBeNull();
  });
  it("lists the depths the page lacks, in order", () => {
    expect(missingDepths([1, 2, 3, 4], new Map([[2, 0], [4, 0]]))).toEqual([1, 3]);
    expect(missingDepths([1, 2], undefined)).toEqual([1, 2]);
  });
});

describe("ticks", () => {
  it("are round numbers covering the range", () => {
    expect(niceTicks(-0.5, 1, 3)).toEqual([-0.5, 0, 0.5, 1]);
    expect(niceTicks(0, 0.3, 3)).toEqual([0, 0.1, 0.2, 0.3]);
    expect(niceTicks(1, 1)).toEqual([1]);
    for (const t of niceTicks(-0.87, 0.93, 4)) expect(t).toBeGreaterThanOrEqual(-0.87);
  });
  it("of depths are integers from the first depth, at most max of them", () => {
    expect(depthTicks(1, 5)).toEqual([1, 2, 3, 4, 5]);
    expect(depthTicks(1, 21)).toEqual([1, 5, 10, 15, 20]);
    const many = depthTicks(1, 300);
    expect(many.length).toBeLessThanOrEqual(9);
    expect(many[0]).toBe(1);
    expect(many.every((d) => Number.isInteger(d))).toBe(true);
  });
});

describe("geometry", () => {
  const g = geometry(1, 21, [0.5, -0.25, null, 0.9], BOX);
  it("puts the depths across the plot's box, first at its left, last at its right", () => {
    expect(g.xOf(1)).toBe(40);
    expect(g.xOf(21)).toBe(240);
    expect(g.xOf(11)).toBe(140);
  });
  it("keeps every value and 0 inside, higher values higher", () => {
    for (const v of [0.9, -0.25, 0]) {
      expect(g.yOf(v)).toBeGreaterThanOrEqual(10);
      expect(g.yOf(v)).toBeLessThanOrEqual(140);
    }
    expect(g.yOf(0.9)).toBeLessThan(g.yOf(0.5));
    expect(g.lo).toBeLessThan(-0.25);
    expect(g.hi).toBeGreaterThan(0.9);
    expect(g.yTicks).toContain(0);
  });
  it("gives a flat curve some height and one depth the middle", () => {
    const flat = geometry(3, 3, [0.2, 0.2], BOX);
    expect(flat.hi - flat.lo).toBeGreaterThanOrEqual(0.1);
    expect(flat.xOf(3)).toBe(140);
  });
  it("finds the depth nearest a click", () => {
    const depths = [1, 2, 3, 10, 21];
    expect(nearestDepth(g.xOf(9.4), depths, g.xOf)).toBe(10);
    expect(nearestDepth(0, depths, g.xOf)).toBe(1);
    expect(nearestDepth(1000, depths, g.xOf)).toBe(21);
    expect(nearestDepth(50, [], g.xOf)).toBeNull();
  });
  it("draws the line in depth order, broken at unknown scores", () => {
    const lin = { xOf: (d: number) => d * 10, yOf: (v: number) => 100 - v * 100 };
    expect(linePath([[3, 0.5], [1, 0], [2, 0.25]], lin)).toBe("M10.0 100.0 L20.0 75.0 L30.0 50.0");
    expect(linePath([[1, 0], [2, null], [3, 1]], lin)).toBe("M10.0 100.0 M30.0 0.0");
  });
});

describe("verdict", () => {
  const points = new Map([
    [1, { layer: "a", deletion: 0.5, insertion: 0.6 }], // 0.1: below the edges' 0.3
    [2, { layer: "b", deletion: 0.1, insertion: 0.9 }], // 0.8: the best
    [3, { layer: "c", deletion: 0.2, insertion: 0.6 }], // 0.4
  ]);
  const curve = { steps: 20, measure: "p", points };
  it("names the best depth and counts the depths above both baselines", () => {
    expect(verdict(curve, BASE, 3)).toBe("best: depth 2 (0.800) · above both baselines at 2 of 3 depths");
    expect(verdict(curve, BASE, 5)).toBe("best: depth 2 (0.800) · above both baselines at 2 of 3 depths so far");
    expect(verdict(curve, null, 3)).toBe("best: depth 2 (0.800)");
    expect(verdict({ ...curve, points: new Map() }, BASE, 3)).toBe("");
  });
});
