/**
 * Triage panel (PRODUCT.md flow 3): the samples of a scanned dataset, most doubtful first, with the heatmap of the
 * given label next to the heatmap of the predicted label for the selected one.
 *
 * Conversation with the host (src/shared/protocol.ts, TriageWebviewMessage / TriageHostMessage):
 *   1. We speak first: `panel/ready`. The host answers `panel/didInit`, then the scan's notifications:
 *      `scan/didStart`, `scan/didProgress` (new rows, flag changes, counts) while it runs, `scan/didFinish` (final
 *      ranking and flags) or `scan/didFail`. Messages of an older scan (before a rescan) are ignored by scanId.
 *   2. Selecting a row asks for its pair of maps (`cam/pair`), debounced while the selection moves and cached
 *      here per (path, given, predicted), so going back to a row is instant.
 *   3. Keyboard: Up/Down/PageUp/PageDown/Home/End move the selection, Enter opens the explain panel
 *      (`sample/open`), C marks the label correct (`sample/markCorrect`; the row goes at once and comes back if
 *      the host fails), M relabels (`sample/move`; the host asks which class), U undoes the row's last move
 *      (`sample/undoMove`).
 *   4. Filters and the selection are saved with setState (versioned TriageViewState) and sent as `state/didChange`.
 *
 * The page skeleton (ids of the stable DOM contract) comes from src/extension/panels/html.ts.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';

import type {
  ScanDatasetInfo,
  ScanFailureInfo,
  TriageCounts,
  TriageHostMessage,
  TriageMap,
  TriageRow,
  TriageViewState,
  TriageWebviewMessage,
} from '../../shared/protocol';
import { outputLabel } from '../../shared/protocol';
import { byId, fillSelect, isCancellation, setProgress, showError, type SingleSelect } from '../common/dom';
import { formatCount, formatPercent } from '../../shared/format';
import { RequestTracker } from '../common/requests';
import { onHostMessage, vscodeApi } from '../common/vscodeApi';
import { HeatStage } from './heatStage';
import { parseTriageHostMessage } from './hostMessages';
import { moveSelection, RowStore, type RowFilter } from './rows';
import { VirtualList } from './virtualList';

type Lane = 'pair' | 'open' | 'mark' | 'move' | 'save' | `render:${string}`;
type Init = Extract<TriageHostMessage, { type: 'panel/didInit' }>;
type Button = HTMLElement & { disabled: boolean };

/** Wait this long after the selection stops moving before asking for its maps (holding ↓ must not queue 50). */
const PAIR_DEBOUNCE_MS = 120;
const PAIR_CACHE_SIZE = 64;
const SCORE_NAMES: Record<ScanDatasetInfo['scoredBy'], string> = { self_confidence: 'self-confidence', normalized_margin: 'normalized margin' };

const vscode = vscodeApi<TriageWebviewMessage, TriageViewState>();
const requests = new RequestTracker<Lane>();

const ui = {
  title: byId('title'),
  dataName: byId('data-name'),
  modelName: byId('model-name'),
  scoredBy: byId('scored-by'),
  error: byId('error'),
  progress: byId('progress'),
  cancel: byId<Button>('cancel-scan'),
  scanStatus: byId('scan-status'),
  unmatched: byId('unmatched-classes'),
  failures: byId('failures'),
  saveCsv: byId<Button>('save-csv'),
  saveJson: byId<Button>('save-json'),
  rescan: byId<Button>('rescan'),
  showStrategies: byId<Button>('show-strategies'),
  outputField: byId('output-field'),
  output: byId<SingleSelect>('output'),
  givenFilter: byId<SingleSelect>('given-filter'),
  predictedFilter: byId<SingleSelect>('predicted-filter'),
  flaggedOnly: byId<HTMLElement & { checked: boolean }>('flagged-only'),
  rowCount: byId('row-count'),
  rows: byId('rows'),
  emptyNote: byId('empty-note'),
  detailTitle: byId('detail-title'),
  detailMeta: byId('detail-meta'),
  pairProgress: byId('pair-progress'),
  pairStatus: byId('pair-status'),
  open: byId<Button>('open-sample'),
  markCorrect: byId<Button>('mark-correct'),
  move: byId<Button>('move-sample'),
  undoMove: byId<Button>('undo-move'),
  notice: byId('notice'),
};

