// The scatter's pointer gestures: click a dot to pick it, drag to pan (or box / lasso select,
// shift: add to the selection), wheel to zoom, double-click to reset the view.
import type { ScatterPanel } from "../panels/scatter";
import { selectBox, selectPolygon } from "./geometry";

export type Mode = "pan" | "box" | "lasso";
const CLICK_PX = 4;

interface Drag {
  x: number;
  y: number;
  moved: boolean;
  button: number;
  path: number[];
  shift: boolean;
  cx: number;
  cy: number;
}

export class Gestures {
  private drag: Drag | null = null;

  constructor(private p: ScatterPanel) {
    const o = p.overlay;
    o.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 && e.button !== 1) return;
      o.setPointerCapture?.(e.pointerId);
      p.tip.hide();
      this.drag = { x: e.clientX, y: e.clientY, moved: false, button: e.button, path: [e.clientX, e.clientY], shift: e.shiftKey, cx: p.view.cx, cy: p.view.cy };
      if (p.mode === "pan" || e.button === 1) o.style.cursor = "grabbing";
    });
    o.addEventListener("pointermove", (e) => {
      const d = this.drag;
      if (!d) {
        p.tip.hover(e.clientX, e.clientY);
        return;
      }
      if (Math.hypot(e.clientX - d.x, e.clientY - d.y) > CLICK_PX) d.moved = true;
      if (!d.moved) return;
      if (p.mode === "pan" || d.button === 1) {
        const ppu = p.ppuCss();
        p.setView({ ...p.view, cx: d.cx - (e.clientX - d.x) / ppu, cy: d.cy + (e.clientY - d.y) / ppu });
      } else {
        d.path.push(e.clientX, e.clientY);
        this.drawPath();
      }
    });
    const finish = (e: PointerEvent) => {
      const d = this.drag;
      this.drag = null;
      this.clearPath();
      p.setMode(p.mode);
      if (!d) return;
      if (!d.moved) {
        const id = p.hitAt(e.clientX, e.clientY);
        if (id >= 0) p.app.pick(id);
        return;
      }
      if (p.mode === "pan" || d.button === 1) return;
      const mode = d.shift || e.shiftKey ? "add" : "replace";
      let ids: Uint32Array;
      if (p.mode === "box") {
        const [ax, ay] = p.toLayout(d.x, d.y);
        const [bx, by] = p.toLayout(e.clientX, e.clientY);
        ids = selectBox(p.pos, ax, ay, bx, by);
      } else {
        d.path.push(e.clientX, e.clientY);
        const poly: number[] = [];
        for (let i = 0; i < d.path.length; i += 2) poly.push(...p.toLayout(d.path[i], d.path[i + 1]));
        ids = selectPolygon(p.pos, poly);
      }
      if (ids.length) p.app.selectIds(ids, mode);
    };
    o.addEventListener("pointerup", finish);
    o.addEventListener("pointercancel", () => {
      this.drag = null;
      this.clearPath();
    });
    o.addEventListener("pointerleave", () => {
      if (!this.drag) p.tip.hide();
    });
    o.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const [x, y] = p.toLayout(e.clientX, e.clientY);
        const f = Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015));
        const zoom = Math.max(0.5, Math.min(400, p.view.zoom * f));
        const k = p.view.zoom / zoom;
        p.tip.hide();
        p.setView({ zoom, cx: x + (p.view.cx - x) * k, cy: y + (p.view.cy - y) * k });
      },
      { passive: false },
    );
    o.addEventListener("dblclick", () => p.resetView());
  }

  private drawPath(): void {
    const d = this.drag;
    const ctx = this.p.overlay.getContext("2d");
    if (!d || !ctx) return;
    const r = this.p.overlay.getBoundingClientRect();
    ctx.setTransform(this.p.dpr, 0, 0, this.p.dpr, 0, 0);
    ctx.clearRect(0, 0, r.width, r.height);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "rgba(31,111,235,0.95)";
    ctx.fillStyle = "rgba(31,111,235,0.10)";
    ctx.setLineDash([5, 3]);
    ctx.beginPath();
    if (this.p.mode === "box") {
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
    const ctx = this.p.overlay.getContext("2d");
    ctx?.setTransform(1, 0, 0, 1, 0, 0);
    ctx?.clearRect(0, 0, this.p.overlay.width, this.p.overlay.height);
  }
}
