/**
 * Model inspector panel (PRODUCT.md flow 2): the layer table, and for a chosen image the feature maps of the
 * selected layer as a channel grid, sortable, each channel enlargeable with its value range.
 *
 * Conversation with the host (src/shared/protocol.ts):
 *   `panel/ready` -> `panel/didInit` (model, layers). `image/choose` -> `image/didChoose` (image, top predictions).
 *   `features/compute` {layer, classIndex} -> `features/didCompute` (channel-major Float32Array plus per-channel
 *   min/max/mean and, for the class, the Grad-CAM weights). `model/use` -> `model/didUse`.
 *   Any request may instead get `request/didFail`; a newer request of the same kind supersedes an older one.
 * UI choices (layer, sort, colours) are kept with setState; this panel has no host-side serializer state.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';

import { COLORMAPS, isColormapName, type ColormapName } from '../../shared/colormaps';
import type {
  ClassPrediction,
  FeatureMapsPayload,
  FeatureSort,
  InspectorHostMessage,
  InspectorWebviewMessage,
  LayerSummary,
  ModelInfo,
} from '../../shared/protocol';
import { breakable, byId, fillSelect, h, isCancellation, setProgress, showError, type SingleSelect } from '../common/dom';
import { formatCount, formatPercent, formatShape, formatStat } from '../../shared/format';
import { parseInspectorHostMessage } from '../common/hostMessages';
import { RequestTracker } from '../common/requests';
import { onHostMessage, vscodeApi } from '../common/vscodeApi';
import { paintChannel } from './channels';
import { FeatureGrid } from './featureGrid';

type Lane = 'image' | 'features' | 'model';

/** Local UI state, saved with setState so it survives the panel being hidden (versioned like the explain state). */
interface InspectorViewState {
  version: 1;
  modelPath?: string;
  layer?: string;
  sort: FeatureSort;
  colormap: ColormapName;
}

const SORTS: readonly FeatureSort[] = ['index', 'mean', 'weight'];
/** Longest side of the enlarged channel, in CSS pixels. */
const DETAIL_SIZE = 256;

const vscode = vscodeApi<InspectorWebviewMessage, InspectorViewState>();
const requests = new RequestTracker<Lane>();

const ui = {
  title: byId('title'),
  modelName: byId('model-name'),
  modelSummary: byId('model-summary'),
  backend: byId('backend'),
  useModel: byId<HTMLElement & { disabled: boolean }>('use-model'),
  error: byId('error'),
  notice: byId('notice'),
  rows: byId('layer-rows'),
  chooseImage: byId<HTMLElement & { disabled: boolean }>('choose-image'),
  imageThumb: byId<HTMLImageElement>('image-thumb'),
  imageName: byId('image-name'),
  classSelect: byId<SingleSelect>('class'),
  sort: byId<SingleSelect>('sort'),
  colormap: byId<SingleSelect>('feature-colormap'),
  progress: byId('progress'),
  featureStatus: byId('feature-status'),
  detail: byId('channel-detail'),
  detailCanvas: byId<HTMLCanvasElement>('channel-canvas'),
  detailStats: byId('channel-stats'),
  closeDetail: byId<HTMLElement>('close-detail'),
  grid: byId('feature-grid'),
};

function loadState(): InspectorViewState {
  const s = vscode.getState() as Partial<InspectorViewState> | undefined;
  return {
    version: 1,
    modelPath: typeof s?.modelPath === 'string' ? s.modelPath : undefined,
    layer: typeof s?.layer === 'string' ? s.layer : undefined,
    sort: s && SORTS.includes(s.sort as FeatureSort) ? (s.sort as FeatureSort) : 'index',
    colormap: s && isColormapName(s.colormap) ? s.colormap : 'gray',
  };
}

const state = loadState();
let model: ModelInfo | undefined;
let layers: LayerSummary[] = [];
let imageChosen = false;
let predictions: ClassPrediction[] = [];
let classIndex: number | undefined;
let maps: FeatureMapsPayload | undefined;
let detailChannel: number | undefined;

const grid = new FeatureGrid(ui.grid, (c) => openDetail(c));

function post(m: InspectorWebviewMessage): void {
  vscode.postMessage(m);
}

function persist(): void {
  vscode.setState(state);
}

// ---------------------------------------------------------------------------------------------------------
// Layer table

