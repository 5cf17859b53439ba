// The sample list's logic, apart from the DOM: its sort order and the undo history of the
// selection. Pure (tested with vitest).

/** "list": the selection's own order (as added). */
export type SortKey = "list" | "id" | "loss" | "confidence" | "similarity";

export interface SortSpec {
  by: SortKey;
  desc: boolean;
}

export const LIST_ORDER: SortSpec = { by: "list", desc: false };

/** The first direction of a column: the largest loss and similarity first, the least
 * confident first, ids upwards. */
export function firstDirection(by: SortKey): boolean {
  return by === "loss" || by === "similarity";
}

/** A click on column `by`: sort by it; again: the other way; a third time: the list's order. */
export function nextSort(cur: SortSpec, by: SortKey): SortSpec {
  if (by === "list") return LIST_ORDER;
  if (cur.by !== by) return { by, desc: firstDirection(by) };
  if (cur.desc === firstDirection(by)) return { by, desc: !cur.desc };
  return LIST_ORDER;
}

/** `ids` in the order of `spec`; `value(id)` gives the sort column (null, undefined or NaN:
 * unknown, those come last in the list's order, whichever the direction). Stable. */
export function sortIds(
  ids: readonly number[],
  spec: SortSpec,
  value: (id: number) => number | null | undefined,
): number[] {
  if (spec.by === "list") return ids.slice();
  const key = spec.by === "id" ? (id: number) => id : value;
  const known: [number, number, number][] = [];
  const unknown: number[] = [];
  ids.forEach((id, at) => {
    const v = key(id);
    if (v === null || v === undefined || Number.isNaN(v)) unknown.push(id);
    else known.push([v, at, id]);
  });
  const sign = spec.desc ? -1 : 1;
  known.sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : sign * (a[0] - b[0])));
  return [...known.map((k) => k[2]), ...unknown];
}

function same(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One selection as it was before a change. */
export interface Past {
  slice: string;
  ids: number[];
}

/** The last few selections, for Undo. `note(slice, ids)` is told every selection (from the
 * page or the kernel); a change remembers the one before it. A change of slice forgets all
 * (another slice's ids are other samples). `undo()` gives the selection to restore; that
 * restoration is not remembered itself. */
export class SelectionHistory {
  private stack: Past[] = [];
  private cur: Past | null = null;
  private restoring: number[] | null = null;

  constructor(readonly depth = 10) {}

  /** The selection is now `ids` in `slice`; true when it changed. */
  note(slice: string, ids: readonly number[]): boolean {
    const cur = this.cur;
    if (cur && cur.slice === slice && same(cur.ids, ids)) return false;
    if (!cur || cur.slice !== slice) {
      this.stack = [];
    } else if (this.restoring && same(this.restoring, ids)) {
      // the undo's own change
    } else {
      this.stack.push(cur);
      if (this.stack.length > this.depth) this.stack.shift();
    }
    this.restoring = null;
    this.cur = { slice, ids: ids.slice() };
    return cur !== null;
  }

  /** How many changes can be undone in `slice`. */
  size(slice: string): number {
    return this.cur && this.cur.slice === slice ? this.stack.length : 0;
  }

  /** The selection before the last change (null: none); the caller sets it. */
  undo(slice: string): number[] | null {
    if (!this.size(slice)) return null;
    const past = this.stack.pop()!;
    this.restoring = past.ids;
    return past.ids.slice();
  }

  /** What the last change did, in words ("+8", "−1", "replaced 15 by 173"). */
  describe(slice: string): string | null {
    if (!this.size(slice) || !this.cur) return null;
    const before = this.stack[this.stack.length - 1].ids;
    const now = this.cur.ids;
    const was = new Set(before);
    const is = new Set(now);
    const added = now.filter((i) => !was.has(i)).length;
    const removed = before.filter((i) => !is.has(i)).length;
    if (added && removed) return `replaced ${before.length} by ${now.length}`;
    if (added) return `+${added}`;
    if (removed) return removed === before.length ? `cleared ${removed}` : `−${removed}`;
    return "reordered";
  }
}

/** The list page (of `size` rows) that holds `id` in `order` (-1: not there). */
export function pageOf(order: readonly number[], id: number, size: number): number {
  const at = order.indexOf(id);
  return at < 0 ? -1 : Math.floor(at / size);
}
