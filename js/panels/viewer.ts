// Viewer (centre): tabs (CAM overlay, Input, user visualizers), colormap/opacity, the canvases.
import type { App, Reason, Visual } from "../app";
import { gradientCss } from "../colormap";
import { h, setOptions, stopKeys } from "../dom";
import { BaseCache, OverlayCanvas, displaySize } from "../overlay";
import type { AnalysisKey } from "../protocol";
import { keyString } from "../protocol";
import { SCALES, fmtValue, isScale } from "../scale";

const SINGLE = 400;
const COMPARE = 300;
const GRID = 116;

interface Slot {
  oc: OverlayCanvas;
  key: () => AnalysisKey | null;
  target: number;
  caption: HTMLElement;
  heat: boolean;
  wrap: HTMLElement;
}

export class Viewer {
  el: HTMLElement;
  private tabs = h("div", { class: "sl-tabs", role: "tablist" });
  private toolbar = h("div", { class: "sl-toolbar sl-viewer-tools" });
  private stage = h("div", { class: "sl-stage", "data-role": "stage" });
  private cmap = h("select", { class: "sl-select", "data-role": "colormap", title: "Colormap" });
  private opacity = h("input", {
    type: "range", min: "0", max: "1", step: "0.05", "data-role": "opacity", title: "Heatmap opacity",
  }) as HTMLInputElement;
  private scaleSel = h(
    "select",
    { class: "sl-select", "data-role": "scale", title: "Colour scale: which maps share one range of values (the legend shows it)" },
    ...SCALES.map(([v, t, tip]) => h("option", { value: v, title: tip }, t)),
  ) as HTMLSelectElement;
  private gridBox = h("input", { type: "checkbox", "data-role": "grid" }) as HTMLInputElement;
  private gridLabel: HTMLElement;
  /** A segmentation's mask outline: page-side only (no trait), on by default. */
  private outlineBox = h("input", { type: "checkbox", "data-role": "mask-outline", checked: true }) as HTMLInputElement;
  private outlineLabel: HTMLElement;
  private readout = h("span", { class: "sl-readout", "data-role": "readout" }, "\u00a0");
  private slots: Slot[] = [];
  private bases = new BaseCache(64);
  private stageSig = "";
  private visualSig = "";
  private tabsSig = "";
  private legend = h("div", { class: "sl-legend" });
  /** The legend's numbers: the raw values at the top and the bottom of the colour scale. */
  private legendHi = h("span", { "data-role": "legend-hi" }, "—");
  private legendLo = h("span", { "data-role": "legend-lo" }, "—");
  private legendWrap = h("div", { class: "sl-legend-wrap", "data-role": "legend" }, this.legendHi, this.legend, this.legendLo);

  constructor(private app: App) {
    [this.cmap, this.opacity, this.scaleSel].forEach(stopKeys);
    this.scaleSel.addEventListener("change", () => {
      if (isScale(this.scaleSel.value)) app.setScale(this.scaleSel.value);
    });
    this.cmap.addEventListener("change", () => app.setTrait("colormap", this.cmap.value));
    this.opacity.addEventListener("input", () => {
      app.setTrait("opacity", Number(this.opacity.value), false);
      this.redraw();
    });
    this.opacity.addEventListener("change", () => app.save());
    this.gridBox.addEventListener("change", () => app.setTrait("grid", this.gridBox.checked));
    this.gridLabel = h("label", { class: "sl-check", title: "Show the selected samples as a grid" }, this.gridBox, "Grid");
    this.outlineBox.addEventListener("change", () => this.redraw());
    this.outlineLabel = h(
      "label",
      { class: "sl-check", title: "Outline the pixels predicted as the explained class", style: { display: "none" } },
      this.outlineBox,
      "Mask outline",
    );
    this.toolbar.append(
      h("span", { class: "sl-field" }, h("label", {}, "Colormap"), this.cmap),
      h("span", { class: "sl-field" }, h("label", {}, "Opacity"), this.opacity),
      h("span", { class: "sl-field" }, h("label", {}, "Scale"), this.scaleSel),
      this.gridLabel,
      this.outlineLabel,
      h("span", { class: "sl-spacer" }),
      this.readout,
    );
    this.el = h("div", { class: "sl-panel sl-viewer", "data-role": "viewer" }, this.tabs, this.toolbar, this.stage);
  }

  private tabNames(): string[] {
    return ["CAM", "Input", ...this.app.info.visualizers];
  }