function renderLayers(): void {
  const rows = layers.map((l) => {
    const name = h('td', { class: 'name' }, breakable(l.name));
    if (l.spatial) name.append(' ', h('span', { class: 'badge', title: 'Has a spatial (height x width) output: feature maps and CAMs can use it' }, 'spatial'));
    if (model && l.name === model.recommendedLayer) name.append(' ', h('span', { class: 'badge recommended' }, 'recommended'));
    return h(
      'tr',
      { 'data-layer': l.name, 'data-spatial': String(l.spatial), class: l.spatial ? 'spatial' : undefined, tabindex: -1, 'aria-selected': 'false' },
      name,
      h('td', { class: 'class' }, breakable(l.className)),
      h('td', { class: 'mono' }, formatShape(l.outputShape)),
      h('td', { class: 'num' }, formatCount(l.params)),
      h('td', { class: 'inbound' }, breakable(l.inbound.join(', '))),
    );
  });
  ui.rows.replaceChildren(...rows);
  markSelectedRow();
}

function rowOf(name: string | undefined): HTMLTableRowElement | undefined {
  if (name === undefined) return undefined;
  return Array.from(ui.rows.querySelectorAll<HTMLTableRowElement>('tr[data-layer]')).find((r) => r.dataset.layer === name);
}

function markSelectedRow(): void {
  const rows = Array.from(ui.rows.querySelectorAll<HTMLTableRowElement>('tr[data-layer]'));
  const selected = rowOf(state.layer);
  const stop = rows.find((r) => r.tabIndex === 0) ?? selected ?? rows[0];
  for (const r of rows) {
    r.setAttribute('aria-selected', String(r === selected));
    r.tabIndex = r === stop ? 0 : -1;
  }
}

function selectLayer(name: string): void {
  const layer = layers.find((l) => l.name === name);
  if (!layer) return;
  state.layer = name;
  persist();
  markSelectedRow();
  if (!layer.spatial) {
    cancelFeatures();
    ui.featureStatus.textContent =
      `${name} has no spatial output (shape ${formatShape(layer.outputShape)}): pick a layer marked “spatial”.`;
    return;
  }
  requestFeatures();
}

ui.rows.addEventListener('click', (e) => {
  const row = (e.target as Element).closest<HTMLTableRowElement>('tr[data-layer]');
  if (!row) return;
  focusRow(row, false);
  selectLayer(row.dataset.layer ?? '');
});

function focusRow(row: HTMLTableRowElement, focus = true): void {
  for (const r of Array.from(ui.rows.querySelectorAll<HTMLTableRowElement>('tr[data-layer]'))) r.tabIndex = r === row ? 0 : -1;
  if (focus) {
    row.focus();
    row.scrollIntoView({ block: 'nearest' });
  }
}

ui.rows.addEventListener('keydown', (e) => {
  const row = (e.target as Element).closest<HTMLTableRowElement>('tr[data-layer]');
  if (!row) return;
  const rows = Array.from(ui.rows.querySelectorAll<HTMLTableRowElement>('tr[data-layer]'));
  const i = rows.indexOf(row);
  let next: number | undefined;
  switch (e.key) {
    case 'ArrowDown': next = Math.min(rows.length - 1, i + 1); break;
    case 'ArrowUp': next = Math.max(0, i - 1); break;
    case 'Home': next = 0; break;
    case 'End': next = rows.length - 1; break;
    case 'PageDown': next = Math.min(rows.length - 1, i + 10); break;
    case 'PageUp': next = Math.max(0, i - 10); break;
    case 'Enter':
    case ' ':
      e.preventDefault();
      selectLayer(row.dataset.layer ?? '');
      return;
    default:
      return;
  }
  e.preventDefault();
  focusRow(rows[next]);
});

// ---------------------------------------------------------------------------------------------------------
// Feature maps

function requestFeatures(): void {
  const layer = layers.find((l) => l.name === state.layer);
  if (!layer || !layer.spatial) return;
  if (!imageChosen) {
    ui.featureStatus.textContent = `Choose an image to see the feature maps of ${layer.name}.`;
    return;
  }
  const requestId = requests.issue('features');
  post({ type: 'features/compute', requestId, layer: layer.name, classIndex });
  showError(ui.error, undefined);
  ui.grid.setAttribute('aria-busy', 'true');
  setProgress(ui.progress, true, `Computing the feature maps of ${layer.name}…`);
}

/** Forgets a pending feature request (a non-spatial layer was picked) and empties the grid. */
function cancelFeatures(): void {
  requests.cancel('features'); // its reply, if it still comes, will be ignored
  maps = undefined;
  grid.show(undefined, state.sort, state.colormap);
  closeDetail();
  setProgress(ui.progress, false);
  ui.grid.removeAttribute('aria-busy');
}

