// The slice of the anywidget model API that the front end uses (also what test pages fake).
import type { Info, PageRequest } from "./wire";

/** The widget's synced traits, as the page reads and writes them. */
export interface Traits {
  selected: number[];
  viewed: number | null;
  algorithm: string;
  /** What the maps explain: a class, null (the predicted class) or "loss" (against the true label). */
  label: number | "loss" | null;
  /** A second class: the maps explain `label` (or the prediction) rather than it; null: none. */
  contrast: number | null;
  connection: number;
  depth: number | null;
  slice: string;
  model_name: string;
  compare: string | null;
  colormap: string;
  opacity: number;
  tab: string;
  grid: boolean;
  color_by: string;
  side_panel: string;
  _info: Info;
}

export type TraitName = keyof Traits;

export interface AnyModel {
  get<K extends keyof Traits>(name: K): Traits[K];
  set<K extends keyof Traits>(name: K, value: Traits[K]): void;
  save_changes(): void;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event?: string | null, cb?: ((...args: any[]) => void) | null): void;
  send(content: PageRequest, callbacks?: unknown, buffers?: (ArrayBuffer | ArrayBufferView)[]): void;
}
