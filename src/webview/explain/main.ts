/**
 * Explain panel (PRODUCT.md flow 1): the image with its class activation map, the predictions, and the controls
 * that pick what to explain and how to show it.
 *
 * Conversation with the host (src/shared/protocol.ts):
 *   1. We speak first: `panel/ready`. The host answers `panel/didInit` (image, model, methods, saved state) and
 *      `predictions/didCompute` (the top-k).
 *   2. We ask for maps: `cam/compute` with a fresh requestId whenever the class, method, layer or preprocessing
 *      changes (and once after each `panel/didInit`). The reply is `cam/didCompute` or `request/didFail` with that
 *      id; `cam/didProgress` may come in between (Score-CAM). A newer request supersedes an older one: replies to
 *      superseded ids are ignored (common/requests.ts).
 *   3. Colormap, opacity and the overlay toggle are local: they redraw without asking the host.
 *   4. Every UI state change is saved with setState (versioned ExplainViewState) and sent as `state/didChange`
 *      for the host's panel serializer.
 *
 * The page skeleton (ids of the stable DOM contract) comes from src/extension/panels/html.ts.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';

import { COLORMAPS, isColormapName } from '../../shared/colormaps';
import type {
  ClassPrediction,
  ExplainHostMessage,
  ExplainViewState,
  ExplainWebviewMessage,
  MethodInfo,
  ModelInfo,
  PreprocessId,
} from '../../shared/protocol';
import { PREPROCESS_IDS, outputLabel } from '../../shared/protocol';
import { Listbox, byId, fillSelect, h, isCancellation, setProgress, showError, type SingleSelect } from '../common/dom';
import { formatDuration, formatMs, formatPercent, totalMs } from '../../shared/format';
import { parseExplainHostMessage } from '../common/hostMessages';
import { RequestTracker } from '../common/requests';
import { onHostMessage, vscodeApi } from '../common/vscodeApi';
import { OverlayView } from './overlayView';
import { DicomSection } from './dicomSection';
import { effectivePreprocess, reconcileViewState } from './viewState';

type Lane = 'cam' | 'export' | 'model' | 'dicom';
type CamResult = Extract<ExplainHostMessage, { type: 'cam/didCompute' }>;

/** At most this many entries in the class list at once; the filter narrows big label sets (ImageNet-21k). */
const CLASS_LIST_LIMIT = 500;

const vscode = vscodeApi<ExplainWebviewMessage, ExplainViewState>();
const requests = new RequestTracker<Lane>();

const ui = {
  title: byId('title'),
  modelName: byId('model-name'),
  backend: byId('backend'),
  changeModel: byId<HTMLElement & { disabled: boolean }>('change-model'),
  error: byId('error'),
  stage: byId('stage'),
  canvas: byId<HTMLCanvasElement>('canvas'),
  image: byId<HTMLImageElement>('image'),
  progress: byId('progress'),
  status: byId('status'),
  notice: byId('notice'),
  outputField: byId('output-field'),
  output: byId<SingleSelect>('output'),
  method: byId<SingleSelect>('method'),
  layer: byId<SingleSelect>('layer'),
  preprocess: byId<SingleSelect>('preprocess'),
  colormap: byId<SingleSelect>('colormap'),
  opacity: byId<HTMLInputElement>('opacity'),
  opacityValue: byId('opacity-value'),
  overlayToggle: byId<HTMLElement & { checked: boolean }>('overlay-toggle'),
  exportPng: byId<HTMLElement & { disabled: boolean }>('export-png'),
  exportJson: byId<HTMLElement & { disabled: boolean }>('export-json'),
  predictions: byId('predictions'),
  classSearch: byId<HTMLInputElement>('class-search'),
  classList: byId('class-list'),
  classCount: byId('class-count'),
  classNote: byId('class-note'),
  preprocessNote: byId('preprocess-note'),
  labelsNote: byId('labels-note'),
  scoreAllRow: byId('scorecam-full'),
  scoreAll: byId<HTMLElement & { disabled: boolean }>('score-all'),
  cancelCam: byId<HTMLElement & { disabled: boolean }>('cancel-cam'),
};

