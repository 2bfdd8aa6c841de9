/**
 * Checks and normalises messages from the host before the panels act on them. Pure (no DOM).
 *
 * The host is trusted code, but a message that does not fit the protocol (a version skew after an update, a bug)
 * should be dropped with a reason, not half-rendered. Typed arrays are normalised: VS Code delivers a
 * Float32Array as a Float32Array, but a host or test harness that serialised it as JSON sends a number array or
 * an index-keyed object; all three become a Float32Array of the declared length, or the message is refused.
 */
import type {
  ClassPrediction,
  ErrorPayload,
  ExplainHostMessage,
  FeatureMapsPayload,
  HeatmapPayload,
  ImageDescription,
  InspectorHostMessage,
  LayerSummary,
  MapDetails,
  MethodInfo,
  MethodParam,
  ModelInfo,
} from '../../shared/protocol';
import { PREPROCESS_IDS, isExplainViewState } from '../../shared/protocol';
import { isDicomWindowChoice, type AppliedWindow, type DicomImageInfo, type VoiFunction } from '../../shared/dicom';

export type Parsed<T> = { ok: true; message: T } | { ok: false; reason: string };

/** Validation primitives shared by every panel's host-message parser (explain, inspector, triage). */
export class Invalid extends Error {}

export function fail(what: string): never {
  throw new Invalid(what);
}

export const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;

export function obj(x: unknown, what: string): Record<string, unknown> {
  return isObj(x) ? x : fail(`${what} is not an object`);
}
export function str(x: unknown, what: string): string {
  return typeof x === 'string' ? x : fail(`${what} is not a string`);
}
export function num(x: unknown, what: string): number {
  return typeof x === 'number' && !Number.isNaN(x) ? x : fail(`${what} is not a number`);
}
export function int(x: unknown, what: string): number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 ? x : fail(`${what} is not a non-negative integer`);
}
export function bool(x: unknown, what: string): boolean {
  return typeof x === 'boolean' ? x : fail(`${what} is not a boolean`);
}
export function arr(x: unknown, what: string): unknown[] {
  return Array.isArray(x) ? x : fail(`${what} is not an array`);
}

/** A Float32Array of exactly `length` values from a Float32Array, number array, ArrayBuffer or index-keyed object. */
export function toFloat32(x: unknown, length: number, what: string): Float32Array {
  let out: Float32Array;
  if (x instanceof Float32Array) out = x;
  else if (x instanceof ArrayBuffer) out = new Float32Array(x);
  else if (ArrayBuffer.isView(x)) out = Float32Array.from(x as unknown as ArrayLike<number>);
  else if (Array.isArray(x)) out = Float32Array.from(x as number[]);
  else if (isObj(x)) {
    out = new Float32Array(length);
    for (let i = 0; i < length; i++) {
      const v = x[String(i)];
      out[i] = typeof v === 'number' ? v : fail(`${what}[${i}] is missing`);
    }
  } else fail(`${what} is not a typed array`);
  if (out.length !== length) fail(`${what} holds ${out.length} values, expected ${length}`);
  return out;
}

/** How many values a typed array arriving in any of toFloat32's forms holds (an index-keyed object: its count of keys). */
export function lengthOf(x: unknown, what: string): number {
  if (ArrayBuffer.isView(x)) return (x as unknown as ArrayLike<number>).length;
  if (x instanceof ArrayBuffer) return x.byteLength / 4;
  if (Array.isArray(x)) return x.length;
  if (isObj(x)) return Object.keys(x).filter((k) => /^\d+$/.test(k)).length;
  return fail(`${what} is not a typed array`);
}

/** ImageDescription of `panel/didInit`: channels, format, depth and, for DICOM, the way to the model's pixels. */
function imageDescription(x: unknown): ImageDescription {
  const o = obj(x, 'image');
  const channels = int(o.channels, 'image.channels');
  if (channels !== 1 && channels !== 3) fail('image.channels is neither 1 nor 3');
  return {
    channels,
    format: str(o.format, 'image.format'),
    ...(o.bitDepth !== undefined ? { bitDepth: int(o.bitDepth, 'image.bitDepth') } : {}),
    ...(o.dicom !== undefined && o.dicom !== null ? { dicom: dicomInfo(o.dicom) } : {}),
  };
}

