// plotly.js on demand: the kernel sends plotly.min.js once, the page runs it.
import { type Buffer, toBytes } from "./protocol";

/** The part of plotly.js the viewer uses. */
export interface Plotly {
  newPlot(el: HTMLElement, data: unknown, layout: unknown, config?: unknown): unknown;
}

interface PlotlyWindow {
  Plotly?: Plotly;
}

export class PlotlyLoader {
  private plotly: Promise<Plotly> | null = null;
  private plotlyResolve: ((p: Plotly) => void) | null = null;

  /** `ask`: send the request for plotly.js; `fail`: report an error to the user. */
  constructor(private ask: () => void, private fail: (text: string) => void) {}

  load(): Promise<Plotly> {
    const w = window as unknown as PlotlyWindow;
    if (w.Plotly) return Promise.resolve(w.Plotly);
    if (!this.plotly) {
      this.plotly = new Promise((resolve) => (this.plotlyResolve = resolve));
      this.ask();
    }
    return this.plotly;
  }

  /** The kernel's answer: plotly.min.js as UTF-8. */
  install(buf: Buffer | undefined): void {
    if (!buf) return;
    const code = new TextDecoder().decode(toBytes(buf));
    const w = window as unknown as PlotlyWindow;
    try {
      // plotly.min.js is a UMD bundle: run it with a CommonJS `module` of its own, so that it
      // hands its export to us whatever module loader the page has.
      const mod: { exports: Partial<Plotly> } = { exports: {} };
      new Function("module", "exports", code)(mod, mod.exports);
      const P = (mod.exports && mod.exports.newPlot ? mod.exports : w.Plotly) as Plotly;
      if (!w.Plotly) w.Plotly = P;
      this.plotlyResolve?.(P);
    } catch (e) {
      this.fail(`could not load plotly.js: ${e}`);
    }
  }
}
