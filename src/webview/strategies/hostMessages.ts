/**
 * Checks and normalises the strategies panel's messages from the host (see common/hostMessages.ts for why). Pure.
 * Maps arrive as Float32Arrays and the average image as a Uint8Array; a JSON round trip (a test harness) turns
 * them into number arrays or index-keyed objects, which become the declared typed arrays again, or the message is
 * refused.
 */
import { isStrategiesViewState } from '../../shared/protocol';
import type { ColormapId, StrategiesHostMessage, StrategiesRunOptions } from '../../shared/protocol';
import {
  isClusterCount,
  type StrategiesView,
  type StrategyClassView,
  type StrategyClusterView,
  type StrategyHints,
  type StrategyMapGrid,
  type StrategyMemberView,
  type StrategyRgbImage,
} from '../../shared/strategies';
import { Invalid, arr, error, fail, int, isObj, num, obj, str, toFloat32, type Parsed } from '../common/hostMessages';

const COLORMAPS = ['turbo', 'jet', 'viridis', 'inferno', 'gray'];
const CORNERS = ['top-left', 'top-right', 'bottom-left', 'bottom-right'];
const PHASES = ['maps', 'clusters', 'interventions'];
const CHOICES = ['eigengap', 'components', 'given', 'too few images'];

/** Bytes: a Uint8Array as posted, or the number array / index-keyed object a JSON round trip makes of it. */
function bytes(x: unknown, length: number, what: string): Uint8Array {
  let out: Uint8Array | undefined;
  if (x instanceof Uint8Array) out = x;
  else if (x instanceof ArrayBuffer) out = new Uint8Array(x);
  else if (Array.isArray(x) || isObj(x)) {
    const vals = Array.isArray(x) ? x : Object.keys(x).filter((k) => /^\d+$/.test(k)).sort((a, b) => Number(a) - Number(b)).map((k) => x[k]);
    if (vals.every((v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < 256)) out = Uint8Array.from(vals as number[]);
  }
  if (!out) return fail(`${what} is not a byte array`);
  if (out.length !== length) fail(`${what} holds ${out.length} bytes, expected ${length}`);
  return out;
}

function size(x: unknown, what: string): number {
  const n = int(x, what);
  if (n < 1 || n > 4096) fail(`${what} is ${n}, expected 1..4096`);
  return n;
}

function mapGrid(x: unknown, what: string): StrategyMapGrid {
  const m = obj(x, what);
  const width = size(m.width, `${what}.width`);
  const height = size(m.height, `${what}.height`);
  return { width, height, values: toFloat32(m.values, width * height, `${what}.values`) };
}

function rgbImage(x: unknown, what: string): StrategyRgbImage {
  const m = obj(x, what);
  const width = size(m.width, `${what}.width`);
  const height = size(m.height, `${what}.height`);
  return { width, height, data: bytes(m.data, width * height * 3, `${what}.data`) };
}

function share(x: unknown, what: string): { share: number; uniform: number; rule: string } {
  const h = obj(x, what);
  return { share: num(h.share, `${what}.share`), uniform: num(h.uniform, `${what}.uniform`), rule: str(h.rule, `${what}.rule`) };
}

function hints(x: unknown, what: string): StrategyHints {
  const h = obj(x, what);
  const corner = obj(h.corner, `${what}.corner`);
  const cornerName = str(corner.corner, `${what}.corner.corner`);
  if (!CORNERS.includes(cornerName)) fail(`${what}.corner.corner "${cornerName}" is unknown`);
  const out: StrategyHints = {
    border: share(h.border, `${what}.border`),
    corner: { ...share(corner, `${what}.corner`), corner: cornerName as StrategyHints['corner']['corner'] },
  };
  if (h.outsideBox !== undefined && h.outsideBox !== null) {
    const o = obj(h.outsideBox, `${what}.outsideBox`);
    out.outsideBox = { ...share(o, `${what}.outsideBox`), images: int(o.images, `${what}.outsideBox.images`) };
  }
  if (h.intervention !== undefined && h.intervention !== null) {
    const i = obj(h.intervention, `${what}.intervention`);
    const w = `${what}.intervention`;
    out.intervention = {
      hotDrop: num(i.hotDrop, `${w}.hotDrop`),
      controlDrop: num(i.controlDrop, `${w}.controlDrop`),
      ratio: num(i.ratio, `${w}.ratio`),
      baseline: num(i.baseline, `${w}.baseline`),
      images: int(i.images, `${w}.images`),
      rule: str(i.rule, `${w}.rule`),
    };
  }
  return out;
}

function member(x: unknown, what: string): StrategyMemberView {
  const m = obj(x, what);
  return {
    relPath: str(m.relPath, `${what}.relPath`),
    imageUri: str(m.imageUri, `${what}.imageUri`),
    distance: num(m.distance, `${what}.distance`),
    givenLabel: str(m.givenLabel, `${what}.givenLabel`),
    predictedLabel: str(m.predictedLabel, `${what}.predictedLabel`),
    probability: num(m.probability, `${what}.probability`),
  };
}

function cluster(x: unknown, what: string): StrategyClusterView {
  const c = obj(x, what);
  const out: StrategyClusterView = {
    id: int(c.id, `${what}.id`),
    size: int(c.size, `${what}.size`),
    fraction: num(c.fraction, `${what}.fraction`),
    averageMap: mapGrid(c.averageMap, `${what}.averageMap`),
    nearest: arr(c.nearest, `${what}.nearest`).map((m, i) => member(m, `${what}.nearest[${i}]`)),
    distances: arr(c.distances, `${what}.distances`).map((d, i) => {
      const o = obj(d, `${what}.distances[${i}]`);
      return { cluster: int(o.cluster, `${what}.distances[${i}].cluster`), distance: num(o.distance, `${what}.distances[${i}].distance`) };
    }),
    hints: hints(c.hints, `${what}.hints`),
  };
  if (c.nearestOther !== undefined) out.nearestOther = int(c.nearestOther, `${what}.nearestOther`);
  return out;
}

function classView(x: unknown, what: string): StrategyClassView {
  const c = obj(x, what);
  const choice = obj(c.clusterChoice, `${what}.clusterChoice`);
  const by = str(choice.by, `${what}.clusterChoice.by`);
  if (!CHOICES.includes(by)) fail(`${what}.clusterChoice.by "${by}" is unknown`);
  return {
    classIndex: int(c.classIndex, `${what}.classIndex`),
    label: str(c.label, `${what}.label`),
    count: int(c.count, `${what}.count`),
    averageMap: mapGrid(c.averageMap, `${what}.averageMap`),
    averageImage: rgbImage(c.averageImage, `${what}.averageImage`),
    clusterChoice: {
      by: by as StrategyClassView['clusterChoice']['by'],
      k: int(choice.k, `${what}.clusterChoice.k`),
      neighbours: int(choice.neighbours, `${what}.clusterChoice.neighbours`),
      ...(typeof choice.eigengap === 'number' ? { eigengap: choice.eigengap } : {}),
    },
    clusters: arr(c.clusters, `${what}.clusters`).map((k, i) => cluster(k, `${what}.clusters[${i}]`)),
    hints: hints(c.hints, `${what}.hints`),
  };
}

export function parseView(x: unknown): StrategiesView {
  const v = obj(x, 'view');
  const counts = obj(v.counts, 'view.counts');
  const rules = obj(v.rules, 'view.rules');
  const out: StrategiesView = {
    modelName: str(v.modelName, 'view.modelName'),
    method: str(v.method, 'view.method'),
    layer: str(v.layer, 'view.layer'),
    counts: {
      images: int(counts.images, 'view.counts.images'),
      analysed: int(counts.analysed, 'view.counts.analysed'),
      failed: int(counts.failed, 'view.counts.failed'),
      fromCache: int(counts.fromCache, 'view.counts.fromCache'),
    },
    cancelled: v.cancelled === true,
    seconds: num(v.seconds, 'view.seconds'),
    rules: {
      border: str(rules.border, 'view.rules.border'),
      corner: str(rules.corner, 'view.rules.corner'),
      outsideBox: str(rules.outsideBox, 'view.rules.outsideBox'),
      intervention: str(rules.intervention, 'view.rules.intervention'),
      clustering: str(rules.clustering, 'view.rules.clustering'),
    },
    classes: arr(v.classes, 'view.classes').map((c, i) => classView(c, `view.classes[${i}]`)),
    failures: arr(v.failures, 'view.failures').map((f, i) => {
      const o = obj(f, `view.failures[${i}]`);
      return { relPath: str(o.relPath, `view.failures[${i}].relPath`), error: str(o.error, `view.failures[${i}].error`) };
    }),
  };
  if (isObj(v.boxes)) {
    out.boxes = { source: str(v.boxes.source, 'view.boxes.source'), format: str(v.boxes.format, 'view.boxes.format'), images: int(v.boxes.images, 'view.boxes.images') };
  }
  return out;
}

function runOptions(x: unknown): StrategiesRunOptions {
  const o = obj(x, 'options');
  if (!isClusterCount(o.clusters)) fail('options.clusters is not "auto" or 1..8');
  return {
    method: str(o.method, 'options.method'),
    clusters: o.clusters,
    ...(o.layer !== undefined ? { layer: str(o.layer, 'options.layer') } : {}),
    ...(o.classIndex !== undefined ? { classIndex: int(o.classIndex, 'options.classIndex') } : {}),
  };
}

/** Validates a message for the strategies panel. */
export function parseStrategiesHostMessage(x: unknown): Parsed<StrategiesHostMessage> {
  try {
    const m = obj(x, 'message');
    const type = str(m.type, 'type');
    let message: StrategiesHostMessage;
    switch (type) {
      case 'panel/didInit': {
        if (!isStrategiesViewState(m.state)) fail('state is not a valid StrategiesViewState');
        const colormap = str(m.colormap, 'colormap');
        if (!COLORMAPS.includes(colormap)) fail(`colormap "${colormap}" is unknown`);
        message = {
          type,
          modelName: str(m.modelName, 'modelName'),
          modelPath: str(m.modelPath, 'modelPath'),
          source: str(m.source, 'source'),
          sourceName: str(m.sourceName, 'sourceName'),
          methods: arr(m.methods, 'methods').map((x, i) => {
            const o = obj(x, `methods[${i}]`);
            return { id: str(o.id, `methods[${i}].id`), label: str(o.label, `methods[${i}].label`), available: o.available !== false };
          }),
          layers: arr(m.layers, 'layers').map((l, i) => str(l, `layers[${i}]`)),
          recommendedLayer: m.recommendedLayer === null ? null : str(m.recommendedLayer, 'recommendedLayer'),
          labels: arr(m.labels, 'labels').map((l, i) => str(l, `labels[${i}]`)),
          colormap: colormap as ColormapId,
          opacity: Math.max(0, Math.min(1, num(m.opacity, 'opacity'))),
          state: m.state,
        };
        break;
      }
      case 'strategies/didStart':
        message = { type, runId: int(m.runId, 'runId'), options: runOptions(m.options) };
        break;
      case 'strategies/didProgress': {
        const phase = str(m.phase, 'phase');
        if (!PHASES.includes(phase)) fail(`phase "${phase}" is unknown`);
        message = {
          type,
          runId: int(m.runId, 'runId'),
          phase: phase as 'maps',
          done: int(m.done, 'done'),
          total: int(m.total, 'total'),
          mapsPerSecond: num(m.mapsPerSecond, 'mapsPerSecond'),
          secondsLeft: num(m.secondsLeft, 'secondsLeft'),
          failed: int(m.failed, 'failed'),
        };
        break;
      }
      case 'strategies/didFinish':
        message = { type, runId: int(m.runId, 'runId'), view: parseView(m.view) };
        break;
      case 'strategies/didFail':
        message = { type, runId: int(m.runId, 'runId'), error: error(m.error) };
        break;
      case 'strategies/didRecluster':
        if (!isClusterCount(m.clusters)) fail('clusters is not "auto" or 1..8');
        message = { type, requestId: int(m.requestId, 'requestId'), clusters: m.clusters, view: parseView(m.view) };
        break;
      case 'sample/didOpen':
        message = { type, requestId: int(m.requestId, 'requestId'), path: str(m.path, 'path') };
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
