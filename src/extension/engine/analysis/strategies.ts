/**
 * "Model Strategies" (issue #14): SpRAy over CAM maps. For the images of a labelled dataset (or of chosen
 * classes, by given or predicted label): the map of one method at one layer for the explained class, on a common
 * grid (maps.ts, cached); per class the average map and image, the spectral clusters of the maps (spectral.ts),
 * and per cluster its average map, its members nearest the centre, its distance from the class's other clusters
 * and the shortcut hints (hints.ts): heat in the border, in the hottest corner, outside the object boxes, and the
 * blur intervention (the explained class's probability with the cluster's hot region blurred, against a control
 * region of the same size). Types: types.ts.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CamLensError, throwIfAborted } from '../errors';
import { labelOf, resolveClass, type LoadedModel } from '../model';
import { getMethod } from '../cam/registry';
import type { Dataset, DatasetSample } from '../scan/dataset';
import { predictBatch } from '../scan/scan';
import type { PreprocessPreset } from '../preprocess';
import { boxesFor, readBoxes, type BoxSet } from './boxes';
import { averageMap, blurRegion, borderShare, cornerShare, interventionWindows, outsideBoxesShare, RULES, windowToPixels } from './hints';
import { computeMaps, MapCache, modelInput, type MapEntry, type MapJob } from './maps';
import { mapFeatures, spectralCluster } from './spectral';
import type {
  ClassStrategies, InterventionHint, MapGrid, OutsideBoxHint, ShortcutHints, StrategiesProgress, StrategiesReport, StrategiesRequest, StrategyCluster, StrategyMember,
} from './types';

export type StrategiesSettings = Omit<StrategiesRequest, 'model' | 'data'>;

export interface StrategiesOptions {
  cache?: MapCache;
  signal?: AbortSignal;
  onProgress?: (p: StrategiesProgress) => void;
  preprocess?: PreprocessPreset;
  maxPixels?: number;
}

export const DEFAULT_MAP_SIZE = 32;
export const INTERVENTION_MEMBERS = 16;
/** The floor of the control's drop in `ratio` (a control that changes nothing would make any drop infinitely many times it). */
export const CONTROL_FLOOR = 0.01;

/** Checks what can be checked without the model; throws BAD_ARGUMENT naming the value. */
export function checkSettings(s: StrategiesSettings): void {
  const bad = (msg: string) => {
    throw new CamLensError('BAD_ARGUMENT', msg);
  };
  if (s.clusters !== undefined && s.clusters !== 'auto' && !(Number.isInteger(s.clusters) && s.clusters >= 1 && s.clusters <= 64)) bad(`clusters must be 'auto' or an integer from 1 to 64, got ${s.clusters}`);
  if (s.maxClusters !== undefined && !(Number.isInteger(s.maxClusters) && s.maxClusters >= 1 && s.maxClusters <= 32)) bad(`maxClusters must be an integer from 1 to 32, got ${s.maxClusters}`);
  if (s.mapSize !== undefined && !(Number.isInteger(s.mapSize) && s.mapSize >= 4 && s.mapSize <= 128)) bad(`the map size must be an integer from 4 to 128, got ${s.mapSize}`);
  if (s.neighbours !== undefined && !(Number.isInteger(s.neighbours) && s.neighbours >= 1 && s.neighbours <= 100)) bad(`neighbours must be an integer from 1 to 100, got ${s.neighbours}`);
  if (s.seed !== undefined && !Number.isSafeInteger(s.seed)) bad(`the seed must be an integer, got ${s.seed}`);
  if (s.nearest !== undefined && !(Number.isInteger(s.nearest) && s.nearest >= 0 && s.nearest <= 1000)) bad(`nearest must be an integer from 0 to 1000, got ${s.nearest}`);
  if (s.groupBy !== undefined && s.groupBy !== 'given' && s.groupBy !== 'predicted') bad(`groupBy must be 'given' or 'predicted', got ${s.groupBy}`);
  if (s.explain !== undefined && s.explain !== 'group' && s.explain !== 'predicted') bad(`explain must be 'group' or 'predicted', got ${s.explain}`);
}

