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
import '@vscode-elements/elements/dist/vscode-multi-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';

import { COLORMAPS, divergingLut, isColormapName } from '../../shared/colormaps';
import type {
  ClassPrediction,
  ExplainHostMessage,
  ExplainViewState,
  ExplainWebviewMessage,
  MethodInfo,
  MethodParam,
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
import {
  GROUP_LABELS,
  allowsSeveralLayers,
  methodGroup,
  optionValue,
  optionsSummary,
  requestLayers,
  requestOptions,
  resetOptions,
  setOption,
  usesLayer,
  type MethodGroup,
} from './methodOptions';

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
  compareModel: byId('compare-model'),
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
  methodFamily: byId('method-family'),
  layerField: byId('layer-field'),
  multiLayer: byId<HTMLElement & { checked: boolean; disabled: boolean }>('multi-layer'),
  layers: byId<HTMLElement & { value: string[]; disabled: boolean }>('layers'),
  layerNote: byId('layer-note'),
  options: byId<HTMLDetailsElement>('method-options'),
  optionsSummary: byId('options-summary'),
  optionsFields: byId('options-fields'),
  timings: byId('timings'),
  mapLegend: byId('map-legend'),
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

function methodInfo(id: string | undefined = state?.method): MethodInfo | undefined {
  return id === undefined ? undefined : session?.methods.find((m) => m.id === id);
}

/** The method last used in each kind this session, so switching kind and back returns to it. */
const lastOfGroup: Partial<Record<MethodGroup, string>> = {};
/** Each method's last map time (total ms) this session, shown in the method picker. */
const lastTimes = new Map<string, number>();

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
  const allChannels = opts.allChannels === true && hasChannelBudget(state.method);
  camRequest = { id: requestId, allChannels };
  progressClock = undefined;
  const info = methodInfo(state.method);
  const options = requestOptions(state, info);
  post({
    type: 'cam/compute',
    requestId,
    method: state.method,
    classIndex: state.classIndex,
    ...requestLayers(state, info),
    preprocess: state.preprocess,
    ...(allChannels ? { allChannels: true } : {}),
    ...(options ? { options } : {}),
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
  fillMethods(methods, s);
  const layerOptions = model.spatialLayers.map((name) => ({ value: name, label: name === model.recommendedLayer ? `${name} (recommended)` : name }));
  fillSelect(ui.layer, layerOptions, s.layer);
  ui.layer.disabled = model.spatialLayers.length === 0;
  // Several layers averaged (#15): the same layers in a multi-select, shown instead while "Several" is on.
  const several = new Set(s.layers && s.layers.length >= 2 ? s.layers : s.layer ? [s.layer] : []);
  ui.layers.replaceChildren(...layerOptions.map((o) => {
    const opt = document.createElement('vscode-option');
    opt.setAttribute('value', o.value);
    opt.textContent = o.label;
    if (several.has(o.value)) opt.setAttribute('selected', '');
    return opt;
  }));
  ui.layers.value = [...several];
  multiLayerOn = (s.layers?.length ?? 0) >= 2;
  ui.multiLayer.checked = multiLayerOn;
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

/**
 * The method picker shows one kind of method at a time (#15): class activation maps or pixel saliency, chosen
 * with the radios above it, which appear only when the host offers both kinds. Within a kind the registry's order,
 * as the host sends it; unavailable methods stay listed, disabled, with the reason. A method's last time this
 * session is its description (shown under the list for the highlighted method).
 */
function fillMethods(methods: readonly MethodInfo[], s: ExplainViewState): void {
  const group = methodGroup(methods.find((m) => m.id === s.method));
  const groups = new Set(methods.map((m) => methodGroup(m)));
  ui.methodFamily.hidden = groups.size < 2;
  for (const input of Array.from(ui.methodFamily.querySelectorAll<HTMLInputElement>('input[name="method-family"]'))) {
    input.checked = input.value === group;
    // A kind none of whose methods this model can run (no gradients for the pixel ones) cannot be chosen.
    input.disabled = !methods.some((m) => m.available && methodGroup(m) === input.value);
  }
  ui.method.setAttribute('aria-label', groups.size < 2 ? 'Method' : `Method (${GROUP_LABELS[group].toLowerCase()})`);
  fillSelect(
    ui.method,
    methods.filter((m) => methodGroup(m) === group).map((m) => {
      const last = lastTimes.get(m.id);
      return {
        value: m.id,
        label: m.available ? m.label : `${m.label} (unavailable${m.reason ? `: ${m.reason}` : ''})`,
        disabled: !m.available,
        description: m.available ? (last !== undefined ? `Last map: ${formatMs(last)}` : undefined) : m.reason,
      };
    }),
    s.method,
  );
}

/** What a method's progress counts, where it says (cam/didProgress: done / total). */
const PROGRESS_UNITS: Record<string, string> = { scorecam: ' channels', ablationcam: ' channels', smoothgrad: ' noisy copies', integratedgradients: ' path steps' };

/**
 * The method scores channels within a budget (Score-CAM, Ablation-CAM: a `channels` option): its map can offer
 * "Score all N channels".
 */
function hasChannelBudget(id: string): boolean {
  const m = methodInfo(id);
  return m?.params ? m.params.some((p) => p.id === 'channels') : id === 'scorecam';
}

/**
 * Puts a method's last time on its entry of the picker now. A changed option makes the select re-read all its
 * options, `selected` included, so the option of the method in use is marked selected first: else the select
 * would go back to the one marked when the list was filled.
 */
function showLastTime(id: string): void {
  const last = lastTimes.get(id);
  const options = Array.from(ui.method.querySelectorAll('vscode-option'));
  const opt = options.find((o) => o.getAttribute('value') === id);
  if (!opt || last === undefined || !methodInfo(id)?.available) return;
  if (state) for (const o of options) o.toggleAttribute('selected', o.getAttribute('value') === state.method);
  opt.setAttribute('description', `Last map: ${formatMs(last)}`);
}

/** Whether the "Several" toggle is on (the multi-select shown); kept while fewer than two layers are picked. */
let multiLayerOn = false;

/**
 * The layer field and the Options area for the method chosen: a method that reads no layer (pixel saliency on
 * the input) hides the layer field and says so; "Several" (averaged layers) is offered to CAM methods on a model
 * with two or more spatial layers; the Options area lists the method's parameters, then the options every CAM
 * method takes.
 */
function renderMethodControls(): void {
  if (!session || !state) return;
  const m = methodInfo();
  const layered = usesLayer(m);
  ui.layerField.hidden = !layered;
  const canAverage = allowsSeveralLayers(m) && session.model.spatialLayers.length >= 2;
  ui.multiLayer.hidden = !canAverage;
  const multi = canAverage && multiLayerOn;
  ui.layer.hidden = multi;
  ui.layers.hidden = !multi;
  // The multi-select's face says only "2 Selected": the note names them.
  const several = state.layers && state.layers.length >= 2 ? state.layers : undefined;
  const note = !layered
    ? `${m?.label ?? state.method} works on the input pixels: it has no target layer.`
    : multi
      ? several ? `Averaged at the input size: ${several.join(' + ')}` : 'Pick two or more layers: their maps are brought to the input size and averaged.'
      : '';
  ui.layerNote.textContent = note;
  ui.layerNote.hidden = !note;
  renderOptions(m);
}

function renderOptions(m: MethodInfo | undefined): void {
  const params = (m?.params ?? []).filter((p) => !p.common || methodGroup(m) === 'cam');
  ui.options.hidden = params.length === 0;
  if (!m || !state || params.length === 0) {
    ui.optionsFields.replaceChildren();
    ui.optionsSummary.textContent = '';
    return;
  }
  const own = params.filter((p) => !p.common);
  const common = params.filter((p) => p.common);
  const reset = h('vscode-button', { id: 'options-reset', class: 'options-reset', secondary: true }, 'Restore defaults') as HTMLElement & { disabled: boolean };
  reset.addEventListener('click', () => {
    if (!state || reset.disabled) return;
    const before = JSON.stringify(requestOptions(state, m));
    state = resetOptions(state, m);
    renderOptions(m);
    document.getElementById('options-reset')?.focus();
    if (JSON.stringify(requestOptions(state, m)) !== before) {
      persist();
      compute();
    }
  });
  ui.optionsFields.replaceChildren(
    ...own.flatMap((p) => optionField(m, p)),
    ...(common.length ? [h('p', { class: 'option-common' }, 'Every CAM method:')] : []),
    ...common.flatMap((p) => optionField(m, p)),
    reset,
  );
  renderOptionsSummary(m);
}

function renderOptionsSummary(m: MethodInfo | undefined): void {
  if (!state) return;
  const summary = optionsSummary(state, m);
  ui.optionsSummary.textContent = `(${summary})`;
  const reset = document.getElementById('options-reset') as (HTMLElement & { disabled: boolean }) | null;
  if (reset) reset.disabled = summary === 'defaults';
}

/** Stores an option's new value, then recomputes the map; returns the value kept (coerced), for the input. */
function changeOption(m: MethodInfo, p: MethodParam, value: unknown) {
  if (!state) return undefined;
  const before = optionValue(state, m.id, p);
  state = setOption(state, m.id, p, value);
  const after = optionValue(state, m.id, p);
  renderOptionsSummary(m);
  if (after !== before) {
    persist();
    compute();
  }
  return after;
}

/** The input of one option: a number field with its bounds, a select of the choices, or a checkbox. */
function optionField(m: MethodInfo, p: MethodParam): HTMLElement[] {
  const id = `option-${p.id}`;
  const value = optionValue(state as ExplainViewState, m.id, p);
  const describe = <T extends HTMLElement>(el: T): T => {
    // The description as a tooltip, and read out after the name by screen readers.
    el.title = p.description;
    if (p.description) el.setAttribute('aria-description', p.description);
    el.dataset.param = p.id;
    return el;
  };
  if (p.kind === 'boolean') {
    const box = describe(document.createElement('vscode-checkbox') as HTMLElement & { checked: boolean; label: string });
    box.id = id;
    box.classList.add('option-check');
    box.setAttribute('label', p.label);
    (box as HTMLElement & { checked: boolean }).checked = value === true;
    box.addEventListener('change', () => {
      const b = box as HTMLElement & { checked: boolean };
      b.checked = changeOption(m, p, b.checked) === true;
    });
    return [box];
  }
  const label = h('label', { for: id, title: p.description }, p.label);
  if (p.kind === 'choice') {
    const select = describe(document.createElement('vscode-single-select')) as SingleSelect;
    select.id = id;
    select.setAttribute('aria-label', p.label);
    // A choice's labels are phrases ("softmax of logits across channels"): label and select get a line each.
    label.classList.add('wide');
    select.classList.add('wide');
    fillSelect(select, (p.choices ?? []).map((c) => ({ value: c.value, label: c.label })), String(value));
    select.addEventListener('change', () => {
      const kept = changeOption(m, p, select.value);
      if (kept !== undefined && select.value !== kept) select.value = String(kept);
    });
    return [label, select];
  }
  const input = describe(h('input', { id, type: 'number', 'aria-label': p.label }) as HTMLInputElement);
  if (p.min !== undefined) input.min = String(p.min);
  if (p.max !== undefined) input.max = String(p.max);
  input.step = p.step !== undefined ? String(p.step) : 'any';
  input.value = String(value);
  input.addEventListener('change', () => {
    const kept = changeOption(m, p, input.value);
    // A value out of bounds is clamped, an empty or unreadable one goes back to the value in force.
    input.value = String(kept ?? optionValue(state as ExplainViewState, m.id, p));
  });
  return [label, input];
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
  renderLegend(undefined);
  ui.timings.hidden = true;
  ui.timings.textContent = '';
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
  renderMethodControls();
  lastOfGroup[methodGroup(methodInfo())] = state.method;
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
  ui.canvas.dataset.layer = m.layers?.join(',') ?? m.layer;
  // How the map is coloured (pixel saliency has its own): 'rgb', 'signed' or 'magnitude'.
  ui.canvas.dataset.coloring = m.heatmap.rgb ? 'rgb' : m.heatmap.signed ? 'signed' : 'magnitude';
  lastTimes.set(m.method, totalMs(m.timingsMs));
  showLastTime(m.method);
  // A class-independent map (Eigen-CAM) is not "for" the class the engine happened to resolve.
  showCaption(m);
  delete ui.status.dataset.pending;
  ui.backend.textContent = m.backend;
  // A map that read no layer (pixel saliency) says nothing about the layer picker; several layers keep theirs.
  if (usesLayer(methodInfo(m.method)) && !m.layers && state.layer !== m.layer) {
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
  ui.status.textContent = `${what} ${whereCaption(m)}${note} · ${formatMs(totalMs(m.timingsMs))} · ${m.backend}`;
  ui.status.title = m.cached ? 'Activations and gradients came from the cache.' : '';
  ui.timings.textContent = `Time: ${formatTimings(m.timingsMs)}`;
  ui.timings.hidden = false;
  renderLegend(m);
  renderScoreAll(m);
}

/**
 * What the colours of a pixel map mean, where they are not the colormap chosen: a signed map's diverging
 * colours (swatches of the table's ends and middle), an RGB map's image. Magnitude maps need no legend.
 */
function renderLegend(m: CamResult | undefined): void {
  const swatch = (i: number) => {
    const lut = divergingLut();
    const s = h('span', { class: 'swatch', 'aria-hidden': 'true' });
    s.style.backgroundColor = `rgb(${lut[3 * i]}, ${lut[3 * i + 1]}, ${lut[3 * i + 2]})`;
    return s;
  };
  if (m?.heatmap.signed) {
    ui.mapLegend.replaceChildren('Attribution: ', swatch(0), ' negative ', swatch(127), ' none ', swatch(255), ' positive (the colormap colours magnitudes only)');
  } else if (m?.heatmap.rgb) {
    ui.mapLegend.replaceChildren('The input gradient as colours: grey where it is zero, the colormap is not used');
  } else {
    ui.mapLegend.replaceChildren();
  }
  ui.mapLegend.hidden = !ui.mapLegend.hasChildNodes();
  ui.mapLegend.dataset.kind = m?.heatmap.signed ? 'signed' : m?.heatmap.rgb ? 'rgb' : '';
}

/** "at conv_pw_13_relu", "at conv_pw_12_relu + conv_pw_13_relu (averaged)", "at input resolution (224×224)". */
function whereCaption(m: CamResult): string {
  const info = methodInfo(m.method);
  if (methodGroup(info) === 'pixel') {
    const size = `at input resolution (${m.heatmap.width}×${m.heatmap.height})`;
    return usesLayer(info) ? `${size}, Grad-CAM at ${m.layer}` : size;
  }
  return m.layers && m.layers.length > 1 ? `at ${m.layers.join(' + ')} (averaged)` : `at ${m.layer}`;
}

/** The phases of a map's time in the order they happen, then any others the host reports; the total last. */
const TIMING_ORDER = ['boot', 'model', 'image', 'forward', 'gradients', 'method'];

/** "forward 5 ms · gradients 4 ms · method 3 ms · total 12 ms" (phases under half a millisecond are left out). */
function formatTimings(t: Record<string, number>): string {
  const keys = [...TIMING_ORDER.filter((k) => k in t), ...Object.keys(t).filter((k) => !TIMING_ORDER.includes(k) && k !== 'total')];
  const parts = keys.filter((k) => Number.isFinite(t[k]) && t[k] >= 0.5).map((k) => `${k} ${formatMs(t[k])}`);
  return [...parts, `total ${formatMs(totalMs(t))}`].join(' · ');
}

/**
 * "Score all N channels (about X)": offered under a Score-CAM map that scored fewer channels than the layer has
 * (the channel budget), with the time the engine estimated from this map's own rate, so the cost is known
 * before it starts.
 */
function renderScoreAll(m: CamResult | undefined): void {
  const c = m && hasChannelBudget(m.method) ? m.details?.channels : undefined;
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
  // Several layers or augmentation smoothing run the method several times: the count is then of passes.
  const info = methodInfo(state.method);
  const repeated = methodGroup(info) === 'cam' && ((state.layers?.length ?? 0) >= 2 || state.camOptions?.augSmooth === true);
  const unit = repeated ? '' : PROGRESS_UNITS[state.method] ?? '';
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
  lastOfGroup[methodGroup(methodInfo(value))] = value;
  persist();
  renderMethodNote();
  renderMethodControls();
  compute();
});

/**
 * The kind of method (radios above the picker): the picker lists that kind's methods, and the map switches to
 * the one used last in that kind this session, else its first available method.
 */
ui.methodFamily.addEventListener('change', (e) => {
  const input = e.target as HTMLInputElement;
  if (!state || !session || input.name !== 'method-family' || !input.checked) return;
  const group = input.value as MethodGroup;
  if (group === methodGroup(methodInfo())) return;
  const inGroup = session.methods.filter((m) => methodGroup(m) === group && m.available);
  const next = inGroup.find((m) => m.id === lastOfGroup[group]) ?? inGroup[0];
  if (!next) {
    fillMethods(session.methods, state); // the radios show the kind in use again
    return;
  }
  state.method = next.id;
  lastOfGroup[group] = next.id;
  fillMethods(session.methods, state);
  persist();
  renderMethodNote();
  renderMethodControls();
  compute();
});

// The selects in the Options area read their options' labels from the rendered text, which a closed <details>
// does not have: built while it was closed, they would show blank; so they are built again when it opens.
ui.options.addEventListener('toggle', () => {
  if (ui.options.open) renderOptions(methodInfo());
});

ui.layer.addEventListener('change', () => {
  const value = ui.layer.value;
  if (!state || !value || value === state.layer) return;
  state.layer = value;
  persist();
  compute();
});

/** "Several": the multi-select of layers replaces the single one, starting from the layer in use. */
ui.multiLayer.addEventListener('change', () => {
  if (!state) return;
  multiLayerOn = ui.multiLayer.checked;
  if (multiLayerOn) {
    const picked = state.layer ? [state.layer] : [];
    ui.layers.value = picked;
    renderMethodControls();
    return; // one layer so far: the same map; the next pick averages
  }
  const had = (state.layers?.length ?? 0) >= 2;
  if (state.layers?.length) state.layer = state.layers[0];
  delete state.layers;
  ui.layer.value = state.layer ?? '';
  renderMethodControls();
  persist();
  if (had) compute();
});

ui.layers.addEventListener('change', () => {
  if (!state || !session) return;
  const known = session.model.spatialLayers;
  // In the model's order (shallow to deep), whatever order they were clicked in.
  const picked = known.filter((l) => ui.layers.value.includes(l));
  const before = requestLayers(state, methodInfo());
  if (picked.length >= 2) state.layers = picked;
  else delete state.layers;
  if (picked.length >= 1) state.layer = picked[0];
  ui.layer.value = state.layer ?? '';
  const after = requestLayers(state, methodInfo());
  renderMethodControls();
  persist();
  if (JSON.stringify(before) !== JSON.stringify(after)) compute();
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
  if (ui.scoreAll.disabled || !state || !hasChannelBudget(state.method)) return;
  ui.notice.textContent = '';
  compute({ allChannels: true });
});

ui.cancelCam.addEventListener('click', () => {
  if (!camRequest) return;
  ui.cancelCam.disabled = true;
  post({ type: 'cam/cancel', requestId: camRequest.id });
});

// The compare panel opens beside this one (a notification: no reply comes back here).
ui.compareModel.addEventListener('click', () => post({ type: 'compare/open' }));

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
