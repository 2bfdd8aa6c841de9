/**
 * The triage view's rows: ranking, flags, filters. Pure (no DOM), so it is tested in plain Node.
 *
 * Rank order is ascending score, ties by `seq` (arrival order), exactly the engine's rankOrder
 * (engine/scan/ranking.ts), so rows streamed during a scan already stand where the final report puts them;
 * `applyFinal` then takes the report's order and flags as the truth. Rows are kept by `seq`; the ranked array is
 * re-sorted lazily (once per render, not once per streamed batch).
 */
import type { TriageRow } from '../../shared/protocol';

export interface RowFilter {
  /** Given class index, or undefined for all. */
  given?: number;
  predicted?: number;
  flaggedOnly: boolean;
}

const byRank = (a: TriageRow, b: TriageRow) => a.score - b.score || a.seq - b.seq;

export class RowStore {
  private readonly bySeq = new Map<number, TriageRow>();
  private readonly seqByPath = new Map<string, number>();
  private ranked: TriageRow[] = [];
  private sorted = true;
  /** After `applyFinal`: the report's order is kept as is (rows keep their place when relabelled). */
  private final = false;
  /** Rows hidden while a "label is correct" is on its way to the host. */
  private readonly hidden = new Set<number>();
  /** Bumped on every change, so views know when to re-filter. */
  version = 0;

  get size(): number {
    return this.bySeq.size;
  }

  clear(): void {
    this.bySeq.clear();
    this.seqByPath.clear();
    this.ranked = [];
    this.sorted = true;
    this.final = false;
    this.hidden.clear();
    this.version++;
  }

  add(rows: readonly TriageRow[]): void {
    for (const r of rows) {
      const old = this.bySeq.get(r.seq);
      if (old) {
        this.replace(r);
        continue;
      }
      const own = { ...r };
      this.bySeq.set(r.seq, own);
      this.seqByPath.set(r.path, r.seq);
      this.ranked.push(own);
      this.sorted = false;
    }
    if (rows.length) this.version++;
  }

  get(seq: number): TriageRow | undefined {
    return this.bySeq.get(seq);
  }

  byPath(path: string): TriageRow | undefined {
    const seq = this.seqByPath.get(path);
    return seq === undefined ? undefined : this.bySeq.get(seq);
  }

  /** Sets the flags of rows whose confident-learning flag changed. Unknown seqs (reviewed rows) are ignored. */
  setFlags(on: ArrayLike<number>, off: ArrayLike<number>): void {
    let changed = false;
    for (let i = 0; i < on.length; i++) changed = this.setFlag(on[i], true) || changed;
    for (let i = 0; i < off.length; i++) changed = this.setFlag(off[i], false) || changed;
    if (changed) this.version++;
  }

  /** Rows are the store's own copies (see `add`), so a flag changes in place. */
  private setFlag(seq: number, flagged: boolean): boolean {
    const r = this.bySeq.get(seq);
    if (!r || r.flagged === flagged) return false;
    r.flagged = flagged;
    return true;
  }

  /** The final ranking and flags of the report. Rows it does not name (none, normally) keep their place after it. */
  applyFinal(order: ArrayLike<number>, flagged: ArrayLike<number>): void {
    const flags = new Set<number>();
    for (let i = 0; i < flagged.length; i++) flags.add(flagged[i]);
    const seen = new Set<number>();
    const next: TriageRow[] = [];
    for (let i = 0; i < order.length; i++) {
      const r = this.bySeq.get(order[i]);
      if (!r || seen.has(r.seq)) continue;
      seen.add(r.seq);
      next.push(r);
    }
    for (const r of this.rankedRows()) if (!seen.has(r.seq)) next.push(r);
    for (const r of next) r.flagged = flags.has(r.seq);
    this.ranked = next;
    this.sorted = true;
    this.final = true;
    this.version++;
  }

  /** Replaces a row (same seq) in place, e.g. after "Move to class…"; its rank does not change. */
  replace(next: TriageRow): void {
    const old = this.bySeq.get(next.seq);
    if (!old) return;
    const row = { ...next };
    if (old.path !== row.path) {
      this.seqByPath.delete(old.path);
      this.seqByPath.set(row.path, row.seq);
    }
    this.bySeq.set(row.seq, row);
    const i = this.ranked.indexOf(old);
    if (i >= 0) this.ranked[i] = row;
    this.version++;
  }

  remove(seq: number): void {
    const r = this.bySeq.get(seq);
    if (!r) return;
    this.bySeq.delete(seq);
    this.seqByPath.delete(r.path);
    this.hidden.delete(seq);
    const i = this.ranked.indexOf(r);
    if (i >= 0) this.ranked.splice(i, 1);
    this.version++;
  }

  /** Hides a row until `remove` or `unhide` (an optimistic "label is correct"). */
  hide(seq: number): void {
    if (this.bySeq.has(seq) && !this.hidden.has(seq)) {
      this.hidden.add(seq);
      this.version++;
    }
  }

  unhide(seq: number): void {
    if (this.hidden.delete(seq)) this.version++;
  }

  /** All rows in rank order (hidden ones included). */
  rankedRows(): readonly TriageRow[] {
    if (!this.sorted && !this.final) {
      this.ranked.sort(byRank);
      this.sorted = true;
    }
    return this.ranked;
  }

  /** The visible rows matching `f`, in rank order, each with its rank. */
  filtered(f: RowFilter): { row: TriageRow; rank: number }[] {
    const out: { row: TriageRow; rank: number }[] = [];
    this.rankedRows().forEach((row, i) => {
      if (this.hidden.has(row.seq)) return;
      if (f.given !== undefined && row.givenIndex !== f.given) return;
      if (f.predicted !== undefined && row.predictedIndex !== f.predicted) return;
      if (f.flaggedOnly && !row.flagged) return;
      out.push({ row, rank: i + 1 });
    });
    return out;
  }

  /** Class indices that occur as given (resp. predicted) labels, sorted: the filter options. */
  classesPresent(): { given: number[]; predicted: number[] } {
    const g = new Set<number>();
    const p = new Set<number>();
    for (const r of this.bySeq.values()) {
      g.add(r.givenIndex);
      p.add(r.predictedIndex);
    }
    const sort = (s: Set<number>) => [...s].sort((a, b) => a - b);
    return { given: sort(g), predicted: sort(p) };
  }
}

/**
 * Where the selection goes after a key press in a list of `n` rows with the selection at `index` (-1: none).
 * `page` is how many rows one screen holds. Undefined: the key does not move the selection.
 */
export function moveSelection(key: string, index: number, n: number, page: number): number | undefined {
  if (n === 0) return undefined;
  const clamp = (i: number) => Math.max(0, Math.min(n - 1, i));
  switch (key) {
    case 'ArrowDown': return index < 0 ? 0 : clamp(index + 1);
    case 'ArrowUp': return index < 0 ? 0 : clamp(index - 1);
    case 'PageDown': return clamp((index < 0 ? 0 : index) + Math.max(1, page));
    case 'PageUp': return clamp((index < 0 ? 0 : index) - Math.max(1, page));
    case 'Home': return 0;
    case 'End': return n - 1;
    default: return undefined;
  }
}

/** The first and last row index to render for a viewport, with `overscan` rows above and below. */
export function visibleRange(scrollTop: number, viewport: number, rowHeight: number, n: number, overscan = 6): { first: number; last: number } {
  if (n === 0 || rowHeight <= 0) return { first: 0, last: -1 };
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(n - 1, Math.ceil((scrollTop + Math.max(0, viewport)) / rowHeight) + overscan);
  return { first, last };
}
