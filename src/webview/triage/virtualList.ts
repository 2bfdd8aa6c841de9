/**
 * The sample list of the triage view, virtualised: thousands of rows stay smooth because only the rows near the
 * visible part of the scroll box exist in the DOM (absolutely placed over a spacer as tall as the whole list).
 * Rows have a fixed height, so the visible range is plain arithmetic (rows.ts `visibleRange`).
 *
 * Accessibility: the scroll box is the listbox and the only Tab stop; the selected row is its
 * aria-activedescendant (it always exists, because selecting scrolls it into view) and every row carries
 * aria-posinset / aria-setsize, since most of the list is not in the DOM.
 */
import type { TriageRow } from '../../shared/protocol';
import { h } from '../common/dom';
import { formatPercent } from '../../shared/format';
import { visibleRange } from './rows';

export interface ListItem {
  row: TriageRow;
  rank: number;
}

export const ROW_HEIGHT = 52;

function scoreText(v: number): string {
  return Number.isFinite(v) ? v.toFixed(3) : '–';
}

/** Wait this long before loading a failed thumbnail again. */
const THUMB_RETRY_MS = 600;

/**
 * A thumbnail that failed to load is tried once more after a moment (while a scan keeps the machine busy a
 * webview resource request can fail transiently); a second failure hides it (an unreadable image).
 */
function onThumbError(img: HTMLImageElement): void {
  if (img.dataset.retried) {
    img.classList.add('broken');
    return;
  }
  img.dataset.retried = 'true';
  const uri = img.getAttribute('src');
  setTimeout(() => {
    if (!uri || img.getAttribute('src') !== uri) return;
    img.removeAttribute('src');
    img.src = uri;
  }, THUMB_RETRY_MS);
}

export class VirtualList {
  private items: ListItem[] = [];
  private index = new Map<number, number>();
  private readonly els = new Map<number, HTMLElement>();
  private selected: number | undefined;
  private frame = 0;
  /** Rendered rows may show outdated content (setItems since they were filled). */
  private stale = false;

  constructor(
    private readonly box: HTMLElement,
    private readonly spacer: HTMLElement,
    private readonly onPick: (seq: number, how: 'click' | 'dblclick') => void,
    /** The image a row shows: its URI, or (a sample the host renders) a rendered one, or '' while it comes. */
    private readonly imageOf: (row: TriageRow) => string = (row) => row.imageUri,
  ) {
    box.addEventListener('scroll', () => this.schedule());
    new ResizeObserver(() => this.schedule()).observe(box);
    box.addEventListener('click', (e) => {
      const el = (e.target as Element).closest<HTMLElement>('[data-seq]');
      if (el) onPick(Number(el.dataset.seq), 'click');
    });
    box.addEventListener('dblclick', (e) => {
      const el = (e.target as Element).closest<HTMLElement>('[data-seq]');
      if (el) onPick(Number(el.dataset.seq), 'dblclick');
    });
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): ListItem | undefined {
    return this.items[i];
  }

  indexOf(seq: number | undefined): number {
    return seq === undefined ? -1 : this.index.get(seq) ?? -1;
  }

  /** Rows one screen holds (PageUp/PageDown). */
  get pageSize(): number {
    return Math.max(1, Math.floor(this.box.clientHeight / ROW_HEIGHT) - 1);
  }

  /**
   * New content (re-filtered or re-ranked rows, changed flags). Rendered rows are updated in place, keeping their
   * thumbnails, so a list that streams in every 100 ms does not flicker.
   */
  setItems(items: ListItem[]): void {
    this.items = items;
    this.index = new Map(items.map((it, i) => [it.row.seq, i]));
    this.spacer.style.height = `${items.length * ROW_HEIGHT}px`;
    this.box.setAttribute('aria-setsize', String(items.length));
    this.stale = true;
    this.render();
  }

  /** Fills the rendered rows again (an image they show has arrived). */
  refresh(): void {
    this.stale = true;
    this.schedule();
  }