const COUNT_IDS: Record<keyof TriageCounts, string | undefined> = {
  images: 'count-images',
  samples: undefined,
  scanned: 'count-scanned',
  flagged: 'count-flagged',
  failed: 'count-failed',
  reviewedHidden: 'count-reviewed',
  unmatchedImages: 'count-unmatched',
  nonImageFiles: 'count-non-image',
  missingFiles: 'count-missing',
};

const given = new HeatStage(byId('stage-given'), byId<HTMLImageElement>('img-given'), byId<HTMLCanvasElement>('heat-given'), byId('heat-given-label'));
const predicted = new HeatStage(byId('stage-predicted'), byId<HTMLImageElement>('img-predicted'), byId<HTMLCanvasElement>('heat-predicted'), byId('heat-predicted-label'));

const store = new RowStore();
const list = new VirtualList(ui.rows, byId('rows-spacer'), (seq, how) => {
  select(seq);
  ui.rows.focus();
  if (how === 'dblclick') openSelected();
}, (row) => imageOf(row));

/**
 * Samples the webview cannot show itself (DICOM, TIFF: TriageRow.rendered) come as PNGs the host renders on
 * request, once per path, kept as blob URLs ('' for one that could not be rendered: not asked for again).
 */
const renderedImages = new Map<string, string>();
const RENDER_SIZE = 512;

function imageOf(r: TriageRow): string {
  if (!r.rendered) return r.imageUri;
  const url = renderedImages.get(r.path);
  if (url !== undefined) return url;
  const lane: Lane = `render:${r.path}`;
  if (!requests.isBusy(lane)) post({ type: 'sample/render', requestId: requests.issue(lane), path: r.path, maxSize: RENDER_SIZE });
  return '';
}

function onRendered(m: Extract<TriageHostMessage, { type: 'sample/didRender' }>): void {
  if (requests.settle(m.requestId) !== `render:${m.path}`) return;
  renderedImages.set(m.path, URL.createObjectURL(new Blob([new Uint8Array(m.png)], { type: 'image/png' })));
  list.refresh();
  if (selectedRow()?.path === m.path) renderDetail();
}

let init: Init | undefined;
let state: TriageViewState | undefined;
let dataset: ScanDatasetInfo | undefined;
let counts: TriageCounts | undefined;
let scanId = -1;
let phase: 'idle' | 'scanning' | 'cancelling' | 'finished' | 'failed' = 'idle';
let failures: ScanFailureInfo[] = [];
let selectedSeq: number | undefined;
let renderedVersion = -1;
let renderedFilter = '';
let classKey = '';
let frame = 0;
let pairTimer: ReturnType<typeof setTimeout> | undefined;
/** Paths of requests in flight, by request id: which row a reply is about. */
const pending = new Map<number, { path: string; seq: number }>();
const pairCache = new Map<string, { given: TriageMap; predicted: TriageMap; method: string; layer: string; note?: string }>();

function post(m: TriageWebviewMessage): void {
  vscode.postMessage(m);
}

function filter(): RowFilter {
  return { given: state?.givenFilter, predicted: state?.predictedFilter, flaggedOnly: state?.flaggedOnly ?? false };
}

function persist(): void {
  if (!state) return;
  vscode.setState(state);
  post({ type: 'state/didChange', state });
}

// ---------------------------------------------------------------------------------------------------------
// Rendering

function scheduleRender(): void {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    render();
  });
}

