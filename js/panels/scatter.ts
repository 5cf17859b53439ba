// Population panel: every sample of the slice as a dot (WebGL), coloured by a column; click to
// analyse one sample, box/lasso to select many, wheel to zoom, drag to pan; hover for details.
import type { App, Population, Reason } from "../app";
import { h, parseRgb, setOptions, stopKeys } from "../dom";
import { type Column, columnColors } from "../scatter/colors";
import { GridIndex, ease, lerp, normalize } from "../scatter/geometry";
import { PointRenderer, type View } from "../scatter/gl";
import { renderLegend } from "../scatter/legend";
import { Gestures, type Mode } from "../scatter/pointer";
import { PopStatus } from "../scatter/status";
import { HoverTip } from "../scatter/tip";

const MORPH_MS = 600;
const HIT_PX = 8;
/** Above this many points a pan/zoom gesture moves the last frame (a CSS transform) and redraws
 * the points at most every REDRAW_MS: software WebGL (no GPU) then stays smooth too. */
const LIVE_MAX = 20000;
const REDRAW_MS = 200;

export class ScatterPanel {
  el: HTMLElement;
  // Not private: scatter/pointer.ts, scatter/tip.ts and debug.ts read the members below.
  readonly stage = h("div", { class: "sl-pop-stage", "data-role": "scatter-stage" });
  readonly glCanvas = h("canvas", { class: "sl-pop-gl", "data-role": "scatter" }) as HTMLCanvasElement;
  readonly overlay = h("canvas", { class: "sl-pop-overlay", "data-role": "scatter-overlay" }) as HTMLCanvasElement;
  readonly tip = new HoverTip(this);
  private st = new PopStatus();
  private colorSel = h("select", { class: "sl-select", title: "Colour by", "data-role": "color-by" }) as HTMLSelectElement;
  private legend = h("div", { class: "sl-pop-legend", "data-role": "scatter-legend" });
  private modeBtns: Record<Mode, HTMLButtonElement>;
  gl: PointRenderer | null = null;
  private glError: string | null = null;

  mode: Mode = "pan";
  view: View = { cx: 0, cy: 0, zoom: 1 };
  private popKey = "";
  private version = -1;
  pos: Float32Array = new Float32Array(0); // normalised layout shown (morph target)
  private from: Float32Array = new Float32Array(0);
  private morphStart = 0;
  private grid: GridIndex | null = null;
  private colorSig = "";
  private flagSig = "";
  colors: Uint8Array = new Uint8Array(0);
  flags: Uint8Array = new Uint8Array(0);
  private dirty = false;
  private raf = 0;
  dpr = 1;
  private cssW = 0;
  private cssH = 0;
  private drawnView: View = { cx: 0, cy: 0, zoom: 1 };
  private redrawTimer = 0;
  private lastFull = 0;
  private ro: ResizeObserver | null = null;
  private themeObs: MutationObserver | null = null;
  /** For the benchmark: ms from the population message to the first frame with its points. */
  firstPaintMs: number | null = null;
  /** performance.now() when the population shown arrived. */
  popArrived = 0;
  frameTimes: number[] = [];

  private readonly gestures: Gestures;

  constructor(readonly app: App) {
    stopKeys(this.colorSel);
    this.colorSel.addEventListener("change", () => app.setTrait("color_by", this.colorSel.value));
    const modeBtn = (m: Mode, text: string, title: string) =>
      h("button", { class: "sl-seg", "data-mode": m, title, onclick: () => this.setMode(m) }, text) as HTMLButtonElement;
    this.modeBtns = {
      pan: modeBtn("pan", "Pan", "Drag to pan, wheel to zoom"),
      box: modeBtn("box", "Box", "Drag a box to select (shift: add to the selection)"),
      lasso: modeBtn("lasso", "Lasso", "Draw around samples to select them (shift: add to the selection)"),
    };
    this.stage.append(this.glCanvas, this.overlay, this.tip.el, this.st.msg);
    this.el = h(
      "div",
      { class: "sl-panel sl-pop", "data-role": "population" },
      h("div", { class: "sl-panel-title sl-pop-title" }, "Population", this.st.line),
      h(
        "div",
        { class: "sl-toolbar" },
        h("label", { class: "sl-muted" }, "Colour"),
        this.colorSel,
        h("span", { class: "sl-segs", "data-role": "scatter-mode" }, this.modeBtns.pan, this.modeBtns.box, this.modeBtns.lasso),
        h("button", { class: "sl-btn sl-small", title: "Reset the view (double-click)", "data-role": "scatter-reset", onclick: () => this.resetView() }, "⟲"),
      ),
      this.st.progress,
      this.st.phases,
      this.stage,
      this.st.note,
      this.legend,
    );
    this.setMode("pan");
    try {
      this.gl = new PointRenderer(this.glCanvas);
    } catch (e) {
      this.glError = String(e);
    }
    this.gestures = new Gestures(this);
    if (typeof ResizeObserver !== "undefined") {
      this.ro = new ResizeObserver(() => this.layout());
      this.ro.observe(this.stage);
    }
    if (typeof MutationObserver !== "undefined" && document.body) {
      // JupyterLab's theme switch: the rings follow the theme's text colour
      this.themeObs = new MutationObserver(() => this.request());
      this.themeObs.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
    }
  }

