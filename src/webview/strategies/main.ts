/**
 * Strategies panel ("Show Model Strategies", issue #14): what the model looks at across a labelled dataset. Per
 * class the average map over the average image, then the clusters of the class's maps (SpRAy's "strategies") as
 * cards: the cluster's average map, its size, shortcut hints as numbers (their rules in the tooltip and in the
 * card's details), the blur intervention against its control, and a strip of the members nearest its centre.
 *
 * Conversation with the host (src/shared/protocol.ts, StrategiesWebviewMessage / StrategiesHostMessage):
 *   1. We speak first: `panel/ready`. The host answers `panel/didInit` (pickers, saved state), then the run's
 *      notifications: `strategies/didStart`, `didProgress` while the maps are computed, `didFinish` with the view
 *      (also after Cancel, with what was computed) or `didFail`. Messages of an older run are ignored by runId.
 *   2. Method, layer and class filter need new maps: they take effect with "Analyse" (`strategies/run`). The
 *      number of clusters does not: a change re-clusters the cached maps at once (`strategies/recluster`).
 *   3. A member thumbnail (click, Enter or Space) opens the image in the explain panel for the class
 *      (`sample/open`). A card's head (click, Enter or Space) shows its rules and distances.
 *   4. The options and the expanded cards are saved with setState (versioned StrategiesViewState) and sent as
 *      `state/didChange`.
 *
 * The page skeleton (ids of the stable DOM contract) comes from src/extension/panels/html.ts.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';

import type { ColormapId, StrategiesHostMessage, StrategiesRunOptions, StrategiesViewState, StrategiesWebviewMessage } from '../../shared/protocol';
import {
  MAX_STRATEGY_CLUSTERS,
  suspiciousHints,
  type HintId,
  type StrategiesView,
  type StrategyClassView,
  type StrategyClusterCount,
  type StrategyClusterView,
  type StrategyHints,
  type StrategyMemberView,
} from '../../shared/strategies';
import { formatCount, formatDuration, formatPercent } from '../../shared/format';
import { byId, fillSelect, h, isCancellation, setProgress, showError, type SingleSelect } from '../common/dom';
import { RequestTracker } from '../common/requests';
import { onHostMessage, vscodeApi } from '../common/vscodeApi';
import { parseStrategiesHostMessage } from './hostMessages';
import { drawMapOverImage } from './mapImage';

type Lane = 'recluster' | 'open';
type Init = Extract<StrategiesHostMessage, { type: 'panel/didInit' }>;
type Button = HTMLElement & { disabled: boolean; secondary: boolean };

const vscode = vscodeApi<StrategiesWebviewMessage, StrategiesViewState>();
const requests = new RequestTracker<Lane>();

const ui = {
  title: byId('title'),
  dataName: byId('data-name'),
  modelName: byId('model-name'),
  method: byId<SingleSelect>('method'),
  layer: byId<SingleSelect>('layer'),
  clusters: byId<SingleSelect>('clusters'),
  classFilter: byId<SingleSelect>('class-filter'),
  run: byId<Button>('run'),
  progress: byId('progress'),
  cancel: byId<Button>('cancel-run'),
  runStatus: byId('run-status'),
  failures: byId('failures'),
  error: byId('error'),
  classes: byId('classes'),
  emptyNote: byId('empty-note'),
  notice: byId('notice'),
};

let state: StrategiesViewState | undefined;
let colormap: ColormapId = 'turbo';
/** Method labels by id (panel/didInit), for the status line. */
let methodLabels = new Map<string, string>();
let opacity = 0.5;
/** The host's current run, and whether it is still computing. */
let runId = -1;
let running = false;
let runOptions: StrategiesRunOptions | undefined;
/** The view on screen and the options it was made with. */
let view: StrategiesView | undefined;
let viewOptions: StrategiesRunOptions | undefined;

const HINT_NAMES: Record<HintId, string> = {
  border: 'Border heat',
  corner: 'Corner heat',
  outsideBox: 'Heat outside the object',
  intervention: 'Blur drop',
};
const PHASE_NAMES = { maps: 'Computing maps', clusters: 'Clustering', interventions: 'Blurring hot regions' } as const;

function post(m: StrategiesWebviewMessage): void {
  vscode.postMessage(m);
}

function saveState(): void {
  if (!state) return;
  vscode.setState(state);
  post({ type: 'state/didChange', state });
}

