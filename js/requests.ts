// The request planner: what to ask the kernel for (newest wins). Every message leaves through
// ask(), which numbers it.
import type { App } from "./app";
import { type AnalysisKey, keyString } from "./protocol";
import { TRUST_STEPS, baselineKey, missingDepths } from "./trust";
import type { Ask, PageRequest, RequestKind } from "./wire";

export class Requests {
  private rid = 0;
  /** the kind of each recent request id (an error reply names its rid, not always its kind) */
  private kinds = new Map<number, RequestKind>();

  constructor(private app: App) {}

  /** The id of the last request sent (0: none yet). */
  get lastRid(): number {
    return this.rid;
  }
  /** The kind of request `rid` (null when unknown or long gone). */
  kindOf(rid: number): RequestKind | null {
    return this.kinds.get(rid) ?? null;
  }

  /** Send one request with the next request id (and, for select_ids, its buffers).
   * (`& { type: K }` lets tsc infer K from the literal, so each call is checked as Ask<K>.) */
  ask<K extends RequestKind>(msg: Ask<K> & { type: K }, buffers?: ArrayBufferView[]): void {
    const { type, ...rest } = msg;
    const content = { type, rid: ++this.rid, ...rest } as unknown as PageRequest;
    this.kinds.set(this.rid, type);
    if (this.kinds.size > 256) this.kinds.delete(this.kinds.keys().next().value as number);
    this.app.send(content, buffers);
  }

  /** Ask the kernel for whatever the current state needs and the page lacks. */
  ensure(): void {
    const app = this.app;
    const sent = app.sent;
    const needed = app.neededKeys();
    const keys = needed.filter((k) => {
      const s = keyString(k);
      return !app.analyses.has(s) && !app.failed.has(s);
    });
    // The input is shared by slice|id|connection: the page asks for it once, with the first key
    // that needs it. An analysis that came without it (its carrier failed, or it was evicted)
    // is asked again for it.
    const imageKey = (k: AnalysisKey) => `${k.slice}|${k.id}|${k.connection}`;
    const coming = new Set(keys.map(imageKey));
    for (const k of needed) {
      const ik = imageKey(k);
      if (!app.images.has(ik) && !coming.has(ik) && app.analyses.has(keyString(k))) {
        coming.add(ik);
        keys.push(k);
      }
    }
    // Keys asked for by the last request and not answered yet are on their way: ask again only
    // when a key is missing from it (a newer request replaces the older one in the kernel).
    const pending = new Set(sent.analyze ? sent.analyze.split(";") : []);
    const sig = keys.map(keyString).join(";");
    const fresh = keys.some((k) => !pending.has(keyString(k)));
    if (keys.length && fresh) {
      const asked = new Set<string>();
      const images = keys.map((k) => {
        const ik = imageKey(k);
        if (app.images.has(ik) || asked.has(ik)) return false;
        asked.add(ik);
        return true;
      });
      this.ask({ type: "analyze", keys, images });
      sent.analyze = sig;
    } else if (!keys.length) {
      sent.analyze = "";
    }

    const model = app.get("model_name");
    const slice = app.get("slice");
    const missing = app.pageIds().filter((id) => !app.rows.has(app.rowKey(id)));
    const rsig = `${model}|${slice}|${missing.join(",")}`;
    if (missing.length && rsig !== sent.rows && !app.rowsFailed) {
      this.ask({ type: "rows", model, slice, ids: missing, page: app.listPage });
    }
    sent.rows = missing.length ? rsig : "";

    // sorting by loss or confidence: those of every selected sample (no thumbnails)
    const by = app.sort.by;
    if (by === "loss" || by === "confidence") {
      const lacking = app.get("selected").filter((id) => !app.values.has(app.rowKey(id)));
      const vsig = `${model}|${slice}|${lacking.length}|${lacking.slice(0, 50).join(",")}`;
      if (lacking.length && vsig !== sent.values) {
        sent.values = vsig;
        this.ask({ type: "values", model, slice, ids: lacking });
      }
    }

    const skey = `${model}|${slice}`;
    if (app.get("viewed") !== null && !app.stats.has(skey) && !sent.stats.has(skey)) {
      sent.stats.add(skey);
      this.ask({ type: "stats", model, slice });
    }

    const pk = app.popKey();
    if (!app.pops.has(pk) && !sent.pop.has(pk) && !app.popErrors.has(pk)) {
      sent.pop.add(pk);
      this.ask({ type: "population", model, slice });
    }

    const vk = app.visualKey();
    if (vk && !app.visuals.has(vk) && vk !== sent.visual) {
      const [name, vslice, id, conn] = vk.split("|");
      this.ask({ type: "visual", name, slice: vslice, id: Number(id), connection: Number(conn) });
    }
    sent.visual = vk && !app.visuals.has(vk) ? vk : "";
    this.ensureTrust();
  }

