// Controller (right): algorithm, label, connection, depth (instant, from the maps on the page).
import type { App } from "../app";
import { fmt, h, setOptions, stopKeys } from "../dom";
import { fitTo, fitter, layerReadout } from "../names";
import type { AnalysisMeta } from "../protocol";

const SAVE_DELAY_MS = 150;
/** a select's room for its arrow and padding, in CSS pixels */
const SELECT_ARROW = 26;
const LOSS = "loss";

/** The label select's value as the trait: "" the prediction, "loss", or a class. */
function labelValue(v: string): number | "loss" | null {
  return v === "" ? null : v === LOSS ? LOSS : Number(v);
}

/** The value the maps of `m` explain, named ("score (logit) 3.210"; "" when not sent), and
 * `p`, the explained class's probability, when given. */
export function scoreText(m: AnalysisMeta, p?: number | null): string {
  const parts: string[] = [];
  if (typeof m.score === "number" && Number.isFinite(m.score)) parts.push(`score (${m.score_name || "score"}) ${fmt(m.score, 3)}`);
  if (typeof p === "number" && Number.isFinite(p)) parts.push(`p ${fmt(p, 3)}`);
  return parts.map((x) => ` · ${x}`).join("");
}

/** What the map of `m` explains, in class names, with the value explained and (a class) its
 * probability ("explaining cross · score (logit) 3.210 · p 0.973"). */
export function explaining(app: App, m: AnalysisMeta): string {
  const what = explainingWhat(app, m);
  if (!what) return "";
  const k = m.key;
  const classes = m.task === undefined || !["regression", "segmentation"].includes(m.task);
  const ofClass = classes && k.label !== LOSS && (k.contrast ?? null) === null && m.target >= 0;
  return what + scoreText(m, ofClass ? m.probabilities?.[m.target] : null);
}

function explainingWhat(app: App, m: AnalysisMeta): string {
  const k = m.key;
  const classes = m.task === undefined || !["regression", "segmentation"].includes(m.task);
  const contrast = k.contrast ?? null;
  const label = k.label ?? null;
  const named = (text: string) =>
    text.replace(/\bclass (\d+)\b/g, (all, i) => (app.info.label_names[Number(i)] !== undefined ? app.labelName(Number(i)) : all));
  if (m.task === "segmentation") {
    // the map explains the class's scores over the pixels predicted as it
    if (label === LOSS) return "explaining loss (against the true mask)";
    const rather = contrast !== null ? ` rather than ${app.labelName(contrast)}` : "";
    return `explaining ${app.labelName(m.target)}${rather} over its predicted pixels`;
  }
  if (label === LOSS) {
    return `explaining loss (true label: ${app.labelName(m.true_label)})`;
  }
  if (classes && contrast !== null) {
    const a = label === null ? `the predicted class (${app.labelName(m.prediction)})` : app.labelName(label);
    return `explaining ${a} rather than ${app.labelName(contrast)}`;
  }
  if (classes) return `explaining ${app.labelName(m.target)}`;
  return m.explained ? `explaining ${named(m.explained)}` : "";
}

export class Controller {
  el: HTMLElement;
  private algo = h("select", { class: "sl-select", "data-role": "algorithm" });
  private label = h("select", { class: "sl-select", "data-role": "label" });
  private contrast = h("select", { class: "sl-select", "data-role": "contrast", title: "Explain the label rather than this class" });
  private score = h("span", { class: "sl-muted", "data-role": "score" });
  private conn = h("select", { class: "sl-select", "data-role": "connection" });
  private connRow: HTMLElement;
  private last = h("input", { type: "radio", name: "", value: "last", "data-role": "depth-last" }) as HTMLInputElement;
  private custom = h("input", { type: "radio", name: "", value: "custom", "data-role": "depth-custom" }) as HTMLInputElement;
  private slider = h("input", { type: "range", min: "1", max: "1", step: "1", class: "sl-slider", "data-role": "depth" }) as HTMLInputElement;
  private layerName = h("div", { class: "sl-layer-name", "data-role": "layer-name" });
  private depthOf = h("div", { class: "sl-muted" });
  private depthText = h("div", { class: "sl-depth-text", "data-role": "depth-text" }, this.layerName, this.depthOf);
  private saveTimer: number | undefined;

