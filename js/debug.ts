// Test and benchmark probe of the population scatter. Nothing on the page creates it: a test
// calls `document.querySelector('.sl-root').__samplelens.debug()` (see expose()), which makes one.
import type { App } from "./app";
import { parseRgb } from "./dom";
import type { ScatterPanel } from "./panels/scatter";
import { selectPolygon } from "./scatter/geometry";
import type { View } from "./scatter/gl";

export class ScatterProbe {
  constructor(readonly panel: ScatterPanel) {}

  // ------------------------------------------------------- the panel's state
  /** The normalised layout shown (x0 y0 x1 y1 ...; the morph target). */
  get pos(): Float32Array {
    return this.panel.pos;
  }
  get view(): View {
    return this.panel.view;
  }
  set view(v: View) {
    this.panel.view = v;
  }
  get gl() {
    return this.panel.gl;
  }
  /** For the benchmark: ms from the population message to the first frame with its points. */
  get firstPaintMs(): number | null {
    return this.panel.firstPaintMs;
  }
  /** performance.now() when the population shown arrived. */
  get popArrived(): number {
    return this.panel.popArrived;
  }
  get frameTimes(): number[] {
    return this.panel.frameTimes;
  }
  /** The morph's progress (>= 1: done). */
  morphT(): number {
    return this.panel.morphT();
  }
  /** Draw now (to read pixels right after a change). */
  frame(): void {
    this.panel.frame();
  }
  setView(v: View): void {
    this.panel.setView(v);
  }
  resetView(): void {
    this.panel.resetView();
  }

  // ------------------------------------------------------------- questions
  /** Layout units -> client (page) coordinates. */
  toClient(x: number, y: number): [number, number] {
    const p = this.panel;
    const r = p.overlay.getBoundingClientRect();
    const ppu = p.ppuCss();
    return [r.left + r.width / 2 + (x - p.view.cx) * ppu, r.top + r.height / 2 - (y - p.view.cy) * ppu];
  }
  /** Client coordinates of sample `id` (null if unknown). */
  screenOf(id: number): { x: number; y: number } | null {
    const pos = this.panel.pos;
    if (id < 0 || 2 * id + 1 >= pos.length) return null;
    const [x, y] = this.toClient(pos[2 * id], pos[2 * id + 1]);
    return { x, y };
  }
  /** 0 plain, 1 selected, 2 similar (fetched), 3 viewed. */
  flagOf(id: number): number {
    return this.panel.flags[id] ?? -1;
  }
  /** The RGBA colour of sample `id` in the current colouring. */
  colorOf(id: number): number[] {
    return Array.from(this.panel.colors.slice(4 * id, 4 * id + 4));
  }
  /** The sample under client coordinates (within the hit radius), or -1. */
  hitAt(clientX: number, clientY: number): number {
    return this.panel.hitAt(clientX, clientY);
  }
  /** RGBA at client coordinates as shown: the WebGL canvas (premultiplied) over the stage's
   * background. */
  pixelAt(clientX: number, clientY: number): number[] {
    const p = this.panel;
    if (!p.gl) return [];
    p.frame();
    const r = p.glCanvas.getBoundingClientRect();
    const x = Math.round((clientX - r.left) * p.dpr);
    const y = p.glCanvas.height - 1 - Math.round((clientY - r.top) * p.dpr);
    const px = new Uint8Array(4);
    p.gl.gl.readPixels(x, y, 1, 1, p.gl.gl.RGBA, p.gl.gl.UNSIGNED_BYTE, px);
    const bg = parseRgb(getComputedStyle(p.stage).backgroundColor) ?? [1, 1, 1];
    const a = px[3] / 255;
    return [0, 1, 2].map((i) => Math.round(px[i] + (1 - a) * bg[i] * 255)).concat(255);
  }
  /** A summary of the canvas: a hash and the number of distinct colours. */
  snapshot(): { hash: number; colors: number; draws: number; w: number; h: number } {
    const p = this.panel;
    if (!p.gl) return { hash: 0, colors: 0, draws: 0, w: 0, h: 0 };
    p.frame();
    const gl = p.gl.gl;
    const w = p.glCanvas.width, hh = p.glCanvas.height;
    const px = new Uint8Array(w * hh * 4);
    gl.readPixels(0, 0, w, hh, gl.RGBA, gl.UNSIGNED_BYTE, px);
    let hash = 0;
    const seen = new Set<number>();
    for (let i = 0; i < px.length; i += 4) {
      const c = (px[i] << 16) | (px[i + 1] << 8) | px[i + 2];
      hash = (Math.imul(hash, 31) + c) | 0;
      seen.add(c);
    }
    return { hash, colors: seen.size, draws: p.gl.draws, w, h: hh };
  }
  /** Select the samples inside a polygon given in client coordinates (as a lasso does). */
  lassoClient(points: [number, number][], mode: "replace" | "add" = "replace"): number[] {
    const p = this.panel;
    const poly: number[] = [];
    for (const [x, y] of points) poly.push(...p.toLayout(x, y));
    const ids = selectPolygon(p.pos, poly);
    if (ids.length) p.app.selectIds(ids, mode);
    return Array.from(ids);
  }
}

/** The root element's `__samplelens`: the App (for tests and debugging), whose `debug()` makes
 * the scatter probe on the first call (the page itself never does). */
export function expose(root: HTMLElement, app: App, scatter: ScatterPanel): void {
  let probe: ScatterProbe | null = null;
  const debug = (): ScatterProbe => (probe ??= new ScatterProbe(scatter));
  Object.assign(root, { __samplelens: Object.assign(app, { debug }) });
}