  update(reason: Reason | "" = ""): void {
    const app = this.app;
    const tab = app.get("tab");
    const names = this.tabNames();
    const tsig = names.join("|") + "#" + tab;
    if (tsig !== this.tabsSig) {
      this.tabsSig = tsig;
      this.tabs.replaceChildren(
        ...names.map((n) =>
          h(
            "button",
            {
              class: `sl-tab${n === tab ? " sl-tab-active" : ""}`,
              role: "tab",
              "data-tab": n,
              onclick: () => app.setTrait("tab", n),
            },
            n === "CAM" ? "CAM overlay" : n,
          ),
        ),
      );
    }
    setOptions(this.cmap, app.info.colormaps.map((c) => [c, c]), app.get("colormap"));
    if (document.activeElement !== this.opacity) this.opacity.value = String(app.get("opacity"));
    if (this.scaleSel.value !== app.scale) this.scaleSel.value = app.scale;
    this.toolbar.style.visibility = tab === "CAM" ? "visible" : "hidden";
    const nsel = app.get("selected").length;
    this.gridLabel.style.display = nsel > 1 ? "" : "none";
    this.gridBox.checked = !!app.get("grid");
    this.outlineLabel.style.display = app.sampleAnalysis(app.currentKey())?.meta.task === "segmentation" ? "" : "none";
    this.legend.style.background = gradientCss(app.get("colormap"));

    const grid = tab === "CAM" && !!app.get("grid") && nsel > 1;
    const cmp = app.get("compare");
    const mode = tab === "CAM" ? (grid ? "grid" : cmp ? "compare" : "single") : tab === "Input" ? "input" : "visual";
    const sig = `${mode}|${mode === "grid" ? app.gridIds().join(",") : ""}|${cmp}|${app.get("model_name")}`;
    if (sig !== this.stageSig) {
      this.stageSig = sig;
      this.visualSig = "";
      this.buildStage(mode);
    }
    if (mode === "visual") this.renderVisual();
    else this.redraw();
    void reason;
  }

  private makeSlot(key: () => AnalysisKey | null, target: number, heat: boolean, captionText = ""): Slot {
    const oc = new OverlayCanvas(target <= GRID ? "sl-canvas sl-canvas-small" : "sl-canvas");
    const caption = h("div", { class: "sl-caption" }, captionText);
    const wrap = h("div", { class: "sl-slot" }, oc.canvas, caption);
    const slot: Slot = { oc, key, target, caption, heat, wrap };
    oc.canvas.addEventListener("mousemove", (e) => this.onPointer(slot, e));
    oc.canvas.addEventListener("mouseleave", () => (this.readout.textContent = "\u00a0"));
    return slot;
  }

  private buildStage(mode: string): void {
    const app = this.app;
    this.slots = [];
    this.stage.replaceChildren();
    this.stage.className = `sl-stage sl-stage-${mode}`;
    if (mode === "single") {
      const s = this.makeSlot(() => app.currentKey(), SINGLE, true);
      s.oc.canvas.dataset.role = "overlay";
      this.slots.push(s);
      this.stage.append(
        h("div", { class: "sl-overlay-row" }, s.wrap, this.legendWrap),
      );
    } else if (mode === "compare") {
      const cmp = app.get("compare") ?? undefined; // set: the compare mode
      const a = this.makeSlot(() => app.currentKey(), COMPARE, true);
      const b = this.makeSlot(() => app.currentKey(cmp), COMPARE, true);
      a.oc.canvas.dataset.role = "overlay";
      b.oc.canvas.dataset.role = "overlay-compare";
      this.slots.push(a, b);
      this.stage.append(
        h("div", { class: "sl-overlay-row" }, a.wrap, b.wrap, this.legendWrap),
      );
    } else if (mode === "grid") {
      const box = h("div", { class: "sl-grid" });
      for (const id of app.gridIds()) {
        const s = this.makeSlot(() => app.keyFor(id), GRID, true, `#${id}`);
        s.wrap.classList.add("sl-grid-item");
        s.wrap.dataset.id = String(id);
        s.wrap.addEventListener("click", () => {
          app.setTrait("viewed", id);
        });
        this.slots.push(s);
        box.append(s.wrap);
      }
      this.stage.append(box);
    } else if (mode === "input") {
      const s = this.makeSlot(() => app.currentKey(), SINGLE, false);
      s.oc.canvas.dataset.role = "input";
      this.slots.push(s);
      this.stage.append(h("div", { class: "sl-overlay-row" }, s.wrap));
    } else {
      this.stage.append(h("div", { class: "sl-visual", "data-role": "visual" }));
    }
  }

