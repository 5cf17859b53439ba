// The page's event bus: why the panels should look again.
import type { TraitName } from "./model";

/** A trait changed (its name), something arrived from the kernel, or the page changed. */
export type Reason =
  | TraitName
  | "init" // the first render
  | "page" // the list's page
  | "analysis"
  | "rows"
  | "stats"
  | "visual"
  | "population"
  | "population-progress"
  | "population-coords"
  | "similar"
  | "thumb"
  | "error"
  | "scale" // the viewer's colour scale (page-side only, see scale.ts)
  | "side-tab" // the bottom-right panel's tab: error analysis or Trust (page-side only)
  | "trust" // a chunk of a Trust curve arrived (or its error)
  | "sanity" // a sanity check's progress or result arrived (or its error)
  | "connection"; // the kernel went away (restart, shutdown) or answered again

export type Listener = (reason: Reason) => void;

export class Bus {
  private listeners = new Set<Listener>();
  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  emit(reason: Reason): void {
    for (const fn of this.listeners) fn(reason);
  }
}
