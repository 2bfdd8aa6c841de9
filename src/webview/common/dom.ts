/**
 * Small DOM helpers shared by the panels. Text always goes in through textContent: nothing from the host or from
 * a model's labels is ever parsed as HTML.
 */
import type { ErrorPayload } from '../../shared/protocol';

/** The element with `id`; a missing one is a mismatch between the page (panels/html.ts) and the bundle. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`CAM Lens webview: the page has no #${id}`);
  return el as T;
}

/** Creates an element with attributes (string values; `true` for a bare attribute) and text or child nodes. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) el.append(c);
  return el;
}

/**
 * Text with line-break opportunities (<wbr>) inside long identifiers: after '_', '/', '.', ':' and between a
 * lower-case letter and a capital, so "global_average_pooling2d_1" and "GlobalAveragePooling2D" wrap at their
 * word boundaries in a narrow table instead of mid-word or not at all.
 */
export function breakable(text: string): DocumentFragment {
  const frag = document.createDocumentFragment();
  const parts = text.split(/(?<=[_/.:])|(?<=[a-z])(?=[A-Z])/);
  parts.forEach((part, i) => {
    if (i > 0) frag.append(document.createElement('wbr'));
    frag.append(part);
  });
  return frag;
}

export interface SelectOption {
  value: string;
  label: string;
  disabled?: boolean;
  description?: string;
}

/** The select custom element's programmatic surface we use (vscode-single-select). */
export interface SingleSelect extends HTMLElement {
  value: string;
  disabled: boolean;
}

/**
 * Replaces the options of a vscode-single-select and selects `value`. The element reads its options when the
 * slot changes; setting `value` before that is remembered by the element and applied then, and `selected` on the
 * option covers the first render.
 */
export function fillSelect(select: SingleSelect, options: readonly SelectOption[], value: string | undefined): void {
  const opts = options.map((o) => {
    const opt = document.createElement('vscode-option');
    opt.setAttribute('value', o.value);
    opt.textContent = o.label;
    if (o.disabled) opt.setAttribute('disabled', '');
    if (o.description) opt.setAttribute('description', o.description);
    if (o.value === value) opt.setAttribute('selected', '');
    return opt;
  });
  select.replaceChildren(...opts);
  if (value !== undefined) select.value = value;
}

/**
 * A failure that is no error to the user: they dismissed a dialog (code CANCELLED) or a newer request replaced
 * this one on the host (SUPERSEDED). Such replies end the busy state quietly instead of filling #error.
 */
export function isCancellation(error: ErrorPayload): boolean {
  return error.code === 'CANCELLED' || error.code === 'SUPERSEDED';
}

/** Shows an error with its next step in the panel's role="alert" region, or hides the region. */
export function showError(region: HTMLElement, error: ErrorPayload | undefined): void {
  const message = region.querySelector<HTMLElement>('.error-message');
  const hint = region.querySelector<HTMLElement>('.error-hint');
  if (!error) {
    region.hidden = true;
    if (message) message.textContent = '';
    if (hint) hint.textContent = '';
    delete region.dataset.code;
    return;
  }
  // Messages often name a file: break opportunities after '/', '_', '.' let a long path wrap at its separators.
  if (message) message.replaceChildren(breakable(error.message));
  if (hint) {
    hint.replaceChildren(breakable(error.hint ? `Next step: ${error.hint}` : ''));
    hint.hidden = !error.hint;
  }
  if (error.code) region.dataset.code = error.code;
  else delete region.dataset.code;
  region.hidden = false;
}

/**
 * Keyboard behaviour of a listbox of focusable items (roving tabindex): one Tab stop for the whole list, arrows
 * and Home/End move between items, Enter or Space (and a click) activates one. Items are the list's children
 * matching `itemSelector`; the list may be re-rendered at any time (`refreshRoving` keeps one item tabbable).
 */
export class Listbox {
  constructor(
    private readonly list: HTMLElement,
    private readonly itemSelector: string,
    private readonly onActivate: (item: HTMLElement) => void,
  ) {
    list.addEventListener('click', (e) => {
      const item = (e.target as Element).closest<HTMLElement>(itemSelector);
      if (item && list.contains(item)) {
        this.focusItem(item, false);
        onActivate(item);
      }
    });
    list.addEventListener('keydown', (e) => this.onKey(e));
  }

  items(): HTMLElement[] {
    return Array.from(this.list.querySelectorAll<HTMLElement>(this.itemSelector));
  }

  /** Makes `item` the list's Tab stop and (optionally) moves focus to it. */
  focusItem(item: HTMLElement, focus = true): void {
    for (const other of this.items()) other.tabIndex = other === item ? 0 : -1;
    if (focus) {
      item.focus();
      item.scrollIntoView({ block: 'nearest' });
    }
  }

  /** After a re-render: the selected item (else the first) is the Tab stop. */
  refreshRoving(): void {
    const items = this.items();
    const stop = items.find((i) => i.getAttribute('aria-selected') === 'true') ?? items[0];
    for (const i of items) i.tabIndex = i === stop ? 0 : -1;
  }

  focusFirst(): boolean {
    const first = this.items()[0];
    if (!first) return false;
    this.focusItem(first);
    return true;
  }

  private onKey(e: KeyboardEvent): void {
    const items = this.items();
    const current = (e.target as Element).closest<HTMLElement>(this.itemSelector);
    if (!current || items.length === 0) return;
    const i = items.indexOf(current);
    let next: number | undefined;
    switch (e.key) {
      case 'ArrowDown': next = Math.min(items.length - 1, i + 1); break;
      case 'ArrowUp': next = Math.max(0, i - 1); break;
      case 'Home': next = 0; break;
      case 'End': next = items.length - 1; break;
      case 'PageDown': next = Math.min(items.length - 1, i + 10); break;
      case 'PageUp': next = Math.max(0, i - 10); break;
      case 'Enter':
      case ' ':
        e.preventDefault();
        this.onActivate(current);
        return;
      default:
        return;
    }
    e.preventDefault();
    this.focusItem(items[next]);
  }
}

/** Shows or hides a progress region: indeterminate while `total` is unknown, else done/total. */
export function setProgress(region: HTMLElement, busy: boolean, text = '', done?: number, total?: number): void {
  region.hidden = !busy;
  const bar = region.querySelector('vscode-progress-bar') as (HTMLElement & { value?: number; max: number; indeterminate: boolean }) | null;
  const label = region.querySelector<HTMLElement>('.progress-text');
  if (label) label.textContent = text;
  if (bar) {
    if (done !== undefined && total !== undefined && total > 0) {
      bar.indeterminate = false;
      bar.max = total;
      bar.value = Math.min(done, total);
      region.dataset.done = String(done);
      region.dataset.total = String(total);
    } else {
      bar.indeterminate = true;
      bar.value = undefined;
      delete region.dataset.done;
      delete region.dataset.total;
    }
  }
}
