// Long names (layers, classes) shortened in the middle, so that both ends stay readable:
// "encoder_stage_two_block.3" -> "encoder_st…two_block.3". Pure; the DOM measure is apart.

const ELLIPSIS = "…";

/** `text` in at most `max` characters, cut in the middle (the end keeps the extra character:
 * a layer's index or a class's suffix is what tells neighbours apart). */
export function middleEllipsis(text: string, max: number): string {
  const chars = Array.from(text); // code points: never split a surrogate pair
  if (chars.length <= max) return text;
  if (max <= 1) return max < 1 ? "" : ELLIPSIS;
  const keep = max - 1;
  const head = Math.floor(keep / 2);
  const tail = keep - head;
  return chars.slice(0, head).join("") + ELLIPSIS + chars.slice(chars.length - tail).join("");
}

/** The longest middle-shortened form of `text` whose `compose(short)` fits in `width` by
 * `measure` (pixels, or characters); at least `min` characters of the name are kept. */
export function fitMiddle(
  text: string,
  width: number,
  measure: (s: string) => number,
  compose: (short: string) => string = (s) => s,
  min = 3,
): string {
  const n = Array.from(text).length;
  if (measure(compose(text)) <= width) return text;
  let lo = Math.min(min, n); // always kept
  let hi = n - 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (measure(compose(middleEllipsis(text, mid))) <= width) lo = mid;
    else hi = mid - 1;
  }
  return middleEllipsis(text, lo);
}

/** The depth readout: "d7 · enc…ck.3 · 64×16×16" in at most `max` characters, the name
 * shortened in the middle (depth and shape always whole: consecutive depths differ). */
export function layerReadout(depth: number, name: string, shape: readonly number[], max: number): string {
  const compose = (s: string) => `d${depth} · ${s}${shape.length ? ` · ${shape.join("×")}` : ""}`;
  return compose(fitMiddle(name, max, (s) => Array.from(s).length, compose, 5));
}

let ctx: CanvasRenderingContext2D | null | undefined;
let ctxFont = "";
/** Measured widths per font and text: a panel's update measures the same names again. */
const widths = new Map<string, Map<string, number>>();

type Box = { width: number; font: string };
/** Content-box widths and fonts of the elements names are fitted to, kept by one
 * ResizeObserver: a panel's update reads them without forcing a layout of the whole notebook
 * page (reading clientWidth after a DOM change does). */
const boxes = new WeakMap<Element, Box>();
let observer: ResizeObserver | null | undefined;

function measureBox(el: Element): Box {
  if (typeof getComputedStyle !== "function") return { width: (el as HTMLElement).clientWidth || 0, font: "" };
  const cs = getComputedStyle(el);
  const pad = parseFloat(cs.paddingLeft) + parseFloat(cs.paddingRight) || 0;
  return { width: ((el as HTMLElement).clientWidth || 0) - pad, font: cs.font || `${cs.fontSize} ${cs.fontFamily}` };
}

/** Callbacks of `watchBox`, by element. */
const watchers = new Map<Element, Set<() => void>>();

function observed(): ResizeObserver | null {
  if (observer === undefined) {
    observer =
      typeof ResizeObserver === "function"
        ? new ResizeObserver((entries) => {
            for (const e of entries) {
              const t = e.target;
              const fns = watchers.get(t);
              if (!t.isConnected && !fns) {
                // removed (a list row rebuilt): forget it, or the observer would keep it alive
                observer?.unobserve(t);
                boxes.delete(t);
                continue;
              }
              const old = boxes.get(t);
              const box = measureBox(t);
              if (t.isConnected) boxes.set(t, box);
              if (fns && (!old || old.width !== box.width)) for (const fn of fns) fn();
            }
          })
        : null;
  }
  return observer;
}

/** `el`'s content width (0 while not laid out) and font: measured once, then kept current. */
export function boxOf(el: Element): Box {
  const known = boxes.get(el);
  if (known) return known;
  const box = measureBox(el);
  const ro = observed();
  if (ro && el.isConnected) {
    boxes.set(el, box);
    ro.observe(el);
  }
  return box;
}

/** Call `fn` whenever `el`'s content width changes (the shared observer); returns the
 * function that stops it. Nothing is called without a ResizeObserver. */
export function watchBox(el: Element, fn: () => void): () => void {
  const ro = observed();
  if (!ro) return () => {};
  let fns = watchers.get(el);
  if (!fns) {
    fns = new Set();
    watchers.set(el, fns);
    ro.observe(el);
  }
  fns.add(fn);
  return () => {
    fns.delete(fn);
    if (!fns.size) {
      watchers.delete(el);
      if (!el.isConnected) {
        ro.unobserve(el);
        boxes.delete(el);
      }
    }
  };
}

/** A text measure in CSS pixels with `el`'s font (null without a canvas, e.g. in tests). */
export function measureWith(el: Element): ((s: string) => number) | null {
  if (ctx === undefined) {
    try {
      ctx = typeof document !== "undefined" ? document.createElement("canvas").getContext("2d") : null;
    } catch {
      ctx = null;
    }
  }
  if (!ctx) return null;
  const font = boxOf(el).font;
  const c = ctx;
  let known = widths.get(font);
  if (!known) {
    if (widths.size >= 16) widths.clear();
    known = new Map();
    widths.set(font, known);
  }
  const cache = known;
  return (s: string) => {
    let w = cache.get(s);
    if (w === undefined) {
      // setting a context's font parses it: only when another font was set since
      if (ctxFont !== font) {
        c.font = font;
        ctxFont = font;
      }
      w = c.measureText(s).width;
      if (cache.size >= 4096) cache.clear();
      cache.set(s, w);
    }
    return w;
  };
}

/** A function that shortens a text in the middle to fit `el`'s content box (`reserve`:
 * pixels kept free, e.g. a select's arrow; `fallback` characters while `el` is not laid out;
 * `font`: the element whose font the text is shown in, `el` by default);
 * `compose(short)` is what must fit ("Predicted (…)"), and is what it returns. */
export function fitter(
  el: HTMLElement,
  { reserve = 0, fallback = 24, font = el }: { reserve?: number; fallback?: number; font?: Element } = {},
): (text: string, compose?: (s: string) => string) => string {
  const width = boxOf(el).width - reserve;
  const measure = width > 0 ? measureWith(font) : null;
  const chars = (s: string) => Array.from(s).length;
  return (text, compose = (s) => s) =>
    measure ? compose(fitMiddle(text, width, measure, compose)) : compose(fitMiddle(text, fallback, chars, compose));
}

/** `text` shortened in the middle to fit `el` (see `fitter`). */
export function fitTo(
  el: HTMLElement,
  text: string,
  { reserve = 0, fallback = 24, compose = (s: string) => s }: { reserve?: number; fallback?: number; compose?: (s: string) => string } = {},
): string {
  return fitter(el, { reserve, fallback })(text, compose);
}
