// Sample list (left): the selected samples as rows, with Select all / Add sample / Fetch similar.
import type { App } from "../app";
import { PAGE_SIZE } from "../app";
import { fmt, h, stopKeys } from "../dom";
import { errorClasses, verdictOfRow } from "../protocol";

export class SampleList {
  el: HTMLElement;
  private body = h("div", { class: "sl-rows", "data-role": "rows" });
  private pager = h("div", { class: "sl-pager" });
  private addInput = h("input", {
    class: "sl-input",
    type: "text",
    placeholder: "id",
    "data-role": "add-id",
    size: 6,
  }) as HTMLInputElement;
  private count = h("span", { class: "sl-muted" });
  private similar: HTMLButtonElement;
  private kInput = h("input", {
    class: "sl-input sl-k",
    type: "number",
    min: 1,
    value: 8,
    title: "How many similar samples to fetch (k)",
    "data-role": "similar-k",
  }) as HTMLInputElement;
  private sig = "";

  constructor(private app: App) {
    stopKeys(this.addInput);
    const add = () => {
      const text = this.addInput.value.trim();
      if (!text) return;
      app.addSample(text);
      this.addInput.value = "";
    };
    this.addInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter") add();
    });
    this.similar = h(
      "button",
      { class: "sl-btn", "data-role": "similar", title: "Add the k nearest neighbours of the selection" },
      "Fetch similar",
    ) as HTMLButtonElement;
    stopKeys(this.kInput);
    const fetch = () => {
      const k = Number(this.kInput.value);
      if (!Number.isInteger(k) || k < 1) {
        app.pushError(`k: ${JSON.stringify(this.kInput.value)} is not a whole number >= 1`);
        return;
      }
      app.fetchSimilar(k);
    };
    this.similar.addEventListener("click", fetch);
    this.kInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter") fetch();
    });
    this.el = h(
      "div",
      { class: "sl-panel sl-list", "data-role": "sample-list" },
      h("div", { class: "sl-panel-title" }, "Samples ", this.count),
      h(
        "div",
        { class: "sl-toolbar" },
        h("button", { class: "sl-btn", "data-role": "select-all", onclick: () => app.selectAll() }, "Select all"),
        this.similar,
        h("label", { class: "sl-muted", title: "k" }, "k"),
        this.kInput,
      ),
      h(
        "div",
        { class: "sl-toolbar" },
        this.addInput,
        h("button", { class: "sl-btn", "data-role": "add", onclick: add }, "Add sample"),
      ),
      h(
        "div",
        { class: "sl-row sl-row-head" },
        h("span", {}, ""),
        h("span", {}, "id"),
        h("span", {}, "true"),
        h("span", {}, "pred"),
        h("span", { class: "sl-num" }, "loss"),
      ),
      this.body,
      this.pager,
    );
  }

  update(): void {
    const app = this.app;
    const sel = app.get("selected");
    const ids = app.pageIds();
    const viewed = app.get("viewed");
    this.similar.disabled = !sel.length;
    const sim = app.similar && app.similar.key === app.popKey() ? app.similar : null;
    const rowsReady = ids.map((id) => (app.rows.has(app.rowKey(id)) ? 1 : 0)).join("");
    const sig = `${app.get("model_name")}|${app.get("slice")}|${viewed}|${app.listPage}|${ids.join(",")}|${rowsReady}|${sim ? sim.ids.join(",") : ""}`;
    if (sig === this.sig) return;
    this.sig = sig;
    this.count.textContent = `(${sel.length})`;
    const frag = document.createDocumentFragment();
    for (const id of ids) {
      const r = app.rows.get(app.rowKey(id));
      const multi = r?.label_set !== undefined;
      const wrong = r && errorClasses(verdictOfRow(r)) !== null;
      const truth = r ? (multi ? app.setName(r.label_set) : app.labelName(r.label)) : "…";
      const pred = r ? (multi ? app.setName(r.prediction_set) : app.labelName(r.prediction)) : "";
      const s = sim?.sims.get(id);
      const row = h(
        "div",
        {
          class: `sl-row${id === viewed ? " sl-active" : ""}${s !== undefined ? " sl-similar" : ""}`,
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
        h("span", { class: "sl-lab", title: truth }, truth),
        h("span", { class: `sl-lab${wrong ? " sl-wrong" : ""}`, title: pred }, pred),
        h("span", { class: "sl-num" }, r ? fmt(r.loss, 2) : ""),
      );
      frag.append(row);
    }
    this.body.replaceChildren(frag);
    const active = this.body.querySelector(".sl-active") as HTMLElement | null;
    if (active) {
      // scroll the list only (scrollIntoView would scroll the notebook too)
      const top = active.offsetTop;
      const view = this.body;
      if (top < view.scrollTop || top + active.offsetHeight > view.scrollTop + view.clientHeight) {
        view.scrollTop = Math.max(0, top - view.clientHeight / 2);
      }
    }
    if (!ids.length) {
      this.body.append(h("div", { class: "sl-empty" }, "No samples selected. Use Select all or Add sample."));
    }
    const pages = Math.max(1, Math.ceil(sel.length / PAGE_SIZE));
    const start = app.listPage * PAGE_SIZE;
    this.pager.replaceChildren();
    if (pages > 1) {
      const go = (p: number) => {
        app.listPage = Math.max(0, Math.min(pages - 1, p));
        app.emit("page");
      };
      this.pager.append(
        h("button", { class: "sl-btn sl-small", "data-role": "prev", disabled: app.listPage === 0, onclick: () => go(app.listPage - 1) }, "‹"),
        h("span", { class: "sl-muted" }, `${start + 1}–${Math.min(sel.length, start + PAGE_SIZE)} of ${sel.length}`),
        h("button", { class: "sl-btn sl-small", "data-role": "next", disabled: app.listPage >= pages - 1, onclick: () => go(app.listPage + 1) }, "›"),
      );
    }
  }
}