const overlay = new OverlayView(ui.stage, ui.canvas, ui.image, byId('probe'), byId('readout'), byId('image-note'));
/** A DICOM image's frame and window (hidden for other images); a choice reloads the panel (`dicom/select`). */
const dicomSection = new DicomSection(ui.stage, ui.image, (selection) => {
  post({ type: 'dicom/select', requestId: requests.issue('dicom'), selection });
  setProgress(ui.progress, true, 'Applying the DICOM frame and window…');
  showError(ui.error, undefined);
});

interface Session {
  imageName: string;
  model: ModelInfo;
  methods: MethodInfo[];
}

let session: Session | undefined;
let state: ExplainViewState | undefined;
let predictions: ClassPrediction[] = [];
/** Every class's probability by label index, when the host sent them (else only the top k are known). */
let probabilities: Float32Array | undefined;
/** The map on the canvas (the reply to the newest `cam/compute` that succeeded). */
let shown: CamResult | undefined;

const predictionList = new Listbox(ui.predictions, '[data-class-index]', (item) => explainClass(Number(item.dataset.classIndex)));
const classList = new Listbox(ui.classList, '[data-class-index]', (item) => explainClass(Number(item.dataset.classIndex)));

function post(message: ExplainWebviewMessage): void {
  vscode.postMessage(message);
}

/** Saves the UI state locally and (unless `local`) tells the host, which keeps it for its serializer. */
function persist(local = false): void {
  if (!state) return;
  vscode.setState(state);
  if (!local) post({ type: 'state/didChange', state });
}

function methodLabel(id: string): string {
  return session?.methods.find((m) => m.id === id)?.label ?? id;
}

/** The method's map is the same whatever class is chosen (Eigen-CAM): the registry says so in MethodInfo. */
function isClassIndependent(id: string | undefined): boolean {
  return id !== undefined && session?.methods.find((m) => m.id === id)?.classIndependent === true;
}

function className(index: number): string {
  return session?.model.labels[index] ?? `class ${index}`;
}

/** The class the lists highlight: the one the user picked, else the one whose map is shown (top-1 by default). */
function selectedClass(): number | undefined {
  return state?.classIndex ?? shown?.target.index;
}

// ---------------------------------------------------------------------------------------------------------
// Requests

/** The `cam/compute` in flight (what Cancel stops), and whether it scores every channel ("Score all"). */
let camRequest: { id: number; allChannels: boolean } | undefined;
/** The in-flight request's first progress report (time, count): the time left is measured from it. */
let progressClock: { id: number; t0: number; done0: number } | undefined;

/**
 * Asks for the map of the current choices. `allChannels`: Score-CAM scores every channel this once (the
 * "Score all N channels" button), not the channel budget.
 */
function compute(opts: { allChannels?: boolean } = {}): void {
  if (!session || !state) return;
  const requestId = requests.issue('cam');
  const allChannels = opts.allChannels === true && state.method === 'scorecam';
  camRequest = { id: requestId, allChannels };
  progressClock = undefined;
  post({
    type: 'cam/compute',
    requestId,
    method: state.method,
    classIndex: state.classIndex,
    layer: state.layer,
    preprocess: state.preprocess,
    ...(allChannels ? { allChannels: true } : {}),
  });
  ui.scoreAll.disabled = true;
  ui.cancelCam.hidden = true;
  ui.cancelCam.disabled = false;
  showError(ui.error, undefined);
  // The map shown stays on the canvas, dimmed (CSS: data-state="computing"), until the new one arrives: a
  // Score-CAM takes seconds, and a blank image in the meantime says nothing. The caption names what is coming.
  ui.canvas.dataset.state = 'computing';
  ui.stage.setAttribute('aria-busy', 'true');
  document.body.classList.add('busy');
  const pending = pendingCaption(state.method, state.classIndex) + (allChannels ? ' over all channels' : '');
  setProgress(ui.progress, true, `Computing ${pending}…`);
  ui.status.textContent = shown && shown.method !== state.method
    ? `Computing ${pending}… (the ${methodLabel(shown.method)} map stays, dimmed, until then)`
    : `Computing ${pending}…`;
  ui.status.dataset.pending = state.method;
  ui.status.title = '';
}

