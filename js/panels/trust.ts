// The Trust view (the "Trust" tab beside the error analysis): can I trust this map?
// - insertion − deletion of the viewed map at each depth, filled in as the kernel computes it
//   (the depths nearest the one shown first), against the random (a band: the draws' min..max)
//   and edge baselines; the depth shown is marked, a click on the chart shows that depth;
// - *Sanity check*: the randomisation test at the depth shown, with its progress (stage k of n),
//   then Spearman's rho per stage.
import type { App } from "../app";
import { h } from "../dom";
import { middleEllipsis } from "../names";
import { keyString } from "../protocol";
import { type Geometry, TRUST_STEPS, bandsOf, bar, baselineKey, geometry, linePath, nearestDepth, scoreOf, verdict } from "../trust";

const SVG = "http://www.w3.org/2000/svg";
/** the chart's height and margins, in CSS pixels (its width is the panel's) */
const HEIGHT = 176;
const MARGIN = { left: 43, right: 10, top: 14, bottom: 32 };
/** a stage's name in the sanity list: at most this many characters, shortened in the middle */
const STAGE_CHARS = 13;

function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const fmt3 = (v: number | null) => (v === null ? "—" : v.toFixed(3));
/** A y tick: as few decimals as it needs, a true minus sign. */
const tickText = (t: number) => {
  const digits = t === 0 ? 0 : Math.abs(t * 10) % 1 > 1e-9 ? 2 : Math.abs(t) % 1 > 1e-9 ? 1 : 0;
  return t.toFixed(digits).replace("-", "−");
};

export class TrustView {
  el: HTMLElement;
  private chartWrap = h("div", { class: "sl-trust-chart", "data-role": "trust-chart-wrap" });
  private legend = h("div", { class: "sl-trust-legend" });
  private status = h("div", { class: "sl-trust-status", "data-role": "trust-status" });
  private sanityBody = h("div", { class: "sl-sanity", "data-role": "sanity" });
  private runBtn = h("button", { class: "sl-btn sl-small", "data-role": "sanity-run" }, "Sanity check") as HTMLButtonElement;
  private sanityNote = h("span", { class: "sl-muted sl-sanity-at" });
  private geo: Geometry | null = null;
  private depths: number[] = [];
  private sig = "";
  private sanitySig = "";

  constructor(private app: App) {
    this.runBtn.addEventListener("click", () => app.runSanity());
    // the chart is drawn at its box's width (its text stays at its size): redrawn on a resize
    if (typeof ResizeObserver !== "undefined") {
      let last = 0;
      new ResizeObserver(() => {
        const w = Math.round(this.chartWrap.clientWidth);
        if (w > 0 && Math.abs(w - last) > 1 && this.el.style.display !== "none") {
          last = w;
          this.update();
        }
      }).observe(this.chartWrap);
    }
    this.legend.append(
      h("span", { class: "sl-leg-item" }, h("span", { class: "sl-trust-key sl-trust-key-map" }), "this map"),
      h("span", { class: "sl-leg-item" }, h("span", { class: "sl-trust-key sl-trust-key-random" }), "random (3 draws)"),
      h("span", { class: "sl-leg-item" }, h("span", { class: "sl-trust-key sl-trust-key-edges" }), "edges (Sobel)"),
    );
    this.el = h(
      "div",
      { class: "sl-trust", "data-role": "trust" },
      h("div", { class: "sl-subtitle", title: "Deletion: the model's confidence as the map's most salient pixels are removed (lower is better). Insertion: as they are put back on an image of the input's mean colour (higher is better). Their difference, per depth; the baselines rank the pixels at random and by the input's edges." }, "Faithfulness by depth"),
      this.chartWrap,
      this.legend,
      this.status,
      h("div", { class: "sl-subtitle sl-sanity-title" }, h("span", {}, "Sanity check"), this.runBtn),
      this.sanityNote,
      this.sanityBody,
    );
  }