function optionsOf(s: StrategiesViewState): StrategiesRunOptions {
  return {
    method: s.method,
    clusters: s.clusters,
    ...(s.layer !== undefined ? { layer: s.layer } : {}),
    ...(s.classIndex !== undefined ? { classIndex: s.classIndex } : {}),
  };
}

/** Do two option sets need the same maps (everything but k equal)? */
function sameMaps(a: StrategiesRunOptions, b: StrategiesRunOptions): boolean {
  return a.method === b.method && a.layer === b.layer && a.classIndex === b.classIndex;
}

// -------------------------------------------------------------------------------------------------------------
// Options

function clusterValue(k: StrategyClusterCount): string {
  return k === 'auto' ? 'auto' : String(k);
}

function fillOptions(m: Init, s: StrategiesViewState): void {
  fillSelect(ui.method, m.methods.map((x) => ({ value: x.id, label: x.label, disabled: !x.available })), s.method);
  const recommended = m.recommendedLayer ? `Recommended (${m.recommendedLayer})` : 'Recommended';
  fillSelect(ui.layer, [{ value: '', label: recommended }, ...m.layers.filter((l) => l !== m.recommendedLayer).map((l) => ({ value: l, label: l }))], s.layer ?? '');
  const ks = Array.from({ length: MAX_STRATEGY_CLUSTERS }, (_, i) => i + 1);
  fillSelect(ui.clusters, [{ value: 'auto', label: 'Auto (eigengap)' }, ...ks.map((k) => ({ value: String(k), label: String(k) }))], clusterValue(s.clusters));
  fillSelect(ui.classFilter, [{ value: '', label: 'All classes' }, ...m.labels.map((l, i) => ({ value: String(i), label: l }))], s.classIndex === undefined ? '' : String(s.classIndex));
}

function updateRunButton(): void {
  ui.run.disabled = !state || running;
  const current = !!(state && viewOptions && sameMaps(optionsOf(state), viewOptions));
  ui.run.textContent = current ? 'Analyse again' : 'Analyse';
  ui.run.secondary = current;
}

function onOptionChange(change: (s: StrategiesViewState) => StrategiesViewState): void {
  if (!state) return;
  state = change(state);
  saveState();
  updateRunButton();
}

ui.method.addEventListener('change', () => onOptionChange((s) => ({ ...s, method: ui.method.value })));
ui.layer.addEventListener('change', () => onOptionChange((s) => ({ ...s, layer: ui.layer.value === '' ? undefined : ui.layer.value })));
ui.classFilter.addEventListener('change', () => onOptionChange((s) => ({ ...s, classIndex: ui.classFilter.value === '' ? undefined : Number(ui.classFilter.value) })));
ui.clusters.addEventListener('change', () => {
  const v = ui.clusters.value;
  const k: StrategyClusterCount = v === 'auto' ? 'auto' : Number(v);
  if (!state || k === state.clusters) return;
  onOptionChange((s) => ({ ...s, clusters: k }));
  reclusterIfNeeded();
});

/** The maps on screen were made with the current method, layer and classes but another k: cluster them again. */
function reclusterIfNeeded(): void {
  if (!state || running || !view || !viewOptions) return;
  if (!sameMaps(optionsOf(state), viewOptions) || viewOptions.clusters === state.clusters) return;
  const requestId = requests.issue('recluster');
  // No map is computed, only the clusters' blur interventions (a few forward passes each): a bar without Cancel.
  ui.runStatus.textContent = '';
  ui.cancel.hidden = true;
  setProgress(ui.progress, true, `Clustering again with ${state.clusters === 'auto' ? 'the eigengap’s k' : `k = ${state.clusters}`}…`);
  post({ type: 'strategies/recluster', requestId, clusters: state.clusters });
}

/** The re-clustering's bar goes (a run's own progress, if one started meanwhile, keeps its bar). */
function endRecluster(): void {
  ui.cancel.hidden = false;
  if (!running) setProgress(ui.progress, false);
}

ui.run.addEventListener('click', () => {
  if (!state || running) return;
  showError(ui.error, undefined);
  post({ type: 'strategies/run', options: optionsOf(state) });
});

ui.cancel.addEventListener('click', () => {
  if (running) post({ type: 'strategies/cancel' });
});

// -------------------------------------------------------------------------------------------------------------
// The view

