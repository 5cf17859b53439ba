// Error analysis (right, under the controller): the viewed sample and its slice.
import type { App } from "../app";
import { fmt, h } from "../dom";

export class ErrorAnalysis {
  el: HTMLElement;
  private body = h("div", { class: "sl-errors-body" });
  private sig = "";

  constructor(private app: App) {
    this.el = h(
      "div",
      { class: "sl-panel sl-errors", "data-role": "error-analysis" },
      h("div", { class: "sl-panel-title" }, "Error analysis"),
      this.body,
    );
  }

  update(): void {
    const app = this.app;
    const k = app.currentKey();
    const a = app.analysisOf(k);
    const st = app.stats.get(`${app.get("model_name")}|${app.get("slice")}`);
    const sig = `${k ? JSON.stringify(k) : ""}|${a ? 1 : 0}|${st ? 1 : 0}`;
    if (sig === this.sig) return;
    this.sig = sig;
    if (!k || !a) {
      this.body.replaceChildren(h("div", { class: "sl-empty" }, k ? "computing…" : "No sample viewed."));
      return;
    }
    const m = a.meta;
    const t = m.true_label;
    const ok = t !== null && t === m.prediction;
    const badge = t === null
      ? h("span", { class: "sl-badge" }, "no label")
      : h("span", { class: `sl-badge ${ok ? "sl-ok" : "sl-bad"}`, "data-role": "badge" }, ok ? "correct" : "incorrect");
    const probs = m.probabilities;
    const bars = h("div", { class: "sl-bars", "data-role": "topk" });
    for (const [c, p] of m.topk) {
      bars.append(
        h(
          "div",
          { class: `sl-bar-row${c === t ? " sl-bar-true" : ""}` },
          h("span", { class: "sl-bar-name", title: app.labelName(c) }, app.labelName(c)),
          h("span", { class: "sl-bar-track" }, h("span", { class: "sl-bar", style: { width: `${(p * 100).toFixed(1)}%` } })),
          h("span", { class: "sl-num" }, p.toFixed(3)),
        ),
      );
    }
    const sliceInfo = h("div", { class: "sl-slice-stats", "data-role": "slice-stats" });
    if (st) {
      sliceInfo.append(
        h("div", {}, h("b", {}, "Slice accuracy "), st.accuracy === null ? "—" : `${(st.accuracy * 100).toFixed(1)}% of ${st.n}`),
      );
      if (st.confusion && t !== null && t >= 0 && t < st.confusion.length) {
        const row = st.confusion[t];
        const total = row.reduce((s, x) => s + x, 0);
        const n = row[m.prediction] ?? 0;
        sliceInfo.append(
          h(
            "div",
            { "data-role": "confusion" },
            `true ${app.labelName(t)} predicted as ${app.labelName(m.prediction)}: `,
            h("b", {}, `${n} of ${total}`),
          ),
        );
      }
    } else {
      sliceInfo.append(h("div", { class: "sl-muted" }, "slice statistics: computing…"));
    }
    this.body.replaceChildren(
      h("div", { class: "sl-kv" }, h("span", {}, "sample"), h("b", {}, `#${k.id}`), badge),
      h("div", { class: "sl-kv" }, h("span", {}, "true"), h("b", { "data-role": "true-label" }, app.labelName(t))),
      h(
        "div",
        { class: "sl-kv" },
        h("span", {}, "predicted"),
        h("b", { "data-role": "pred-label" }, app.labelName(m.prediction)),
        h("span", { class: "sl-muted" }, probs ? fmt(probs[m.prediction], 3) : ""),
      ),
      h("div", { class: "sl-kv" }, h("span", {}, "loss"), h("b", { "data-role": "loss" }, fmt(m.loss, 4))),
      h("div", { class: "sl-subtitle" }, `Top-${m.topk.length} probabilities`),
      bars,
      sliceInfo,
    );
  }
}
