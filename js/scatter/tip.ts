// The scatter's hover tooltip: the sample's thumbnail (asked for after a short rest), its true
// and predicted class, its loss and the colour-by value.
import { h } from "../dom";
import type { ScatterPanel } from "../panels/scatter";
import { columnText } from "./colors";

export class HoverTip {
  readonly el = h("div", { class: "sl-pop-tip", "data-role": "scatter-tip" });
  /** The sample shown (-1: none). */
  id = -1;
  private timer = 0;

  constructor(private panel: ScatterPanel) {}

  hover(clientX: number, clientY: number): void {
    const id = this.panel.hitAt(clientX, clientY);
    if (id < 0) {
      this.hide();
      return;
    }
    this.show(id, [clientX, clientY]);
  }
  hide(): void {
    this.id = -1;
    this.el.style.display = "none";
    window.clearTimeout(this.timer);
  }
  show(id: number, at: [number, number] | null): void {
    const app = this.panel.app;
    const pop = app.population();
    if (!pop) return;
    const changed = id !== this.id;
    this.id = id;
    const col = (k: string) => pop.columns.find((c) => c.key === k);
    const names = app.info.label_names;
    const lab = col("label"), pred = col("prediction"), loss = col("loss");
    const cur = this.panel.column(pop);
    const url = app.thumbs.get(`${pop.slice}|${id}`) ?? null;
    if (!url && changed) {
      window.clearTimeout(this.timer);
      this.timer = window.setTimeout(() => {
        if (this.id === id) app.thumb(id);
      }, 120);
    }
    const wrong = lab && pred && lab.data[id] !== pred.data[id];
    const rows: [string, string, string?][] = [
      ["true", lab ? columnText(lab, id, names) : "—"],
      ["pred", pred ? columnText(pred, id, names) : "—", wrong ? "sl-wrong" : undefined],
      ["loss", loss ? columnText(loss, id) : "—"],
    ];
    if (cur && !["label", "prediction", "loss", "correct"].includes(cur.key)) rows.push([cur.title, columnText(cur, id)]);
    this.el.replaceChildren(
      url ? h("img", { class: "sl-pop-thumb", src: url, alt: "" }) : h("span", { class: "sl-pop-thumb sl-ph" }),
      h(
        "div",
        { class: "sl-pop-tip-text" },
        h("div", { class: "sl-pop-tip-id" }, `#${id}`),
        ...rows.map(([k, v, cls]) => h("div", {}, h("span", { class: "sl-muted" }, `${k} `), h("span", { class: cls ?? "" }, v))),
      ),
    );
    this.el.dataset.id = String(id);
    this.el.style.display = "flex";
    if (at) {
      const r = this.panel.stage.getBoundingClientRect();
      let x = at[0] - r.left + 14, y = at[1] - r.top + 14;
      if (x + 190 > r.width) x = at[0] - r.left - 190;
      if (y + 90 > r.height) y = at[1] - r.top - 90;
      this.el.style.left = `${Math.max(0, x)}px`;
      this.el.style.top = `${Math.max(0, y)}px`;
    }
  }
}