  /** Rebuild what changed (a chunk arrived, another key, a resize). */
  update(): void {
    const app = this.app;
    const k = app.currentKey();
    const a = app.analysisOf(k);
    const ks = k ? keyString(k) : "";
    const curve = k ? app.trust.get(ks) : undefined;
    const base = k ? app.trustBaselines.get(baselineKey(k, TRUST_STEPS)) : undefined;
    const err = k ? app.trustErrors.get(ks) : undefined;
    const width = Math.round(this.chartWrap.clientWidth) || 250;
    const sig = `${ks}|${a ? a.maps.length : -1}|${curve ? curve.points.size : -1}|${base ? 1 : 0}|${err ?? ""}|${width}`;
    if (sig !== this.sig) {
      this.sig = sig;
      this.build(width);
    }
    this.updateSanity();
    this.redraw();
  }

  private build(width: number): void {
    const app = this.app;
    const k = app.currentKey();
    const a = app.analysisOf(k);
    this.geo = null;
    if (!k || !a || !a.maps.length) {
      this.chartWrap.replaceChildren(h("div", { class: "sl-empty" }, k ? "computing…" : "No sample viewed."));
      this.status.textContent = "";
      return;
    }
    const ks = keyString(k);
    const curve = app.trust.get(ks);
    const base = app.trustBaselines.get(baselineKey(k, TRUST_STEPS)) ?? null;
    const err = app.trustErrors.get(ks);
    const depths = a.maps.map((m) => m.depth);
    this.depths = depths;
    const points: [number, number | null][] = curve ? [...curve.points].map(([d, p]) => [d, scoreOf(p)]) : [];
    const bands = base ? bandsOf(base) : null;
    const values: (number | null)[] = points.map((p) => p[1]);
    if (bands) values.push(bands.random.lo, bands.random.hi, bands.edges.score);
    const g = geometry(depths[0], depths[depths.length - 1], values, { width, height: HEIGHT, ...MARGIN });
    this.geo = g;
    const svg = s("svg", {
      class: "sl-trust-svg",
      viewBox: `0 0 ${width} ${HEIGHT}`,
      width,
      height: HEIGHT,
      "data-role": "trust-chart",
      "data-points": points.length,
      "data-depths": depths.length,
    });
    // axes and grid
    for (const t of g.yTicks) {
      const y = g.yOf(t);
      svg.append(s("line", { x1: g.x0, x2: g.x1, y1: y, y2: y, class: t === 0 ? "sl-trust-zero" : "sl-trust-grid" }));
      svg.append(s("text", { x: g.x0 - 4, y: y + 3, "text-anchor": "end", class: "sl-trust-tick" }, tickText(t)));
    }
    for (const d of g.xTicks) {
      const x = g.xOf(d);
      svg.append(s("line", { x1: x, x2: x, y1: g.y1, y2: g.y1 + 3, class: "sl-trust-axis" }));
      svg.append(s("text", { x, y: g.y1 + 13, "text-anchor": "middle", class: "sl-trust-tick" }, String(d)));
    }
    svg.append(s("line", { x1: g.x0, x2: g.x1, y1: g.y1, y2: g.y1, class: "sl-trust-axis" }));
    svg.append(s("line", { x1: g.x0, x2: g.x0, y1: g.y0, y2: g.y1, class: "sl-trust-axis" }));
    svg.append(s("text", { x: (g.x0 + g.x1) / 2, y: HEIGHT - 4, "text-anchor": "middle", class: "sl-trust-label" }, "depth"));
    const my = (g.y0 + g.y1) / 2;
    svg.append(s("text", { x: 9, y: my, "text-anchor": "middle", transform: `rotate(-90 9 ${my})`, class: "sl-trust-label" }, "insertion − deletion"));
    // the baselines
    if (bands) {
      const r = bands.random;
      if (r.lo !== null && r.hi !== null) {
        const top = g.yOf(r.hi);
        const hgt = Math.max(1, g.yOf(r.lo) - top);
        svg.append(s("rect", { x: g.x0, y: top, width: g.x1 - g.x0, height: hgt, class: "sl-trust-band", "data-role": "trust-band-random" }));
      }
      if (r.score !== null) svg.append(s("line", { x1: g.x0, x2: g.x1, y1: g.yOf(r.score), y2: g.yOf(r.score), class: "sl-trust-random" }));
      const e = bands.edges.score;
      if (e !== null) svg.append(s("line", { x1: g.x0, x2: g.x1, y1: g.yOf(e), y2: g.yOf(e), class: "sl-trust-edges", "data-role": "trust-band-edges" }));
    }
    // the depth shown (moved by redraw), the curve, its points
    const marker = s("g", { "data-role": "trust-current", class: "sl-trust-current" });
    marker.append(s("line", { x1: 0, x2: 0, y1: g.y0, y2: g.y1 }), s("text", { x: 0, y: g.y0 - 4, "text-anchor": "middle" }));
    svg.append(marker);
    svg.append(s("path", { d: linePath(points, g), class: "sl-trust-line" }));
    const line = bar(base);
    for (const [d, v] of points) {
      if (v === null) continue;
      const p = curve!.points.get(d)!;
      const beats = line !== null && v > line;
      const dot = s("circle", {
        cx: g.xOf(d),
        cy: g.yOf(v),
        r: 3,
        class: `sl-trust-point${beats ? " sl-trust-beats" : ""}`,
        "data-role": "trust-point",
        "data-depth": d,
        "data-score": v,
      });
      dot.append(s("title", {}, `depth ${d} · ${p.layer}\ninsertion ${fmt3(p.insertion)} − deletion ${fmt3(p.deletion)} = ${v.toFixed(3)}${beats ? "\nabove both baselines" : ""}`));
      svg.append(dot);
    }
    // a click anywhere on the chart (a point, or between them) shows the nearest depth
    const hit = s("rect", { x: g.x0 - 6, y: g.y0, width: g.x1 - g.x0 + 12, height: g.y1 - g.y0 + 4, class: "sl-trust-hit" });
    svg.addEventListener("click", (ev) => {
      const box = svg.getBoundingClientRect();
      const x = ((ev.clientX - box.left) * width) / (box.width || width);
      const d = nearestDepth(x, this.depths, g.xOf);
      if (d !== null) app.showDepth(d);
    });
    svg.insertBefore(hit, marker);
    this.chartWrap.replaceChildren(svg);
    // the line under the chart
    this.status.replaceChildren();
    if (err) {
      const retry = h("button", { class: "sl-btn sl-small", "data-role": "trust-retry" }, "Retry");
      retry.addEventListener("click", () => app.retryTrust());
      this.status.append(h("div", { class: "sl-trust-error", "data-role": "trust-error" }, err), retry);
      return;
    }
    const n = curve ? curve.points.size : 0;
    const what = curve ? verdict(curve, base, depths.length) : "";
    if (n < depths.length || !base) {
      this.status.append(h("span", { class: "sl-spinner" }), ` computing… ${n} of ${depths.length} depths${base ? "" : ", baselines"}`);
      if (what) this.status.append(h("div", {}, what));
    } else {
      this.status.append(h("div", {}, what), h("div", { class: "sl-muted" }, `${TRUST_STEPS} steps · click a depth to view it`));
    }
    this.status.title = curve?.measure ?? "";
  }