  constructor(private app: App) {
    const group = `sl-depth-${Math.random().toString(36).slice(2)}`;
    this.last.name = group;
    this.custom.name = group;
    [this.algo, this.label, this.contrast, this.conn, this.slider].forEach(stopKeys);
    const act = (fn: () => void) => () => {
      app.clearFailures();
      fn();
    };
    this.algo.addEventListener("change", act(() => app.setTrait("algorithm", this.algo.value)));
    this.label.addEventListener("change", act(() => app.setTrait("label", labelValue(this.label.value))));
    this.contrast.addEventListener("change", act(() => app.setTrait("contrast", this.contrast.value === "" ? null : Number(this.contrast.value))));
    this.conn.addEventListener("change", act(() => app.setTrait("connection", Number(this.conn.value))));
    const dropPending = () => {
      window.clearTimeout(this.saveTimer);
      app.localDepth = null;
    };
    this.last.addEventListener("change", () => {
      dropPending();
      app.setTrait("depth", null);
    });
    this.custom.addEventListener("change", () => {
      dropPending();
      const a = app.analysisOf(app.currentKey());
      const maps = a?.maps ?? [];
      app.setTrait("depth", maps.length ? maps[maps.length - 1].depth : 1);
    });
    // Dragging repaints from the maps already on the page; the kernel learns the depth later.
    const save = () => {
      window.clearTimeout(this.saveTimer);
      app.localDepth = null;
      app.save();
    };
    this.slider.addEventListener("input", () => {
      const d = Number(this.slider.value);
      app.localDepth = d;
      app.setTrait("depth", d, false);
      window.clearTimeout(this.saveTimer);
      this.saveTimer = window.setTimeout(save, SAVE_DELAY_MS);
    });
    this.slider.addEventListener("change", save);
    this.connRow = h("div", { class: "sl-ctl" }, h("label", {}, "Connection"), this.conn);
    this.el = h(
      "div",
      { class: "sl-panel sl-controller", "data-role": "controller" },
      h("div", { class: "sl-panel-title" }, "Controller"),
      h("div", { class: "sl-ctl" }, h("label", {}, "Algorithm"), this.algo),
      h("div", { class: "sl-ctl" }, h("label", {}, "Label"), h("div", { class: "sl-ctl-col" }, this.label, this.score)),
      h(
        "div",
        { class: "sl-ctl" },
        h("label", {}, "Contrast"),
        h("div", { class: "sl-ctl-row" }, h("span", { class: "sl-muted" }, "rather than"), this.contrast),
      ),
      this.connRow,
      h(
        "div",
        { class: "sl-ctl" },
        h("label", {}, "Depth"),
        h(
          "div",
          { class: "sl-ctl-col" },
          h(
            "div",
            { class: "sl-radios" },
            h("label", { class: "sl-check" }, this.last, "Last layer"),
            h("label", { class: "sl-check" }, this.custom, "Custom"),
          ),
          this.slider,
          this.depthText,
        ),
      ),
    );
  }

  update(): void {
    const app = this.app;
    const info = app.info;
    setOptions(this.algo, info.algorithms.map(([v, t]) => [v, t]), app.get("algorithm"));
    const k = app.currentKey();
    const a = app.analysisOf(k);
    const probs = a?.meta.probabilities ?? null;
    const pred = a?.meta.prediction;
    const label = app.get("label") ?? null;
    const contrast = app.get("contrast") ?? null;
    // long class names shortened in the middle to the menu's width: "Predicted (diamond)"
    // keeps its parentheses, a class its probability; the full text is the option's title
    const fitLabel = fitter(this.label, { reserve: SELECT_ARROW, fallback: 18 });
    const option = (value: string, name: string, compose: (s: string) => string): [string, string, string] => [
      value,
      fitLabel(name, compose),
      compose(name),
    ];
    const opts: ([string, string] | [string, string, string])[] = [
      pred !== undefined ? option("", app.labelName(pred), (s) => `Predicted (${s})`) : ["", "Predicted", "Predicted"],
    ];
    info.label_names.forEach((n, i) => {
      const p = probs?.[i];
      opts.push(option(String(i), n, typeof p === "number" ? (s) => `${s} · p ${p.toFixed(3)}` : (s) => s));
    });
    // The loss needs a true label; whether the sample has one does not depend on the algorithm,
    // the label or the contrast: any analysis of this sample tells.
    const sample = app.sampleAnalysis(k);
    // (a class, a multi-label set or a segmentation mask: the sample's loss is known then)
    const m = sample?.meta;
    const hasTrue = !!m && ((m.true_label !== null && m.true_label !== undefined) || (m.loss !== null && m.loss !== undefined));
    if (hasTrue || label === LOSS) opts.push([LOSS, "Loss (true label)"]);
    setOptions(this.label, opts, label === null ? "" : String(label));
    const short = fitter(this.contrast, { reserve: SELECT_ARROW, fallback: 14 });
    setOptions(this.contrast, [["", "—"], ...info.label_names.map((n, i): [string, string, string] => [String(i), short(n), n])], contrast === null ? "" : String(contrast));
    this.contrast.disabled = label === LOSS;
    this.score.textContent = a ? explaining(app, a.meta) : "";

    const nIn = info.n_inputs[app.get("slice")] ?? 1;
    this.connRow.style.display = nIn > 1 ? "" : "none";
    if (nIn > 1) {
      setOptions(this.conn, Array.from({ length: nIn }, (_, i) => [String(i), `input ${i}`]), String(app.get("connection")));
    }

    this.updateDepth();
  }

  /** The depth controls only (a depth change touches nothing else here). */
  updateDepth(): void {
    const app = this.app;
    const a = app.analysisOf(app.currentKey());
    const depth = app.get("depth");
    this.last.checked = depth === null;
    this.custom.checked = depth !== null;
    const maps = a?.maps ?? [];
    if (maps.length) {
      this.slider.min = String(maps[0].depth);
      this.slider.max = String(maps[maps.length - 1].depth);
    }
    this.slider.disabled = depth === null || !maps.length;
    const shown = depth === null ? (maps.length ? maps[maps.length - 1].depth : 1) : depth;
    if (this.slider.value !== String(shown)) this.slider.value = String(shown);
    if (maps.length) {
      let m = maps[maps.length - 1];
      if (depth !== null) for (const x of maps) if (x.depth <= depth) m = x;
      const also = m.aliases.length ? `\nalso: ${m.aliases.join(", ")}` : "";
      const layout = m.layout === "NCHW" ? "" : ` · ${m.layout}`;
      // "d7 · enc…ck.3 · 64×16×16": the name shortened in the middle, so that consecutive
      // depths of long module names never read the same; the full name on hover
      const compose = (s: string) => layerReadout(m.depth, s, m.shape, Number.MAX_SAFE_INTEGER);
      this.layerName.textContent = fitTo(this.layerName, m.name, { fallback: 30, compose });
      this.layerName.title = m.name + also;
      this.depthOf.textContent = `depth ${m.depth} of ${maps[maps.length - 1].depth}${layout}`;
    } else {
      this.layerName.textContent = "";
      this.layerName.title = "";
      this.depthOf.textContent = "";
    }
  }
}