  /** Marks `seq` selected; with `reveal`, scrolls it into view first (so its element exists). */
  select(seq: number | undefined, reveal = true): void {
    this.selected = seq;
    const i = this.indexOf(seq);
    if (reveal && i >= 0) {
      const top = i * ROW_HEIGHT;
      if (top < this.box.scrollTop) this.box.scrollTop = top;
      else if (top + ROW_HEIGHT > this.box.scrollTop + this.box.clientHeight) this.box.scrollTop = top + ROW_HEIGHT - this.box.clientHeight;
    }
    this.render();
    if (i >= 0) this.box.setAttribute('aria-activedescendant', `row-${seq}`);
    else this.box.removeAttribute('aria-activedescendant');
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** Creates the rows of the visible range (and removes the others) now. */
  render(): void {
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    const { first, last } = visibleRange(this.box.scrollTop, this.box.clientHeight || 600, ROW_HEIGHT, this.items.length);
    const keep = new Set<number>();
    for (let i = first; i <= last; i++) {
      const { row, rank } = this.items[i];
      keep.add(row.seq);
      let el = this.els.get(row.seq);
      if (!el) {
        el = h('div', { class: 'row', role: 'option', id: `row-${row.seq}`, 'data-seq': row.seq });
        this.fill(el, row, rank, i);
        this.els.set(row.seq, el);
        this.spacer.append(el);
      } else if (this.stale) this.fill(el, row, rank, i);
      el.setAttribute('aria-selected', String(row.seq === this.selected));
    }
    this.stale = false;
    for (const [seq, el] of this.els) {
      if (!keep.has(seq)) {
        el.remove();
        this.els.delete(seq);
      }
    }
  }

  /**
   * Writes a row's content into its element. The thumbnail <img> stays where it is (never detached) while its URI
   * stays the same: during a scan the visible rows are refilled ten times a second, and an image taken out of the
   * document and put back before it has loaded may never load (a lazy one waits for an intersection that a
   * refill keeps resetting). Rows exist only near the visible part of the list, so no lazy loading is needed.
   */
  private fill(el: HTMLElement, row: TriageRow, rank: number, i: number): void {
    let thumb = el.querySelector<HTMLImageElement>('img.thumb');
    const src = this.imageOf(row);
    if (!thumb || (thumb.getAttribute('src') ?? '') !== src) {
      const img = h('img', { class: 'thumb', alt: '', decoding: 'async', draggable: 'false' });
      img.addEventListener('error', () => onThumbError(img));
      if (src) img.src = src;
      if (thumb) thumb.replaceWith(img);
      thumb = img;
    }
    const predP = row.top[0]?.index === row.predictedIndex ? row.top[0].probability : undefined;
    const labels = h('div', { class: 'row-labels' },
      h('span', { class: 'given', title: 'Given label and its probability' }, `${row.givenLabel} ${formatPercent(row.selfConfidence)}`),
      h('span', { class: 'arrow', 'aria-hidden': 'true' }, ' → '),
      h('span', { class: 'predicted', title: 'Predicted label and its probability' },
        row.predictedIndex === row.givenIndex ? 'same' : `${row.predictedLabel} ${predP !== undefined ? formatPercent(predP) : ''}`.trim()),
    );
    const side = h('div', { class: 'row-side' }, h('span', { class: 'score', title: 'Score: lower means the model doubts the label more' }, scoreText(row.score)));
    if (row.movedFrom !== undefined) side.append(h('span', { class: 'badge moved', title: `Moved from ${row.movedFrom}` }, 'moved'));
    else if (row.flagged) side.append(h('span', { class: 'badge flag', title: 'Confident learning assigns this sample to another class' }, 'flagged'));
    const main = h('div', { class: 'row-main' }, h('div', { class: 'row-title' }, h('span', { class: 'rank' }, `#${rank}`), h('span', { class: 'path' }, row.path)), labels);
    if (thumb.parentElement !== el) el.prepend(thumb);
    while (thumb.nextSibling) thumb.nextSibling.remove();
    el.append(main, side);
    el.dataset.path = row.path;
    el.dataset.rank = String(rank);
    el.dataset.flagged = String(row.flagged);
    el.dataset.given = String(row.givenIndex);
    el.dataset.predicted = String(row.predictedIndex);
    if (row.movedFrom !== undefined) el.dataset.moved = 'true';
    else delete el.dataset.moved;
    el.setAttribute('aria-posinset', String(i + 1));
    el.setAttribute('aria-setsize', String(this.items.length));
    el.title = row.path;
    el.style.top = `${i * ROW_HEIGHT}px`;
  }
}