function fillSortSelect(): void {
  const hasWeights = Boolean(maps?.weights);
  fillSelect(
    ui.sort,
    [
      { value: 'index', label: 'Channel index' },
      { value: 'mean', label: 'Mean activation' },
      {
        value: 'weight',
        label: hasWeights ? `Weight for ${labelOf(maps?.classIndex)}` : 'Weight for the class',
        disabled: !hasWeights,
        description: hasWeights ? undefined : 'Needs an image and a class: choose an image first.',
      },
    ],
    state.sort === 'weight' && !hasWeights ? 'index' : state.sort,
  );
}

function labelOf(index: number | undefined): string {
  if (index === undefined) return 'the class';
  return predictions.find((p) => p.index === index)?.label ?? model?.labels[index] ?? `class ${index}`;
}

function onFeatures(m: FeatureMapsPayload & { requestId: number }): void {
  if (requests.settle(m.requestId) !== 'features') return;
  maps = m;
  setProgress(ui.progress, false);
  ui.grid.removeAttribute('aria-busy');
  const sort = state.sort === 'weight' && !m.weights ? 'index' : state.sort;
  fillSortSelect();
  grid.show(m, sort, state.colormap);
  ui.featureStatus.textContent =
    `${m.layer}: ${m.channels} channels of ${m.width}x${m.height}` +
    (m.classIndex !== undefined && m.weights ? ` · weights for ${labelOf(m.classIndex)}` : '');
  if (detailChannel !== undefined && detailChannel < m.channels) openDetail(detailChannel, false);
  else closeDetail();
}

function openDetail(c: number, focus = true): void {
  if (!maps || c < 0 || c >= maps.channels) return;
  detailChannel = c;
  const { width: w, height: hgt } = maps;
  const scale = DETAIL_SIZE / Math.max(w, hgt);
  const cw = Math.max(1, Math.round(w * scale));
  const ch = Math.max(1, Math.round(hgt * scale));
  // The same rendering as the grid's thumbnails: the channel at its own resolution, painted by paintChannel and
  // enlarged by CSS without smoothing (image-rendering: pixelated), so each activation is one visible square.
  // An activation is a value per cell of the layer's grid; blending cells (bilinear) would show detail that the
  // layer does not have. The CAM overlay is smoothed because it is laid over the image; this view is not.
  const canvas = ui.detailCanvas;
  canvas.width = w;
  canvas.height = hgt;
  canvas.style.width = `${cw}px`;
  canvas.style.height = `${ch}px`;
  const ctx = canvas.getContext('2d');
  if (ctx) {
    const image = ctx.createImageData(w, hgt);
    paintChannel(maps.values, c, w, hgt, maps.min[c], maps.max[c], state.colormap, image.data);
    ctx.putImageData(image, 0, 0);
  }
  const weight = maps.weights ? ` · weight ${formatStat(maps.weights[c])}` : '';
  ui.detailStats.textContent =
    `Channel ${c} of ${maps.channels} (${maps.layer}) · min ${formatStat(maps.min[c])} · max ${formatStat(maps.max[c])}` +
    ` · mean ${formatStat(maps.mean[c])}${weight}`;
  ui.detail.dataset.channel = String(c);
  ui.detail.hidden = false;
  if (focus) ui.closeDetail.focus();
}

function closeDetail(): void {
  const c = detailChannel;
  detailChannel = undefined;
  ui.detail.hidden = true;
  delete ui.detail.dataset.channel;
  if (c !== undefined && ui.detail.contains(document.activeElement)) {
    ui.grid.querySelector<HTMLElement>(`[data-cell="${c}"]`)?.focus();
  }
}

ui.closeDetail.addEventListener('click', () => closeDetail());
ui.detail.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') closeDetail();
});

ui.sort.addEventListener('change', () => {
  const value = ui.sort.value as FeatureSort;
  if (!SORTS.includes(value) || value === state.sort) return;
  state.sort = value;
  persist();
  grid.setSort(value === 'weight' && !maps?.weights ? 'index' : value);
});

ui.colormap.addEventListener('change', () => {
  const value = ui.colormap.value;
  if (!isColormapName(value) || value === state.colormap) return;
  state.colormap = value;
  persist();
  grid.setColormap(value);
  if (detailChannel !== undefined) openDetail(detailChannel, false);
});

ui.classSelect.addEventListener('change', () => {
  const value = Number(ui.classSelect.value);
  if (!Number.isInteger(value) || value === classIndex) return;
  classIndex = value;
  requestFeatures();
});

