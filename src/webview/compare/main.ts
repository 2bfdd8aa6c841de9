/**
 * The compare panel (issue #14 item 4): two models side by side on one image, model A's map, model B's map and the
 * difference A - B over the image, with the rank correlation of the maps; in folder mode also the folder's samples,
 * most disagreeing first (top-1 differs, then the lowest correlation), each shown side by side on Enter or a click.
 *
 * Conversation with the host (src/shared/compareProtocol.ts): we speak first (`panel/ready`); the host answers
 * `panel/didInit` and, in folder mode, streams `folder/didStart`, `folder/didProgress`, `folder/didFinish`. Each
 * `compare/compute` gets one reply, `compare/didCompute` or `request/didFail`; replies to superseded requests are
 * ignored (RequestTracker). Method, class, opacity and the selected sample persist with setState.
 *
 * The page skeleton (ids of the stable DOM contract) comes from src/extension/panels/html.ts.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';

import type { CompareHostMessage, ComparePayload, CompareRow, CompareSidePayload, CompareViewState, CompareWebviewMessage } from '../../shared/compareProtocol';
import { isCompareViewState } from '../../shared/compareProtocol';
import { Listbox, byId, fillSelect, h, isCancellation, setProgress, showError, type SingleSelect } from '../common/dom';
import { HeatCanvas } from '../common/heatCanvas';
import { RequestTracker } from '../common/requests';
import { onHostMessage, vscodeApi } from '../common/vscodeApi';
import { arr, bool, error, heatmap, int, num, obj, prediction, str, toFloat32, Invalid, type Parsed } from '../common/hostMessages';

const api = vscodeApi<CompareWebviewMessage, CompareViewState>();
const requests = new RequestTracker<'compare'>();

const el = {
  modelA: byId('model-a'),
  modelB: byId('model-b'),
  source: byId('source-name'),
  method: byId<SingleSelect>('method'),
  cls: byId<SingleSelect>('class'),
  opacity: byId<HTMLInputElement>('opacity'),
  error: byId('error'),
  folder: byId('folder'),
  folderStatus: byId('folder-status'),
  folderProgress: byId('folder-progress'),
  folderCancel: byId('folder-cancel'),
  folderRerun: byId('folder-rerun'),
  rows: byId<HTMLOListElement>('rows'),
  imageName: byId('image-name'),
  summary: byId('summary'),
  progress: byId('progress'),
  status: byId('status'),
};

const sides = (['a', 'b', 'diff'] as const).map((id) => ({
  id,
  caption: byId(`caption-${id}`),
  stage: byId(`stage-${id}`),
  image: byId<HTMLImageElement>(`image-${id}`),
  canvas: new HeatCanvas(byId<HTMLCanvasElement>(`canvas-${id}`)),
  predictions: byId<HTMLOListElement>(`predictions-${id}`),
}));

let state: CompareViewState | undefined;
let mode: 'image' | 'folder' = 'image';
let names = { a: 'A', b: 'B' };
let runId = -1;
let rows: CompareRow[] = [];
const listbox = new Listbox(el.rows, '[role="option"]', (item) => select(item.dataset.path as string));

function save(): void {
  if (!state) return;
  api.setState(state);
  api.postMessage({ type: 'state/didChange', state });
}

const pct = (p: number) => `${(p * 100).toFixed(1)}%`;

function compute(): void {
  if (!state) return;
  if (mode === 'folder' && !state.selected) return;
  const requestId = requests.issue('compare');
  setProgress(el.progress, true, 'Computing both maps…');
  el.status.textContent = '';
  api.postMessage({ type: 'compare/compute', requestId, ...(mode === 'folder' ? { path: state.selected } : {}), method: state.method, classLabel: state.classLabel });
}

function select(relPath: string): void {
  if (!state) return;
  state = { ...state, selected: relPath };
  save();
  renderRows();
  compute();
}

function renderSide(i: 0 | 1, s: CompareSidePayload, name: string, label: string): void {
  const side = sides[i];
  side.caption.textContent = `${i === 0 ? 'A' : 'B'}: ${name} · "${s.target.label}" ${pct(s.target.probability)} · ${label} at ${s.layer}`;
  side.canvas.setMap(s.heatmap);
  side.predictions.replaceChildren(...s.predictions.map((p) => h('li', {}, `${p.label} ${pct(p.probability)}`)));
}

function render(r: ComparePayload, imageName: string, imageUri: string | undefined): void {
  el.imageName.textContent = imageName;
  for (const side of sides) {
    // The stages take the image's shape, so the maps sit over it undistorted.
    side.stage.style.aspectRatio = `${r.imageSize[0]} / ${r.imageSize[1]}`;
    side.image.hidden = !imageUri;
    if (imageUri) side.image.src = imageUri;
    else side.image.removeAttribute('src');
    side.image.alt = imageUri ? imageName : '';
  }
  renderSide(0, r.a, names.a, r.methodLabel);
  renderSide(1, r.b, names.b, r.methodLabel);
  sides[2].caption.textContent = `Difference A − B (${r.difference.width}x${r.difference.height})`;
  sides[2].canvas.setMap({ width: r.difference.width, height: r.difference.height, values: r.difference.values, rawMin: -1, rawMax: 1, signed: true });
  sides[2].predictions.replaceChildren();
  const top = r.top1Differs ? `top-1 differs: A "${r.a.predictions[0]?.label}", B "${r.b.predictions[0]?.label}"` : `top-1 agrees ("${r.a.predictions[0]?.label}")`;
  el.summary.textContent = `${r.methodLabel} maps of "${r.classLabel}": rank correlation ${r.correlation.toFixed(3)} · mean |A − B| ${r.meanAbsDifference.toFixed(3)} · ${top}`;
  el.summary.dataset.correlation = String(r.correlation);
  el.summary.dataset.top1Differs = String(r.top1Differs);
  redraw();
}

function redraw(): void {
  const opacity = state?.opacity ?? 0.5;
  for (const s of sides) {
    s.canvas.setStyle('turbo', opacity);
    s.canvas.schedule();
  }
}

function rowText(r: CompareRow, rank: number): string {
  return `${rank}. ${r.top1Differs ? 'TOP-1 DIFFERS · ' : ''}${r.path} — correlation ${r.correlation.toFixed(3)} · A "${r.top1A.label}" ${pct(r.top1A.probability)} · B "${r.top1B.label}" ${pct(r.top1B.probability)}`;
}

function renderRows(): void {
  const selected = state?.selected;
  el.rows.replaceChildren(...rows.map((r, i) => h('li', {
    role: 'option',
    'data-path': r.path,
    'data-top1-differs': String(r.top1Differs),
    'aria-selected': String(r.path === selected),
    class: r.top1Differs ? 'compare-row differs' : 'compare-row',
  }, rowText(r, i + 1))));
  listbox.refreshRoving();
}

function applyInit(m: Extract<CompareHostMessage, { type: 'panel/didInit' }>): void {
  mode = m.mode;
  names = { a: m.modelA.name, b: m.modelB.name };
  el.modelA.textContent = m.modelA.name;
  el.modelA.title = m.modelA.path;
  el.modelB.textContent = m.modelB.name;
  el.modelB.title = m.modelB.path;
  el.source.textContent = m.sourceName;
  const saved = api.getState();
  state = isCompareViewState(saved) && saved.source === m.state.source && saved.modelB === m.state.modelB ? saved : m.state;
  if (!m.methods.some((x) => x.id === state?.method) && m.methods.length) state = { ...state, method: m.methods[0].id };
  if (state.classLabel && !m.classes.includes(state.classLabel)) state = { ...state, classLabel: '' };
  fillSelect(el.method, m.methods.map((x) => ({ value: x.id, label: x.label })), state.method);
  const deflt = mode === 'image' ? "Model A's top-1" : "Each sample's given label";
  fillSelect(el.cls, [{ value: '', label: deflt }, ...m.classes.map((c) => ({ value: c, label: c }))], state.classLabel);
  el.opacity.value = String(state.opacity);
  el.folder.hidden = mode !== 'folder';
  save();
  redraw();
  compute();
}

function onChoice(): void {
  if (!state) return;
  const method = el.method.value || state.method;
  const classLabel = el.cls.value ?? '';
  if (method === state.method && classLabel === state.classLabel) return;
  state = { ...state, method, classLabel };
  save();
  if (mode === 'folder') api.postMessage({ type: 'folder/run', method, classLabel });
  compute();
}

el.method.addEventListener('change', onChoice);
el.cls.addEventListener('change', onChoice);
el.opacity.addEventListener('input', () => {
  if (!state) return;
  state = { ...state, opacity: Number(el.opacity.value) };
  save();
  redraw();
});
el.folderCancel.addEventListener('click', () => api.postMessage({ type: 'folder/cancel' }));
el.folderRerun.addEventListener('click', () => state && api.postMessage({ type: 'folder/run', method: state.method, classLabel: state.classLabel }));
window.addEventListener('resize', redraw);

function handle(m: CompareHostMessage): void {
  switch (m.type) {
    case 'panel/didInit':
      showError(el.error, undefined);
      applyInit(m);
      return;
    case 'compare/didCompute':
      if (!requests.settle(m.requestId)) return;
      setProgress(el.progress, false);
      showError(el.error, undefined);
      render(m.result, m.imageName, m.imageUri);
      return;
    case 'request/didFail':
      if (!requests.settle(m.requestId)) return;
      setProgress(el.progress, false);
      if (!isCancellation(m.error)) showError(el.error, m.error);
      return;
    case 'folder/didStart':
      runId = m.runId;
      rows = [];
      renderRows();
      el.folderCancel.hidden = false;
      setProgress(el.folderProgress, true, 'Comparing…');
      el.folderStatus.textContent = '';
      return;
    case 'folder/didProgress':
      if (m.runId !== runId) return;
      rows = rows.concat(m.rows);
      setProgress(el.folderProgress, true, `${m.done} of ${m.total} images`, m.done, m.total);
      renderRows();
      return;
    case 'folder/didFinish': {
      if (m.runId !== runId) return;
      rows = m.rows;
      el.folderCancel.hidden = true;
      setProgress(el.folderProgress, false);
      const differs = rows.filter((r) => r.top1Differs).length;
      el.folderStatus.textContent = `${rows.length} samples compared in ${m.seconds.toFixed(1)} s${m.cancelled ? ' (cancelled)' : ''}; ${differs} top-1 disagreement${differs === 1 ? '' : 's'}` +
        `${m.failed ? `; ${m.failed} not compared` : ''}. Most disagreeing first.`;
      renderRows();
      if (state && !state.selected && rows.length) select(rows[0].path);
      return;
    }
    case 'folder/didFail':
      if (m.runId !== runId) return;
      el.folderCancel.hidden = true;
      setProgress(el.folderProgress, false);
      if (!isCancellation(m.error)) showError(el.error, m.error);
      return;
    case 'panel/didFail':
      setProgress(el.progress, false);
      showError(el.error, m.error);
      return;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Host messages, checked before use

function side(x: unknown, what: string): CompareSidePayload {
  const s = obj(x, what);
  return {
    name: str(s.name, `${what}.name`),
    predictions: arr(s.predictions, `${what}.predictions`).map((p, i) => prediction(p, `${what}.predictions[${i}]`)),
    layer: str(s.layer, `${what}.layer`),
    target: prediction(s.target, `${what}.target`),
    heatmap: heatmap(s.heatmap, `${what}.heatmap`),
  };
}

function row(x: unknown, i: number): CompareRow {
  const r = obj(x, `rows[${i}]`);
  return {
    path: str(r.path, 'row.path'), givenLabel: str(r.givenLabel, 'row.givenLabel'),
    top1A: prediction(r.top1A, 'row.top1A'), top1B: prediction(r.top1B, 'row.top1B'), top1Differs: bool(r.top1Differs, 'row.top1Differs'),
    correlation: num(r.correlation, 'row.correlation'), meanAbsDifference: num(r.meanAbsDifference, 'row.meanAbsDifference'),
  };
}

function parse(x: unknown): Parsed<CompareHostMessage> {
  try {
    const m = obj(x, 'message');
    switch (m.type) {
      case 'panel/didInit': {
        const model = (y: unknown, w: string) => ({ path: str(obj(y, w).path, `${w}.path`), name: str(obj(y, w).name, `${w}.name`) });
        if (!isCompareViewState(m.state)) throw new Invalid('panel/didInit.state is not a compare view state');
        return {
          ok: true,
          message: {
            type: 'panel/didInit', mode: m.mode === 'folder' ? 'folder' : 'image', modelA: model(m.modelA, 'modelA'), modelB: model(m.modelB, 'modelB'),
            sourceName: str(m.sourceName, 'sourceName'),
            methods: arr(m.methods, 'methods').map((y, i) => ({ id: str(obj(y, 'method').id, `methods[${i}].id`), label: str(obj(y, 'method').label, `methods[${i}].label`) })),
            classes: arr(m.classes, 'classes').map((c, i) => str(c, `classes[${i}]`)),
            state: m.state,
          },
        };
      }
      case 'compare/didCompute': {
        const r = obj(m.result, 'result');
        const d = obj(r.difference, 'result.difference');
        const width = int(d.width, 'difference.width');
        const height = int(d.height, 'difference.height');
        const size = arr(r.imageSize, 'result.imageSize');
        return {
          ok: true,
          message: {
            type: 'compare/didCompute', requestId: int(m.requestId, 'requestId'), path: str(m.path, 'path'), imageName: str(m.imageName, 'imageName'),
            ...(typeof m.imageUri === 'string' ? { imageUri: m.imageUri } : {}),
            result: {
              method: str(r.method, 'result.method'), methodLabel: str(r.methodLabel, 'result.methodLabel'), classLabel: str(r.classLabel, 'result.classLabel'),
              a: side(r.a, 'result.a'), b: side(r.b, 'result.b'),
              difference: { width, height, values: toFloat32(d.values, width * height, 'difference.values') },
              correlation: num(r.correlation, 'result.correlation'), meanAbsDifference: num(r.meanAbsDifference, 'result.meanAbsDifference'),
              top1Differs: bool(r.top1Differs, 'result.top1Differs'), imageSize: [num(size[0], 'imageSize[0]'), num(size[1], 'imageSize[1]')],
            },
          },
        };
      }
      case 'folder/didStart':
        return { ok: true, message: { type: 'folder/didStart', runId: int(m.runId, 'runId'), total: int(m.total, 'total') } };
      case 'folder/didProgress':
        return {
          ok: true,
          message: { type: 'folder/didProgress', runId: int(m.runId, 'runId'), done: int(m.done, 'done'), total: int(m.total, 'total'), failed: int(m.failed, 'failed'), rows: arr(m.rows, 'rows').map(row) },
        };
      case 'folder/didFinish':
        return {
          ok: true,
          message: {
            type: 'folder/didFinish', runId: int(m.runId, 'runId'), rows: arr(m.rows, 'rows').map(row), failed: int(m.failed, 'failed'),
            cancelled: bool(m.cancelled, 'cancelled'), seconds: num(m.seconds, 'seconds'),
          },
        };
      case 'folder/didFail':
        return { ok: true, message: { type: 'folder/didFail', runId: int(m.runId, 'runId'), error: error(m.error) } };
      case 'request/didFail':
        return { ok: true, message: { type: 'request/didFail', requestId: int(m.requestId, 'requestId'), error: error(m.error) } };
      case 'panel/didFail':
        return { ok: true, message: { type: 'panel/didFail', error: error(m.error) } };
      default:
        return { ok: false, reason: `unknown message type ${JSON.stringify(m.type)}` };
    }
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}

onHostMessage(parse, handle);
api.postMessage({ type: 'panel/ready' });
