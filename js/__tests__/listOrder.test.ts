import { describe, expect, it } from "vitest";
import { LIST_ORDER, SelectionHistory, nextSort, pageOf, sortIds } from "../listOrder";

describe("sortIds", () => {
  const loss: Record<number, number | null> = { 3: 0.5, 7: 2.0, 12: null, 1: 0.5, 9: 1.0 };
  const value = (id: number) => loss[id];

  it("keeps the list's order, or sorts by id", () => {
    expect(sortIds([3, 7, 12, 1], LIST_ORDER, value)).toEqual([3, 7, 12, 1]);
    expect(sortIds([3, 7, 12, 1], { by: "id", desc: false }, value)).toEqual([1, 3, 7, 12]);
    expect(sortIds([3, 7, 12, 1], { by: "id", desc: true }, value)).toEqual([12, 7, 3, 1]);
  });

  it("sorts by a value, stable, the unknown last whichever the direction", () => {
    const ids = [3, 7, 12, 1, 9, 5];
    expect(sortIds(ids, { by: "loss", desc: true }, value)).toEqual([7, 9, 3, 1, 12, 5]);
    expect(sortIds(ids, { by: "loss", desc: false }, value)).toEqual([3, 1, 9, 7, 12, 5]);
    expect(sortIds(ids, { by: "confidence", desc: false }, () => Number.NaN)).toEqual(ids);
  });

  it("does not change its input", () => {
    const ids = [3, 1];
    sortIds(ids, { by: "id", desc: false }, value);
    expect(ids).toEqual([3, 1]);
  });
});

describe("nextSort", () => {
  it("cycles a column: its first direction, the other, the list's order", () => {
    let s = nextSort(LIST_ORDER, "loss");
    expect(s).toEqual({ by: "loss", desc: true });
    s = nextSort(s, "loss");
    expect(s).toEqual({ by: "loss", desc: false });
    expect(nextSort(s, "loss")).toEqual(LIST_ORDER);
    expect(nextSort(s, "confidence")).toEqual({ by: "confidence", desc: false });
    expect(nextSort(LIST_ORDER, "id")).toEqual({ by: "id", desc: false });
  });
});

describe("SelectionHistory", () => {
  it("undoes the last changes, a few levels, and not its own", () => {
    const h = new SelectionHistory(3);
    h.note("val", [1, 2]);
    expect(h.size("val")).toBe(0);
    h.note("val", [1, 2]); // the same: no change
    expect(h.size("val")).toBe(0);
    h.note("val", [1, 2, 3]);
    h.note("val", [5]);
    h.note("val", []);
    expect(h.size("val")).toBe(3);
    expect(h.describe("val")).toBe("cleared 1");
    expect(h.undo("val")).toEqual([5]);
    h.note("val", [5]); // the undo's own change: not remembered
    expect(h.size("val")).toBe(2);
    expect(h.describe("val")).toBe("replaced 3 by 1");
    expect(h.undo("val")).toEqual([1, 2, 3]);
    h.note("val", [1, 2, 3]);
    expect(h.describe("val")).toBe("+1");
    expect(h.undo("val")).toEqual([1, 2]);
    h.note("val", [1, 2]);
    expect(h.undo("val")).toBeNull();
  });

  it("keeps at most `depth` levels", () => {
    const h = new SelectionHistory(2);
    for (let i = 0; i <= 5; i++) h.note("val", [i]);
    expect(h.size("val")).toBe(2);
    expect(h.undo("val")).toEqual([4]);
  });

  it("forgets everything when the slice changes", () => {
    const h = new SelectionHistory();
    h.note("val", [1]);
    h.note("val", [1, 2]);
    h.note("train", [0, 1, 2]);
    expect(h.size("train")).toBe(0);
    expect(h.size("val")).toBe(0);
    expect(h.undo("train")).toBeNull();
  });

  it("remembers a change that follows an undo", () => {
    const h = new SelectionHistory();
    h.note("val", [1]);
    h.note("val", [1, 2]);
    expect(h.undo("val")).toEqual([1]);
    h.note("val", [1, 9]); // not what the undo set: a change of its own
    expect(h.size("val")).toBe(1);
    expect(h.undo("val")).toEqual([1, 2]);
  });
});

describe("pageOf", () => {
  it("is the page that holds an id", () => {
    const order = Array.from({ length: 450 }, (_, i) => 449 - i);
    expect(pageOf(order, 449, 200)).toBe(0);
    expect(pageOf(order, 0, 200)).toBe(2);
    expect(pageOf(order, 1000, 200)).toBe(-1);
  });
});
