// Colormap lookup tables: 256 RGB entries each, the same tables the Python side uses
// (samplelens_widget/colormaps.json, sampled from matplotlib).
import tables from "../samplelens_widget/colormaps.json";

const cache = new Map<string, Uint8Array>();

export const COLORMAP_NAMES: string[] = Object.keys(tables);

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

/** The 256x3 LUT of a colormap as a flat Uint8Array (r0 g0 b0 r1 ...). Unknown names: jet. */
export function lut(name: string): Uint8Array {
  let t = cache.get(name);
  if (!t) {
    const hex = (tables as Record<string, string>)[name] ?? (tables as Record<string, string>)["jet"];
    t = hexToBytes(hex);
    cache.set(name, t);
  }
  return t;
}

/** The colour of a heat value v in [0, 1]: LUT entry round(v * 255). */
export function colorOf(name: string, v: number): [number, number, number] {
  const t = lut(name);
  const i = Math.max(0, Math.min(255, Math.round(v * 255))) * 3;
  return [t[i], t[i + 1], t[i + 2]];
}

/** CSS linear-gradient stops for a colour-bar legend. */
export function gradientCss(name: string, direction = "to top", steps = 16): string {
  const stops: string[] = [];
  for (let s = 0; s <= steps; s++) {
    const [r, g, b] = colorOf(name, s / steps);
    stops.push(`rgb(${r},${g},${b}) ${((s / steps) * 100).toFixed(1)}%`);
  }
  return `linear-gradient(${direction}, ${stops.join(", ")})`;
}