function range(x: unknown, what: string): [number, number] {
  const a = arr(x, what);
  return [num(a[0], `${what}[0]`), num(a[1], `${what}[1]`)];
}

/** DicomImageInfo: checked field by field, so that the section renders only what the protocol says is there. */
function dicomInfo(x: unknown): DicomImageInfo {
  const o = obj(x, 'image.dicom');
  const spp = int(o.samplesPerPixel, 'dicom.samplesPerPixel');
  if (spp !== 1 && spp !== 3) fail('dicom.samplesPerPixel is neither 1 nor 3');
  const fn = (v: unknown, what: string): VoiFunction => (v === 'LINEAR' || v === 'LINEAR_EXACT' || v === 'SIGMOID' ? v : fail(`${what} is not a VOI LUT function`));
  const win = o.window === null ? null : obj(o.window, 'dicom.window');
  const kinds = ['file', 'custom', 'minmax', 'range'];
  const sources = ['user', 'model', 'default'];
  let rescale: DicomImageInfo['rescale'] = null;
  if (o.rescale !== null) {
    const r = obj(o.rescale, 'dicom.rescale');
    rescale = { slope: num(r.slope, 'dicom.rescale.slope'), intercept: num(r.intercept, 'dicom.rescale.intercept'), ...(r.type !== undefined ? { type: str(r.type, 'dicom.rescale.type') } : {}) };
  }
  return {
    transferSyntax: str(o.transferSyntax, 'dicom.transferSyntax'),
    transferSyntaxUid: str(o.transferSyntaxUid, 'dicom.transferSyntaxUid'),
    ...(o.modality !== undefined ? { modality: str(o.modality, 'dicom.modality') } : {}),
    photometric: str(o.photometric, 'dicom.photometric'),
    rows: int(o.rows, 'dicom.rows'),
    columns: int(o.columns, 'dicom.columns'),
    samplesPerPixel: spp,
    bitsAllocated: int(o.bitsAllocated, 'dicom.bitsAllocated'),
    bitsStored: int(o.bitsStored, 'dicom.bitsStored'),
    signed: bool(o.signed, 'dicom.signed'),
    frames: int(o.frames, 'dicom.frames'),
    frame: int(o.frame, 'dicom.frame'),
    storedRange: range(o.storedRange, 'dicom.storedRange'),
    rescale,
    valueRange: range(o.valueRange, 'dicom.valueRange'),
    windows: arr(o.windows, 'dicom.windows').map((w, i) => {
      const ww = obj(w, `dicom.windows[${i}]`);
      return { center: num(ww.center, 'center'), width: num(ww.width, 'width'), ...(ww.name !== undefined ? { name: str(ww.name, 'name') } : {}) };
    }),
    voiFunction: fn(o.voiFunction, 'dicom.voiFunction'),
    window: win && {
      kind: kinds.includes(win.kind as string) ? (win.kind as AppliedWindow['kind']) : fail('dicom.window.kind is unknown'),
      center: num(win.center, 'dicom.window.center'),
      width: num(win.width, 'dicom.window.width'),
      function: fn(win.function, 'dicom.window.function'),
      ...(win.index !== undefined ? { index: int(win.index, 'dicom.window.index') } : {}),
      ...(win.name !== undefined ? { name: str(win.name, 'dicom.window.name') } : {}),
      source: sources.includes(win.source as string) ? (win.source as AppliedWindow['source']) : fail('dicom.window.source is unknown'),
    },
    ...(o.modelWindow !== undefined ? { modelWindow: isDicomWindowChoice(o.modelWindow) ? o.modelWindow : fail('dicom.modelWindow is not a window') } : {}),
    inverted: bool(o.inverted, 'dicom.inverted'),
    ...(o.colourNote !== undefined ? { colourNote: str(o.colourNote, 'dicom.colourNote') } : {}),
    notes: arr(o.notes, 'dicom.notes').map((n, i) => str(n, `dicom.notes[${i}]`)),
  };
}