/** Re-filters the rows when they or the filters changed, and keeps a valid selection. */
function render(): void {
  if (frame) {
    cancelAnimationFrame(frame);
    frame = 0;
  }
  const f = filter();
  const key = JSON.stringify(f);
  if (store.version === renderedVersion && key === renderedFilter) return;
  renderedVersion = store.version;
  renderedFilter = key;
  fillFilters();
  const items = store.filtered(f);
  list.setItems(items);
  ui.rowCount.textContent = store.size ? `Showing ${formatCount(items.length)} of ${formatCount(store.size)} samples` : '';
  ui.rows.dataset.rows = String(items.length);
  if (selectedSeq === undefined || list.indexOf(selectedSeq) < 0) {
    const wanted = state?.selected !== undefined ? store.byPath(state.selected) : undefined;
    const next = wanted && list.indexOf(wanted.seq) >= 0 ? wanted.seq : list.at(0)?.row.seq;
    select(next, false);
  } else {
    list.select(selectedSeq, false);
    renderDetail();
  }
  renderEmptyNote(items.length);
}

/** The filter options: "All" and the classes that occur, rebuilt only when that set changes. */
function fillFilters(): void {
  if (!dataset) return;
  const present = store.classesPresent();
  const key = `${present.given.join(',')}|${present.predicted.join(',')}`;
  if (key === classKey) return;
  classKey = key;
  const labels = dataset.labels;
  const options = (idx: number[]) => [{ value: '', label: 'All classes' }, ...idx.map((i) => ({ value: String(i), label: labels[i] ?? `#${i}` }))];
  fillSelect(ui.givenFilter, options(present.given), state?.givenFilter !== undefined ? String(state.givenFilter) : '');
  fillSelect(ui.predictedFilter, options(present.predicted), state?.predictedFilter !== undefined ? String(state.predictedFilter) : '');
}

function renderEmptyNote(shown: number): void {
  let note = '';
  if (shown === 0) {
    if (phase === 'failed') note = 'The scan could not run: see the message above.';
    else if (!dataset) note = 'Reading the dataset…';
    else if (dataset.total === 0) {
      const names = dataset.unmatchedClasses.map((u) => u.name).join(', ');
      note = `No image belongs to a class of the model${names ? `: the class names ${names} match none of its labels` : ''}. ` +
        'Name the class folders (or the label file\'s labels) after the model\'s labels.';
    } else if (store.size === 0 && (phase === 'scanning' || phase === 'cancelling')) note = 'Waiting for the first results…';
    else if (store.size === 0 && counts && counts.failed > 0 && counts.scanned === 0) note = 'No image could be read.';
    else if (store.size === 0 && counts && counts.reviewedHidden > 0) note = 'Every scanned sample has been confirmed as correctly labelled.';
    else if (store.size === 0) note = 'No samples.';
    else note = 'No sample matches the filters.';
  }
  ui.emptyNote.textContent = note;
  ui.emptyNote.hidden = note === '';
}

function renderCounts(): void {
  for (const [k, id] of Object.entries(COUNT_IDS) as [keyof TriageCounts, string | undefined][]) {
    if (!id) continue;
    const el = byId(id);
    const v = counts?.[k];
    el.textContent = v === undefined ? '–' : formatCount(v);
    el.dataset.value = v === undefined ? '' : String(v);
    el.parentElement?.classList.toggle('nonzero', (v ?? 0) > 0);
  }
  const unmatched = dataset?.unmatchedClasses ?? [];
  ui.unmatched.hidden = unmatched.length === 0;
  ui.unmatched.textContent = unmatched.length
    ? `Classes matching no model label (not scanned): ${unmatched.map((u) => `${u.name} (${formatCount(u.images)})`).join(', ')}`
    : '';
  ui.failures.hidden = failures.length === 0;
  if (failures.length) {
    const shown = failures.slice(0, 5).map((f) => `${f.path} (${f.error})`).join('; ');
    ui.failures.textContent = `Unreadable images: ${shown}${failures.length > 5 ? `; and ${failures.length - 5} more` : ''}`;
  }
}

