// Error analysis (right, under the controller): the viewed sample and its slice; for a
// misclassified sample, small maps of the predicted class, the true label and the loss; for a
// segmentation, the explained class's share of the pixels and, against a true mask, its IoU
// and the pixel accuracy. Its second tab is the Trust view (panels/trust.ts), computed only
// while it shows.
import type { App } from "../app";
import { fmt, h } from "../dom";
import { middleEllipsis } from "../names";
import { BaseCache, OverlayCanvas, thumbSize } from "../overlay";
import { fmtValue } from "../scale";
import { type AnalysisKey, type AnalysisMeta, keyString, mapAt, misclassified } from "../protocol";
import { TrustView } from "./trust";

/** A class name in the top-k bars: at most this many characters, shortened in the middle. */
const BAR_NAME_CHARS = 12;
/** The long side of an error map, in CSS pixels. */
const THUMB = 76; // CSS px, as .sl-error-map in style.css

interface MapSlot {
  name: "pred" | "true" | "loss";
  oc: OverlayCanvas;
  wait: HTMLElement;
  caption: HTMLElement;
  wrap: HTMLElement;
  key: AnalysisKey | null;
  drawn: string; // what the canvas shows now (skip a redraw that would change nothing)
}

export class ErrorAnalysis {
  el: HTMLElement;
  private body = h("div", { class: "sl-errors-body" });
  private sig = "";
  private slots: MapSlot[];
  private maps: HTMLElement;
  private bases = new BaseCache(16);
  readonly trust: TrustView;
  private tabs: { errors: HTMLButtonElement; trust: HTMLButtonElement };

  constructor(private app: App) {
    this.slots = (["pred", "true", "loss"] as const).map((name) => {
      const oc = new OverlayCanvas("sl-canvas sl-error-canvas");
      oc.canvas.dataset.role = `error-map-${name}`;
      const wait = h("div", { class: "sl-error-wait" }, "computing…");
      const caption = h("div", { class: "sl-caption sl-error-caption" }, name);
      const wrap = h("div", { class: "sl-error-map" }, wait, oc.canvas, caption);
      return { name, oc, wait, caption, wrap, key: null, drawn: "" };
    });
    this.maps = h("div", { class: "sl-error-maps", "data-role": "error-maps" }, ...this.slots.map((s) => s.wrap));
    this.trust = new TrustView(app);
    const tab = (name: "errors" | "trust", text: string) => {
      const b = h("button", { class: "sl-side-tab", "data-role": `side-tab-${name}`, type: "button" }, text) as HTMLButtonElement;
      b.addEventListener("click", () => app.setSideTab(name));
      return b;
    };
    this.tabs = { errors: tab("errors", "Error analysis"), trust: tab("trust", "Trust") };
    this.el = h(
      "div",
      { class: "sl-panel sl-errors", "data-role": "error-analysis" },
      h("div", { class: "sl-panel-title sl-side-tabs", role: "tablist" }, this.tabs.errors, this.tabs.trust),
      this.body,
      this.trust.el,
    );
  }

  update(): void {
    const onTrust = this.app.sideTab === "trust";
    this.tabs.errors.classList.toggle("sl-side-tab-on", !onTrust);
    this.tabs.trust.classList.toggle("sl-side-tab-on", onTrust);
    this.tabs.errors.setAttribute("aria-selected", String(!onTrust));
    this.tabs.trust.setAttribute("aria-selected", String(onTrust));
    this.body.style.display = onTrust ? "none" : "";
    this.trust.el.style.display = onTrust ? "" : "none";
    if (onTrust) this.trust.update();
    else this.updateErrors();
  }

  private updateErrors(): void {
    const app = this.app;
    const k = app.currentKey();
    const a = app.analysisOf(k);
    const st = app.stats.get(`${app.get("model_name")}|${app.get("slice")}`);
    const sig = `${k ? keyString(k) : ""}|${a ? 1 : 0}|${st ? 1 : 0}`;
    if (sig !== this.sig) {
      this.sig = sig;
      this.build();
    }
    this.redraw();
  }