/** MapDetails: the note, and Score-CAM's channel counts where present (a malformed count drops them, not the map). */
export function mapDetails(x: unknown): MapDetails {
  const d = obj(x, 'details');
  const out: MapDetails = { note: str(d.note, 'details.note') };
  const c = d.channels;
  if (isObj(c)) {
    const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
    const [scored, usable, total, ms, allMs] = [c.scored, c.usable, c.total, c.ms, c.allMs].map(n);
    if (scored !== undefined && usable !== undefined && total !== undefined && ms !== undefined && allMs !== undefined && typeof c.by === 'string') {
      out.channels = { scored, usable, total, by: c.by, ms, allMs };
    }
  }
  return out;
}

export function error(x: unknown): ErrorPayload {
  const e = obj(x, 'error');
  return {
    name: typeof e.name === 'string' ? e.name : 'Error',
    message: str(e.message, 'error.message'),
    code: typeof e.code === 'string' ? e.code : undefined,
    hint: typeof e.hint === 'string' && e.hint ? e.hint : undefined,
  };
}

export function prediction(x: unknown, what: string): ClassPrediction {
  const p = obj(x, what);
  return { index: int(p.index, `${what}.index`), label: str(p.label, `${what}.label`), probability: num(p.probability, `${what}.probability`) };
}

function model(x: unknown): ModelInfo {
  const m = obj(x, 'model');
  const inputSize = arr(m.inputSize, 'model.inputSize');
  const preprocess = str(m.preprocess, 'model.preprocess');
  if (!(PREPROCESS_IDS as readonly string[]).includes(preprocess)) fail(`model.preprocess "${preprocess}" is unknown`);
  return {
    path: str(m.path, 'model.path'),
    name: str(m.name, 'model.name'),
    format: m.format === 'graph-model' || m.format === 'onnx' ? m.format : 'layers-model',
    ...(m.source === 'keras3' || m.source === 'keras3-h5' || m.source === 'keras2-h5' ? { source: m.source } : {}),
    backend: str(m.backend, 'model.backend'),
    inputSize: [num(inputSize[0], 'inputSize[0]'), num(inputSize[1], 'inputSize[1]'), num(inputSize[2], 'inputSize[2]')],
    preprocess: preprocess as ModelInfo['preprocess'],
    preprocessAssumed: Boolean(m.preprocessAssumed),
    ...(typeof m.preprocessNote === 'string' && m.preprocessNote ? { preprocessNote: m.preprocessNote } : {}),
    labels: arr(m.labels, 'model.labels').map((l, i) => str(l, `model.labels[${i}]`)),
    ...(m.labelsAssumed === true ? { labelsAssumed: true } : {}),
    recommendedLayer: m.recommendedLayer === null || m.recommendedLayer === undefined ? null : str(m.recommendedLayer, 'model.recommendedLayer'),
    spatialLayers: arr(m.spatialLayers, 'model.spatialLayers').map((l, i) => str(l, `model.spatialLayers[${i}]`)),
    ...(m.outputs !== undefined ? {
      outputs: arr(m.outputs, 'model.outputs').map((o, i) => {
        const x = obj(o, `model.outputs[${i}]`);
        return {
          name: str(x.name, `model.outputs[${i}].name`),
          units: x.units === null || x.units === undefined ? null : num(x.units, `model.outputs[${i}].units`),
          ...(typeof x.activation === 'string' ? { activation: x.activation } : {}),
        };
      }),
    } : {}),
    ...(m.output !== undefined ? { output: str(m.output, 'model.output') } : {}),
    ...(m.binary === true ? { binary: true } : {}),
  };
}

function method(x: unknown, i: number): MethodInfo {
  const m = obj(x, `methods[${i}]`);
  // The host lists the engine registry's methods: any id of the right form is one.
  return {
    id: str(m.id, `methods[${i}].id`),
    label: str(m.label, `methods[${i}].label`),
    needsGradients: Boolean(m.needsGradients),
    classIndependent: Boolean(m.classIndependent),
    available: bool(m.available, `methods[${i}].available`),
    reason: typeof m.reason === 'string' ? m.reason : undefined,
    ...(m.group === 'cam' || m.group === 'pixel' ? { group: m.group } : {}),
    ...(typeof m.usesLayer === 'boolean' ? { usesLayer: m.usesLayer } : {}),
    ...(m.params !== undefined ? { params: arr(m.params, `methods[${i}].params`).map((p, j) => methodParam(p, `methods[${i}].params[${j}]`)) } : {}),
  };
}