/** The output picker: shown for a model with several outputs, on the output this scan runs. */
function renderOutputs(d: ScanDatasetInfo): void {
  const outputs = d.outputs ?? [];
  ui.outputField.hidden = outputs.length < 2;
  if (outputs.length < 2) return;
  fillSelect(ui.output, outputs.map((o) => ({ value: o.name, label: outputLabel(o) })), d.output ?? outputs[0].name);
  if (state && state.output !== d.output && d.output !== undefined) {
    state.output = d.output;
    persist();
  }
}

function renderPhase(): void {
  const busy = phase === 'scanning' || phase === 'cancelling';
  document.body.classList.toggle('busy', busy);
  document.body.dataset.phase = phase;
  ui.rows.setAttribute('aria-busy', String(busy));
  ui.cancel.disabled = phase !== 'scanning';
  ui.rescan.disabled = busy || !init;
  ui.showStrategies.disabled = !init;
  ui.saveCsv.disabled = phase !== 'finished';
  ui.saveJson.disabled = phase !== 'finished';
  if (!busy) setProgress(ui.progress, false);
}

function selectedRow() {
  return selectedSeq === undefined ? undefined : store.get(selectedSeq);
}

function pairKey(r: { path: string; givenIndex: number; predictedIndex: number }): string {
  return `${r.path}\u0000${r.givenIndex}\u0000${r.predictedIndex}`;
}

function renderDetail(): void {
  const r = selectedRow();
  const has = r !== undefined;
  ui.open.disabled = !has;
  ui.markCorrect.disabled = !has;
  ui.move.disabled = !has;
  ui.undoMove.disabled = r?.movedFrom === undefined;
  if (!r) {
    ui.detailTitle.textContent = 'No sample selected';
    ui.detailMeta.textContent = '';
    given.setImage(undefined, '');
    predicted.setImage(undefined, '');
    given.setMap(undefined, 'empty', '');
    predicted.setMap(undefined, 'empty', '');
    return;
  }
  ui.detailTitle.textContent = r.path;
  const top = r.top.map((t) => `${t.label} ${formatPercent(t.probability)}`).join(', ');
  ui.detailMeta.textContent =
    `Given ${r.givenLabel} (${formatPercent(r.selfConfidence)})${r.movedFrom !== undefined ? `, moved from ${r.movedFrom}` : ''} · ` +
    `predicted ${r.predictedLabel} · score ${r.score.toFixed(3)}${r.flagged ? ' · flagged' : ''} · top 5: ${top}`;
  const src = imageOf(r) || undefined;
  given.setImage(src, `${r.path} with the heatmap for its given label ${r.givenLabel}`);
  predicted.setImage(src, `${r.path} with the heatmap for its predicted label ${r.predictedLabel}`);
}

// ---------------------------------------------------------------------------------------------------------
// Selection and the heatmap pair

function select(seq: number | undefined, reveal = true, force = false): void {
  const changed = force || seq !== selectedSeq;
  selectedSeq = seq;
  list.select(seq, reveal);
  renderDetail();
  const r = selectedRow();
  if (state && r && state.selected !== r.path) {
    state.selected = r.path;
    persist();
  }
  if (changed || (r && !pairCache.has(pairKey(r)))) requestPair();
}