function hintValue(id: HintId, hints: StrategyHints): { text: string; rule: string; uniform?: string } | undefined {
  switch (id) {
    case 'border':
      return { text: formatPercent(hints.border.share), rule: hints.border.rule, uniform: formatPercent(hints.border.uniform) };
    case 'corner':
      return { text: `${formatPercent(hints.corner.share)} ${hints.corner.corner}`, rule: hints.corner.rule, uniform: formatPercent(hints.corner.uniform) };
    case 'outsideBox': {
      const o = hints.outsideBox;
      return o && o.images > 0 ? { text: formatPercent(o.share), rule: `${o.rule} (${formatCount(o.images)} image${o.images === 1 ? '' : 's'} with a box)`, uniform: formatPercent(o.uniform) } : undefined;
    }
    case 'intervention': {
      const i = hints.intervention;
      if (!i || i.images === 0) return undefined;
      return { text: `${drop(i.hotDrop)} vs ${drop(i.controlDrop)} (${drop(i.ratio, 1)}×)`, rule: `${i.rule}. Mean probability before blurring: ${i.baseline.toFixed(2)}` };
    }
  }
}

/** The engine's rules are phrases ("share of the map's heat in…"): a capital makes the tooltip a sentence. */
function sentence(rule: string): string {
  return rule.charAt(0).toUpperCase() + rule.slice(1).replace(/\.$/, '');
}

/** A probability drop or ratio: fixed digits, and no "-0.00" for a rounding-size negative. */
function drop(v: number, digits = 2): string {
  const t = v.toFixed(digits);
  return Number(t) === 0 ? (0).toFixed(digits) : t;
}

/** The hints as a list of numbers, each with its rule as tooltip (and, for screen readers, in its label). */
function hintList(hints: StrategyHints, suspicious: readonly HintId[]): HTMLUListElement {
  const list = h('ul', { class: 'hints' });
  for (const id of ['border', 'corner', 'outsideBox', 'intervention'] as HintId[]) {
    const v = hintValue(id, hints);
    if (!v) continue;
    const warn = suspicious.includes(id);
    // What a map spread evenly over the image would give: the number to compare with.
    const uniform = v.uniform ? ` (even ${v.uniform})` : '';
    const tip = `${sentence(v.rule)}.${v.uniform ? ` A map spread evenly over the image gives ${v.uniform}.` : ''}`;
    list.append(h('li', { class: `hint${warn ? ' warn' : ''}`, 'data-hint': id, 'data-suspicious': warn ? 'true' : undefined, title: tip },
      h('span', { class: 'hint-name' }, HINT_NAMES[id]),
      ' ',
      h('span', { class: 'hint-value' }, v.text),
      uniform ? h('span', { class: 'hint-uniform' }, uniform) : ''));
  }
  return list;
}

/** Canvases waiting for their first paint (they need the layout for their size). */
const toDraw: { canvas: HTMLCanvasElement; paint: (c: HTMLCanvasElement) => void }[] = [];

function mapCanvas(cls: string, label: string, paint: (c: HTMLCanvasElement) => void): HTMLCanvasElement {
  const canvas = h('canvas', { class: `map-canvas ${cls}`, role: 'img', 'aria-label': label, 'data-state': 'empty' });
  toDraw.push({ canvas, paint });
  return canvas;
}

function memberThumb(c: StrategyClassView, k: StrategyClusterView, m: StrategyMemberView): HTMLElement {
  const name = m.relPath.split('/').pop() ?? m.relPath;
  const tip = `${m.relPath}\ndistance from the centre ${m.distance.toFixed(3)} · given ${m.givenLabel} · predicted ${m.predictedLabel} · p(${c.label}) ${formatPercent(m.probability)}`;
  const thumb = m.imageUri
    ? h('img', { src: m.imageUri, alt: '', draggable: 'false', loading: 'lazy' })
    : h('span', { class: 'member-placeholder' }, name);
  return h('li', {},
    h('div', {
      class: 'member', role: 'button', tabindex: 0, 'data-path': m.relPath, 'data-class': c.classIndex, 'data-cluster': k.id,
      title: tip, 'aria-label': `Open ${m.relPath} in the explain panel for ${c.label} (cluster ${k.id + 1}, distance ${m.distance.toFixed(2)})`,
    }, thumb));
}

