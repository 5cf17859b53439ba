// The scatter's legend: category swatches, or the viridis scale of a value column.
import { lut } from "../colormap";
import { h } from "../dom";
import { type Column, MISSING, categoryColor } from "./colors";

/** Fill `legend` for `col` (emptied when null); label/prediction categories take `labelNames`. */
export function renderLegend(legend: HTMLElement, col: Column | null, labelNames: string[]): void {
  if (!col) {
    legend.replaceChildren();
    return;
  }
  if (col.kind === "category") {
    const cats = col.categories ?? [];
    const names = col.key === "label" || col.key === "prediction" ? labelNames : cats;
    const items = cats.slice(0, 24).map((_, i) => {
      const [r, g, b] = categoryColor(i, cats.length, col.palette);
      return h("span", { class: "sl-leg-item" }, h("span", { class: "sl-swatch", style: { background: `rgb(${r},${g},${b})` } }), String(names[i] ?? cats[i]));
    });
    if (cats.length > 24) items.push(h("span", { class: "sl-muted" }, `+${cats.length - 24} more`));
    legend.replaceChildren(...items);
  } else {
    const t = lut("viridis");
    const stops = [0, 64, 128, 192, 255].map((i) => `rgb(${t[3 * i]},${t[3 * i + 1]},${t[3 * i + 2]}) ${(i / 255) * 100}%`);
    const f = (v: number | null | undefined) => (v === null || v === undefined ? "—" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
    legend.replaceChildren(
      h("span", { class: "sl-muted" }, `${col.clipped ? "≤ " : ""}${f(col.min)}`),
      h("span", { class: "sl-gradient", style: { background: `linear-gradient(to right, ${stops.join(", ")})` } }),
      h("span", { class: "sl-muted" }, `${col.clipped ? "≥ " : ""}${f(col.max)}`),
      h("span", { class: "sl-leg-item" }, h("span", { class: "sl-swatch", style: { background: `rgb(${MISSING.join(",")})` } }), "missing"),
    );
  }
}