/** A method option as the Options area builds its input from it: kind, default of that kind, bounds, choices. */
function methodParam(x: unknown, what: string): MethodParam {
  const p = obj(x, what);
  const kind = p.kind === 'number' || p.kind === 'choice' || p.kind === 'boolean' ? p.kind : fail(`${what}.kind is not number, choice or boolean`);
  const choices = p.choices === undefined ? undefined : arr(p.choices, `${what}.choices`).map((c, k) => {
    const o = obj(c, `${what}.choices[${k}]`);
    return { value: str(o.value, `${what}.choices[${k}].value`), label: str(o.label, `${what}.choices[${k}].label`) };
  });
  const def = kind === 'number' ? num(p.default, `${what}.default`) : kind === 'boolean' ? bool(p.default, `${what}.default`) : str(p.default, `${what}.default`);
  const optNum = (k: 'min' | 'max' | 'step') => (p[k] === undefined || p[k] === null ? {} : { [k]: num(p[k], `${what}.${k}`) });
  return {
    id: str(p.id, `${what}.id`),
    label: str(p.label, `${what}.label`),
    kind,
    default: def,
    ...optNum('min'),
    ...optNum('max'),
    ...optNum('step'),
    ...(choices ? { choices } : {}),
    description: typeof p.description === 'string' ? p.description : '',
    ...(p.common === true ? { common: true } : {}),
  };
}

export function heatmap(x: unknown, what = 'heatmap'): HeatmapPayload {
  const h = obj(x, what);
  const width = int(h.width, `${what}.width`);
  const height = int(h.height, `${what}.height`);
  if (width < 1 || height < 1) fail(`${what} is ${width}x${height}`);
  return {
    width,
    height,
    values: toFloat32(h.values, width * height, `${what}.values`),
    rawMin: num(h.rawMin, `${what}.rawMin`),
    rawMax: num(h.rawMax, `${what}.rawMax`),
    // Pixel saliency (#15): a sign, or an RGB image (three values per pixel).
    ...(h.signed === true ? { signed: true } : {}),
    ...(h.rgb !== undefined && h.rgb !== null ? { rgb: toFloat32(h.rgb, width * height * 3, `${what}.rgb`) } : {}),
  };
}

function layer(x: unknown, i: number): LayerSummary {
  const l = obj(x, `layers[${i}]`);
  return {
    name: str(l.name, `layers[${i}].name`),
    className: str(l.className, `layers[${i}].className`),
    outputShape: arr(l.outputShape, `layers[${i}].outputShape`).map((d) => (d === null ? null : num(d, `layers[${i}].outputShape`))),
    params: num(l.params, `layers[${i}].params`),
    inbound: arr(l.inbound, `layers[${i}].inbound`).map((n) => str(n, `layers[${i}].inbound`)),
    spatial: bool(l.spatial, `layers[${i}].spatial`),
  };
}

function features(m: Record<string, unknown>): FeatureMapsPayload {
  const width = int(m.width, 'width');
  const height = int(m.height, 'height');
  const channels = int(m.channels, 'channels');
  const n = width * height;
  return {
    layer: str(m.layer, 'layer'),
    width,
    height,
    channels,
    values: toFloat32(m.values, n * channels, 'values'),
    min: toFloat32(m.min, channels, 'min'),
    max: toFloat32(m.max, channels, 'max'),
    mean: toFloat32(m.mean, channels, 'mean'),
    weights: m.weights === undefined || m.weights === null ? undefined : toFloat32(m.weights, channels, 'weights'),
    classIndex: m.classIndex === undefined || m.classIndex === null ? undefined : int(m.classIndex, 'classIndex'),
  };
}

