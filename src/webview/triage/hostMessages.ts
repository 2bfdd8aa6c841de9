/**
 * Checks and normalises the triage panel's messages from the host (see common/hostMessages.ts for why). Pure.
 * Typed arrays may arrive as typed arrays, number arrays or index-keyed objects (a JSON round trip); all become
 * the declared type or the message is refused.
 */
import { SCAN_SCORE_KINDS, isTriageViewState } from '../../shared/protocol';
import type {
  CamMethodId,
  ColormapId,
  ScanDatasetInfo,
  ScanFailureInfo,
  TriageCounts,
  TriageHostMessage,
  TriageMap,
  TriageRow,
} from '../../shared/protocol';
import { Invalid, arr, error, fail, heatmap, int, isObj, num, obj, prediction, str, type Parsed } from '../common/hostMessages';

export function toInt32(x: unknown, what: string): Int32Array {
  if (x instanceof Int32Array) return x;
  if (Array.isArray(x)) return Int32Array.from(x.map((v, i) => int(v, `${what}[${i}]`)));
  if (ArrayBuffer.isView(x)) return Int32Array.from(x as unknown as ArrayLike<number>);
  if (isObj(x)) {
    const keys = Object.keys(x).filter((k) => /^\d+$/.test(k));
    const out = new Int32Array(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = int(x[String(i)], `${what}[${i}]`);
    return out;
  }
  return fail(`${what} is not an integer array`);
}

function row(x: unknown, i: number): TriageRow {
  const r = obj(x, `rows[${i}]`);
  const w = `rows[${i}]`;
  const out: TriageRow = {
    seq: int(r.seq, `${w}.seq`),
    path: str(r.path, `${w}.path`),
    imageUri: str(r.imageUri, `${w}.imageUri`),
    givenIndex: int(r.givenIndex, `${w}.givenIndex`),
    givenLabel: str(r.givenLabel, `${w}.givenLabel`),
    predictedIndex: int(r.predictedIndex, `${w}.predictedIndex`),
    predictedLabel: str(r.predictedLabel, `${w}.predictedLabel`),
    top: arr(r.top, `${w}.top`).map((p, k) => prediction(p, `${w}.top[${k}]`)),
    selfConfidence: num(r.selfConfidence, `${w}.selfConfidence`),
    normalizedMargin: num(r.normalizedMargin, `${w}.normalizedMargin`),
    entropy: num(r.entropy, `${w}.entropy`),
    score: num(r.score, `${w}.score`),
    flagged: r.flagged === true,
  };
  if (typeof r.movedFrom === 'string') out.movedFrom = r.movedFrom;
  if (r.rendered === true) out.rendered = true;
  return out;
}

/** PNG bytes: a Uint8Array as posted, or the number array / index-keyed object a JSON round trip makes of it. */
function bytes(x: unknown, what: string): Uint8Array {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (Array.isArray(x) && x.every((v) => Number.isInteger(v) && v >= 0 && v < 256)) return Uint8Array.from(x as number[]);
  if (isObj(x)) {
    const vals = Object.keys(x).sort((a, b) => Number(a) - Number(b)).map((k) => x[k]);
    if (vals.every((v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < 256)) return Uint8Array.from(vals as number[]);
  }
  return fail(`${what} is not a byte array`);
}

function counts(x: unknown): TriageCounts {
  const c = obj(x, 'counts');
  const k = (name: keyof TriageCounts) => int(c[name], `counts.${name}`);
  return {
    images: k('images'),
    samples: k('samples'),
    scanned: k('scanned'),
    failed: k('failed'),
    flagged: k('flagged'),
    reviewedHidden: k('reviewedHidden'),
    nonImageFiles: k('nonImageFiles'),
    unmatchedImages: k('unmatchedImages'),
    missingFiles: k('missingFiles'),
  };
}

function failures(x: unknown): ScanFailureInfo[] {
  return arr(x, 'failures').map((f, i) => {
    const o = obj(f, `failures[${i}]`);
    return { path: str(o.path, `failures[${i}].path`), error: str(o.error, `failures[${i}].error`) };
  });
}

function dataset(x: unknown): ScanDatasetInfo {
  const d = obj(x, 'dataset');
  const kind = str(d.kind, 'dataset.kind');
  if (kind !== 'folder' && kind !== 'csv' && kind !== 'json') fail(`dataset.kind "${kind}" is unknown`);
  const scoredBy = str(d.scoredBy, 'dataset.scoredBy');
  if (!(SCAN_SCORE_KINDS as readonly string[]).includes(scoredBy)) fail(`dataset.scoredBy "${scoredBy}" is unknown`);
  const c = obj(d.counts, 'dataset.counts');
  return {
    kind,
    source: str(d.source, 'dataset.source'),
    root: str(d.root, 'dataset.root'),
    total: int(d.total, 'dataset.total'),
    counts: {
      images: int(c.images, 'dataset.counts.images'),
      nonImageFiles: int(c.nonImageFiles, 'dataset.counts.nonImageFiles'),
      unmatchedImages: int(c.unmatchedImages, 'dataset.counts.unmatchedImages'),
      missingFiles: int(c.missingFiles, 'dataset.counts.missingFiles'),
    },
    unmatchedClasses: arr(d.unmatchedClasses, 'dataset.unmatchedClasses').map((u, i) => {
      const o = obj(u, `unmatchedClasses[${i}]`);
      return { name: str(o.name, `unmatchedClasses[${i}].name`), images: int(o.images, `unmatchedClasses[${i}].images`) };
    }),
    labels: arr(d.labels, 'dataset.labels').map((l, i) => str(l, `dataset.labels[${i}]`)),
    scoredBy: scoredBy as ScanDatasetInfo['scoredBy'],
    reviewed: int(d.reviewed, 'dataset.reviewed'),
    ...(d.outputs !== undefined ? {
      outputs: arr(d.outputs, 'dataset.outputs').map((o, i) => {
        const x = obj(o, `dataset.outputs[${i}]`);
        return {
          name: str(x.name, `dataset.outputs[${i}].name`),
          units: x.units === null || x.units === undefined ? null : num(x.units, `dataset.outputs[${i}].units`),
          ...(typeof x.activation === 'string' ? { activation: x.activation } : {}),
        };
      }),
    } : {}),
    ...(d.output !== undefined ? { output: str(d.output, 'dataset.output') } : {}),
  };
}

function map(x: unknown, what: string): TriageMap {
  const m = obj(x, what);
  return { target: prediction(m.target, `${what}.target`), heatmap: heatmap(m.heatmap, `${what}.heatmap`) };
}

/** A method id: the host names only methods of the engine's registry, so only its form is checked. */
function method(x: unknown): CamMethodId {
  return str(x, 'method');
}

/** Validates a message for the triage panel. */
export function parseTriageHostMessage(x: unknown): Parsed<TriageHostMessage> {
  try {
    const m = obj(x, 'message');
    const type = str(m.type, 'type');
    let message: TriageHostMessage;
    switch (type) {
      case 'panel/didInit': {
        if (!isTriageViewState(m.state)) fail('state is not a valid TriageViewState');
        const colormap = str(m.colormap, 'colormap');
        if (!['turbo', 'jet', 'viridis', 'inferno', 'gray'].includes(colormap)) fail(`colormap "${colormap}" is unknown`);

        message = {
          type,
          modelName: str(m.modelName, 'modelName'),
          modelPath: str(m.modelPath, 'modelPath'),
          source: str(m.source, 'source'),
          sourceName: str(m.sourceName, 'sourceName'),
          method: method(m.method),
          colormap: colormap as ColormapId,
          opacity: Math.max(0, Math.min(1, num(m.opacity, 'opacity'))),
          state: m.state,
        };
        break;
      }
      case 'scan/didStart':
        message = { type, scanId: int(m.scanId, 'scanId'), dataset: dataset(m.dataset), counts: counts(m.counts) };
        break;
      case 'scan/didProgress':
        message = {
          type,
          scanId: int(m.scanId, 'scanId'),
          done: int(m.done, 'done'),
          total: int(m.total, 'total'),
          imagesPerSecond: num(m.imagesPerSecond, 'imagesPerSecond'),
          secondsLeft: num(m.secondsLeft, 'secondsLeft'),
          counts: counts(m.counts),
          rows: arr(m.rows, 'rows').map(row),
          failures: failures(m.failures),
          flagsOn: toInt32(m.flagsOn, 'flagsOn'),
          flagsOff: toInt32(m.flagsOff, 'flagsOff'),
        };
        break;
      case 'scan/didFinish':
        message = {
          type,
          scanId: int(m.scanId, 'scanId'),
          cancelled: m.cancelled === true,
          seconds: num(m.seconds, 'seconds'),
          counts: counts(m.counts),
          order: toInt32(m.order, 'order'),
          flagged: toInt32(m.flagged, 'flagged'),
        };
        break;
      case 'scan/didFail':
        message = { type, scanId: int(m.scanId, 'scanId'), error: error(m.error) };
        break;
      case 'cam/didComputePair':
        message = {
          type,
          requestId: int(m.requestId, 'requestId'),
          path: str(m.path, 'path'),
          method: method(m.method),
          methodLabel: str(m.methodLabel, 'methodLabel'),
          layer: str(m.layer, 'layer'),
          given: map(m.given, 'given'),
          predicted: map(m.predicted, 'predicted'),
          ...(typeof m.note === 'string' && m.note ? { note: m.note } : {}),
        };
        break;
      case 'sample/didOpen':
        message = { type, requestId: int(m.requestId, 'requestId'), path: str(m.path, 'path') };
        break;
      case 'sample/didMarkCorrect':
        message = { type, requestId: int(m.requestId, 'requestId'), path: str(m.path, 'path'), counts: counts(m.counts) };
        break;
      case 'sample/didMove':
        message = { type, requestId: int(m.requestId, 'requestId'), path: str(m.path, 'path'), row: row(m.row, 0), counts: counts(m.counts) };
        break;
      case 'sample/didChange':
        message = { type, path: str(m.path, 'path'), row: row(m.row, 0), counts: counts(m.counts) };
        break;
      case 'report/didSave':
        message = { type, requestId: int(m.requestId, 'requestId'), path: str(m.path, 'path') };
        break;
      case 'sample/didRender':
        message = { type, requestId: int(m.requestId, 'requestId'), path: str(m.path, 'path'), png: bytes(m.png, 'png') };
        break;
      case 'request/didFail':
        message = { type, requestId: int(m.requestId, 'requestId'), error: error(m.error) };
        break;
      case 'panel/didFail':
        message = { type, error: error(m.error) };
        break;
      default:
        return fail(`unknown message type "${type}"`);
    }
    return { ok: true, message };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, reason: e.message };
    throw e;
  }
}
