/**
 * The channel grid of the model inspector: one small canvas per channel of a layer's feature maps, each min-max
 * normalised on its own and coloured.
 *
 * Big layers (512 or 1024 channels) stay smooth because the grid is lazy: every channel gets its cell and canvas
 * element at once (cheap; a canvas allocates pixels only when painted), but a channel is painted only when its
 * cell comes near the visible part of the grid (IntersectionObserver), at most PAINT_BUDGET per frame. Sorting
 * moves the existing cells, so painted canvases keep their pixels. Keyboard: one Tab stop, arrows move in two
 * dimensions, Enter/Space (or a click) opens the channel in the detail view.
 */
import type { ColormapName } from '../../shared/colormaps';
import type { FeatureMapsPayload, FeatureSort } from '../../shared/protocol';
import { h } from '../common/dom';
import { formatStat } from '../../shared/format';
import { channelOrder, gridMove, paintChannel } from './channels';

const PAINT_BUDGET = 48;

export class FeatureGrid {
  private maps: FeatureMapsPayload | undefined;
  private cells: HTMLButtonElement[] = [];
  private order: number[] = [];
  private colormap: ColormapName = 'gray';
  private sort: FeatureSort = 'index';
  private readonly queue = new Set<number>();
  private frame = 0;
  private readonly observer: IntersectionObserver;

  constructor(
    private readonly grid: HTMLElement,
    private readonly onOpen: (channel: number) => void,
  ) {
    this.observer = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          if (!e.isIntersecting) continue;
          const c = Number((e.target as HTMLElement).dataset.cell);
          this.queue.add(c);
          this.observer.unobserve(e.target);
        }
        this.schedulePaint();
      },
      { root: grid, rootMargin: '200px' },
    );
    grid.addEventListener('click', (e) => {
      const cell = (e.target as Element).closest<HTMLButtonElement>('[data-cell]');
      if (cell) {
        this.setTabStop(cell);
        onOpen(Number(cell.dataset.cell));
      }
    });
    grid.addEventListener('keydown', (e) => this.onKey(e));
  }

  /** Replaces the grid's content with the channels of `maps` (undefined empties it). */
  show(maps: FeatureMapsPayload | undefined, sort: FeatureSort, colormap: ColormapName): void {
    this.maps = maps;
    this.sort = sort;
    this.colormap = colormap;
    this.queue.clear();
    this.observer.disconnect();
    this.cells = [];
    if (!maps) {
      this.grid.replaceChildren();
      delete this.grid.dataset.channels;
      return;
    }
    for (let c = 0; c < maps.channels; c++) {
      const canvas = h('canvas', { 'data-channel': c, width: maps.width, height: maps.height, 'aria-hidden': 'true' });
      const cell = h('button', { type: 'button', class: 'channel', 'data-cell': c, tabindex: -1 }, canvas, h('span', { class: 'caption' }));
      this.cells.push(cell);
    }
    this.grid.dataset.channels = String(maps.channels);
    this.arrange();
    for (const cell of this.cells) this.observer.observe(cell);
  }

  setSort(sort: FeatureSort): void {
    this.sort = sort;
    this.arrange();
  }

  /** Repaints every painted channel in the new colours; unpainted ones will use them when they appear. */
  setColormap(colormap: ColormapName): void {
    this.colormap = colormap;
    for (const cell of this.cells) {
      const canvas = cell.firstElementChild as HTMLCanvasElement;
      if (canvas.dataset.painted) this.queue.add(Number(cell.dataset.cell));
    }
    this.schedulePaint();
  }

  /** Channel indices in display order. */
  displayOrder(): readonly number[] {
    return this.order;
  }

  /** Puts the cells in the order of the current sort and refreshes their captions. */
  private arrange(): void {
    const maps = this.maps;
    if (!maps) return;
    this.order = channelOrder(this.sort, maps.channels, maps.mean, maps.weights);
    for (const c of this.order) {
      const cell = this.cells[c];
      const caption = cell.lastElementChild as HTMLElement;
      const key = this.sort === 'weight' && maps.weights ? `w ${formatStat(maps.weights[c])}`
        : this.sort === 'mean' ? `μ ${formatStat(maps.mean[c])}` : '';
      caption.textContent = key ? `#${c} · ${key}` : `#${c}`;
      cell.setAttribute('aria-label', `Channel ${c}, mean ${formatStat(maps.mean[c])}, max ${formatStat(maps.max[c])}`);
    }
    const focused = this.cells.find((c) => c.tabIndex === 0);
    // Appending existing nodes moves them: painted canvases keep their pixels.
    this.grid.replaceChildren(...this.order.map((c) => this.cells[c]));
    this.setTabStop(focused ?? this.cells[this.order[0]]);
  }

  private setTabStop(cell: HTMLButtonElement | undefined): void {
    for (const c of this.cells) c.tabIndex = c === cell ? 0 : -1;
  }

  private columns(): number {
    const first = this.grid.firstElementChild as HTMLElement | null;
    if (!first) return 1;
    const top = first.offsetTop;
    let n = 0;
    for (const el of Array.from(this.grid.children) as HTMLElement[]) {
      if (el.offsetTop !== top) break;
      n++;
    }
    return Math.max(1, n);
  }

  private onKey(e: KeyboardEvent): void {
    const cell = (e.target as Element).closest<HTMLButtonElement>('[data-cell]');
    if (!cell) return;
    const from = this.order.indexOf(Number(cell.dataset.cell));
    const to = gridMove(e.key, from, this.order.length, this.columns());
    if (to === from) return;
    e.preventDefault();
    const next = this.cells[this.order[to]];
    this.setTabStop(next);
    next.focus();
    next.scrollIntoView({ block: 'nearest' });
  }

  private schedulePaint(): void {
    if (this.frame || this.queue.size === 0) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paintSome();
    });
  }

  private paintSome(): void {
    const maps = this.maps;
    if (!maps) return;
    let budget = PAINT_BUDGET;
    for (const c of this.queue) {
      if (budget-- <= 0) break;
      this.queue.delete(c);
      const canvas = this.cells[c]?.firstElementChild as HTMLCanvasElement | undefined;
      const ctx = canvas?.getContext('2d');
      if (!canvas || !ctx) continue;
      const image = ctx.createImageData(maps.width, maps.height);
      paintChannel(maps.values, c, maps.width, maps.height, maps.min[c], maps.max[c], this.colormap, image.data);
      ctx.putImageData(image, 0, 0);
      canvas.dataset.painted = 'true';
    }
    this.schedulePaint();
  }
}