function parse<T>(x: unknown, body: (m: Record<string, unknown>, type: string) => T): Parsed<T> {
  try {
    const m = obj(x, 'message');
    return { ok: true, message: body(m, str(m.type, 'type')) };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, reason: e.message };
    throw e;
  }
}

/** Validates a message for the explain panel. */
export function parseExplainHostMessage(x: unknown): Parsed<ExplainHostMessage> {
  return parse<ExplainHostMessage>(x, (m, type) => {
    switch (type) {
      case 'panel/didInit': {
        const imageSize = arr(m.imageSize, 'imageSize');
        if (!isExplainViewState(m.state)) fail('state is not a valid ExplainViewState');
        return {
          type,
          imageUri: str(m.imageUri, 'imageUri'),
          imageName: str(m.imageName, 'imageName'),
          imageSize: [int(imageSize[0], 'imageSize[0]'), int(imageSize[1], 'imageSize[1]')],
          model: model(m.model),
          methods: arr(m.methods, 'methods').map(method),
          state: m.state,
          ...(m.image !== undefined && m.image !== null ? { image: imageDescription(m.image) } : {}),
        };
      }
      case 'predictions/didCompute': {
        const predictions = arr(m.predictions, 'predictions').map((p, i) => prediction(p, `predictions[${i}]`));
        if (m.probabilities === undefined || m.probabilities === null) return { type, predictions };
        return { type, predictions, probabilities: toFloat32(m.probabilities, lengthOf(m.probabilities, 'probabilities'), 'probabilities') };
      }
      case 'cam/didCompute': {
        const requestId = int(m.requestId, 'requestId');
        const timings = obj(m.timingsMs, 'timingsMs');
        const timingsMs: Record<string, number> = {};
        for (const [k, v] of Object.entries(timings)) if (typeof v === 'number') timingsMs[k] = v;
        return {
          type,
          requestId,
          method: str(m.method, 'method'),
          layer: str(m.layer, 'layer'),
          target: prediction(m.target, 'target'),
          heatmap: heatmap(m.heatmap),
          timingsMs,
          backend: str(m.backend, 'backend'),
          cached: Boolean(m.cached),
          ...(m.details !== undefined ? { details: mapDetails(m.details) } : {}),
          ...(m.layers !== undefined ? { layers: arr(m.layers, 'layers').map((l, i) => str(l, `layers[${i}]`)) } : {}),
        };
      }
      case 'cam/didProgress':
        return { type, requestId: int(m.requestId, 'requestId'), done: num(m.done, 'done'), total: num(m.total, 'total') };
      case 'export/didSave':
        return { type, requestId: int(m.requestId, 'requestId'), path: str(m.path, 'path') };
      case 'request/didFail':
        return { type, requestId: int(m.requestId, 'requestId'), error: error(m.error) };
      case 'panel/didFail':
        return { type, error: error(m.error), imageName: typeof m.imageName === 'string' && m.imageName ? m.imageName : undefined };
      default:
        return fail(`unknown message type "${type}"`);
    }
  });
}

/** Validates a message for the model inspector panel. */
export function parseInspectorHostMessage(x: unknown): Parsed<InspectorHostMessage> {
  return parse<InspectorHostMessage>(x, (m, type) => {
    switch (type) {
      case 'panel/didInit':
        return { type, model: model(m.model), layers: arr(m.layers, 'layers').map(layer), totalParams: num(m.totalParams, 'totalParams') };
      case 'image/didChoose':
        return {
          type,
          requestId: int(m.requestId, 'requestId'),
          imageName: str(m.imageName, 'imageName'),
          imageUri: str(m.imageUri, 'imageUri'),
          predictions: arr(m.predictions, 'predictions').map((p, i) => prediction(p, `predictions[${i}]`)),
        };
      case 'features/didCompute':
        return { type, requestId: int(m.requestId, 'requestId'), ...features(m) };
      case 'model/didUse':
        return { type, requestId: int(m.requestId, 'requestId'), path: str(m.path, 'path') };
      case 'request/didFail':
        return { type, requestId: int(m.requestId, 'requestId'), error: error(m.error) };
      case 'panel/didFail':
        return { type, error: error(m.error) };
      default:
        return fail(`unknown message type "${type}"`);
    }
  });
}