/** The target layer's name: the given one if it is a spatial layer, else the model's recommended layer. */
export function resolveLayer(model: LoadedModel, layer?: string): string {
  const g = model.graph;
  const op = layer ? g.op(layer) : g.recommendedTarget();
  if (op.className === 'InputLayer' || op.outputShape.length !== 4) {
    throw new CamLensError('LAYER_NOT_SPATIAL', `layer "${op.name}" (${op.className}) has output shape [${op.outputShape.map((d) => d ?? 'N').join(', ')}], not a spatial feature map`,
      `pick a convolutional layer, such as "${g.recommendedTarget().name}"`);
  }
  return op.name;
}

function unit(v: Float32Array): Float32Array {
  let ss = 0;
  for (const x of v) ss += x * x;
  const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
  return v.map((x) => x * inv);
}

function euclid(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

function round(x: number, d = 4): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

interface Analysed {
  sample: DatasetSample;
  entry: MapEntry;
}

function areaHints(maps: MapGrid, members: Analysed[], memberMaps: Float32Array[], boxes: BoxSet | undefined, grid: { width: number; height: number }): ShortcutHints {
  const hints: ShortcutHints = { border: borderShare(maps), corner: cornerShare(maps) };
  if (boxes) {
    let share = 0;
    let uniform = 0;
    let images = 0;
    members.forEach((m, i) => {
      const b = boxesFor(boxes, m.sample.relPath, m.entry.imageWidth, m.entry.imageHeight);
      if (!b) return;
      const r = outsideBoxesShare({ ...grid, values: memberMaps[i] }, b);
      share += r.share;
      uniform += r.uniform;
      images++;
    });
    if (images) hints.outsideBox = { share: share / images, uniform: uniform / images, images, rule: RULES.outsideBox } satisfies OutsideBoxHint;
  }
  return hints;
}

/** The blur intervention on a cluster's members nearest its centre (see RULES.intervention). */
async function intervene(model: LoadedModel, avg: MapGrid, members: Analysed[], opts: StrategiesOptions): Promise<InterventionHint | undefined> {
  const { hot, control } = interventionWindows(avg);
  const W = model.inputWidth;
  const H = model.inputHeight;
  const C = model.inputChannels;
  const hotBox = windowToPixels(hot, avg, W, H);
  const controlBox = windowToPixels(control, avg, W, H);
  const off = model.metadata.labelOffset;
  let base = 0;
  let hotDrop = 0;
  let controlDrop = 0;
  let images = 0;
  const BATCH = 8;
  // Without the caller's cache, one for this call: the same code path, nothing kept.
  const cache = opts.cache ?? new MapCache();
  const regions = [undefined, hotBox, controlBox];
  for (let i = 0; i < members.length; i += BATCH) {
    throwIfAborted(opts.signal, 'the intervention');
    const part = members.slice(i, i + BATCH);
    // Per member its three probabilities (as it is, hot region blurred, control blurred): from the cache where
    // there, else computed in one batch with the other members' missing ones.
    const found: (number | undefined)[][] = [];
    const keys: string[][] = [];
    const inputs: Float32Array[] = [];
    const slots: { member: number; variant: number }[] = [];
    part.forEach((m, j) => {
      keys[j] = MapCache.probeKeys(model, m.sample.path, m.entry.explainedIndex + off, regions, opts);
      found[j] = keys[j].map((k) => cache.getProbe(k));
    });
    for (let j = 0; j < part.length; j++) {
      if (found[j].every((p) => p !== undefined)) continue;
      let x: Float32Array;
      try {
        x = await modelInput(model, part[j].sample.path, opts);
      } catch {
        found[j] = []; // decoded once already; a file changed since is left out of the means
        continue;
      }
      regions.forEach((r, v) => {
        if (found[j][v] !== undefined) return;
        inputs.push(r ? blurRegion(x, W, H, C, r) : x);
        slots.push({ member: j, variant: v });
      });
    }
    if (inputs.length) {
      const probs = await predictBatch(model, inputs);
      slots.forEach(({ member, variant }, t) => {
        const p = probs[t][part[member].entry.explainedIndex + off];
        found[member][variant] = p;
        cache.setProbe(keys[member][variant], p);
      });
    }
    for (const [p0, pHot, pControl] of found) {
      if (p0 === undefined || pHot === undefined || pControl === undefined) continue;
      base += p0;
      hotDrop += p0 - pHot;
      controlDrop += p0 - pControl;
      images++;
    }
  }
  if (!images) return undefined;
  hotDrop /= images;
  controlDrop /= images;
  return {
    hotDrop,
    controlDrop,
    ratio: hotDrop / Math.max(controlDrop, CONTROL_FLOOR),
    baseline: base / images,
    hotRegion: hotBox,
    controlRegion: controlBox,
    images,
    rule: RULES.intervention,
  };
}

/** The boxes to use: the given source, else a boxes.json in the dataset folder (ignored there if unreadable). */
function loadBoxes(dataset: Dataset, source: string | undefined): BoxSet | undefined {
  if (source) return readBoxes(source);
  const dir = dataset.kind === 'folder' ? dataset.root : path.dirname(dataset.source);
  const file = path.join(dir, 'boxes.json');
  if (!fs.existsSync(file)) return undefined;
  try {
    return readBoxes(file);
  } catch {
    return undefined;
  }
}

export async function analyseStrategies(model: LoadedModel, dataset: Dataset, settings: StrategiesSettings = {}, opts: StrategiesOptions = {}): Promise<StrategiesReport> {
  const t0 = performance.now();
  checkSettings(settings);
  const method = getMethod(settings.method ?? 'gradcam');
  if (method.needsGradients && model.supportsGradients === false) {
    throw new CamLensError('METHOD_NOT_APPLICABLE', `${method.label} needs gradients, and they do not reach this model's layers` +
      (model.gradientNote ? `: ${model.gradientNote}` : ''), 'use scorecam or eigencam (or cam where the head allows it)');
  }
  const layer = resolveLayer(model, settings.layer);
  const size = settings.mapSize ?? 32;
  const grid = { width: size, height: size };
  const groupBy = settings.groupBy ?? 'given';
  const explain = settings.explain ?? 'group';
  const off = model.metadata.labelOffset;
  const wanted = settings.classes?.length ? new Set(settings.classes.map((c) => resolveClass(model, c) - off)) : undefined;
  const boxes = loadBoxes(dataset, settings.boxes);

  const samples = groupBy === 'given' && wanted ? dataset.samples.filter((s) => wanted.has(s.givenIndex)) : dataset.samples;
  const jobs: MapJob[] = samples.map((s) => ({ sample: s, explain: groupBy === 'given' && explain === 'group' ? s.givenIndex : undefined }));
  const spec = { method: method.id, layer, methodOptions: settings.methodOptions, gridWidth: size, gridHeight: size };
  const maps = await computeMaps(model, jobs, spec, {
    cache: opts.cache,
    signal: opts.signal,
    preprocess: opts.preprocess,
    maxPixels: opts.maxPixels,
    onProgress: (p) => opts.onProgress?.({ phase: 'maps', done: p.done, total: p.total, mapsPerSecond: p.mapsPerSecond, secondsLeft: p.secondsLeft, failed: p.failed }),
  });
  let cancelled = maps.cancelled;

  // Groups by class, in label order.
  const groups = new Map<number, Analysed[]>();
  maps.entries.forEach((entry, i) => {
    if (!entry) return;
    const cls = groupBy === 'given' ? jobs[i].sample.givenIndex : entry.predictedIndex;
    if (wanted && !wanted.has(cls)) return;
    const list = groups.get(cls) ?? [];
    list.push({ sample: jobs[i].sample, entry });
    groups.set(cls, list);
  });
  const classIds = [...groups.keys()].sort((a, b) => a - b);
  const classes: ClassStrategies[] = [];
  const nearestCount = settings.nearest ?? 6;
  const intervention = settings.intervention !== false;
  let clusterDone = 0;
  const clusterTotal = classIds.length;
  for (const cls of classIds) {
    const members = groups.get(cls) as Analysed[];
    const memberMaps = members.map((m) => m.entry.map);
    const feats = mapFeatures(memberMaps, size, size);
    const sc = spectralCluster(feats.data, feats.dim, { clusters: settings.clusters, maxClusters: settings.maxClusters, neighbours: settings.neighbours, seed: settings.seed ?? 1 });
    opts.onProgress?.({ phase: 'clusters', done: ++clusterDone, total: clusterTotal, mapsPerSecond: 0, secondsLeft: 0, failed: maps.failures.length });
    const units = memberMaps.map(unit);
    const clusterMembers: number[][] = Array.from({ length: sc.k }, () => []);
    sc.labels.forEach((c, i) => clusterMembers[c].push(i));
    const distance = new Float64Array(members.length);
    const clusterAverages: MapGrid[] = [];
    const clusters: StrategyCluster[] = clusterMembers.map((idx, c) => {
      const centre = new Float32Array(size * size);
      for (const i of idx) for (let t = 0; t < centre.length; t++) centre[t] += units[i][t] / idx.length;
      for (const i of idx) distance[i] = euclid(units[i], centre);
      const order = [...idx].sort((a, b) => distance[a] - distance[b] || a - b);
      const avg = averageMap(idx.map((i) => memberMaps[i]), size, size);
      clusterAverages.push(avg);
      return {
        id: c,
        size: idx.length,
        fraction: idx.length / members.length,
        averageMap: avg,
        members: order,
        nearest: order.slice(0, nearestCount).map((i) => ({ path: members[i].sample.path, relPath: members[i].sample.relPath, distance: round(distance[i]) })),
        distances: [],
        hints: areaHints(avg, idx.map((i) => members[i]), idx.map((i) => memberMaps[i]), boxes, grid),
      };
    });
    const unitAverages = clusterAverages.map((a) => unit(a.values));
    for (const c of clusters) {
      c.distances = clusters.filter((o) => o.id !== c.id).map((o) => ({ cluster: o.id, distance: round(euclid(unitAverages[c.id], unitAverages[o.id])) }));
      if (c.distances.length) c.nearestOther = Math.min(...c.distances.map((d) => d.distance));
    }
    const classAvg = averageMap(memberMaps, size, size);
    const image = new Float64Array(size * size * 3);
    for (const m of members) for (let t = 0; t < image.length; t++) image[t] += m.entry.thumb[t] / members.length;
    const memberList: StrategyMember[] = members.map((m, i) => ({
      path: m.sample.path,
      relPath: m.sample.relPath,
      givenIndex: m.sample.givenIndex,
      givenLabel: labelOf(model, m.sample.givenIndex + off),
      predictedIndex: m.entry.predictedIndex,
      predictedLabel: labelOf(model, m.entry.predictedIndex + off),
      predictedProbability: m.entry.predictedProbability,
      explainedIndex: m.entry.explainedIndex,
      probability: m.entry.probability,
      cluster: sc.labels[i],
      distance: round(distance[i]),
    }));
    classes.push({
      classIndex: cls,
      label: labelOf(model, cls + off),
      count: members.length,
      averageMap: classAvg,
      averageImage: { width: size, height: size, data: Uint8Array.from(image, (v) => Math.round(v)) },
      clusterChoice: { by: sc.by === 'components' ? 'eigengap' : sc.by, ...(sc.by === 'components' ? { components: sc.k } : {}), k: sc.k, eigenvalues: sc.eigenvalues.map((v) => round(v, 6)), ...(sc.eigengap !== undefined ? { eigengap: round(sc.eigengap, 6) } : {}), neighbours: sc.neighbours },
      clusters,
      members: memberList,
      hints: areaHints(classAvg, members, memberMaps, boxes, grid),
    });
  }

  if (intervention && !cancelled) {
    const todo = classes.flatMap((c) => c.clusters.map((k) => ({ c, k })));
    let done = 0;
    try {
      for (const { c, k } of todo) {
        const analysed = groups.get(c.classIndex) as Analysed[];
        const chosen = k.members.slice(0, INTERVENTION_MEMBERS).map((i) => analysed[i]);
        const hint = await intervene(model, k.averageMap, chosen, opts);
        if (hint) k.hints.intervention = hint;
        opts.onProgress?.({ phase: 'interventions', done: ++done, total: todo.length, mapsPerSecond: 0, secondsLeft: 0, failed: maps.failures.length });
      }
    } catch (e) {
      if (!opts.signal?.aborted) throw e;
      cancelled = true;
    }
  }

  return {
    version: 1,
    model: model.path,
    modelName: model.name,
    data: dataset.source,
    method: method.id,
    layer,
    groupBy,
    explain,
    mapSize: grid,
    ...(boxes ? { boxes: { source: boxes.source, format: boxes.format, images: boxes.entries.size } } : {}),
    counts: { images: jobs.length, analysed: maps.entries.filter(Boolean).length, failed: maps.failures.length, fromCache: maps.fromCache },
    cancelled,
    seconds: (performance.now() - t0) / 1000,
    rules: RULES,
    classes,
    failures: maps.failures,
  };
}