  /** Repaint every canvas from the maps already on the page (no kernel round trip). */
  redraw(): void {
    const app = this.app;
    const depth = app.get("depth");
    const cmap = app.get("colormap");
    const opacity = app.get("opacity");
    const viewed = app.get("viewed");
    const outline = this.outlineBox.checked;
    const scale = app.rangeFor.bind(app);
    let legend = false;
    for (const s of this.slots) {
      const k = s.key();
      s.wrap.classList.toggle("sl-active", this.stageSig.startsWith("grid") && k?.id === viewed);
      if (!k) {
        s.caption.textContent = "Select a sample in the list.";
        continue;
      }
      const a = app.analysisOf(k);
      const ks = keyString(k);
      if (!a) {
        s.caption.textContent = app.failed.get(ks) ? "error — see above" : "computing…";
        s.oc.canvas.classList.add("sl-stale");
        continue;
      }
      s.oc.canvas.classList.remove("sl-stale");
      const [ih, iw] = a.meta.input_size;
      const [H, W] = displaySize(ih, iw, s.target);
      const ik = `${k.slice}|${k.id}|${k.connection}`;
      if (!this.bases.apply(s.oc, ik, app.images.get(ik), H, W, () => this.redraw())) continue;
      if (s.heat) {
        s.oc.draw(a, ks, depth, cmap, opacity, true, outline, (m) => scale(a, m));
        const m = s.oc.layer!;
        if (!legend) {
          legend = true; // the first canvas's scale (compare: the viewed model's)
          this.setLegend(s.oc.range[0], s.oc.range[1]);
        }
        const who = this.stageSig.startsWith("compare") ? `${k.model} · ` : "";
        s.caption.textContent = s.target <= GRID
          ? `#${k.id} · ${app.labelName(a.meta.target)}`
          : `${who}${m.name}  [${m.shape.join("×")}]  depth ${m.depth}${m.flat ? " · constant map" : ""}`;
      } else {
        s.oc.drawPlain();
        s.caption.textContent = `input ${iw}×${ih}`;
      }
    }
  }

  /** The legend's numbers: the raw values at the bottom and the top of the colour bar. */
  private setLegend(lo: number, hi: number): void {
    const which = SCALES.find(([v]) => v === this.app.scale)?.[1] ?? "";
    for (const [el, v] of [[this.legendLo, lo], [this.legendHi, hi]] as const) {
      el.textContent = fmtValue(v);
      el.dataset.value = String(v);
      el.title = `${v} (raw map value; scale: ${which})`;
    }
  }

  private onPointer(s: Slot, e: MouseEvent): void {
    const r = s.oc.canvas.getBoundingClientRect();
    const x = ((e.clientX - r.left) * s.oc.canvas.width) / Math.max(1, r.width);
    const y = ((e.clientY - r.top) * s.oc.canvas.height) / Math.max(1, r.height);
    const a = s.oc.analysis;
    if (!a) return;
    const [ih, iw] = a.meta.input_size;
    const px = Math.floor((x * iw) / s.oc.canvas.width);
    const py = Math.floor((y * ih) / s.oc.canvas.height);
    const v = s.heat ? s.oc.valueAt(x, y) : null;
    this.readout.textContent = v === null ? `(${px}, ${py})` : `heat ${v.toFixed(2)} at (${px}, ${py})`;
  }

  private renderVisual(): void {
    const app = this.app;
    const box = this.stage.querySelector(".sl-visual") as HTMLElement | null;
    if (!box) return;
    const vk = app.visualKey();
    const v: Visual | undefined = vk ? app.visuals.get(vk) : undefined;
    const sig = `${vk}|${v ? "1" : "0"}`;
    if (sig === this.visualSig) return;
    this.visualSig = sig;
    if (!vk) {
      box.replaceChildren(h("div", { class: "sl-empty" }, "Select a sample in the list."));
      return;
    }
    if (!v) {
      box.replaceChildren(h("div", { class: "sl-empty" }, h("span", { class: "sl-spinner" }), " running the visualizer…"));
      return;
    }
    box.dataset.kind = v.kind;
    if (v.kind === "image") {
      const img = h("img", { class: "sl-vis-img", src: v.url, alt: "visualizer output" }) as HTMLImageElement;
      const w = v.width ?? 0;
      const hh = v.height ?? 0;
      const scale = Math.max(1, Math.floor(SINGLE / Math.max(w, hh, 1)));
      img.style.width = `${Math.min(520, w * scale)}px`;
      box.replaceChildren(img);
    } else if (v.kind === "text") {
      box.replaceChildren(h("pre", { class: "sl-vis-text" }, v.text ?? ""));
    } else if (v.kind === "error") {
      box.replaceChildren(
        h("div", { class: "sl-vis-error", role: "alert" }, v.message ?? "error"),
        h("pre", { class: "sl-vis-text sl-muted" }, v.traceback ?? ""),
      );
    } else if (v.kind === "plotly") {
      const plot = h("div", { class: "sl-plotly", "data-role": "plotly" });
      box.replaceChildren(h("div", { class: "sl-empty" }, h("span", { class: "sl-spinner" }), " loading plotly.js…"));
      const width = Math.max(320, Math.min(640, this.stage.clientWidth - 16 || 560));
      app.loadPlotly().then((Plotly) => {
        if (app.visualKey() !== vk) return;
        box.replaceChildren(plot);
        const fig = v.figure ?? {};
        const layout = { ...(fig.layout ?? {}), width, height: 380, autosize: false };
        layout.margin = layout.margin ?? { l: 48, r: 16, t: 36, b: 40 };
        Plotly.newPlot(plot, fig.data ?? [], layout, { displaylogo: false, responsive: false });
      });
    }
  }
}