function requestPair(): void {
  if (pairTimer) clearTimeout(pairTimer);
  pairTimer = undefined;
  const r = selectedRow();
  setProgress(ui.pairProgress, false);
  if (!r) {
    requests.cancel('pair');
    return;
  }
  const cached = pairCache.get(pairKey(r));
  if (cached) {
    requests.cancel('pair');
    showPair(r.path, cached);
    return;
  }
  given.setMap(undefined, 'computing', r.givenLabel, r.path);
  predicted.setMap(undefined, 'computing', r.predictedLabel, r.path);
  ui.pairStatus.textContent = '';
  requests.cancel('pair');
  pairTimer = setTimeout(() => {
    pairTimer = undefined;
    const now = selectedRow();
    if (!now || now.seq !== r.seq) return;
    const requestId = requests.issue('pair');
    pending.set(requestId, { path: now.path, seq: now.seq });
    setProgress(ui.pairProgress, true, `Computing the heatmaps for ${now.givenLabel} and ${now.predictedLabel}…`);
    post({ type: 'cam/pair', requestId, path: now.path });
  }, PAIR_DEBOUNCE_MS);
}

function showPair(path: string, p: { given: TriageMap; predicted: TriageMap; method: string; layer: string; note?: string }): void {
  given.setMap(p.given, 'drawn', '', path);
  predicted.setMap(p.predicted, 'drawn', '', path);
  // "Score-CAM (top 32 of 256 channels by mean activation) at conv_pw_13_relu": what a budgeted map was made from.
  ui.pairStatus.textContent = `${p.method}${p.note ? ` (${p.note})` : ''} at ${p.layer}`;
}

function onPair(m: Extract<TriageHostMessage, { type: 'cam/didComputePair' }>): void {
  const info = pending.get(m.requestId);
  pending.delete(m.requestId);
  if (requests.settle(m.requestId) !== 'pair' || !info) return;
  setProgress(ui.pairProgress, false);
  const r = store.get(info.seq);
  if (!r) return;
  const entry = { given: m.given, predicted: m.predicted, method: m.methodLabel, layer: m.layer, note: m.note };
  pairCache.set(pairKey(r), entry);
  while (pairCache.size > PAIR_CACHE_SIZE) pairCache.delete(pairCache.keys().next().value as string);
  if (selectedSeq === r.seq) showPair(r.path, entry);
}

// ---------------------------------------------------------------------------------------------------------
// Actions

function openSelected(): void {
  const r = selectedRow();
  if (!r) return;
  const requestId = requests.issue('open');
  pending.set(requestId, { path: r.path, seq: r.seq });
  post({ type: 'sample/open', requestId, path: r.path });
}

/** "Label is correct": the row goes at once (the selection moves on), and comes back if the host fails. */
function markSelectedCorrect(): void {
  const r = selectedRow();
  if (!r) return;
  const i = list.indexOf(r.seq);
  const next = list.at(i + 1)?.row.seq ?? list.at(i - 1)?.row.seq;
  store.hide(r.seq);
  // Marks do not supersede each other (C, C, C marks three rows): each reply is matched by its id in markIds.
  const requestId = requests.issue('mark');
  pending.set(requestId, { path: r.path, seq: r.seq });
  markIds.add(requestId);
  post({ type: 'sample/markCorrect', requestId, path: r.path });
  // The next row takes the selection before the list is re-filtered, so the filter does not pick the first row.
  selectedSeq = next;
  render();
  select(next, true, true);
  ui.notice.textContent = `Marked ${r.path} as correctly labelled.`;
}
const markIds = new Set<number>();

function moveSelected(): void {
  const r = selectedRow();
  if (!r) return;
  const requestId = requests.issue('move');
  pending.set(requestId, { path: r.path, seq: r.seq });
  ui.notice.textContent = `Choose the class for ${r.path}…`;
  post({ type: 'sample/move', requestId, path: r.path });
}

function undoMoveSelected(): void {
  const r = selectedRow();
  if (!r || r.movedFrom === undefined) return;
  const requestId = requests.issue('move');
  pending.set(requestId, { path: r.path, seq: r.seq });
  ui.notice.textContent = `Undoing the move of ${r.path}…`;
  post({ type: 'sample/undoMove', requestId, path: r.path });
}

/**
 * A row the host changed (moved, or moved back): replaced in place with its scores and flag for its given label,
 * the counts updated, its maps asked for again if selected.
 */