/** "Score-CAM for boxer", "Grad-CAM" (top class), "Eigen-CAM (class-independent)". */
function pendingCaption(method: string, classIndex: number | undefined): string {
  if (isClassIndependent(method)) return `${methodLabel(method)} (class-independent)`;
  return classIndex !== undefined ? `${methodLabel(method)} for ${className(classIndex)}` : methodLabel(method);
}

function endBusy(): void {
  ui.stage.removeAttribute('aria-busy');
  document.body.classList.remove('busy');
  setProgress(ui.progress, false);
  ui.cancelCam.hidden = true;
  ui.scoreAll.disabled = false;
  camRequest = undefined;
  progressClock = undefined;
}

function explainClass(index: number): void {
  if (!state || !Number.isInteger(index) || index < 0) return;
  state.classIndex = index;
  persist();
  renderSelection();
  // A class-independent map (Eigen-CAM) would come back the same: the choice is kept for the next method.
  if (isClassIndependent(state.method)) {
    ui.notice.textContent = `${methodLabel(state.method)} does not depend on the class; ${className(index)} is used when you pick a class-specific method.`;
    return;
  }
  compute();
}

// ---------------------------------------------------------------------------------------------------------
// Rendering

function fillControls(model: ModelInfo, methods: MethodInfo[], s: ExplainViewState): void {
  // A model with several outputs (heads): which one is explained. Hidden for the usual single output.
  const outputs = model.outputs ?? [];
  ui.outputField.hidden = outputs.length < 2;
  if (outputs.length > 1) fillSelect(ui.output, outputs.map((o) => ({ value: o.name, label: outputLabel(o) })), model.output ?? outputs[0].name);
  // The registry's order, as the host sends it; unavailable methods stay listed, disabled, with the reason.
  fillSelect(
    ui.method,
    methods.map((m) => ({
      value: m.id,
      label: m.available ? m.label : `${m.label} (unavailable${m.reason ? `: ${m.reason}` : ''})`,
      disabled: !m.available,
      description: m.available ? undefined : m.reason,
    })),
    s.method,
  );
  fillSelect(
    ui.layer,
    model.spatialLayers.map((name) => ({ value: name, label: name === model.recommendedLayer ? `${name} (recommended)` : name })),
    s.layer,
  );
  ui.layer.disabled = model.spatialLayers.length === 0;
  fillSelect(
    ui.preprocess,
    PREPROCESS_IDS.map((id) => ({
      value: id,
      label: id === model.preprocess ? `${id} (${preprocessSource(model)})` : id,
      description: id === model.preprocess && model.preprocessAssumed
        ? `No metadata names the preprocessing${model.preprocessNote ? ` (assumed from the model: ${model.preprocessNote})` : ''}; if the heatmaps look like noise, try another preset.`
        : undefined,
    })),
    effectivePreprocess(s, model),
  );
  // An assumed preset, or assumed class names, said in words beside the controls they concern.
  ui.preprocessNote.hidden = !model.preprocessAssumed;
  ui.preprocessNote.textContent = model.preprocessAssumed
    ? `${model.preprocess} is assumed${model.preprocessNote ? ` (${model.preprocessNote})` : ''}: no metadata names the preprocessing.`
    : '';
  ui.labelsNote.hidden = !model.labelsAssumed;
  ui.labelsNote.textContent = model.labelsAssumed ? `Class names assumed: ImageNet's, for a model with ${model.labels.length} classes and no labels file.` : '';
  fillSelect(ui.colormap, COLORMAPS.map((c) => ({ value: c, label: c })), s.colormap);
  ui.opacity.value = String(s.opacity);
  ui.opacityValue.textContent = `${Math.round(s.opacity * 100)}%`;
  ui.overlayToggle.checked = s.overlay;
}

/** Where the model's preset comes from, for the picker: "assumed", "assumed: inside the model", "from the model". */
function preprocessSource(model: ModelInfo): string {
  if (!model.preprocessAssumed) return 'from the model';
  return model.preprocessNote ? `assumed: ${model.preprocessNote}` : 'assumed';
}

