// Sample list (left): the selected samples as rows (remove ×, sort by a column), with Add
// sample / Select all / Fetch similar, Clear and Undo, and a line that says what the last
// list action did.
import type { App } from "../app";
import { PAGE_SIZE } from "../app";
import { fmt, h, stopKeys } from "../dom";
import { type SortKey, nextSort } from "../listOrder";
import { boxOf, fitter, watchBox } from "../names";
import { errorClasses, verdictOfRow } from "../protocol";

/** The sortable columns: key, header text, what a click does. */
const SORTABLE: [SortKey, string, string][] = [
  ["id", "id", "Sort by sample id"],
  ["loss", "loss", "Sort by loss (largest first; click again: smallest first)"],
  ["confidence", "conf", "Sort by the probability of the prediction (least confident first)"],
  ["similarity", "sim", "Sort by similarity to the query of the last Fetch similar"],
];

export class SampleList {
  el: HTMLElement;
  private body = h("div", { class: "sl-rows", "data-role": "rows" });
  private pager = h("div", { class: "sl-pager" });
  private note = h("div", { class: "sl-list-note", "data-role": "list-note" });
  private head: HTMLElement;
  private sortBtns = new Map<SortKey, HTMLButtonElement>();
  private trueHead = h("span", { class: "sl-lab" }, "true");
  private addInput = h("input", {
    class: "sl-input sl-add-id",
    type: "text",
    inputmode: "numeric",
    placeholder: "id",
    title: "A sample id (an integer) to add to the list",
    "data-role": "add-id",
    size: 5,
  }) as HTMLInputElement;
  private count = h("span", { class: "sl-count", "data-role": "count" });
  private similar: HTMLButtonElement;
  private undoBtn: HTMLButtonElement;
  private clearBtn: HTMLButtonElement;
  private kInput = h("input", {
    class: "sl-input sl-k",
    type: "number",
    min: 0,
    value: 8,
    title: "How many similar samples to fetch (k)",
    "data-role": "similar-k",
  }) as HTMLInputElement;
  private sig = "";
  private viewed: number | null = null;
  private scrollFrame = 0;
  private unwatch: (() => void) | null = null;
  private scrolledJump = "";
  private fits = new Map<string, string>();
  private fitKey = "";

