// The population panel's status: the title's "N samples · method", the stage's message before
// the scatter shows (the pass's progress / an error with Retry / no WebGL), the projection's
// note, and one line per phase still running (its own progress), gone when all are done:
//   features + statistics  340 / 1000   the slice's one pass (both from the same forwards)
//   statistics             340 / 1000   features from the cache: the dots show, colours follow
//   projection             UMAP · 12 s  the PCA preview is shown meanwhile
import { h } from "../dom";
import type { PassProgress, Population } from "../state";

/** The words of a phase of the slice's pass. */
export function passPhaseName(phase: PassProgress["phase"]): string {
  return phase === "statistics" ? "statistics" : "features + statistics";
}

export class PopStatus {
  readonly msg = h("div", { class: "sl-pop-msg", "data-role": "scatter-msg" });
  readonly line = h("span", { class: "sl-pop-status", "data-role": "scatter-status" });
  readonly note = h("div", { class: "sl-pop-note", "data-role": "scatter-note" });
  readonly progress = h("div", { class: "sl-progress", "data-role": "scatter-progress" });
  /** The phases still running, one line each (data-phase: pass / projection). */
  readonly phases = h("div", { class: "sl-pop-phases", "data-role": "scatter-phases" });
  private bar = h("div", { class: "sl-progress-bar" });
  private umapSince = 0;
  private umapKey = "";
  private timer = 0;

  constructor() {
    this.progress.append(this.bar);
  }

  destroy(): void {
    window.clearInterval(this.timer);
    this.timer = 0;
  }

  show(
    pop: Population | null,
    err: string | undefined,
    prog: PassProgress | undefined,
    statsKnown: boolean,
    glError: string | null,
    retry: () => void,
  ): void {
    const passRunning = !err && !!prog && prog.done < prog.total && !(pop && statsKnown);
    const passShown = !err && (!pop || passRunning);
    // the pass's bar: before the scatter, and after it while the statistics still run
    this.progress.style.display = passShown ? "" : "none";
    const frac = prog && prog.total ? prog.done / prog.total : 0;
    this.bar.style.width = `${(100 * frac).toFixed(1)}%`;
    const phaseText = prog ? `${passPhaseName(prog.phase)} ${prog.done} / ${prog.total}` : "features + statistics…";
    if (pop) {
      this.msg.replaceChildren();
      this.msg.style.display = "none";
    } else if (err) {
      this.msg.style.display = "";
      this.msg.replaceChildren(
        h("div", { class: "sl-pop-err" }, err),
        h("button", { class: "sl-btn", "data-role": "scatter-retry", onclick: () => retry() }, "Retry"),
      );
    } else {
      this.msg.style.display = "";
      this.msg.replaceChildren(h("span", { class: "sl-spinner" }), ` ${phaseText}`);
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
    this.showPhases(pop, passRunning && !!pop ? phaseText : null);
  }

  /** The phases line under the toolbar once the scatter shows: the pass (the statistics
   * after cached features) and the projection, each with its progress; empty when done. */
  private showPhases(pop: Population | null, passText: string | null): void {
    const rows: HTMLElement[] = [];
    if (passText) {
      rows.push(h("div", { class: "sl-pop-phase", "data-phase": "pass" }, h("span", { class: "sl-spinner" }), ` ${passText} · colours follow`));
    }
    const umap = !!pop && pop.umapPending;
    if (umap && pop) {
      if (this.umapKey !== pop.key || !this.umapSince) {
        this.umapKey = pop.key;
        this.umapSince = performance.now();
      }
      rows.push(h("div", { class: "sl-pop-phase", "data-phase": "projection" }, h("span", { class: "sl-spinner" }), this.umapText()));
      if (!this.timer) this.timer = window.setInterval(() => this.tick(), 1000);
    } else {
      this.umapSince = 0;
      if (this.timer) {
        window.clearInterval(this.timer);
        this.timer = 0;
      }
    }
    this.phases.replaceChildren(...rows);
    this.phases.style.display = rows.length ? "" : "none";
  }

  /** The projection's seconds, once a second while UMAP runs. */
  private tick(): void {
    const el = this.phases.querySelector<HTMLElement>("[data-phase=projection]");
    if (!el || !this.umapSince) return;
    el.lastChild!.textContent = this.umapText();
  }

  /** The projection phase's words: UMAP's seconds so far. */
  private umapText(): string {
    const s = Math.round((performance.now() - this.umapSince) / 1000);
    return ` projection: UMAP ${s} s · the PCA preview meanwhile`;
  }
}
