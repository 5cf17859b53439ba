// A tiny DOM helper.
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, any> = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") (el as any)[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

/** Fill a <select> with options (`[value, text, title?]`: a shortened text keeps its full
 * form in the title), keeping it untouched when they did not change. */
export function setOptions(sel: HTMLSelectElement, options: ([string, string] | [string, string, string])[], value: string): void {
  const sig = JSON.stringify(options);
  if (sel.dataset.sig !== sig) {
    sel.replaceChildren(...options.map(([v, t, title]) => h("option", { value: v, title: title !== undefined && title !== t ? title : undefined }, t)));
    sel.dataset.sig = sig;
  }
  if (sel.value !== value) sel.value = value;
}

/** Keep JupyterLab's shortcuts from swallowing keys typed into our controls. */
export function stopKeys(el: HTMLElement): void {
  el.addEventListener("keydown", (e) => e.stopPropagation());
}

export function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || Number.isNaN(x) ? "—" : x.toFixed(digits);
}

/** A computed CSS colour as RGB in 0..1 (null when transparent or not rgb()/rgba()). */
export function parseRgb(css: string): [number, number, number] | null {
  const m = css.match(/rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?/);
  if (!m || (m[4] !== undefined && Number(m[4]) === 0)) return null;
  return [Number(m[1]) / 255, Number(m[2]) / 255, Number(m[3]) / 255];
}