  /** The Trust curve of the viewed key while the Trust tab shows: the depths the page lacks
   * (the kernel sends the nearest to the depth shown first, a few at a time) and the baselines
   * when the page has none for this sample and target. A curve of another key still being
   * computed is stopped (`key: null`, or the newer request, stops it between two chunks);
   * so is a sanity check of another key. */
  private ensureTrust(): void {
    const app = this.app;
    const sent = app.sent;
    const cur = app.currentKey();
    const cs = cur ? keyString(cur) : "";
    if (sent.sanity && sent.sanity !== cs) {
      const run = app.sanity.get(sent.sanity);
      if (run && !run.stages && !run.error) app.sanity.delete(sent.sanity); // stopped, not done
      this.ask({ type: "sanity", key: null });
      sent.sanity = "";
    }
    const k = app.trustKey();
    const ks = k ? keyString(k) : "";
    const a = k ? app.analysisOf(k) : null;
    if (sent.trust && sent.trust !== ks) {
      this.ask({ type: "trust", key: null });
      sent.trust = "";
    }
    if (!k || !a || !a.maps.length || sent.trust === ks || app.trustErrors.has(ks)) return;
    const all = a.maps.map((m) => m.depth);
    const depths = missingDepths(all, app.trust.get(ks)?.points);
    const baselines = !app.trustBaselines.has(baselineKey(k, TRUST_STEPS));
    if (!depths.length && !baselines) return;
    this.ask({
      type: "trust",
      key: k,
      depth: app.shownDepth(),
      depths: depths.length === all.length ? null : depths,
      baselines,
      steps: TRUST_STEPS,
    });
    sent.trust = ks;
  }

  /** Ask for the population again after an error (a user action). */
  retryPopulation(): void {
    const pk = this.app.popKey();
    this.app.popErrors.delete(pk);
    this.app.sent.pop.delete(pk);
  }

  addSample(text: string): void {
    this.ask({ type: "add", id: text });
  }
  selectAll(): void {
    this.ask({ type: "select_all" });
  }
  fetchSimilar(k: number): void {
    const app = this.app;
    this.ask({
      type: "similar",
      ids: app.get("selected"),
      k,
      model: app.get("model_name"),
      slice: app.get("slice"),
    });
  }
  pick(id: number): void {
    this.ask({ type: "pick", id });
  }
  /** The ids travel as one Uint32Array buffer (a copy, never a view). */
  selectIds(ids: Uint32Array, mode: "replace" | "add"): void {
    const buf = ids.slice();
    this.ask({ type: "select_ids", mode, slice: this.app.get("slice"), n: ids.length }, [buf]);
  }
  /** A hover thumbnail (object URL), asked for when missing; null until it arrives. */
  thumb(id: number): string | null {
    const app = this.app;
    const k = `${app.get("slice")}|${id}`;
    const hit = app.thumbs.get(k);
    if (hit) return hit;
    if (app.sent.thumb !== k) {
      app.sent.thumb = k;
      this.ask({ type: "thumb", slice: app.get("slice"), id });
    }
    return null;
  }
  plotly(): void {
    this.ask({ type: "plotly_js" });
  }
  sanity(key: AnalysisKey, depth: number): void {
    this.ask({ type: "sanity", key, depth });
  }
}