function onRowChanged(path: string, next: TriageRow, what: 'moved' | 'changed', nextCounts: TriageCounts): void {
  const before = store.get(next.seq);
  store.replace(next);
  counts = nextCounts;
  renderCounts();
  if (what === 'moved' && next.movedFrom !== undefined) {
    ui.notice.textContent = `Moved ${path}${before && before.path !== next.path ? ` to ${next.path}` : ''}: given label now ${next.givenLabel}. U (or the notification's Undo) moves it back.`;
  } else {
    ui.notice.textContent = `${path} is back${before && before.path !== next.path ? ` at ${next.path}` : ''}: given label ${next.givenLabel}.`;
  }
  if (selectedSeq === next.seq) {
    render();
    renderDetail();
    requestPair();
  } else scheduleRender();
}

function save(format: 'csv' | 'json'): void {
  if (phase !== 'finished') return;
  ui.notice.textContent = `Saving the report as ${format.toUpperCase()}…`;
  post({ type: 'report/save', requestId: requests.issue('save'), format });
}

// ---------------------------------------------------------------------------------------------------------
// Host messages

function resetScan(): void {
  store.clear();
  failures = [];
  counts = undefined;
  dataset = undefined;
  classKey = '';
  selectedSeq = undefined;
  renderedVersion = -1;
  pairCache.clear();
}

function onInit(m: Init): void {
  requests.reset();
  pending.clear();
  markIds.clear();
  init = m;
  resetScan();
  scanId = -1;
  phase = 'idle';
  // The webview's own saved state wins when it is about the same dataset (a reload after being hidden).
  const saved = vscode.getState() as TriageViewState | undefined;
  // The output is the host's (it rescans when it changes).
  state = saved && saved.version === 1 && saved.source === m.source ? { ...saved, modelPath: m.modelPath, output: m.state.output } : { ...m.state };
  ui.title.textContent = `Likely mislabeled samples in ${m.sourceName}`;
  document.title = ui.title.textContent;
  ui.dataName.textContent = m.sourceName;
  ui.dataName.title = m.source;
  ui.modelName.textContent = m.modelName;
  ui.modelName.title = m.modelPath;
  ui.scoredBy.textContent = '…';
  ui.flaggedOnly.checked = state.flaggedOnly;
  given.setStyle(m.colormap, m.opacity);
  predicted.setStyle(m.colormap, m.opacity);
  showError(ui.error, undefined);
  ui.scanStatus.textContent = '';
  ui.notice.textContent = '';
  renderCounts();
  renderPhase();
  render();
  document.body.dataset.ready = 'true';
  persist();
}

function onStart(m: Extract<TriageHostMessage, { type: 'scan/didStart' }>): void {
  if (m.scanId < scanId) return;
  scanId = m.scanId;
  resetScan();
  dataset = m.dataset;
  counts = m.counts;
  phase = 'scanning';
  renderOutputs(m.dataset);
  showError(ui.error, undefined);
  ui.scoredBy.textContent = SCORE_NAMES[m.dataset.scoredBy];
  ui.scanStatus.textContent = '';
  setProgress(ui.progress, true, `Scanning 0 / ${formatCount(m.dataset.total)}…`, 0, Math.max(1, m.dataset.total));
  renderCounts();
  renderPhase();
  render();
}

function onProgress(m: Extract<TriageHostMessage, { type: 'scan/didProgress' }>): void {
  if (m.scanId !== scanId) return;
  store.add(m.rows);
  store.setFlags(m.flagsOn, m.flagsOff);
  failures.push(...m.failures);
  counts = m.counts;
  if (phase === 'scanning') {
    const eta = m.done < m.total && Number.isFinite(m.secondsLeft) ? ` · ${Math.ceil(m.secondsLeft)} s left` : '';
    setProgress(ui.progress, true, `Scanning ${formatCount(m.done)} / ${formatCount(m.total)} · ${m.imagesPerSecond.toFixed(1)} images/s${eta}`, m.done, Math.max(1, m.total));
  }
  renderCounts();
  scheduleRender();
}