function clusterCard(c: StrategyClassView, k: StrategyClusterView, rules: StrategiesView['rules']): HTMLElement {
  const key = `${c.classIndex}:${k.id}`;
  const expanded = state?.expanded?.includes(key) ?? false;
  const suspicious = suspiciousHints(k.hints);
  const detailsId = `details-${c.classIndex}-${k.id}`;
  const titleId = `cluster-${c.classIndex}-${k.id}-title`;
  const sizeText = `${formatCount(k.size)} image${k.size === 1 ? '' : 's'} · ${formatPercent(k.fraction)}`;

  const details = h('div', { class: 'card-details', id: detailsId },
    h('h4', {}, 'Rules'),
    h('dl', { class: 'rules' },
      h('dt', {}, HINT_NAMES.border), h('dd', {}, k.hints.border.rule || rules.border),
      h('dt', {}, HINT_NAMES.corner), h('dd', {}, k.hints.corner.rule || rules.corner),
      ...(k.hints.outsideBox ? [h('dt', {}, HINT_NAMES.outsideBox), h('dd', {}, k.hints.outsideBox.rule || rules.outsideBox)] : []),
      ...(k.hints.intervention ? [h('dt', {}, HINT_NAMES.intervention), h('dd', {}, k.hints.intervention.rule || rules.intervention)] : [])),
    ...(k.distances.length
      ? [h('h4', {}, 'Distance to the other clusters'),
        h('ul', { class: 'distances' }, ...k.distances.map((d) => h('li', { 'data-other': d.cluster, class: d.cluster === k.nearestOther ? 'nearest' : undefined },
          `Cluster ${d.cluster + 1}: ${d.distance.toFixed(2)}`)))]
      : [h('p', { class: 'hint-text' }, 'The only cluster of its class.')]));
  details.hidden = !expanded;

  const head = h('div', {
    class: 'card-head', role: 'button', tabindex: 0, 'aria-expanded': String(expanded), 'aria-controls': detailsId, 'aria-labelledby': titleId,
    'aria-describedby': `${titleId}-size`,
  },
  mapCanvas('cluster-map', `Average map of cluster ${k.id + 1} of ${c.label} over the class's average image`,
    (cv) => drawMapOverImage(cv, k.averageMap, c.averageImage, colormap, opacity)),
  h('div', { class: 'card-summary' },
    h('h3', { id: titleId }, `Cluster ${k.id + 1}`,
      suspicious.length ? ' ' : '',
      suspicious.length ? h('span', { class: 'warn-badge', title: `Possible shortcut: ${suspicious.map((s) => HINT_NAMES[s].toLowerCase()).join(', ')}` }, 'possible shortcut') : ''),
    h('p', { class: 'cluster-size', id: `${titleId}-size` }, sizeText),
    hintList(k.hints, suspicious)));

  return h('li', { class: `cluster-card${suspicious.length ? ' suspicious' : ''}`, 'data-cluster': k.id, 'data-class': c.classIndex, 'data-size': k.size, 'data-suspicious': suspicious.length ? 'true' : 'false' },
    head,
    details,
    h('ul', { class: 'members', 'aria-label': `Images nearest the centre of cluster ${k.id + 1}` }, ...k.nearest.map((m) => memberThumb(c, k, m))));
}

function classSection(c: StrategyClassView, v: StrategiesView): HTMLElement {
  const headingId = `class-${c.classIndex}-heading`;
  const choices = {
    eigengap: 'chosen by the eigengap',
    components: `the maps' neighbour graph falls into ${c.clusterChoice.k} parts`,
    given: 'as asked',
    'too few images': 'too few images to cluster',
  };
  const choice = choices[c.clusterChoice.by];
  const classSuspicious = suspiciousHints(c.hints);
  return h('section', { class: 'class-section', 'data-class': c.classIndex, 'aria-labelledby': headingId },
    h('h2', { id: headingId, class: 'class-heading' }, c.label,
      h('span', { class: 'class-meta', title: `${sentence(v.rules.clustering)}.${c.clusterChoice.eigengap !== undefined ? ` Eigengap ${c.clusterChoice.eigengap.toFixed(3)}.` : ''} ${c.clusterChoice.neighbours} neighbours per map.` },
        ` ${formatCount(c.count)} image${c.count === 1 ? '' : 's'} · ${c.clusters.length} cluster${c.clusters.length === 1 ? '' : 's'} (${choice})`)),
    h('div', { class: 'class-body' },
      h('figure', { class: 'class-average-figure' },
        mapCanvas('class-average', `Average map of ${c.label} over the average of its ${c.count} images`,
          (cv) => drawMapOverImage(cv, c.averageMap, c.averageImage, colormap, opacity)),
        h('figcaption', {}, h('span', { class: 'key' }, 'All images'), hintList(c.hints, classSuspicious))),
      h('ul', { class: 'cluster-cards', 'aria-label': `Strategies of ${c.label}` }, ...c.clusters.map((k) => clusterCard(c, k, v.rules)))));
}