function renderPredictions(): void {
  if (!session) return;
  const selected = selectedClass();
  if (predictions.length === 0) {
    ui.predictions.replaceChildren(h('li', { class: 'placeholder', 'aria-disabled': 'true' }, 'Waiting for predictions…'));
    return;
  }
  ui.predictions.replaceChildren(
    ...predictions.map((p) => {
      const fill = h('span', { class: 'bar-fill' });
      fill.style.width = `${Math.max(0, Math.min(1, p.probability)) * 100}%`;
      return h(
        'li',
        { role: 'option', 'data-class-index': p.index, 'aria-selected': String(p.index === selected), title: `Explain ${p.label}` },
        h('span', { class: 'label' }, p.label),
        h('span', { class: 'pct' }, formatPercent(p.probability)),
        h('span', { class: 'bar', 'aria-hidden': 'true' }, fill),
      );
    }),
  );
  predictionList.refreshRoving();
}

/** Class indices matching the filter: label substring (case-insensitive) or index prefix. */
function matchingClasses(labels: readonly string[], query: string): number[] {
  const q = query.trim().toLowerCase();
  const out: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (!q || labels[i].toLowerCase().includes(q) || String(i).startsWith(q)) out.push(i);
  }
  return out;
}

function renderClassList(): void {
  if (!session) return;
  const labels = session.model.labels;
  const matches = matchingClasses(labels, ui.classSearch.value);
  const selected = selectedClass();
  const probs = new Map(predictions.map((p) => [p.index, p.probability]));
  const items = matches.slice(0, CLASS_LIST_LIMIT).map((i) => {
    const p = probabilities && i < probabilities.length ? probabilities[i] : probs.get(i);
    return h(
      'li',
      { role: 'option', 'data-class-index': i, 'aria-selected': String(i === selected), title: `Explain ${labels[i]}` },
      h('span', { class: 'idx' }, String(i)),
      h('span', { class: 'label' }, labels[i]),
      ...(p !== undefined ? [h('span', { class: 'pct' }, formatPercent(p))] : []),
    );
  });
  ui.classList.replaceChildren(...items);
  classList.refreshRoving();
  ui.classCount.textContent = matches.length > CLASS_LIST_LIMIT
    ? `Showing ${CLASS_LIST_LIMIT} of ${matches.length} matches; type to narrow.`
    : `${matches.length} of ${labels.length} classes`;
}

/**
 * Marks the class lists when the method's map does not depend on the class (Eigen-CAM): a note says so and the
 * lists are dimmed (data-class-independent), so nobody clicks through classes expecting the map to change.
 */
function renderMethodNote(): void {
  const independent = !!state && isClassIndependent(state.method);
  ui.classNote.hidden = !independent;
  ui.classNote.textContent = independent && state
    ? `${methodLabel(state.method)} gives the same map for every class: choosing a class here does not change it.`
    : '';
  for (const list of [ui.predictions, ui.classList]) {
    if (independent) list.dataset.classIndependent = 'true';
    else delete list.dataset.classIndependent;
  }
}

/** Updates which class is marked selected in both lists, without rebuilding them. */
function renderSelection(): void {
  const selected = String(selectedClass() ?? '');
  for (const list of [ui.predictions, ui.classList]) {
    for (const item of Array.from(list.querySelectorAll<HTMLElement>('[data-class-index]'))) {
      item.setAttribute('aria-selected', String(item.dataset.classIndex === selected));
    }
  }
}

function setExportsEnabled(on: boolean): void {
  ui.exportPng.disabled = !on;
  ui.exportJson.disabled = !on;
}

function clearMap(canvasState: 'empty' | 'error'): void {
  shown = undefined;
  renderScoreAll(undefined);
  overlay.setMap(undefined);
  ui.canvas.dataset.state = canvasState;
  delete ui.canvas.dataset.classIndex;
  setExportsEnabled(false);
}

// ---------------------------------------------------------------------------------------------------------
// Host messages