function onFinish(m: Extract<TriageHostMessage, { type: 'scan/didFinish' }>): void {
  if (m.scanId !== scanId) return;
  store.applyFinal(m.order, m.flagged);
  counts = m.counts;
  phase = 'finished';
  const secs = `${m.seconds.toFixed(1)} s`;
  ui.scanStatus.textContent = m.cancelled
    ? `Scan cancelled after ${formatCount(m.counts.scanned + m.counts.failed)} of ${formatCount(m.counts.samples)} images (${secs}); the report holds those.`
    : `Scanned ${formatCount(m.counts.scanned)} images in ${secs}: ${formatCount(m.counts.flagged)} flagged.`;
  ui.scanStatus.dataset.cancelled = String(m.cancelled);
  renderCounts();
  renderPhase();
  render();
}

function onScanFail(m: Extract<TriageHostMessage, { type: 'scan/didFail' }>): void {
  if (m.scanId < scanId) return;
  scanId = m.scanId;
  phase = 'failed';
  showError(ui.error, m.error);
  renderPhase();
  renderedVersion = -1;
  render();
}

function onRequestFailed(m: Extract<TriageHostMessage, { type: 'request/didFail' }>): void {
  const info = pending.get(m.requestId);
  pending.delete(m.requestId);
  if (markIds.delete(m.requestId)) {
    // The mark did not stick: the row comes back.
    if (info) store.unhide(info.seq);
    scheduleRender();
    ui.notice.textContent = '';
    if (!isCancellation(m.error)) showError(ui.error, m.error);
    return;
  }
  const lane = requests.settle(m.requestId);
  if (!lane) return;
  if (lane.startsWith('render:')) {
    // The row keeps a blank thumbnail; the engine's reason is in the output channel.
    renderedImages.set(lane.slice('render:'.length), '');
    return;
  }
  if (lane === 'pair') {
    setProgress(ui.pairProgress, false);
    if (isCancellation(m.error)) return;
    given.setMap(undefined, 'error', '');
    predicted.setMap(undefined, 'error', '');
    ui.pairStatus.textContent = m.error.message;
    return;
  }
  if (isCancellation(m.error)) {
    ui.notice.textContent = lane === 'move' ? 'Not moved.' : lane === 'save' ? 'Not saved.' : '';
    return;
  }
  ui.notice.textContent = '';
  showError(ui.error, m.error);
}

