import { describe, expect, it } from "vitest";
import { fitMiddle, layerReadout, middleEllipsis } from "../names";

describe("middleEllipsis", () => {
  it("keeps a short text as it is", () => {
    expect(middleEllipsis("layer4", 10)).toBe("layer4");
    expect(middleEllipsis("exactly10!", 10)).toBe("exactly10!");
  });

  it("cuts in the middle, the end keeping the extra character", () => {
    expect(middleEllipsis("encoder_stage_two_block.3", 22)).toBe("encoder_st…two_block.3");
    const s = middleEllipsis("abcdefghijklmnopqrstuvwxyz", 9);
    expect(s).toBe("abcd…wxyz");
    expect(Array.from(s).length).toBe(9);
    expect(middleEllipsis("abcdefghij", 8)).toBe("abc…ghij");
  });

  it("tells consecutive depths of long module names apart", () => {
    const names = [3, 4, 5, 6, 7, 8, 9].map((i) => `encoder_stage_two_with_attention.block.${i}`);
    const short = names.map((n) => middleEllipsis(n, 20));
    expect(new Set(short).size).toBe(names.length);
    for (const s of short) expect(Array.from(s).length).toBe(20);
    expect(short[0]).toBe("encoder_s…on.block.3");
  });

  it("handles tiny budgets and code points", () => {
    expect(middleEllipsis("abcdef", 1)).toBe("…");
    expect(middleEllipsis("abcdef", 0)).toBe("");
    expect(middleEllipsis("🐱🐶🐭🐹🐰🦊", 4)).toBe("🐱…🐰🦊");
  });
});

describe("fitMiddle", () => {
  const chars = (s: string) => Array.from(s).length;

  it("is the longest shortened form that fits, with what is composed around it", () => {
    const compose = (s: string) => `Predicted (${s})`;
    expect(fitMiddle("diamond", 19, chars, compose)).toBe("diamond");
    const got = fitMiddle("a_very_long_class_name_indeed", 24, chars, compose);
    expect(compose(got)).toHaveLength(24);
    expect(compose(got).endsWith(")")).toBe(true);
    expect(got).toBe("a_ver…indeed");
  });

  it("keeps at least `min` characters when nothing fits", () => {
    expect(fitMiddle("abcdefgh", 2, chars, (s) => s, 3)).toBe("a…h");
  });
});

describe("layerReadout", () => {
  it("gives depth, shortened name and shape", () => {
    const r = layerReadout(7, "encoder_stage_two_block.3", [64, 16, 16], 26);
    expect(r).toBe("d7 · enco…ock.3 · 64×16×16");
    expect(Array.from(r).length).toBeLessThanOrEqual(26);
    expect(layerReadout(2, "conv1", [8, 4, 4], 40)).toBe("d2 · conv1 · 8×4×4");
  });
});