function onInit(m: Extract<ExplainHostMessage, { type: 'panel/didInit' }>): void {
  requests.reset();
  session = { imageName: m.imageName, model: m.model, methods: m.methods };
  state = reconcileViewState(m.state, vscode.getState(), m.model, m.methods);
  predictions = [];
  probabilities = undefined;

  ui.title.textContent = `Class Activation Map for ${m.imageName}`;
  document.title = ui.title.textContent;
  ui.modelName.textContent = m.model.name;
  ui.modelName.title = m.model.path;
  ui.backend.textContent = m.model.backend;
  delete document.body.dataset.failed;
  fillControls(m.model, m.methods, state);
  dicomSection.show(m.image, m.model, state.dicom);
  overlay.setImage(m.imageUri, m.imageSize[0], m.imageSize[1], `${m.imageName} with its class activation map`);
  overlay.setStyle({ colormap: state.colormap, opacity: state.opacity, visible: state.overlay }, false);
  clearMap('empty');
  ui.status.textContent = '';
  ui.notice.textContent = '';
  showError(ui.error, undefined);
  renderPredictions();
  renderClassList();
  renderMethodNote();
  document.body.dataset.ready = 'true';
  persist();
  compute();
}

function onCam(m: CamResult): void {
  if (requests.settle(m.requestId) !== 'cam' || !state) return;
  shown = m;
  endBusy();
  overlay.setMap(m.heatmap);
  ui.canvas.dataset.state = 'drawn';
  ui.canvas.dataset.classIndex = String(m.target.index);
  ui.canvas.dataset.method = m.method;
  ui.canvas.dataset.layer = m.layer;
  // A class-independent map (Eigen-CAM) is not "for" the class the engine happened to resolve.
  showCaption(m);
  delete ui.status.dataset.pending;
  ui.backend.textContent = m.backend;
  if (state.layer !== m.layer) {
    // The host chose the layer (none was set): show and keep its choice.
    state.layer = m.layer;
    ui.layer.value = m.layer;
    persist();
  }
  setExportsEnabled(true);
  renderSelection();
  renderMethodNote();
}

/**
 * The map's caption: method, class, layer, what the map was made from where the method chose (Score-CAM:
 * "top 32 of 256 channels by mean activation"), time and backend.
 */
function showCaption(m: CamResult): void {
  // A class-independent map (Eigen-CAM) is not "for" the class the engine happened to resolve.
  const what = isClassIndependent(m.method)
    ? `${methodLabel(m.method)} (class-independent)`
    : `${methodLabel(m.method)} for ${m.target.label} (${formatPercent(m.target.probability)})`;
  const note = m.details ? ` · ${m.details.note}` : '';
  ui.status.textContent = `${what} at ${m.layer}${note} · ${formatMs(totalMs(m.timingsMs))} · ${m.backend}`;
  ui.status.title = m.cached ? 'Activations and gradients came from the cache.' : '';
  renderScoreAll(m);
}

/**
 * "Score all N channels (about X)": offered under a Score-CAM map that scored fewer channels than the layer has
 * (the channel budget), with the time the engine estimated from this map's own rate, so the cost is known
 * before it starts.
 */
function renderScoreAll(m: CamResult | undefined): void {
  const c = m?.method === 'scorecam' ? m.details?.channels : undefined;
  const offer = c !== undefined && c.scored < c.usable;
  ui.scoreAllRow.hidden = !offer;
  if (!offer || !c) {
    delete ui.scoreAll.dataset.estimateMs;
    return;
  }
  ui.scoreAll.textContent = `Score all ${c.usable} channels (about ${formatDuration(c.allMs)})`;
  ui.scoreAll.title = `This map scores ${c.scored} of the layer's ${c.total} channels, one forward pass each; all ${c.usable} that vary take about ${formatDuration(c.allMs)} at this map's rate.`;
  ui.scoreAll.dataset.estimateMs = String(Math.round(c.allMs));
  ui.scoreAll.disabled = camRequest !== undefined;
}