function onMessage(m: TriageHostMessage): void {
  switch (m.type) {
    case 'panel/didInit':
      onInit(m);
      break;
    case 'scan/didStart':
      onStart(m);
      break;
    case 'scan/didProgress':
      onProgress(m);
      break;
    case 'scan/didFinish':
      onFinish(m);
      break;
    case 'scan/didFail':
      onScanFail(m);
      break;
    case 'cam/didComputePair':
      onPair(m);
      break;
    case 'sample/didOpen':
      pending.delete(m.requestId);
      requests.settle(m.requestId);
      break;
    case 'sample/didMarkCorrect': {
      const info = pending.get(m.requestId);
      pending.delete(m.requestId);
      markIds.delete(m.requestId);
      if (info) store.remove(info.seq);
      counts = m.counts;
      renderCounts();
      scheduleRender();
      break;
    }
    case 'sample/didMove':
      pending.delete(m.requestId);
      if (requests.settle(m.requestId) === 'move') onRowChanged(m.path, m.row, 'moved', m.counts);
      break;
    case 'sample/didChange':
      onRowChanged(m.path, m.row, 'changed', m.counts);
      break;
    case 'report/didSave':
      if (requests.settle(m.requestId) === 'save') ui.notice.textContent = `Saved ${m.path}`;
      break;
    case 'sample/didRender':
      onRendered(m);
      break;
    case 'request/didFail':
      onRequestFailed(m);
      break;
    case 'panel/didFail':
      phase = phase === 'scanning' ? 'failed' : phase;
      showError(ui.error, m.error);
      renderPhase();
      break;
    default: {
      const never: never = m;
      console.warn('CAM Lens: unhandled message', never);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Controls

function onKey(e: KeyboardEvent): void {
  if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
  const t = e.target as HTMLElement | null;
  // The list's keys work when the list (or nothing in particular) has focus, never while typing elsewhere.
  if (t && t !== document.body && t !== ui.rows && !ui.rows.contains(t)) return;
  const n = list.length;
  const next = moveSelection(e.key, list.indexOf(selectedSeq), n, list.pageSize);
  if (next !== undefined) {
    e.preventDefault();
    select(list.at(next)?.row.seq);
    return;
  }
  if (e.key === 'Enter') {
    e.preventDefault();
    openSelected();
  } else if (e.key === 'c' || e.key === 'C') {
    e.preventDefault();
    markSelectedCorrect();
  } else if (e.key === 'm' || e.key === 'M') {
    e.preventDefault();
    moveSelected();
  } else if (e.key === 'u' || e.key === 'U') {
    e.preventDefault();
    undoMoveSelected();
  }
}

document.addEventListener('keydown', onKey);

ui.givenFilter.addEventListener('change', () => {
  if (!state) return;
  const v = ui.givenFilter.value;
  state.givenFilter = v === '' ? undefined : Number(v);
  persist();
  render();
});

ui.predictedFilter.addEventListener('change', () => {
  if (!state) return;
  const v = ui.predictedFilter.value;
  state.predictedFilter = v === '' ? undefined : Number(v);
  persist();
  render();
});

ui.flaggedOnly.addEventListener('change', () => {
  if (!state) return;
  state.flaggedOnly = ui.flaggedOnly.checked;
  persist();
  render();
});

ui.cancel.addEventListener('click', () => {
  if (ui.cancel.disabled || phase !== 'scanning') return;
  phase = 'cancelling';
  setProgress(ui.progress, true, 'Cancelling: the results so far are kept…');
  renderPhase();
  post({ type: 'scan/cancel' });
});

ui.output.addEventListener('change', () => {
  const value = ui.output.value;
  if (!value || !dataset?.outputs?.some((o) => o.name === value) || value === dataset.output) return;
  // Another output has other classes: the host scans again (a new scan/didStart) and the filters start afresh.
  if (state) {
    state.givenFilter = undefined;
    state.predictedFilter = undefined;
    state.output = value;
    persist();
  }
  ui.notice.textContent = '';
  post({ type: 'output/select', output: value });
});

ui.rescan.addEventListener('click', () => {
  if (ui.rescan.disabled) return;
  ui.notice.textContent = '';
  post({ type: 'scan/rescan' });
});

ui.showStrategies.addEventListener('click', () => {
  if (!ui.showStrategies.disabled) post({ type: 'strategies/show' });
});

ui.saveCsv.addEventListener('click', () => {
  if (!ui.saveCsv.disabled) save('csv');
});
ui.saveJson.addEventListener('click', () => {
  if (!ui.saveJson.disabled) save('json');
});
ui.open.addEventListener('click', () => {
  if (!ui.open.disabled) openSelected();
});
ui.markCorrect.addEventListener('click', () => {
  if (!ui.markCorrect.disabled) markSelectedCorrect();
});
ui.move.addEventListener('click', () => {
  if (!ui.move.disabled) moveSelected();
});
ui.undoMove.addEventListener('click', () => {
  if (!ui.undoMove.disabled) undoMoveSelected();
});

onHostMessage(parseTriageHostMessage, onMessage);
renderPhase();
renderEmptyNote(0);
// We speak first: the host sends nothing before this.
post({ type: 'panel/ready' });
