// The widget's width class, from its OWN box (a ResizeObserver on the root, not the window: a
// notebook output is as wide as the notebook's column, whatever the window). style.css reads
// `data-width` on .sl-root:
//   wide   (>= 1200 px): three columns — population over the sample list | viewer | controller
//                        over error analysis;
//   medium (900–1199):   two columns — population over the sample list | the viewer, with the
//                        controller and error analysis side by side under it;
//   narrow (< 900):      one column — the viewer, then controller | error analysis, then
//                        population | sample list (two columns each), down to 720 px.

export type WidthClass = "wide" | "medium" | "narrow";

/** Lower bounds (CSS px of the root's border box) of the wide and medium classes. */
export const WIDE_MIN = 1200;
export const MEDIUM_MIN = 900;

export function widthClass(width: number): WidthClass {
  return width >= WIDE_MIN ? "wide" : width >= MEDIUM_MIN ? "medium" : "narrow";
}

/** Keep `root.dataset.width` in step with the root's width; returns the disconnect function. */
export function watchWidth(root: HTMLElement, onChange?: (w: WidthClass) => void): () => void {
  const apply = (width: number) => {
    if (!(width > 0)) return; // not laid out yet (render() gets a detached element)
    const w = widthClass(width);
    if (root.dataset.width === w) return;
    root.dataset.width = w;
    onChange?.(w);
  };
  root.dataset.width = "wide"; // until the first measurement: the layout of old
  if (typeof ResizeObserver === "undefined") return () => {};
  const ro = new ResizeObserver((entries) => {
    const e = entries[entries.length - 1];
    const b = e.borderBoxSize?.[0];
    apply(b ? b.inlineSize : root.getBoundingClientRect().width);
  });
  ro.observe(root);
  return () => ro.disconnect();
}