function onProgress(m: Extract<ExplainHostMessage, { type: 'cam/didProgress' }>): void {
  if (!requests.isCurrent(m.requestId) || requests.laneOf(m.requestId) !== 'cam' || !state) return;
  // Time left: the rate since the first report of this request (the forward pass before it is not counted).
  const now = performance.now();
  if (progressClock?.id !== m.requestId) progressClock = { id: m.requestId, t0: now, done0: m.done };
  const c = progressClock;
  const left = m.done > c.done0 && m.done < m.total ? ` · about ${formatDuration(((now - c.t0) / (m.done - c.done0)) * (m.total - m.done))} left` : '';
  const unit = state.method === 'scorecam' ? ' channels' : '';
  setProgress(ui.progress, true, `${methodLabel(state.method)}: ${m.done} / ${m.total}${unit}${left}`, m.done, m.total);
  // A method that reports progress runs long enough to want a way out.
  ui.cancelCam.hidden = false;
}

function onRequestFailed(m: Extract<ExplainHostMessage, { type: 'request/didFail' }>): void {
  const lane = requests.settle(m.requestId);
  if (!lane) return;
  if (isCancellation(m.error)) {
    // A dismissed dialog or a request replaced on the host: not an error; the map shown stays valid.
    if (lane === 'cam') {
      const wasAll = camRequest?.id === m.requestId && camRequest.allChannels;
      endBusy();
      ui.canvas.dataset.state = shown ? 'drawn' : 'empty';
      if (ui.status.dataset.pending !== undefined) {
        // The map shown stays: its caption comes back.
        if (shown) showCaption(shown);
        else ui.status.textContent = '';
        delete ui.status.dataset.pending;
      }
      if (m.error.code === 'CANCELLED') ui.notice.textContent = wasAll ? 'Scoring all channels was cancelled; the map shown is unchanged.' : 'Cancelled.';
    } else if (lane === 'export') {
      ui.notice.textContent = 'Export cancelled.';
    } else if (lane === 'dicom') {
      setProgress(ui.progress, false);
      dicomSection.restore();
    } else if (lane === 'model' && session?.model.output) {
      setProgress(ui.progress, false);
      ui.output.value = session.model.output;
    }
    return;
  }
  showError(ui.error, m.error);
  if (lane === 'dicom') {
    // A frame or window the host refused: the section shows what the image still is.
    setProgress(ui.progress, false);
    dicomSection.restore();
  }
  if (lane === 'model' && session) {
    // An output that did not load: the picker goes back to the output shown.
    setProgress(ui.progress, false);
    ui.status.textContent = '';
    if (session.model.output) ui.output.value = session.model.output;
  }
  if (lane === 'cam') {
    endBusy();
    clearMap('error');
    ui.status.textContent = '';
    delete ui.status.dataset.pending;
  } else if (lane === 'export') {
    ui.notice.textContent = '';
  }
}

