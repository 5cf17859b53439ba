// Header: title, data slice, model selector, compare toggle, kernel status; the error banner.
import type { App } from "../app";
import { h, setOptions, stopKeys } from "../dom";

/** The status shows "kernel working…" with a spinner once a wait lasts this long. */
export const BUSY_AFTER_MS = 250;

export class Header {
  el: HTMLElement;
  banner: HTMLElement;
  private slice = h("select", { class: "sl-select", title: "Data slice", "data-role": "slice" });
  private modelSel = h("select", { class: "sl-select", title: "Model", "data-role": "model" });
  private compareBox = h("input", { type: "checkbox", "data-role": "compare" }) as HTMLInputElement;
  private compareSel = h("select", { class: "sl-select", title: "Compare with", "data-role": "compare-model" });
  private modelWrap: HTMLElement;
  private status = h("span", { class: "sl-status", "data-role": "status" });

  private shown: "ready" | "busy" | "gone" | "" = "";
  private busyTimer = 0;
  private bannerSig = "";

  constructor(private app: App) {
    this.modelWrap = h(
      "span",
      { class: "sl-field" },
      h("label", {}, "Model"),
      this.modelSel,
      h("label", { class: "sl-check", title: "Show two models side by side" }, this.compareBox, "Compare"),
      this.compareSel,
    );
    this.el = h(
      "div",
      { class: "sl-header" },
      h("span", { class: "sl-title" }, "Sample Analysis"),
      h("span", { class: "sl-field" }, h("label", {}, "Slice"), this.slice),
      this.modelWrap,
      h("span", { class: "sl-spacer" }),
      this.status,
    );
    this.banner = h("div", { class: "sl-banner-wrap", "data-role": "errors" });
    [this.slice, this.modelSel, this.compareSel].forEach(stopKeys);
    this.slice.addEventListener("change", () => app.setTrait("slice", this.slice.value));
    this.modelSel.addEventListener("change", () => app.setTrait("model_name", this.modelSel.value));
    const setCompare = () => {
      app.setTrait("compare", this.compareBox.checked ? this.compareSel.value || null : null);
    };
    this.compareBox.addEventListener("change", setCompare);
    this.compareSel.addEventListener("change", setCompare);
  }

  private showStatus(state: "ready" | "busy" | "gone"): void {
    if (state === this.shown) return;
    this.shown = state;
    this.status.className = state === "gone" ? "sl-status sl-gone" : state === "busy" ? "sl-status sl-busy" : "sl-status";
    this.status.replaceChildren(
      state === "busy" ? h("span", { class: "sl-spinner", "aria-label": "working" }) : h("span", { class: "sl-dot" }),
      state === "gone" ? "no kernel" : state === "busy" ? "kernel working…" : "ready",
    );
  }

  destroy(): void {
    window.clearTimeout(this.busyTimer);
    this.busyTimer = 0;
  }

  update(): void {
    const app = this.app;
    const info = app.info;
    setOptions(
      this.slice,
      Object.entries(info.slices).map(([n, len]) => [n, `${n} (${len})`]),
      app.get("slice"),
    );
    const many = info.models.length > 1;
    this.modelWrap.style.display = many ? "" : "none";
    if (many) {
      const cur = app.get("model_name");
      setOptions(this.modelSel, info.models.map((m) => [m, m]), cur);
      const others = info.models.filter((m) => m !== cur);
      const cmp = app.get("compare");
      setOptions(this.compareSel, others.map((m) => [m, `vs ${m}`]), cmp && others.includes(cmp) ? cmp : others[0] ?? "");
      this.compareBox.checked = !!cmp;
      this.compareSel.disabled = !cmp;
    }
    const gone = app.disconnected;
    const busy = !gone && app.waiting();
    this.el.dataset.busy = busy ? "1" : "0";
    if (!busy) {
      window.clearTimeout(this.busyTimer);
      this.busyTimer = 0;
      this.showStatus(gone ? "gone" : "ready");
    } else if (this.shown !== "busy" && !this.busyTimer) {
      // a wait shorter than BUSY_AFTER_MS (most clicks) shows no spinner: no flicker, and no
      // animation repainting the page while the kernel computes the answer
      this.busyTimer = window.setTimeout(() => {
        this.busyTimer = 0;
        if (this.el.dataset.busy === "1") this.showStatus("busy");
      }, BUSY_AFTER_MS);
    }
    const last = app.errors[app.errors.length - 1];
    const bannerSig = `${gone}|${last ? `${last.id}|${last.text}` : ""}`;
    if (bannerSig === this.bannerSig) return;
    this.bannerSig = bannerSig;
    const notice = gone
      ? [
          h(
            "div",
            { class: "sl-banner sl-notice", role: "status", "data-role": "disconnected" },
            h(
              "span",
              { class: "sl-banner-text" },
              "The kernel behind this widget restarted or shut down: it no longer computes maps. " +
                "What it showed stays here; run the cell again to bring the widget back.",
            ),
          ),
        ]
      : [];
    this.banner.replaceChildren(
      ...notice,
      // one banner: the newest error (a later success of what failed clears it)
      ...app.errors.slice(-1).map((e) =>
        h(
          "div",
          { class: "sl-banner", role: "alert", "data-role": "error" },
          h("span", { class: "sl-banner-text" }, e.text),
          h("button", { class: "sl-x", title: "Dismiss", "data-role": "dismiss-error", onclick: () => app.dismissError(e.id) }, "×"),
        ),
      ),
    );
  }
}