  destroy(): void {
    this.ro?.disconnect();
    this.themeObs?.disconnect();
    this.st.destroy();
    cancelAnimationFrame(this.raf);
  }

  setMode(m: Mode): void {
    this.mode = m;
    for (const [k, b] of Object.entries(this.modeBtns)) b.classList.toggle("sl-seg-on", k === m);
    this.overlay.style.cursor = m === "pan" ? "grab" : "crosshair";
  }

  resetView(): void {
    this.setView({ cx: 0, cy: 0, zoom: 1 });
  }

  /** Change the view during a gesture: redraw now, or (many points) move the last frame and
   * redraw soon. */
  setView(v: View): void {
    this.view = v;
    const n = this.pos.length >> 1;
    if (n <= LIVE_MAX || !this.cssW) {
      this.request();
      return;
    }
    const d = this.drawnView;
    const k0 = PointRenderer.pxPerUnit(d, this.cssW, this.cssH);
    const k1 = this.ppuCss();
    const tx = (d.cx - v.cx) * k1, ty = -(d.cy - v.cy) * k1;
    this.glCanvas.style.transform = `translate(${tx}px, ${ty}px) scale(${k1 / k0})`;
    const wait = Math.max(0, REDRAW_MS - (performance.now() - this.lastFull));
    window.clearTimeout(this.redrawTimer);
    this.redrawTimer = window.setTimeout(() => this.request(), Math.max(wait, 60));
  }

  // ------------------------------------------------------------------ state
  update(reason: Reason | "" = ""): void {
    const app = this.app;
    const info = app.info;
    const slice = app.get("slice");
    const cols = info.columns?.[slice] ?? [];
    setOptions(this.colorSel, cols, app.get("color_by"));
    const pk = app.popKey();
    const pop = app.population();
    const err = app.popErrors.get(pk);
    const prog = app.popProgress.get(pk);
    this.st.show(pop, err, prog, !!app.stats.get(pk), this.glError, () => app.retryPopulation());
    if (!pop) {
      if (this.popKey !== pk) {
        this.popKey = pk;
        this.pos = new Float32Array(0);
        this.grid = null;
        this.gl?.setPositions(this.pos, this.pos);
        this.request();
      }
      this.legend.replaceChildren();
      return;
    }
    this.syncPositions(pop);
    this.syncColors(pop);
    this.syncFlags(pop);
    if (reason === "thumb" && this.tip.id >= 0) this.tip.show(this.tip.id, null);
  }

  private syncPositions(pop: Population): void {
    if (pop.key === this.popKey && pop.version === this.version) return;
    const target = normalize(pop.coords);
    if (pop.key === this.popKey && this.pos.length === target.length && this.pos.length) {
      const t = this.morphT();
      this.from = t < 1 ? lerp(this.from, this.pos, ease(t)) : this.pos;
      this.morphStart = performance.now();
    } else {
      this.from = target;
      this.morphStart = 0;
      this.view = { cx: 0, cy: 0, zoom: 1 };
      this.popArrived = this.app.popReceivedAt || performance.now();
      this.firstPaintMs = null;
      this.colorSig = this.flagSig = "";
    }
    this.popKey = pop.key;
    this.version = pop.version;
    this.pos = target;
    this.grid = new GridIndex(this.pos);
    this.gl?.setPositions(this.from, this.pos);
    this.request();
  }

  morphT(): number {
    return this.morphStart ? (performance.now() - this.morphStart) / MORPH_MS : 1;
  }