  constructor(private app: App) {
    stopKeys(this.addInput);
    const add = () => {
      app.addSample(this.addInput.value);
      this.addInput.value = "";
    };
    this.addInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter") add();
    });
    this.similar = h(
      "button",
      { class: "sl-btn", "data-role": "similar", title: "Add the k samples most similar to the list" },
      "Fetch similar",
    ) as HTMLButtonElement;
    stopKeys(this.kInput);
    const fetch = () => {
      const raw = this.kInput.value.trim();
      const k = Number(raw);
      if (raw === "" || !Number.isInteger(k) || k < 0) {
        app.pushError(`Fetch similar: k ${JSON.stringify(this.kInput.value)} is not a whole number >= 1`, "similar");
        return;
      }
      if (k === 0) {
        app.listNote = { text: "Fetch similar: k is 0, so there is nothing to fetch; set k to 1 or more." };
        app.emit("page");
        return;
      }
      app.fetchSimilar(k);
    };
    this.similar.addEventListener("click", fetch);
    this.kInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter") fetch();
    });
    this.undoBtn = h(
      "button",
      { class: "sl-btn sl-small", "data-role": "undo", onclick: () => app.undo() },
      "Undo",
    ) as HTMLButtonElement;
    this.clearBtn = h(
      "button",
      { class: "sl-btn sl-small", "data-role": "clear", title: "Empty the list (Undo brings it back)", onclick: () => app.clearList() },
      "Clear",
    ) as HTMLButtonElement;
    for (const [key, text, title] of SORTABLE) {
      const b = h(
        "button",
        {
          class: `sl-sort${key === "id" ? "" : " sl-num"}`,
          "data-role": `sort-${key}`,
          title,
          onclick: () => app.setSort(nextSort(app.sort, key)),
        },
        text,
      ) as HTMLButtonElement;
      this.sortBtns.set(key, b);
    }
    this.head = h(
      "div",
      { class: "sl-row sl-row-head", "data-role": "list-head" },
      h("span", {}, ""),
      this.sortBtns.get("id")!,
      this.trueHead,
      h("span", { class: "sl-lab" }, "pred"),
      this.sortBtns.get("loss")!,
      this.sortBtns.get("confidence")!,
      this.sortBtns.get("similarity")!,
      h("span", {}, ""),
    );
    this.el = h(
      "div",
      { class: "sl-panel sl-list", "data-role": "sample-list" },
      h(
        "div",
        { class: "sl-panel-title sl-list-title" },
        h("span", {}, "Samples "),
        this.count,
        h("span", { class: "sl-spacer" }),
        this.undoBtn,
        this.clearBtn,
      ),
      h(
        "div",
        { class: "sl-toolbar sl-list-tools" },
        this.addInput,
        h("button", { class: "sl-btn", "data-role": "add", onclick: add }, "Add"),
        h("button", { class: "sl-btn", "data-role": "select-all", onclick: () => app.selectAll() }, "Select all"),
        this.similar,
        h("label", { class: "sl-muted", title: "How many similar samples to fetch" }, "k"),
        this.kInput,
      ),
      this.note,
      this.head,
      this.body,
      this.pager,
    );
  }

  /** Class names shortened in the middle to the label column's width (the header's column),
   * in the rows' font (a row's label cell once there is one); cached per width and font. */
  private fitter(): (text: string) => string {
    const font = (this.body.querySelector(".sl-row .sl-lab") as HTMLElement | null) ?? this.trueHead;
    const w = `${this.headWidth()}|${boxOf(font).font}`;
    if (w !== this.fitKey) {
      this.fits.clear();
      this.fitKey = w;
    }
    const fit = fitter(this.trueHead, { fallback: 12, font });
    return (text) => {
      let got = this.fits.get(text);
      if (got === undefined) {
        got = fit(text);
        this.fits.set(text, got);
      }
      return got;
    };
  }

  /** The label column's width (names.boxOf: no layout forced); the list refits its names when
   * it changes. */
  private headWidth(): number {
    if (!this.unwatch) this.unwatch = watchBox(this.trueHead, () => this.update());
    return boxOf(this.trueHead).width;
  }

  destroy(): void {
    this.unwatch?.();
    this.unwatch = null;
  }

  update(): void {
    const app = this.app;
    const sel = app.get("selected");
    const ids = app.pageIds();
    const viewed = app.get("viewed");
    const slice = app.get("slice");
    this.similar.disabled = !sel.length;
    this.clearBtn.disabled = !sel.length;
    const undoable = app.history.size(slice);
    this.undoBtn.disabled = !undoable;
    this.undoBtn.title = undoable
      ? `Undo the last change of the list (${app.history.describe(slice)})${undoable > 1 ? `; ${undoable - 1} more before it` : ""}`
      : "Nothing to undo";
    this.count.textContent = `(${sel.length})`;
    this.updateNote();
    const sim = app.currentSimilar();
    const withSim = !!sim && sim.ids.length > 0;
    this.el.classList.toggle("sl-has-sim", withSim);
    this.sortBtns.get("similarity")!.disabled = !withSim;
    const sort = app.sort;
    for (const [key, b] of this.sortBtns) {
      const on = sort.by === key;
      b.classList.toggle("sl-sorted", on);
      b.dataset.dir = on ? (sort.desc ? "desc" : "asc") : "";
      b.textContent = SORTABLE.find((s) => s[0] === key)![1] + (on ? (sort.desc ? " ▼" : " ▲") : "");
    }

    const rowsReady = ids.map((id) => (app.rows.has(app.rowKey(id)) ? 1 : 0)).join("");
    const sig = `${app.get("model_name")}|${slice}|${app.listPage}|${ids.join(",")}|${rowsReady}|${sim ? sim.ids.join(",") : ""}|${this.headWidth()}`;
    if (sig === this.sig) {
      // the same rows: a click on another sample only moves the highlight (no rebuild, no
      // text measures; the click's analysis request is not kept waiting behind them)
      if (viewed !== this.viewed) {
        this.viewed = viewed;
        for (const r of this.body.querySelectorAll(".sl-row.sl-active")) r.classList.remove("sl-active");
        const row = viewed === null ? null : this.body.querySelector(`.sl-row[data-id="${viewed}"]`);
        row?.classList.add("sl-active");
        this.scroll(sim ? `${app.jumpTo}|${sim.ids.join(",")}` : "");
      }
      return;
    }
    this.sig = sig;
    this.viewed = viewed;
    const frag = document.createDocumentFragment();
    const fit = this.fitter();
    for (const id of ids) frag.append(this.row(id, viewed, sim, fit));
    this.body.replaceChildren(frag);
    this.scroll(sim ? `${app.jumpTo}|${sim.ids.join(",")}` : "");
    if (!ids.length) {
      this.body.append(h("div", { class: "sl-empty" }, "No samples in the list. Add one by id, Select all, or pick dots on the map."));
    }
    const pages = Math.max(1, Math.ceil(sel.length / PAGE_SIZE));
    const start = app.listPage * PAGE_SIZE;
    this.pager.replaceChildren();
    if (pages > 1) {
      const go = (p: number) => {
        app.listPage = Math.max(0, Math.min(pages - 1, p));
        app.jumpTo = null;
        app.emit("page");
      };
      this.pager.append(
        h("button", { class: "sl-btn sl-small", "data-role": "prev", disabled: app.listPage === 0, onclick: () => go(app.listPage - 1) }, "‹"),
        h("span", { class: "sl-muted" }, `${start + 1}–${Math.min(sel.length, start + PAGE_SIZE)} of ${sel.length}`),
        h("button", { class: "sl-btn sl-small", "data-role": "next", disabled: app.listPage >= pages - 1, onclick: () => go(app.listPage + 1) }, "›"),
      );
    }
  }

  private row(id: number, viewed: number | null, sim: ReturnType<App["currentSimilar"]>, fit: (text: string) => string): HTMLElement {
    const app = this.app;
    const r = app.rows.get(app.rowKey(id));
    const multi = r?.label_set !== undefined;
    const wrong = r && errorClasses(verdictOfRow(r)) !== null;
    const truth = r ? (multi ? app.setName(r.label_set) : app.labelName(r.label)) : "…";
    const pred = r ? (multi ? app.setName(r.prediction_set) : app.labelName(r.prediction)) : "";
    const s = sim?.sims.get(id);
    const fresh = !!sim && sim.added.has(id);
    const conf = r?.confidence;
    return h(
      "div",
      {
        class: `sl-row${id === viewed ? " sl-active" : ""}${fresh ? " sl-similar" : ""}`,
        "data-id": String(id),
        "data-similar": s !== undefined ? s.toFixed(4) : undefined,
        title: s !== undefined ? `sample ${id} (similarity ${s.toFixed(3)})` : `sample ${id}`,
        onclick: () => {
          app.clearFailures();
          app.setTrait("viewed", id);
        },
      },
      r ? h("img", { class: "sl-thumb", src: r.thumb, alt: "" }) : h("span", { class: "sl-thumb sl-ph" }),
      h("span", { class: "sl-id" }, String(id)),
      h("span", { class: "sl-lab", title: truth }, fit(truth)),
      h("span", { class: `sl-lab${wrong ? " sl-wrong" : ""}`, title: pred }, fit(pred)),
      h("span", { class: "sl-num", "data-col": "loss" }, r ? fmt(r.loss, 2) : ""),
      h("span", { class: "sl-num", "data-col": "confidence", title: "probability of the prediction" }, r ? fmt(conf, 2) : ""),
      h("span", { class: "sl-num sl-sim", "data-col": "similarity" }, s !== undefined ? s.toFixed(3) : ""),
      h(
        "button",
        {
          class: "sl-row-x",
          "data-role": "remove",
          title: `Remove sample ${id} from the list`,
          "aria-label": `Remove sample ${id}`,
          onclick: (e: Event) => {
            e.stopPropagation();
            app.removeSample(id);
          },
        },
        "×",
      ),
    );
  }

  /** Scroll the list (only: scrollIntoView would scroll the notebook too) to the rows a Fetch
   * similar just added, once; else keep the viewed row in view. */
  private scroll(jump: string): void {
    const app = this.app;
    const view = this.body;
    if (app.jumpTo !== null && jump !== this.scrolledJump) {
      const first = view.querySelector(`.sl-row[data-id="${app.jumpTo}"]`) as HTMLElement | null;
      if (first) {
        this.scrolledJump = jump;
        // the added rows from the top; one row before them too when they all fit with it
        const added = app.currentSimilar()?.added.size ?? 1;
        const block = (added + 1) * first.offsetHeight;
        view.scrollTop = Math.max(0, first.offsetTop - (block <= view.clientHeight ? first.offsetHeight : 0));
        return;
      }
    }
    if (app.jumpTo !== null) return; // the added rows stay in view until the user moves on
    // on the next frame, when its layout is done anyway: reading offsetTop now would lay the
    // notebook page out once more before the click's request goes
    if (this.scrollFrame) return;
    const later = typeof requestAnimationFrame === "function" ? requestAnimationFrame : (f: () => void) => f();
    this.scrollFrame = 1;
    later(() => {
      this.scrollFrame = 0;
      const active = view.querySelector(".sl-active") as HTMLElement | null;
      if (!active) return;
      const top = active.offsetTop;
      if (top < view.scrollTop || top + active.offsetHeight > view.scrollTop + view.clientHeight) {
        view.scrollTop = Math.max(0, top - view.clientHeight / 2);
      }
    });
  }

  private updateNote(): void {
    const app = this.app;
    const n = app.listNote;
    if (!n) {
      this.note.replaceChildren();
      this.note.hidden = true;
      return;
    }
    this.note.hidden = false;
    const undo = n.undo ? [h("button", { class: "sl-btn sl-small", "data-role": "note-undo", onclick: () => app.undo() }, "Undo")] : [];
    this.note.replaceChildren(
      h("span", { class: "sl-list-note-text" }, n.text),
      ...undo,
      h(
        "button",
        {
          class: "sl-x",
          title: "Dismiss",
          onclick: () => {
            app.listNote = null;
            app.emit("page");
          },
        },
        "×",
      ),
    );
  }
}
