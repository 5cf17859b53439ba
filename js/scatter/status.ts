// The population panel's status: the title's "N samples · method", the feature pass's progress
// bar, the stage's message (computing / error with Retry / no WebGL) and the projection's note.
import { h } from "../dom";
import type { Population } from "../state";

export class PopStatus {
  readonly msg = h("div", { class: "sl-pop-msg", "data-role": "scatter-msg" });
  readonly line = h("span", { class: "sl-pop-status", "data-role": "scatter-status" });
  readonly note = h("div", { class: "sl-pop-note", "data-role": "scatter-note" });
  readonly progress = h("div", { class: "sl-progress", "data-role": "scatter-progress" });
  private bar = h("div", { class: "sl-progress-bar" });

  constructor() {
    this.progress.append(this.bar);
  }

  show(
    pop: Population | null,
    err: string | undefined,
    prog: { done: number; total: number } | undefined,
    glError: string | null,
    retry: () => void,
  ): void {
    // progress / messages
    if (pop) {
      this.progress.style.display = "none";
      this.msg.replaceChildren();
      this.msg.style.display = "none";
    } else if (err) {
      this.progress.style.display = "none";
      this.msg.style.display = "";
      this.msg.replaceChildren(
        h("div", { class: "sl-pop-err" }, err),
        h("button", { class: "sl-btn", "data-role": "scatter-retry", onclick: () => retry() }, "Retry"),
      );
    } else {
      this.progress.style.display = "";
      const frac = prog && prog.total ? prog.done / prog.total : 0;
      this.bar.style.width = `${(100 * frac).toFixed(1)}%`;
      this.msg.style.display = "";
      this.msg.replaceChildren(
        h("span", { class: "sl-spinner" }),
        prog ? ` computing features ${prog.done} / ${prog.total}` : " computing features…",
      );
    }
    if (glError) {
      this.msg.style.display = "";
      this.msg.replaceChildren(h("div", { class: "sl-pop-err" }, glError));
    }
    this.line.textContent = pop
      ? `${pop.n} samples · ${pop.method === "umap" ? "UMAP" : pop.method === "pca" ? (pop.umapPending ? "PCA preview, UMAP running…" : "PCA") : "—"}`
      : "";
    this.line.dataset.method = pop?.method ?? "";
    this.line.dataset.pending = pop?.umapPending ? "1" : "0";
    this.note.textContent = pop?.note ?? "";
    this.note.style.display = pop?.note ? "" : "none";
  }
}