/** What has focus, as a key that survives a re-render (re-clustering keeps classes and paths, not cluster ids). */
function focusKey(): string | undefined {
  const el = document.activeElement as HTMLElement | null;
  if (!el || !ui.classes.contains(el)) return undefined;
  if (el.classList.contains('member')) return `member:${el.dataset.class}:${el.dataset.path}`;
  const card = el.closest<HTMLElement>('.cluster-card');
  if (card && el.classList.contains('card-head')) return `card:${card.dataset.class}:${card.dataset.cluster}`;
  return undefined;
}

function restoreFocus(key: string | undefined): void {
  if (!key) return;
  const [kind, cls, rest] = [key.split(':')[0], key.split(':')[1], key.split(':').slice(2).join(':')];
  const target = kind === 'member'
    ? Array.from(ui.classes.querySelectorAll<HTMLElement>(`.member[data-class="${cls}"]`)).find((m) => m.dataset.path === rest)
    : ui.classes.querySelector<HTMLElement>(`.cluster-card[data-class="${cls}"][data-cluster="${rest}"] .card-head`);
  (target ?? ui.classes.querySelector<HTMLElement>(`.class-section[data-class="${cls}"] .card-head`))?.focus();
}

function render(): void {
  const focus = focusKey();
  toDraw.length = 0;
  const v = view;
  if (!v) {
    ui.classes.replaceChildren();
    ui.emptyNote.hidden = true;
    return;
  }
  // Expanded cards that no longer exist (another k, another class filter) are forgotten: the saved state stays small.
  if (state?.expanded?.length) {
    const exists = new Set(v.classes.flatMap((c) => c.clusters.map((k) => `${c.classIndex}:${k.id}`)));
    const kept = state.expanded.filter((key) => exists.has(key));
    if (kept.length !== state.expanded.length) {
      state = { ...state, expanded: kept };
      saveState();
    }
  }
  ui.classes.replaceChildren(...v.classes.map((c) => classSection(c, v)));
  ui.emptyNote.hidden = v.classes.length > 0;
  ui.emptyNote.textContent = v.cancelled ? 'Cancelled before any class had maps.' : 'No class had images to analyse.';
  for (const { canvas, paint } of toDraw.splice(0)) paint(canvas);
  if (v.failures.length) {
    const shown = v.failures.slice(0, 3).map((f) => `${f.relPath} (${f.error})`).join('; ');
    ui.failures.textContent = `${formatCount(v.counts.failed)} image${v.counts.failed === 1 ? '' : 's'} could not be analysed: ${shown}${v.failures.length > 3 ? '; …' : ''}`;
    ui.failures.hidden = false;
  } else ui.failures.hidden = true;
  restoreFocus(focus);
}

function finishedText(v: StrategiesView): string {
  const cached = v.counts.fromCache ? `, ${formatCount(v.counts.fromCache)} from the cache` : '';
  const what = `${formatCount(v.counts.analysed)} of ${formatCount(v.counts.images)} images analysed with ${methodLabels.get(v.method) ?? v.method} at ${v.layer}${cached}`;
  const boxes = v.boxes ? ` Object boxes: ${v.boxes.source.split(/[\\/]/).pop()} (${formatCount(v.boxes.images)} images).` : '';
  return (v.cancelled ? `Cancelled: ${what} (the clusters use those).` : `${what} in ${formatDuration(v.seconds * 1000)}.`) + boxes;
}

// -------------------------------------------------------------------------------------------------------------
// Interaction: cards and members

function toggleCard(head: HTMLElement): void {
  const card = head.closest<HTMLElement>('.cluster-card');
  const details = card?.querySelector<HTMLElement>('.card-details');
  if (!card || !details || !state) return;
  const open = head.getAttribute('aria-expanded') !== 'true';
  head.setAttribute('aria-expanded', String(open));
  details.hidden = !open;
  const key = `${card.dataset.class}:${card.dataset.cluster}`;
  const keys = new Set(state.expanded ?? []);
  if (open) keys.add(key);
  else keys.delete(key);
  state = { ...state, expanded: [...keys] };
  saveState();
}

function openMember(el: HTMLElement): void {
  const path = el.dataset.path;
  const classIndex = Number(el.dataset.class);
  if (!path || !Number.isInteger(classIndex)) return;
  const requestId = requests.issue('open');
  ui.notice.textContent = `Opening ${path}…`;
  post({ type: 'sample/open', requestId, path, classIndex });
}

