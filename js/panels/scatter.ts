// Population panel: every sample of the slice as a dot (WebGL), coloured by a column; click to
// analyse one sample, box/lasso to select many, wheel to zoom, drag to pan; hover for details.
import type { App, Population } from "../app";
import { h, setOptions, stopKeys } from "../dom";
import { type Column, MISSING, categoryColor, columnColors, columnText } from "../scatter/colors";
import { GridIndex, ease, lerp, normalize, selectBox, selectPolygon } from "../scatter/geometry";
import { PointRenderer, type View } from "../scatter/gl";
import { lut } from "../colormap";

type Mode = "pan" | "box" | "lasso";
const MORPH_MS = 600;
const CLICK_PX = 4;
const HIT_PX = 8;
/** Above this many points a pan/zoom gesture moves the last frame (a CSS transform) and redraws
 * the points at most every REDRAW_MS: software WebGL (no GPU) then stays smooth too. */
const LIVE_MAX = 20000;
const REDRAW_MS = 200;

function parseRgb(css: string): [number, number, number] | null {
  const m = css.match(/rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?/);
  if (!m || (m[4] !== undefined && Number(m[4]) === 0)) return null;
  return [Number(m[1]) / 255, Number(m[2]) / 255, Number(m[3]) / 255];
}

export class ScatterPanel {
  el: HTMLElement;
  private stage = h("div", { class: "sl-pop-stage", "data-role": "scatter-stage" });
  private glCanvas = h("canvas", { class: "sl-pop-gl", "data-role": "scatter" }) as HTMLCanvasElement;
  private overlay = h("canvas", { class: "sl-pop-overlay", "data-role": "scatter-overlay" }) as HTMLCanvasElement;
  private tip = h("div", { class: "sl-pop-tip", "data-role": "scatter-tip" });
  private msg = h("div", { class: "sl-pop-msg", "data-role": "scatter-msg" });
  private status = h("span", { class: "sl-pop-status", "data-role": "scatter-status" });
  private note = h("div", { class: "sl-pop-note", "data-role": "scatter-note" });
  private progress = h("div", { class: "sl-progress", "data-role": "scatter-progress" });
  private bar = h("div", { class: "sl-progress-bar" });
  private colorSel = h("select", { class: "sl-select", title: "Colour by", "data-role": "color-by" }) as HTMLSelectElement;
  private legend = h("div", { class: "sl-pop-legend", "data-role": "scatter-legend" });
  private modeBtns: Record<Mode, HTMLButtonElement>;
  private gl: PointRenderer | null = null;
  private glError: string | null = null;

  mode: Mode = "pan";
  view: View = { cx: 0, cy: 0, zoom: 1 };
  private popKey = "";
  private version = -1;
  private pos: Float32Array = new Float32Array(0); // normalised layout shown (morph target)
  private from: Float32Array = new Float32Array(0);
  private morphStart = 0;
  private grid: GridIndex | null = null;
  private colorSig = "";
  private flagSig = "";
  private colors: Uint8Array = new Uint8Array(0);
  private flags: Uint8Array = new Uint8Array(0);
  private dirty = false;
  private raf = 0;
  private dpr = 1;
  private cssW = 0;
  private cssH = 0;
  private drag: { x: number; y: number; moved: boolean; button: number; path: number[]; shift: boolean; cx: number; cy: number } | null = null;
  private hoverId = -1;
  private drawnView: View = { cx: 0, cy: 0, zoom: 1 };
  private redrawTimer = 0;
  private lastFull = 0;
  private hoverTimer = 0;
  private ro: ResizeObserver | null = null;
  private themeObs: MutationObserver | null = null;
  /** For the benchmark: ms from the population message to the first frame with its points. */
  firstPaintMs: number | null = null;
  private popArrived = 0;
  frameTimes: number[] = [];

