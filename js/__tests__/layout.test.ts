import { describe, expect, it } from "vitest";
import { MEDIUM_MIN, WIDE_MIN, watchWidth, widthClass } from "../layout";

describe("widthClass", () => {
  it("splits at the documented thresholds", () => {
    expect([720, 899.5, 900, 1199, 1200, 1600].map(widthClass)).toEqual([
      "narrow", "narrow", "medium", "medium", "wide", "wide",
    ]);
    expect([MEDIUM_MIN, WIDE_MIN]).toEqual([900, 1200]);
  });
});

describe("watchWidth", () => {
  it("starts as wide and is a no-op without ResizeObserver", () => {
    const root = { dataset: {} as Record<string, string> } as unknown as HTMLElement;
    const stop = watchWidth(root);
    expect(root.dataset.width).toBe("wide");
    stop();
  });
});