function onMessage(m: ExplainHostMessage): void {
  switch (m.type) {
    case 'panel/didInit':
      onInit(m);
      break;
    case 'predictions/didCompute':
      predictions = m.predictions;
      probabilities = m.probabilities;
      renderPredictions();
      renderClassList();
      break;
    case 'cam/didCompute':
      onCam(m);
      break;
    case 'cam/didProgress':
      onProgress(m);
      break;
    case 'export/didSave':
      if (requests.settle(m.requestId) === 'export') ui.notice.textContent = `Saved ${m.path}`;
      break;
    case 'request/didFail':
      onRequestFailed(m);
      break;
    case 'panel/didFail':
      // Nothing to explain (an unreadable image, a model that does not load, also after "Change model…"): the
      // error alone, not empty or stale controls. A later panel/didInit (another model) brings the panel back.
      endBusy();
      requests.reset();
      session = undefined;
      clearMap('error');
      ui.status.textContent = '';
      showError(ui.error, m.error);
      document.body.dataset.failed = 'true';
      if (m.imageName) {
        ui.title.textContent = `Class Activation Map for ${m.imageName}`;
        document.title = ui.title.textContent;
      }
      break;
    default: {
      const never: never = m;
      console.warn('CAM Lens: unhandled message', never);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Controls

ui.output.addEventListener('change', () => {
  const value = ui.output.value;
  if (!state || !session || !value || value === session.model.output || !session.model.outputs?.some((o) => o.name === value)) return;
  // The host reloads the model with that output and answers with a new panel/didInit (or request/didFail).
  post({ type: 'output/select', requestId: requests.issue('model'), output: value });
  setProgress(ui.progress, true, `Loading output ${value}…`);
  ui.status.textContent = `Loading output ${value}…`;
  showError(ui.error, undefined);
});

ui.method.addEventListener('change', () => {
  const value = ui.method.value;
  if (!state || !session?.methods.some((m) => m.id === value) || value === state.method) return;
  state.method = value as ExplainViewState['method'];
  persist();
  renderMethodNote();
  compute();
});

ui.layer.addEventListener('change', () => {
  const value = ui.layer.value;
  if (!state || !value || value === state.layer) return;
  state.layer = value;
  persist();
  compute();
});

ui.preprocess.addEventListener('change', () => {
  const value = ui.preprocess.value;
  if (!state || !session || !(PREPROCESS_IDS as readonly string[]).includes(value)) return;
  if (value === effectivePreprocess(state, session.model)) return;
  state.preprocess = value as PreprocessId;
  persist();
  compute();
});

ui.colormap.addEventListener('change', () => {
  const value = ui.colormap.value;
  if (!state || !isColormapName(value) || value === state.colormap) return;
  state.colormap = value;
  overlay.setStyle({ colormap: state.colormap, opacity: state.opacity, visible: state.overlay });
  persist();
});

ui.opacity.addEventListener('input', () => {
  const value = Number(ui.opacity.value);
  if (!state || !(value >= 0 && value <= 1)) return;
  state.opacity = value;
  ui.opacityValue.textContent = `${Math.round(value * 100)}%`;
  overlay.setStyle({ colormap: state.colormap, opacity: state.opacity, visible: state.overlay }, false);
  // While dragging only the local copy is saved; the host hears about it once, on release ('change').
  persist(true);
});
ui.opacity.addEventListener('change', () => persist());

ui.overlayToggle.addEventListener('change', () => {
  if (!state) return;
  state.overlay = ui.overlayToggle.checked;
  overlay.setStyle({ colormap: state.colormap, opacity: state.opacity, visible: state.overlay });
  persist();
});

ui.scoreAll.addEventListener('click', () => {
  if (ui.scoreAll.disabled || !state || state.method !== 'scorecam') return;
  ui.notice.textContent = '';
  compute({ allChannels: true });
});

ui.cancelCam.addEventListener('click', () => {
  if (!camRequest) return;
  ui.cancelCam.disabled = true;
  post({ type: 'cam/cancel', requestId: camRequest.id });
});

ui.changeModel.addEventListener('click', () => {
  if (ui.changeModel.disabled) return;
  post({ type: 'model/select', requestId: requests.issue('model') });
});

ui.exportPng.addEventListener('click', () => {
  if (ui.exportPng.disabled || !state) return;
  ui.notice.textContent = 'Exporting PNG…';
  post({ type: 'export/png', requestId: requests.issue('export'), colormap: state.colormap, opacity: state.opacity });
});

ui.exportJson.addEventListener('click', () => {
  if (ui.exportJson.disabled) return;
  ui.notice.textContent = 'Exporting JSON…';
  post({ type: 'export/json', requestId: requests.issue('export') });
});

ui.classSearch.addEventListener('input', () => renderClassList());
ui.classSearch.addEventListener('keydown', (e) => {
  if (e.key === 'ArrowDown') {
    if (classList.focusFirst()) e.preventDefault();
  } else if (e.key === 'Enter') {
    const first = classList.items()[0];
    if (first) {
      e.preventDefault();
      explainClass(Number(first.dataset.classIndex));
    }
  } else if (e.key === 'Escape' && ui.classSearch.value) {
    e.preventDefault();
    ui.classSearch.value = '';
    renderClassList();
  }
});

onHostMessage(parseExplainHostMessage, onMessage);
ui.canvas.dataset.state = 'empty';
// We speak first: the host sends nothing before this.
post({ type: 'panel/ready' });