  column(pop: Population | null = this.app.population()): Column | null {
    if (!pop) return null;
    const key = this.app.get("color_by");
    return pop.columns.find((c) => c.key === key) ?? pop.columns[0] ?? null;
  }

  private syncColors(pop: Population): void {
    const col = this.column(pop);
    const sig = `${pop.key}|${col?.key}`;
    if (sig === this.colorSig) return;
    this.colorSig = sig;
    this.colors = col ? columnColors(col, pop.n) : new Uint8Array(pop.n * 4).fill(128);
    this.gl?.setColors(this.colors);
    renderLegend(this.legend, col, this.app.info.label_names);
    this.request();
  }

  private syncFlags(pop: Population): void {
    const app = this.app;
    const sel = app.get("selected");
    const viewed = app.get("viewed");
    const sim = app.similar && app.similar.key === pop.key ? app.similar : null;
    const sig = `${pop.key}|${sel.length}|${sel.slice(0, 50).join(",")}|${sel.length > 50 ? sel.reduce((a, b) => (a * 31 + b) | 0, 0) : ""}|${viewed}|${sim ? sim.ids.join(",") : ""}`;
    if (sig === this.flagSig) return;
    this.flagSig = sig;
    const flags = new Uint8Array(pop.n);
    for (const i of sel) if (i >= 0 && i < pop.n) flags[i] = 1;
    if (sim) for (const i of sim.ids) if (i >= 0 && i < pop.n && flags[i]) flags[i] = 2;
    if (viewed !== null && viewed !== undefined && viewed < pop.n) flags[viewed] = 3;
    this.flags = flags;
    this.gl?.setFlags(flags);
    this.request();
  }

  // --------------------------------------------------------------- drawing
  private layout(): void {
    const r = this.stage.getBoundingClientRect();
    if (!r.width || !r.height) return;
    this.dpr = window.devicePixelRatio || 1;
    this.cssW = r.width;
    this.cssH = r.height;
    this.gl?.resize(r.width, r.height, this.dpr);
    this.overlay.width = Math.round(r.width * this.dpr);
    this.overlay.height = Math.round(r.height * this.dpr);
    this.request();
  }

  request(): void {
    if (this.dirty) return;
    this.dirty = true;
    this.raf = requestAnimationFrame(() => this.frame());
  }

  /** Draw now (tests call it to read pixels right after a change). */
  frame(): void {
    this.dirty = false;
    if (!this.gl) return;
    if (!this.cssW) this.layout();
    const t0 = performance.now();
    const style = getComputedStyle(this.stage);
    const fg = parseRgb(style.color); // rings follow the theme's text colour (dark themes too)
    if (fg) this.gl.ring = this.gl.viewed = fg;
    const mt = this.morphT();
    this.gl.t = mt >= 1 ? 1 : ease(mt);
    const n = this.pos.length >> 1;
    this.gl.pointSize = n <= 2000 ? 7 : n <= 20000 ? 4.5 : n <= 60000 ? 3 : 2.2;
    this.gl.draw(this.view, this.dpr);
    this.drawnView = { ...this.view };
    this.lastFull = performance.now();
    this.glCanvas.style.transform = "";
    this.glCanvas.dataset.draws = String(this.gl.draws);
    if (n && this.firstPaintMs === null && this.popArrived) this.firstPaintMs = performance.now() - this.popArrived;
    this.frameTimes.push(performance.now() - t0);
    if (this.frameTimes.length > 600) this.frameTimes.shift();
    if (mt < 1) {
      this.request();
    } else if (this.morphStart) {
      this.morphStart = 0;
      this.from = this.pos;
      this.gl.setPositions(this.pos, this.pos);
    }
  }

  /** CSS pixels per layout unit in the current view. */
  ppuCss(): number {
    return PointRenderer.pxPerUnit(this.view, this.cssW, this.cssH);
  }
  /** Client (page) coordinates -> layout units. */
  toLayout(clientX: number, clientY: number): [number, number] {
    const r = this.overlay.getBoundingClientRect();
    const ppu = this.ppuCss();
    return [this.view.cx + (clientX - r.left - r.width / 2) / ppu, this.view.cy - (clientY - r.top - r.height / 2) / ppu];
  }
  /** The sample under client coordinates (within the hit radius), or -1. */
  hitAt(clientX: number, clientY: number): number {
    if (!this.grid) return -1;
    const [x, y] = this.toLayout(clientX, clientY);
    return this.grid.nearest(x, y, HIT_PX / this.ppuCss());
  }
}