// ---------------------------------------------------------------------------------------------------------
// Image, model

ui.chooseImage.addEventListener('click', () => {
  if (ui.chooseImage.disabled) return;
  post({ type: 'image/choose', requestId: requests.issue('image') });
});

ui.useModel.addEventListener('click', () => {
  if (ui.useModel.disabled) return;
  post({ type: 'model/use', requestId: requests.issue('model') });
});

function onImage(m: Extract<InspectorHostMessage, { type: 'image/didChoose' }>): void {
  if (requests.settle(m.requestId) !== 'image') return;
  imageChosen = true;
  predictions = m.predictions;
  ui.imageThumb.src = m.imageUri;
  ui.imageThumb.alt = m.imageName;
  ui.imageThumb.hidden = false;
  ui.imageName.textContent = m.imageName;
  classIndex = predictions[0]?.index;
  fillSelect(
    ui.classSelect,
    predictions.map((p) => ({ value: String(p.index), label: `${p.label} (${formatPercent(p.probability)})` })),
    classIndex === undefined ? undefined : String(classIndex),
  );
  ui.classSelect.disabled = predictions.length === 0;
  if (!layers.some((l) => l.name === state.layer && l.spatial) && model?.recommendedLayer) {
    state.layer = model.recommendedLayer;
    persist();
    markSelectedRow();
  }
  if (layers.some((l) => l.name === state.layer && l.spatial)) requestFeatures();
  else ui.featureStatus.textContent = 'Pick a layer marked “spatial” to see its feature maps.';
}

function onInit(m: Extract<InspectorHostMessage, { type: 'panel/didInit' }>): void {
  requests.reset();
  model = m.model;
  layers = m.layers;
  if (state.modelPath !== m.model.path) {
    state.modelPath = m.model.path;
    state.layer = undefined;
  }
  if (state.layer !== undefined && !layers.some((l) => l.name === state.layer)) state.layer = undefined;
  persist();
  ui.title.textContent = `Layers of ${m.model.name}`;
  document.title = ui.title.textContent;
  ui.modelName.textContent = m.model.name;
  ui.modelName.title = m.model.path;
  ui.backend.textContent = m.model.backend;
  const spatial = layers.filter((l) => l.spatial).length;
  ui.modelSummary.textContent = `${layers.length} layers (${spatial} spatial) · ${formatCount(m.totalParams)} parameters · ` +
    `input ${m.model.inputSize.join('x')} · ${m.model.labels.length} classes`;
  renderLayers();
  fillSortSelect();
  fillSelect(ui.colormap, COLORMAPS.map((c) => ({ value: c, label: c })), state.colormap);
  fillSelect(ui.classSelect, [], undefined);
  ui.classSelect.disabled = true;
  imageChosen = false;
  predictions = [];
  classIndex = undefined;
  maps = undefined;
  grid.show(undefined, state.sort, state.colormap);
  closeDetail();
  showError(ui.error, undefined);
  ui.featureStatus.textContent = 'Choose an image, then a layer marked “spatial”.';
  document.body.dataset.ready = 'true';
}

function onMessage(m: InspectorHostMessage): void {
  switch (m.type) {
    case 'panel/didInit':
      onInit(m);
      break;
    case 'image/didChoose':
      onImage(m);
      break;
    case 'features/didCompute':
      onFeatures(m);
      break;
    case 'model/didUse':
      if (requests.settle(m.requestId) === 'model') ui.notice.textContent = `${model?.name ?? 'This model'} is now the active model.`;
      break;
    case 'request/didFail': {
      const lane = requests.settle(m.requestId);
      if (!lane) break;
      if (lane === 'features') {
        setProgress(ui.progress, false);
        ui.grid.removeAttribute('aria-busy');
      }
      // A dismissed file dialog or a request replaced on the host is not an error.
      if (!isCancellation(m.error)) showError(ui.error, m.error);
      break;
    }
    case 'panel/didFail':
      setProgress(ui.progress, false);
      showError(ui.error, m.error);
      break;
    default: {
      const never: never = m;
      console.warn('CAM Lens: unhandled message', never);
    }
  }
}

fillSelect(ui.sort, SORTS.map((s) => ({ value: s, label: s })), state.sort);
fillSelect(ui.colormap, COLORMAPS.map((c) => ({ value: c, label: c })), state.colormap);
onHostMessage(parseInspectorHostMessage, onMessage);
post({ type: 'panel/ready' });