  constructor(private app: App) {
    app.scatter = this;
    stopKeys(this.colorSel);
    this.colorSel.addEventListener("change", () => app.setTrait("color_by", this.colorSel.value));
    const modeBtn = (m: Mode, text: string, title: string) =>
      h("button", { class: "sl-seg", "data-mode": m, title, onclick: () => this.setMode(m) }, text) as HTMLButtonElement;
    this.modeBtns = {
      pan: modeBtn("pan", "Pan", "Drag to pan, wheel to zoom"),
      box: modeBtn("box", "Box", "Drag a box to select (shift: add to the selection)"),
      lasso: modeBtn("lasso", "Lasso", "Draw around samples to select them (shift: add to the selection)"),
    };
    this.progress.append(this.bar);
    this.stage.append(this.glCanvas, this.overlay, this.tip, this.msg);
    this.el = h(
      "div",
      { class: "sl-panel sl-pop", "data-role": "population" },
      h("div", { class: "sl-panel-title sl-pop-title" }, "Population", this.status),
      h(
        "div",
        { class: "sl-toolbar" },
        h("label", { class: "sl-muted" }, "Colour"),
        this.colorSel,
        h("span", { class: "sl-segs", "data-role": "scatter-mode" }, this.modeBtns.pan, this.modeBtns.box, this.modeBtns.lasso),
        h("button", { class: "sl-btn sl-small", title: "Reset the view (double-click)", "data-role": "scatter-reset", onclick: () => this.resetView() }, "⟲"),
      ),
      this.progress,
      this.stage,
      this.note,
      this.legend,
    );
    this.setMode("pan");
    try {
      this.gl = new PointRenderer(this.glCanvas);
    } catch (e) {
      this.glError = String(e);
    }
    this.bindPointer();
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
  update(reason = ""): void {
    const app = this.app;
    const info = app.info;
    const slice = app.get<string>("slice");
    const cols = info.columns?.[slice] ?? [];
    setOptions(this.colorSel, cols, app.get<string>("color_by"));
    const pk = app.popKey();
    const pop = app.population();
    const err = app.popErrors.get(pk);
    const prog = app.popProgress.get(pk);
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
        h("button", { class: "sl-btn", "data-role": "scatter-retry", onclick: () => app.retryPopulation() }, "Retry"),
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
    if (this.glError) {
      this.msg.style.display = "";
      this.msg.replaceChildren(h("div", { class: "sl-pop-err" }, this.glError));
    }
    this.status.textContent = pop
      ? `${pop.n} samples · ${pop.method === "umap" ? "UMAP" : pop.method === "pca" ? (pop.umapPending ? "PCA preview, UMAP running…" : "PCA") : "—"}`
      : "";
    this.status.dataset.method = pop?.method ?? "";
    this.status.dataset.pending = pop?.umapPending ? "1" : "0";
    this.note.textContent = pop?.note ?? "";
    this.note.style.display = pop?.note ? "" : "none";
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
    if (reason === "thumb" && this.hoverId >= 0) this.showTip(this.hoverId, null);
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

  private morphT(): number {
    return this.morphStart ? (performance.now() - this.morphStart) / MORPH_MS : 1;
  }

  column(pop: Population | null = this.app.population()): Column | null {
    if (!pop) return null;
    const key = this.app.get<string>("color_by");
    return pop.columns.find((c) => c.key === key) ?? pop.columns[0] ?? null;
  }

  private syncColors(pop: Population): void {
    const col = this.column(pop);
    const sig = `${pop.key}|${col?.key}`;
    if (sig === this.colorSig) return;
    this.colorSig = sig;
    this.colors = col ? columnColors(col, pop.n) : new Uint8Array(pop.n * 4).fill(128);
    this.gl?.setColors(this.colors);
    this.renderLegend(col);
    this.request();
  }

  private syncFlags(pop: Population): void {
    const app = this.app;
    const sel = app.get<number[]>("selected");
    const viewed = app.get<number | null>("viewed");
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

  private renderLegend(col: Column | null): void {
    if (!col) {
      this.legend.replaceChildren();
      return;
    }
    if (col.kind === "category") {
      const cats = col.categories ?? [];
      const names = col.key === "label" || col.key === "prediction" ? this.app.info.label_names : cats;
      const items = cats.slice(0, 24).map((_, i) => {
        const [r, g, b] = categoryColor(i, cats.length, col.palette);
        return h("span", { class: "sl-leg-item" }, h("span", { class: "sl-swatch", style: { background: `rgb(${r},${g},${b})` } }), String(names[i] ?? cats[i]));
      });
      if (cats.length > 24) items.push(h("span", { class: "sl-muted" }, `+${cats.length - 24} more`));
      this.legend.replaceChildren(...items);
    } else {
      const t = lut("viridis");
      const stops = [0, 64, 128, 192, 255].map((i) => `rgb(${t[3 * i]},${t[3 * i + 1]},${t[3 * i + 2]}) ${(i / 255) * 100}%`);
      const f = (v: number | null | undefined) => (v === null || v === undefined ? "—" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
      this.legend.replaceChildren(
        h("span", { class: "sl-muted" }, `${col.clipped ? "≤ " : ""}${f(col.min)}`),
        h("span", { class: "sl-gradient", style: { background: `linear-gradient(to right, ${stops.join(", ")})` } }),
        h("span", { class: "sl-muted" }, `${col.clipped ? "≥ " : ""}${f(col.max)}`),
        h("span", { class: "sl-leg-item" }, h("span", { class: "sl-swatch", style: { background: `rgb(${MISSING.join(",")})` } }), "missing"),
      );
    }
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

  private ppuCss(): number {
    return PointRenderer.pxPerUnit(this.view, this.cssW, this.cssH);
  }
  /** Client (page) coordinates -> layout units. */
  toLayout(clientX: number, clientY: number): [number, number] {
    const r = this.overlay.getBoundingClientRect();
    const ppu = this.ppuCss();
    return [this.view.cx + (clientX - r.left - r.width / 2) / ppu, this.view.cy - (clientY - r.top - r.height / 2) / ppu];
  }
  /** Layout units -> client (page) coordinates. */
  toClient(x: number, y: number): [number, number] {
    const r = this.overlay.getBoundingClientRect();
    const ppu = this.ppuCss();
    return [r.left + r.width / 2 + (x - this.view.cx) * ppu, r.top + r.height / 2 - (y - this.view.cy) * ppu];
  }

  // ------------------------------------------------------- test/debug API
  /** Client coordinates of sample `id` (null if unknown). */
  screenOf(id: number): { x: number; y: number } | null {
    if (id < 0 || 2 * id + 1 >= this.pos.length) return null;
    const [x, y] = this.toClient(this.pos[2 * id], this.pos[2 * id + 1]);
    return { x, y };
  }
  /** 0 plain, 1 selected, 2 similar (fetched), 3 viewed. */
  flagOf(id: number): number {
    return this.flags[id] ?? -1;
  }
  /** The RGBA colour of sample `id` in the current colouring. */
  colorOf(id: number): number[] {
    return Array.from(this.colors.slice(4 * id, 4 * id + 4));
  }
  /** The sample under client coordinates (within the hit radius), or -1. */
  hitAt(clientX: number, clientY: number): number {
    if (!this.grid) return -1;
    const [x, y] = this.toLayout(clientX, clientY);
    return this.grid.nearest(x, y, HIT_PX / this.ppuCss());
  }
  /** RGBA at client coordinates as shown: the WebGL canvas (premultiplied) over the stage's
   * background. */
  pixelAt(clientX: number, clientY: number): number[] {
    if (!this.gl) return [];
    this.frame();
    const r = this.glCanvas.getBoundingClientRect();
    const x = Math.round((clientX - r.left) * this.dpr);
    const y = this.glCanvas.height - 1 - Math.round((clientY - r.top) * this.dpr);
    const px = new Uint8Array(4);
    this.gl.gl.readPixels(x, y, 1, 1, this.gl.gl.RGBA, this.gl.gl.UNSIGNED_BYTE, px);
    const bg = parseRgb(getComputedStyle(this.stage).backgroundColor) ?? [1, 1, 1];
    const a = px[3] / 255;
    return [0, 1, 2].map((i) => Math.round(px[i] + (1 - a) * bg[i] * 255)).concat(255);
  }
  /** A summary of the canvas: a hash and the number of distinct colours. */
  snapshot(): { hash: number; colors: number; draws: number; w: number; h: number } {
    if (!this.gl) return { hash: 0, colors: 0, draws: 0, w: 0, h: 0 };
    this.frame();
    const gl = this.gl.gl;
    const w = this.glCanvas.width, hh = this.glCanvas.height;
    const px = new Uint8Array(w * hh * 4);
    gl.readPixels(0, 0, w, hh, gl.RGBA, gl.UNSIGNED_BYTE, px);
    let hash = 0;
    const seen = new Set<number>();
    for (let i = 0; i < px.length; i += 4) {
      const c = (px[i] << 16) | (px[i + 1] << 8) | px[i + 2];
      hash = (Math.imul(hash, 31) + c) | 0;
      seen.add(c);
    }
    return { hash, colors: seen.size, draws: this.gl.draws, w, h: hh };
  }
  /** Select the samples inside a polygon given in client coordinates (as a lasso does). */
  lassoClient(points: [number, number][], mode: "replace" | "add" = "replace"): number[] {
    const poly: number[] = [];
    for (const [x, y] of points) poly.push(...this.toLayout(x, y));
    const ids = selectPolygon(this.pos, poly);
    if (ids.length) this.app.selectIds(ids, mode);
    return Array.from(ids);
  }

  // ------------------------------------------------------------ pointer
  private bindPointer(): void {
    const o = this.overlay;
    o.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 && e.button !== 1) return;
      o.setPointerCapture?.(e.pointerId);
      this.hideTip();
      this.drag = { x: e.clientX, y: e.clientY, moved: false, button: e.button, path: [e.clientX, e.clientY], shift: e.shiftKey, cx: this.view.cx, cy: this.view.cy };
      if (this.mode === "pan" || e.button === 1) o.style.cursor = "grabbing";
    });
    o.addEventListener("pointermove", (e) => {
      const d = this.drag;
      if (!d) {
        this.hover(e.clientX, e.clientY);
        return;
      }
      if (Math.hypot(e.clientX - d.x, e.clientY - d.y) > CLICK_PX) d.moved = true;
      if (!d.moved) return;
      if (this.mode === "pan" || d.button === 1) {
        const ppu = this.ppuCss();
        this.setView({ ...this.view, cx: d.cx - (e.clientX - d.x) / ppu, cy: d.cy + (e.clientY - d.y) / ppu });
      } else {
        d.path.push(e.clientX, e.clientY);
        this.drawPath();
      }
    });
    const finish = (e: PointerEvent) => {
      const d = this.drag;
      this.drag = null;
      this.clearPath();
      this.setMode(this.mode);
      if (!d) return;
      if (!d.moved) {
        const id = this.hitAt(e.clientX, e.clientY);
        if (id >= 0) this.app.pick(id);
        return;
      }
      if (this.mode === "pan" || d.button === 1) return;
      const mode = d.shift || e.shiftKey ? "add" : "replace";
      let ids: Uint32Array;
      if (this.mode === "box") {
        const [ax, ay] = this.toLayout(d.x, d.y);
        const [bx, by] = this.toLayout(e.clientX, e.clientY);
        ids = selectBox(this.pos, ax, ay, bx, by);
      } else {
        d.path.push(e.clientX, e.clientY);
        const poly: number[] = [];
        for (let i = 0; i < d.path.length; i += 2) poly.push(...this.toLayout(d.path[i], d.path[i + 1]));
        ids = selectPolygon(this.pos, poly);
      }
      if (ids.length) this.app.selectIds(ids, mode);
    };
    o.addEventListener("pointerup", finish);
    o.addEventListener("pointercancel", () => {
      this.drag = null;
      this.clearPath();
    });
    o.addEventListener("pointerleave", () => {
      if (!this.drag) this.hideTip();
    });
    o.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const [x, y] = this.toLayout(e.clientX, e.clientY);
        const f = Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015));
        const zoom = Math.max(0.5, Math.min(400, this.view.zoom * f));
        const k = this.view.zoom / zoom;
        this.hideTip();
        this.setView({ zoom, cx: x + (this.view.cx - x) * k, cy: y + (this.view.cy - y) * k });
      },
      { passive: false },
    );
    o.addEventListener("dblclick", () => this.resetView());
  }

  private drawPath(): void {
    const d = this.drag;
    const ctx = this.overlay.getContext("2d");
    if (!d || !ctx) return;
    const r = this.overlay.getBoundingClientRect();
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.clearRect(0, 0, r.width, r.height);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "rgba(31,111,235,0.95)";
    ctx.fillStyle = "rgba(31,111,235,0.10)";
    ctx.setLineDash([5, 3]);
    ctx.beginPath();
    if (this.mode === "box") {
      const p = d.path;
      const x1 = p[p.length - 2], y1 = p[p.length - 1];
      ctx.rect(d.x - r.left, d.y - r.top, x1 - d.x, y1 - d.y);
    } else {
      for (let i = 0; i < d.path.length; i += 2) {
        const x = d.path[i] - r.left, y = d.path[i + 1] - r.top;
        if (i === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      }
      ctx.closePath();
    }
    ctx.fill();
    ctx.stroke();
  }
  private clearPath(): void {
    const ctx = this.overlay.getContext("2d");
    ctx?.setTransform(1, 0, 0, 1, 0, 0);
    ctx?.clearRect(0, 0, this.overlay.width, this.overlay.height);
  }

  // --------------------------------------------------------------- hover
  private hover(clientX: number, clientY: number): void {
    const id = this.hitAt(clientX, clientY);
    if (id < 0) {
      this.hideTip();
      return;
    }
    this.showTip(id, [clientX, clientY]);
  }
  private hideTip(): void {
    this.hoverId = -1;
    this.tip.style.display = "none";
    window.clearTimeout(this.hoverTimer);
  }
  private showTip(id: number, at: [number, number] | null): void {
    const pop = this.app.population();
    if (!pop) return;
    const changed = id !== this.hoverId;
    this.hoverId = id;
    const col = (k: string) => pop.columns.find((c) => c.key === k);
    const names = this.app.info.label_names;
    const lab = col("label"), pred = col("prediction"), loss = col("loss");
    const cur = this.column(pop);
    const url = this.app.thumbs.get(`${pop.slice}|${id}`) ?? null;
    if (!url && changed) {
      window.clearTimeout(this.hoverTimer);
      this.hoverTimer = window.setTimeout(() => {
        if (this.hoverId === id) this.app.thumb(id);
      }, 120);
    }
    const wrong = lab && pred && lab.data[id] !== pred.data[id];
    const rows: [string, string, string?][] = [
      ["true", lab ? columnText(lab, id, names) : "—"],
      ["pred", pred ? columnText(pred, id, names) : "—", wrong ? "sl-wrong" : undefined],
      ["loss", loss ? columnText(loss, id) : "—"],
    ];
    if (cur && !["label", "prediction", "loss", "correct"].includes(cur.key)) rows.push([cur.title, columnText(cur, id)]);
    this.tip.replaceChildren(
      url ? h("img", { class: "sl-pop-thumb", src: url, alt: "" }) : h("span", { class: "sl-pop-thumb sl-ph" }),
      h(
        "div",
        { class: "sl-pop-tip-text" },
        h("div", { class: "sl-pop-tip-id" }, `#${id}`),
        ...rows.map(([k, v, cls]) => h("div", {}, h("span", { class: "sl-muted" }, `${k} `), h("span", { class: cls ?? "" }, v))),
      ),
    );
    this.tip.dataset.id = String(id);
    this.tip.style.display = "flex";
    if (at) {
      const r = this.stage.getBoundingClientRect();
      let x = at[0] - r.left + 14, y = at[1] - r.top + 14;
      if (x + 190 > r.width) x = at[0] - r.left - 190;
      if (y + 90 > r.height) y = at[1] - r.top - 90;
      this.tip.style.left = `${Math.max(0, x)}px`;
      this.tip.style.top = `${Math.max(0, y)}px`;
    }
  }
}
