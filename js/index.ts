// samplelens-widget front end: the anywidget entry point.
import { App } from "./app";
import { expose } from "./debug";
import { h } from "./dom";
import type { Reason } from "./events";
import { watchWidth } from "./layout";
import type { AnyModel, TraitName } from "./model";
import { Controller } from "./panels/controller";
import { ErrorAnalysis } from "./panels/errors";
import { Header } from "./panels/header";
import { SampleList } from "./panels/sampleList";
import { ScatterPanel } from "./panels/scatter";
import { Viewer } from "./panels/viewer";
import type { Buffer } from "./protocol";
import css from "./style.css";

const KEY_TRAITS: TraitName[] = ["viewed", "algorithm", "label", "contrast", "connection", "slice", "model_name", "compare"];
const VIEW_TRAITS: TraitName[] = ["selected", "colormap", "opacity", "tab", "grid", "_info", "color_by"];

function render({ model, el }: { model: AnyModel; el: HTMLElement }): () => void {
  const app = new App(model);
  const header = new Header(app);
  const list = new SampleList(app);
  const scatter = new ScatterPanel(app);
  const viewer = new Viewer(app);
  const controller = new Controller(app);
  const errors = new ErrorAnalysis(app);
  const root = h(
    "div",
    { class: "sl-root", "data-role": "samplelens" },
    h("style", {}, css),
    header.el,
    header.banner,
    h(
      "div",
      { class: "sl-body" },
      h("div", { class: "sl-left" }, scatter.el, list.el),
      viewer.el,
      h("div", { class: "sl-side" }, controller.el, errors.el),
    ),
  );
  el.replaceChildren(root);
  const unwatchWidth = watchWidth(root); // data-width="wide|medium|narrow" (js/layout.ts)
  expose(root, app, scatter); // root.__samplelens: the App, and debug() for tests

  const updateAll = (reason: Reason) => {
    if (reason === "depth") {
      viewer.redraw();
      errors.redraw();
      controller.updateDepth();
      return;
    }
    if (reason === "trust" || reason === "sanity") {
      if (app.sideTab === "trust") errors.trust.update();
      return;
    }
    scatter.update(reason);
    if (reason === "population-progress" || reason === "population-coords" || reason === "thumb") return;
    header.update();
    list.update();
    viewer.update(reason);
    controller.update();
    errors.update();
  };
  const unsubscribe = app.subscribe(updateAll);

  const handlers: [string, (...a: any[]) => void][] = [];
  const on = (ev: string, fn: (...a: any[]) => void) => {
    model.on(ev, fn);
    handlers.push([ev, fn]);
  };
  on("msg:custom", (content: unknown, buffers: Buffer[] | undefined) => app.onMessage(content, buffers ?? []));
  // ipywidgets' model fires this when its comm goes live or dies; after the first render it
  // only dies (a kernel restart or shutdown: the Python object is gone)
  on("comm_live_update", () => app.setDisconnected(true));
  on("change:depth", () => {
    // The kernel's echo of an earlier save may land while the slider holds a newer, unsaved
    // depth: keep the slider's (it is saved shortly), so that a drag never jumps back.
    if (app.localDepth !== null && model.get("depth") !== app.localDepth) {
      model.set("depth", app.localDepth);
      return;
    }
    app.emit("depth");
  });
  for (const t of KEY_TRAITS) {
    on(`change:${t}`, () => {
      app.clearFailures();
      app.emit(t);
    });
  }
  for (const t of VIEW_TRAITS) on(`change:${t}`, () => app.emit(t));
  on("change:side_panel", () => app.emit("side-tab"));

  app.ensure();
  updateAll("init");
  return () => {
    for (const [ev, fn] of handlers) model.off(ev, fn);
    unsubscribe();
    unwatchWidth();
    scatter.destroy();
    list.destroy();
    header.destroy();
  };
}

export default { render };