  /** Move the marker of the depth shown (no rebuild: dragging the slider stays instant). */
  redraw(): void {
    const g = this.geo;
    const marker = this.chartWrap.querySelector<SVGGElement>("[data-role=trust-current]");
    const d = this.app.shownDepth();
    if (!g || !marker || d === null) return;
    const x = g.xOf(d);
    marker.setAttribute("transform", `translate(${x.toFixed(1)} 0)`);
    marker.setAttribute("data-depth", String(d));
    const label = marker.querySelector("text");
    if (label) {
      label.textContent = `d${d}`;
      // keep the label inside the plot near its edges
      label.setAttribute("text-anchor", x > g.x1 - 10 ? "end" : x < g.x0 + 10 ? "start" : "middle");
      label.setAttribute("x", x > g.x1 - 10 ? "3" : x < g.x0 + 10 ? "-3" : "0");
    }
    for (const c of this.chartWrap.querySelectorAll<SVGCircleElement>("[data-role=trust-point]")) {
      c.classList.toggle("sl-trust-on", Number(c.dataset.depth) === d);
    }
    this.updateSanity();
  }

  private updateSanity(): void {
    const app = this.app;
    const run = app.sanityRun();
    const depth = app.shownDepth();
    const running = !!run && !run.stages && !run.error;
    const sig = run ? `${run.depth}|${run.done}|${run.total}|${run.stages ? run.stages.length : -1}|${run.error ?? ""}|${depth}` : `none|${depth}`;
    if (sig === this.sanitySig) return;
    this.sanitySig = sig;
    this.runBtn.disabled = running || depth === null;
    const again = run && depth !== null && run.depth !== depth;
    this.runBtn.textContent = again ? `Run at depth ${depth}` : run && !running ? "Run again" : "Sanity check";
    this.sanityNote.textContent = run
      ? `depth ${run.depth}${run.layer ? ` · ${run.layer}` : ""}: randomise the weights from the output back, compare maps (Spearman ρ)`
      : "Randomise the model's weights stage by stage (output first) and compare the map with the original (Spearman ρ).";
    this.sanityNote.title = this.sanityNote.textContent ?? "";
    const body = this.sanityBody;
    body.replaceChildren();
    if (!run) return;
    if (run.error) {
      body.append(h("div", { class: "sl-trust-error", "data-role": "sanity-error" }, run.error));
      return;
    }
    if (!run.stages) {
      const pct = run.total ? (100 * run.done) / run.total : 0;
      body.append(
        h(
          "div",
          { class: "sl-sanity-progress", "data-role": "sanity-progress", "data-done": run.done, "data-total": run.total },
          h("span", { class: "sl-spinner" }),
          run.total ? ` stage ${Math.min(run.done + 1, run.total)} of ${run.total}` : " copying the model…",
        ),
        h("div", { class: "sl-progress" }, h("div", { class: "sl-progress-bar", style: { width: `${pct.toFixed(0)}%` } })),
      );
      return;
    }
    for (const [name, rho] of run.stages) {
      // a diverging bar: 0 in the middle of the track, -1 at its left end, 1 at its right
      const v = Math.max(-1, Math.min(1, rho ?? 0));
      const half = Math.abs(v) * 50;
      const left = v < 0 ? 50 - half : 50;
      body.append(
        h(
          "div",
          { class: "sl-bar-row sl-sanity-row", "data-role": "sanity-row", "data-stage": name, "data-rho": rho ?? "" },
          h("span", { class: "sl-bar-name", title: name }, middleEllipsis(name, STAGE_CHARS)),
          h("span", { class: "sl-bar-track", title: `ρ ${rho === null ? "—" : rho.toFixed(3)} (−1 … 0 … 1)` }, h("span", { class: `sl-bar${v < 0 ? " sl-bar-neg" : ""}`, style: { left: `${left.toFixed(1)}%`, width: `${half.toFixed(1)}%` } })),
          h("span", { class: "sl-num" }, rho === null ? "—" : rho.toFixed(2)),
        ),
      );
    }
    body.append(
      h("div", { class: "sl-muted sl-sanity-verdict" }, "A map that explains the model falls away from ρ = 1 as its weights go random; one that stays near 1 shows the input more than the model."),
    );
  }
}