  private build(): void {
    const app = this.app;
    const k = app.currentKey();
    const a = app.analysisOf(k);
    const st = app.stats.get(`${app.get("model_name")}|${app.get("slice")}`);
    if (!k || !a) {
      this.setKeys(false);
      this.body.replaceChildren(h("div", { class: "sl-empty" }, k ? "computing…" : "No sample viewed."));
      return;
    }
    const m = a.meta;
    const t = m.true_label;
    const multi = m.task === "multilabel";
    const trueSet = m.true_set ?? null;
    const hasTruth = multi ? Array.isArray(trueSet) : t !== null;
    const ok = hasTruth && !misclassified(m);
    // A regression or a segmentation has no single class to be right or wrong about.
    const classes = m.task === undefined || !["regression", "segmentation"].includes(m.task);
    const badge = !classes
      ? h("span", { class: "sl-badge" }, m.task)
      : !hasTruth
      ? h("span", { class: "sl-badge" }, "no label")
      : h("span", { class: `sl-badge ${ok ? "sl-ok" : "sl-bad"}`, "data-role": "badge" }, ok ? "correct" : "incorrect");
    const probs = m.probabilities ?? null;
    const topk = m.topk ?? [];
    const bars = h("div", { class: "sl-bars", "data-role": "topk" });
    for (const [c, p] of topk) {
      const width = Math.max(0, Math.min(1, Number.isFinite(p) ? p : 0)) * 100; // multilabel: each in [0, 1], no sum
      bars.append(
        h(
          "div",
          { class: `sl-bar-row${(multi ? trueSet?.includes(c) : c === t) ? " sl-bar-true" : ""}` },
          h("span", { class: "sl-bar-name", title: app.labelName(c) }, middleEllipsis(app.labelName(c), BAR_NAME_CHARS)),
          h("span", { class: "sl-bar-track" }, h("span", { class: "sl-bar", style: { width: `${width.toFixed(1)}%` } })),
          h("span", { class: "sl-num" }, fmt(p, 3)),
        ),
      );
    }
    if (!topk.length) bars.append(h("div", { class: "sl-muted" }, "—"));
    const sliceInfo = h("div", { class: "sl-slice-stats", "data-role": "slice-stats" });
    if (st) {
      sliceInfo.append(
        h("div", {}, h("b", {}, `${st.accuracy_title ?? "Slice accuracy"} `), st.accuracy === null ? "—" : `${(st.accuracy * 100).toFixed(1)}% of ${st.n}`),
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
    const wrong = this.setKeys(misclassified(m));
    const seg = m.task === "segmentation" && m.segmentation ? this.segmentationRows(m) : null;
    const parts: (HTMLElement | null)[] = [
      h("div", { class: "sl-kv" }, h("span", {}, "sample"), h("b", {}, `#${k.id}`), badge),
      ...(seg ?? [
        h("div", { class: "sl-kv" }, h("span", {}, "true"), h("b", { "data-role": "true-label" }, multi ? app.setName(trueSet) : app.labelName(t))),
      ]),
      multi
        ? h("div", { class: "sl-kv" }, h("span", {}, "predicted"), h("b", { "data-role": "pred-label" }, app.setName(m.predicted_set ?? [])))
        : h(
            "div",
            { class: "sl-kv" },
            h("span", {}, "predicted"),
            h("b", { "data-role": "pred-label" }, app.labelName(m.prediction)),
            h("span", { class: "sl-muted" }, probs ? fmt(probs[m.prediction], 3) : "—"),
          ),
      seg && m.loss === null ? null : h("div", { class: "sl-kv" }, h("span", {}, "loss"), h("b", { "data-role": "loss" }, fmt(m.loss, 4))),
      wrong ? this.maps : null,
      h("div", { class: "sl-subtitle" }, topk.length ? `Top-${topk.length} probabilities${multi ? " (each class on its own)" : ""}` : "Probabilities"),
      bars,
      sliceInfo,
    ];
    this.body.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
  }

  /** A segmentation's rows: the explained class's share of the pixels, and (with a true mask)
   * its IoU and the pixel accuracy. */
  private segmentationRows(m: AnalysisMeta): HTMLElement[] {
    const s = m.segmentation!;
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
    const rows: HTMLElement[] = [];
    if (s.cls >= 0) {
      rows.push(
        h(
          "div",
          { class: "sl-kv", "data-role": "seg-share" },
          h("span", {}, "class"),
          h("span", { class: "sl-kv-span" }, h("b", {}, `${this.app.labelName(s.cls)}: ${pct(s.share)}`), h("span", { class: "sl-muted" }, " of the image")),
        ),
      );
    }
    if (s.iou !== null && s.iou !== undefined) {
      rows.push(h("div", { class: "sl-kv", "data-role": "seg-iou" }, h("span", {}, "IoU"), h("b", {}, s.iou.toFixed(3))));
    }
    if (s.pixel_accuracy !== null && s.pixel_accuracy !== undefined) {
      rows.push(
        h(
          "div",
          { class: "sl-kv sl-kv-wide", "data-role": "seg-accuracy" },
          h("span", {}, "pixel accuracy"),
          h("b", {}, pct(s.pixel_accuracy)),
        ),
      );
    }
    return rows;
  }

  /** Point the three maps at the error keys (none when `wrong` is false); true when shown. */
  private setKeys(wrong: boolean): boolean {
    const ek = wrong ? this.app.errorKeys() : null;
    for (const s of this.slots) {
      s.key = ek ? ek[s.name] : null;
      s.drawn = "";
    }
    if (ek) {
      const app = this.app;
      const c = ek.classes;
      this.slots[0].caption.textContent = `${c.predTitle}: ${app.labelName(c.pred)}`;
      this.slots[1].caption.textContent = c.truth === null ? "" : `${c.trueTitle}: ${app.labelName(c.truth)}`;
      this.slots[2].caption.textContent = "loss";
      for (const s of this.slots) s.caption.title = s.caption.textContent ?? "";
    }
    for (const s of this.slots) s.wrap.style.display = ek && !s.key ? "none" : "";
    return ek !== null;
  }

  /** Repaint the error maps (or the Trust view's depth mark) from what the page holds. */
  redraw(): void {
    if (this.app.sideTab === "trust") this.trust.redraw();
    else this.redrawMaps();
  }

  private redrawMaps(): void {
    const app = this.app;
    const depth = app.get("depth");
    const cmap = app.get("colormap");
    const opacity = app.get("opacity");
    for (const s of this.slots) {
      const k = s.key;
      if (!k) continue;
      const ks = keyString(k);
      const a = app.analysisOf(k);
      const ik = `${k.slice}|${k.id}|${k.connection}`;
      let ready = false;
      if (a && a.maps.length) {
        const [ih, iw] = a.meta.input_size;
        const [H, W] = thumbSize(ih, iw, THUMB, Math.min(2, window.devicePixelRatio || 1));
        ready = this.bases.apply(s.oc, ik, app.images.get(ik), H, W, () => this.redrawMaps());
      }
      s.oc.canvas.style.display = ready ? "" : "none";
      s.wait.style.display = ready ? "none" : "";
      if (!ready) {
        s.wait.textContent = app.failed.has(ks) ? "error" : "computing…";
        s.wait.title = app.failed.get(ks) ?? "";
        s.drawn = "";
        continue;
      }
      // the same scale as the viewer's (its range can widen as other labels' maps arrive)
      const range = app.rangeFor(a!, mapAt(a!.maps, depth));
      const drawn = `${ks}#${depth}#${cmap}#${opacity}#${range.join(",")}`;
      if (drawn === s.drawn) continue;
      s.oc.draw(a!, ks, depth, cmap, opacity, true, false, () => range);
      s.drawn = drawn;
      const l = s.oc.layer!;
      const [lo, hi] = s.oc.range;
      s.oc.canvas.title = `${l.name} · depth ${l.depth}${l.flat ? " · constant map" : ""} · colour scale ${fmtValue(lo)}..${fmtValue(hi)}`;
    }
  }
}