ui.classes.addEventListener('click', (e) => {
  const target = e.target as Element;
  const member = target.closest<HTMLElement>('.member');
  if (member) {
    openMember(member);
    return;
  }
  const head = target.closest<HTMLElement>('.card-head');
  if (head) toggleCard(head);
});

ui.classes.addEventListener('keydown', (e) => {
  if (e.key !== 'Enter' && e.key !== ' ') return;
  const target = e.target as HTMLElement;
  if (target.classList.contains('member')) {
    e.preventDefault();
    openMember(target);
  } else if (target.classList.contains('card-head')) {
    e.preventDefault();
    toggleCard(target);
  }
});

// -------------------------------------------------------------------------------------------------------------
// Host messages

function onInit(m: Init): void {
  state = m.state;
  colormap = m.colormap;
  opacity = m.opacity;
  methodLabels = new Map(m.methods.map((x) => [x.id, x.label]));
  requests.reset();
  ui.title.textContent = `Model strategies in ${m.sourceName}`;
  ui.dataName.textContent = m.sourceName;
  ui.dataName.title = m.source;
  ui.modelName.textContent = m.modelName;
  ui.modelName.title = m.modelPath;
  fillOptions(m, m.state);
  vscode.setState(m.state);
  updateRunButton();
}

function handle(m: StrategiesHostMessage): void {
  switch (m.type) {
    case 'panel/didInit':
      onInit(m);
      return;
    case 'strategies/didStart':
      runId = m.runId;
      running = true;
      runOptions = m.options;
      showError(ui.error, undefined);
      ui.runStatus.textContent = '';
      ui.cancel.hidden = false;
      setProgress(ui.progress, true, 'Reading the dataset…');
      updateRunButton();
      return;
    case 'strategies/didProgress': {
      if (m.runId !== runId || !running) return;
      const rate = m.phase === 'maps' && m.mapsPerSecond > 0 ? ` · ${m.mapsPerSecond.toFixed(1)} maps/s · ${formatDuration(m.secondsLeft * 1000)} left` : '';
      const failed = m.failed ? ` · ${formatCount(m.failed)} unreadable` : '';
      setProgress(ui.progress, true, `${PHASE_NAMES[m.phase]} ${formatCount(m.done)} / ${formatCount(m.total)}${rate}${failed}`, m.done, m.total);
      ui.progress.dataset.phase = m.phase;
      return;
    }
    case 'strategies/didFinish':
      if (m.runId !== runId) return;
      running = false;
      setProgress(ui.progress, false);
      view = m.view;
      viewOptions = runOptions;
      render();
      ui.runStatus.textContent = finishedText(m.view);
      updateRunButton();
      // The user picked another k while the maps were computed.
      reclusterIfNeeded();
      return;
    case 'strategies/didFail':
      if (m.runId !== runId) return;
      running = false;
      setProgress(ui.progress, false);
      ui.runStatus.textContent = 'The analysis failed.';
      showError(ui.error, m.error);
      updateRunButton();
      return;
    case 'strategies/didRecluster':
      if (requests.settle(m.requestId) !== 'recluster') return;
      endRecluster();
      view = m.view;
      if (viewOptions) viewOptions = { ...viewOptions, clusters: m.clusters };
      render();
      ui.runStatus.textContent = `Clustered again: ${m.clusters === 'auto' ? 'k chosen by the eigengap' : `k = ${m.clusters}`} (${finishedText(m.view)})`;
      updateRunButton();
      return;
    case 'sample/didOpen':
      if (requests.settle(m.requestId) !== 'open') return;
      ui.notice.textContent = `Opened ${m.path} in the explain panel.`;
      return;
    case 'request/didFail': {
      const lane = requests.settle(m.requestId);
      if (!lane) return;
      if (lane === 'recluster') endRecluster();
      if (lane === 'open') ui.notice.textContent = '';
      if (lane === 'recluster') ui.runStatus.textContent = view ? finishedText(view) : '';
      if (!isCancellation(m.error)) showError(ui.error, m.error);
      return;
    }
    case 'panel/didFail':
      running = false;
      setProgress(ui.progress, false);
      showError(ui.error, m.error);
      updateRunButton();
      return;
    default: {
      const never: never = m;
      void never;
    }
  }
}

onHostMessage(parseStrategiesHostMessage, handle);
post({ type: 'panel/ready' });
