/**
 * Two models side by side (issue #14 item 4): for one image, both models' predictions and maps for the same
 * class, method and (each model's own) layer, their difference map and the rank correlation of the two maps;
 * for a labelled dataset, the samples ranked by how much the two models disagree.
 *
 * Typical pairs: two checkpoints of one network, a Keras and an ONNX export of it, or a model and a copy trained on
 * data with a shortcut (models/demo against models/demo-shortcut). Each model runs on its own input (its own size,
 * channels and preprocessing) from the same decoded image.
 *
 * The class. Both maps explain the same class, so that their difference means something:
 * - a class index is a class of model A; where the two label lists are equal it is the same index in B, else B's
 *   class is found by A's label name (exact, then ignoring case and separators, then an ImageNet-style synonym: the
 *   dataset matcher of engine/scan/dataset.ts);
 * - a label is looked up in each model; a class one of them lacks is an UNKNOWN_CLASS error naming that model;
 * - no class: model A's top-1 class (matched in B as above).
 * Over a dataset, each sample's map explains its GIVEN label (matched by name in each model), or the one class
 * given for all: a watermark that only one model looks at shows as a low correlation even where both models
 * predict the right class, and a top-1 disagreement is reported on its own.
 *
 * Maths. The maps (each in [0, 1], at its layer's resolution) are resampled bilinearly (half-pixel centres, as
 * tf.image.resizeBilinear with halfPixelCenters) to a common grid: the larger width and the larger height of the
 * two. On that grid:
 * - difference d = A - B, in [-1, 1] (positive: where A looks more than B);
 * - mean absolute difference = mean |d|;
 * - Spearman's rank correlation rho = Pearson correlation of the ranks of the cells (ties get their average rank,
 *   which matters: a ReLU'd map has many zeros). rho = 1 for maps that order the cells the same way, whatever
 *   their scale; a map without variance (all cells equal) has no order: rho is then 1 where both maps are equal
 *   and 0 otherwise, never NaN.
 *
 * Pure engine code: no `vscode`, never prints; long work takes an AbortSignal and reports progress. Every tensor
 * lives in an ImageSession that is disposed here (dataset) or by its owner (single image).
 */
import { CamLensError, throwIfAborted, toErrorInfo } from '../errors';
import { labelOf, numClasses, resolveClass, type LoadedModel } from '../model';
import { decodeImage, type DecodedImage } from '../image';
import { dicomOptionsFor, prepareInput } from '../pipeline';
import { ImageSession, type Prediction } from '../session';
import type { MapResult } from '../cam/base';
import sharp from 'sharp';
import { upsampleBilinear } from '../../../shared/heatmap';
import { colormapIndex, colormapLut, divergingIndex, divergingLut, type ColormapName } from '../../../shared/colormaps';
import { makeClassMatcher, type Dataset, type DatasetSample } from '../scan/dataset';

/** A map with explicit width and height, row-major. */
export interface GridMap {
  width: number;
  height: number;
  values: Float32Array;
}

// ---------------------------------------------------------------------------------------------------------
// Map maths

/**
 * Bilinear resampling of a row-major map to `outW` x `outH`, half-pixel centres (source = (x + 0.5) * in / out -
 * 0.5, clamped to the edge; shared/heatmap.ts, as the overlays), so a map keeps its place over the image whatever
 * the two sizes. Same size: a copy.
 */
export function resampleMap(map: GridMap, outW: number, outH: number): Float32Array {
  const { width: w, height: h, values } = map;
  if (values.length !== w * h) throw new CamLensError('BAD_ARGUMENT', `a ${w}x${h} map needs ${w * h} values, got ${values.length}`);
  if (w === outW && h === outH) return Float32Array.from(values);
  return upsampleBilinear(values, w, h, outW, outH);
}

/** Ranks 1..n of `v`, ties sharing their average rank. */
export function averageRanks(v: ArrayLike<number>): Float64Array {
  const n = v.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => v[i] - v[j]);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && v[order[j + 1]] === v[order[i]]) j++;
    // Positions i..j (0-based) hold equal values: each gets the mean of ranks i+1..j+1.
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k]] = r;
    i = j + 1;
  }
  return ranks;
}

/**
 * Spearman's rank correlation of two equally long series (the Pearson correlation of their average ranks). Where
 * either series has no variance the order is undefined: 1 if the series are equal, else 0 (see the file comment).
 */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (b.length !== n) throw new CamLensError('BAD_ARGUMENT', `rank correlation needs series of one length, got ${n} and ${b.length}`);
  if (n === 0) return 1;
  const ra = averageRanks(a);
  const rb = averageRanks(b);
  const mean = (n + 1) / 2; // ranks 1..n average (n + 1) / 2, ties included
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = ra[i] - mean;
    const db = rb[i] - mean;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa <= 1e-12 || sbb <= 1e-12) {
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return 0;
    return 1;
  }
  return Math.max(-1, Math.min(1, sab / Math.sqrt(saa * sbb)));
}

export interface MapComparison {
  /** The common grid: the larger width and the larger height of the two maps. */
  width: number;
  height: number;
  /** A - B on the common grid, in [-1, 1], row-major. */
  difference: Float32Array;
  /** Spearman's rho of the two maps on the common grid. */
  correlation: number;
  /** Mean of |A - B| on the common grid. */
  meanAbsDifference: number;
}

/** The difference map and the rank correlation of two maps, at their common resolution. */
export function compareMaps(a: GridMap, b: GridMap): MapComparison {
  const width = Math.max(a.width, b.width);
  const height = Math.max(a.height, b.height);
  const ra = resampleMap(a, width, height);
  const rb = resampleMap(b, width, height);
  const difference = new Float32Array(width * height);
  let abs = 0;
  for (let i = 0; i < difference.length; i++) {
    difference[i] = ra[i] - rb[i];
    abs += Math.abs(difference[i]);
  }
  return { width, height, difference, correlation: spearman(ra, rb), meanAbsDifference: difference.length ? abs / difference.length : 0 };
}

// ---------------------------------------------------------------------------------------------------------
// Classes across two models

/** Which side a message is about: "model A (name)". */
function side(which: 'A' | 'B', m: LoadedModel): string {
  return `model ${which} (${m.name})`;
}

function labelsOf(m: LoadedModel): string[] {
  const off = m.metadata.labelOffset;
  return Array.from({ length: numClasses(m) }, (_, i) => labelOf(m, i + off));
}

/** Both models name their classes alike: the same labels in the same order (or no labels and as many classes). */
export function sameLabels(a: LoadedModel, b: LoadedModel): boolean {
  const la = labelsOf(a);
  const lb = labelsOf(b);
  return la.length === lb.length && la.every((l, i) => l === lb[i]);
}

/** A compared class: its label and its model output index (offset applied) in each model. */
export interface ClassPair {
  label: string;
  a: number;
  b: number;
}

/** Model B's output for a label of model A, by name; throws UNKNOWN_CLASS naming the models where B lacks it. */
function outputByLabel(a: LoadedModel, b: LoadedModel, label: string): number {
  for (const [which, m] of [['A', a], ['B', b]] as const) {
    if (!m.metadata.labels.length) {
      throw new CamLensError('UNKNOWN_CLASS', `${side(which, m)} has no class labels, and the two models' classes differ (${numClasses(a)} and ${numClasses(b)}), so class "${label}" cannot be matched by name`,
        'give the model its labels (cam-lens.json "labels" or a labels.txt next to it)');
    }
  }
  const i = makeClassMatcher(b.metadata.labels)(label);
  if (i < 0) {
    const lb = labelsOf(b);
    const list = lb.length <= 12 ? `: ${lb.map((l) => `"${l}"`).join(', ')}` : ` (${lb.length} classes)`;
    throw new CamLensError('UNKNOWN_CLASS', `class "${label}" of ${side('A', a)} is not among the classes of ${side('B', b)}${list}`,
      'compare a class both models have');
  }
  return i + b.metadata.labelOffset;
}

/** Resolves `choice` in one model, saying which model refused it. */
function resolveIn(which: 'A' | 'B', m: LoadedModel, choice: string | number): number {
  try {
    return resolveClass(m, choice);
  } catch (e) {
    if (e instanceof CamLensError) throw new CamLensError(e.code, `${side(which, m)}: ${e.message}`, e.hint);
    throw e;
  }
}

/**
 * The class `choice` (an index of model A's classes, or a label) in both models (see the file comment for the
 * rules). Throws UNKNOWN_CLASS naming the model that lacks it.
 */
export function matchClass(a: LoadedModel, b: LoadedModel, choice: string | number): ClassPair {
  const byIndex = typeof choice === 'number' || /^\d+$/.test(String(choice).trim());
  if (byIndex && sameLabels(a, b)) {
    const oa = resolveIn('A', a, choice);
    return { label: labelOf(a, oa), a: oa, b: resolveIn('B', b, choice) };
  }
  if (byIndex) {
    const oa = resolveIn('A', a, choice);
    const label = labelOf(a, oa);
    return { label, a: oa, b: outputByLabel(a, b, label) };
  }
  const oa = resolveIn('A', a, choice);
  const ob = resolveIn('B', b, choice);
  return { label: labelOf(a, oa), a: oa, b: ob };
}

// ---------------------------------------------------------------------------------------------------------
// One image

export interface CompareImageRequest {
  /** Method id (engine/cam/registry.ts); default 'gradcam'. */
  method?: string;
  /** Class index (model A's) or label; default: model A's top-1 class. */
  classChoice?: string | number;
  /** Target layers; default each model's recommended layer. */
  layerA?: string;
  layerB?: string;
  /** Predictions listed per model (default 5). */
  topK?: number;
  options?: Record<string, unknown>;
  signal?: AbortSignal;
  /** Progress over both maps (each method's own steps, A's then B's). */
  onProgress?: (done: number, total: number) => void;
}

export interface CompareSide {
  /** The model file and its display name. */
  model: string;
  name: string;
  predictions: Prediction[];
  layer: string;
  /** The class explained, with this model's probability of it. */
  target: Prediction;
  heatmap: MapResult;
  timingsMs: { total: number };
}

export interface ImageComparison extends MapComparison {
  method: string;
  /** The label of the class both maps explain. */
  classLabel: string;
  a: CompareSide;
  b: CompareSide;
  /** The two models' top-1 labels differ. */
  top1Differs: boolean;
}

/** The two sides' top-1 labels differ (by name: two models may order equal labels differently). */
function top1Differs(pa: Prediction, pb: Prediction): boolean {
  return pa.label !== pb.label;
}

/**
 * Compares two models on one image, each through its own session (the caller owns both and disposes them; their
 * caches make a second class or method cheap).
 */
export async function compareSessions(sa: ImageSession, sb: ImageSession, req: CompareImageRequest = {}): Promise<ImageComparison> {
  const a = sa.model;
  const b = sb.model;
  const method = req.method ?? 'gradcam';
  const topK = req.topK ?? 5;
  const [predA, predB] = [await sa.predictions(topK), await sb.predictions(topK)];
  const pair = matchClass(a, b, req.classChoice ?? predA[0].index);
  throwIfAborted(req.signal, 'the comparison');
  // Progress: each method reports its own (done, total); shown as one run over both maps.
  let firstTotal = 0;
  const progress = (part: 0 | 1) => (done: number, total: number) => {
    if (!req.onProgress) return;
    if (part === 0) {
      firstTotal = total;
      req.onProgress(done, total * 2);
    } else req.onProgress((firstTotal || total) + done, (firstTotal || total) + total);
  };
  const ta = performance.now();
  const ra = await sa.explain({ method, layer: req.layerA, classChoice: pair.a - a.metadata.labelOffset, signal: req.signal, onProgress: progress(0), options: req.options });
  const tb = performance.now();
  const rb = await sb.explain({ method, layer: req.layerB, classChoice: pair.b - b.metadata.labelOffset, signal: req.signal, onProgress: progress(1), options: req.options });
  const te = performance.now();
  const maps = compareMaps(ra.heatmap, rb.heatmap);
  return {
    ...maps,
    method: ra.method,
    classLabel: pair.label,
    a: { model: a.path, name: a.name, predictions: predA, layer: ra.layer, target: ra.target, heatmap: ra.heatmap, timingsMs: { total: tb - ta } },
    b: { model: b.path, name: b.name, predictions: predB, layer: rb.layer, target: rb.target, heatmap: rb.heatmap, timingsMs: { total: te - tb } },
    top1Differs: top1Differs(predA[0], predB[0]),
  };
}

/** One decoded image as both models' sessions (each its own size and preprocessing). The caller disposes both. */
export async function openPair(a: LoadedModel, b: LoadedModel, image: DecodedImage): Promise<[ImageSession, ImageSession]> {
  const ia = await prepareInput(a, image);
  let ib;
  try {
    ib = await prepareInput(b, image);
  } catch (e) {
    ia.dispose();
    throw e;
  }
  return [new ImageSession(a, ia), new ImageSession(b, ib)];
}

/** Decodes `imagePath` once (with model A's DICOM window, if any) and compares the two models on it. */
export async function compareImage(a: LoadedModel, b: LoadedModel, imagePath: string, req: CompareImageRequest & { maxPixels?: number } = {}): Promise<ImageComparison & { image: DecodedImage }> {
  const image = await decodeImage(imagePath, { maxPixels: req.maxPixels, dicom: dicomOptionsFor(a) });
  const [sa, sb] = await openPair(a, b, image);
  try {
    return { ...(await compareSessions(sa, sb, req)), image };
  } finally {
    sa.dispose();
    sb.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------
// A dataset

/** A sample's top-1 under one model. */
export interface Top1 {
  index: number;
  label: string;
  probability: number;
}

export interface SampleComparison {
  path: string;
  relPath: string;
  givenLabel: string;
  /** The class both maps explain (the given label, or the one class asked for), and each model's probability of it. */
  explained: { label: string; probabilityA: number; probabilityB: number };
  top1A: Top1;
  top1B: Top1;
  top1Differs: boolean;
  /** Spearman's rho of the two maps; the lower, the more the models disagree on where to look. */
  correlation: number;
  meanAbsDifference: number;
  /** The two layers the maps came from. */
  layerA: string;
  layerB: string;
}

export interface CompareFailure {
  path: string;
  relPath: string;
  error: string;
}

export interface CompareProgress {
  done: number;
  total: number;
  failed: number;
  imagesPerSecond: number;
  secondsLeft: number;
}

export interface CompareDatasetOptions {
  method?: string;
  layerA?: string;
  layerB?: string;
  /** One class for every sample (index of model A's classes, or label); default each sample's given label. */
  classChoice?: string | number;
  options?: Record<string, unknown>;
  maxPixels?: number;
  signal?: AbortSignal;
  onResult?: (r: SampleComparison) => void;
  onFailure?: (f: CompareFailure) => void;
  onProgress?: (p: CompareProgress) => void;
}

export interface DatasetComparison {
  method: string;
  /** Ranked: top-1 disagreements first, then by correlation, lowest first (rankComparisons). */
  results: SampleComparison[];
  failures: CompareFailure[];
  cancelled: boolean;
  seconds: number;
}

/**
 * The rank order of a dataset comparison: samples whose top-1 differs first, then by map correlation, lowest
 * first, then by mean absolute difference, largest first, then by path (a stable, total order). Returns a copy.
 */
export function rankComparisons(rows: readonly SampleComparison[]): SampleComparison[] {
  return [...rows].sort((x, y) =>
    Number(y.top1Differs) - Number(x.top1Differs) ||
    x.correlation - y.correlation ||
    y.meanAbsDifference - x.meanAbsDifference ||
    (x.relPath < y.relPath ? -1 : x.relPath > y.relPath ? 1 : 0));
}

/**
 * Compares the two models on every sample of a dataset read with model A's labels (engine/scan/dataset.ts
 * readDataset), one image at a time, the next one decoding while the current one runs. Streams each result and
 * failure as it comes; cancelling keeps what was computed (`cancelled: true`). A sample whose class model B lacks
 * is a failure saying so.
 */
export async function compareDataset(a: LoadedModel, b: LoadedModel, dataset: Dataset, opts: CompareDatasetOptions = {}): Promise<DatasetComparison> {
  const t0 = performance.now();
  const method = opts.method ?? 'gradcam';
  const fixed = opts.classChoice !== undefined && opts.classChoice !== '' ? matchClass(a, b, opts.classChoice) : undefined;
  const results: SampleComparison[] = [];
  const failures: CompareFailure[] = [];
  const samples = dataset.samples;
  const total = samples.length;
  const dicom = dicomOptionsFor(a);
  const decode = (s: DatasetSample) => {
    const p = decodeImage(s.path, { maxPixels: opts.maxPixels, dicom });
    p.catch(() => undefined); // awaited in turn; a cancel may leave it unawaited
    return p;
  };
  let cancelled = false;
  let next = total ? decode(samples[0]) : undefined;
  for (let i = 0; i < total; i++) {
    if (opts.signal?.aborted) {
      cancelled = true;
      break;
    }
    const s = samples[i];
    const current = next as Promise<DecodedImage>;
    next = i + 1 < total ? decode(samples[i + 1]) : undefined;
    try {
      const pair = fixed ?? matchClass(a, b, s.givenIndex);
      const image = await current;
      const [sa, sb] = await openPair(a, b, image);
      try {
        const [ta] = await sa.predictions(1);
        const [tb] = await sb.predictions(1);
        const ra = await sa.explain({ method, layer: opts.layerA, classChoice: pair.a - a.metadata.labelOffset, options: opts.options, signal: opts.signal });
        const rb = await sb.explain({ method, layer: opts.layerB, classChoice: pair.b - b.metadata.labelOffset, options: opts.options, signal: opts.signal });
        const m = compareMaps(ra.heatmap, rb.heatmap);
        const r: SampleComparison = {
          path: s.path,
          relPath: s.relPath,
          givenLabel: s.givenName,
          explained: { label: pair.label, probabilityA: ra.target.probability, probabilityB: rb.target.probability },
          top1A: { index: ta.index, label: ta.label, probability: ta.probability },
          top1B: { index: tb.index, label: tb.label, probability: tb.probability },
          top1Differs: top1Differs(ta, tb),
          correlation: m.correlation,
          meanAbsDifference: m.meanAbsDifference,
          layerA: ra.layer,
          layerB: rb.layer,
        };
        results.push(r);
        opts.onResult?.(r);
      } finally {
        sa.dispose();
        sb.dispose();
      }
    } catch (e) {
      if (opts.signal?.aborted) {
        cancelled = true;
        break;
      }
      const info = toErrorInfo(e);
      // A class or method problem is the same for every sample: stop at once rather than fail them all.
      if (info.code === 'UNKNOWN_METHOD' || info.code === 'UNKNOWN_LAYER' || info.code === 'LAYER_NOT_SPATIAL' || info.code === 'METHOD_NOT_APPLICABLE') throw e;
      const f = { path: s.path, relPath: s.relPath, error: info.message };
      failures.push(f);
      opts.onFailure?.(f);
    }
    const done = i + 1;
    const secs = (performance.now() - t0) / 1000;
    const ips = done / Math.max(secs, 1e-6);
    opts.onProgress?.({ done, total, failed: failures.length, imagesPerSecond: ips, secondsLeft: (total - done) / Math.max(ips, 1e-6) });
    // Let the event loop breathe between images (progress messages, cancellation).
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return { method, results: rankComparisons(results), failures, cancelled, seconds: (performance.now() - t0) / 1000 };
}

// ---------------------------------------------------------------------------------------------------------
// A picture of one comparison

/**
 * One PNG of a comparison at the image's resolution, three panels left to right with a gap of 4 pixels: model A's
 * map over the image, model B's, and the difference A - B over the image in the diverging colours (red where A
 * looks more, blue where B does, neutral where they agree; shared/colormaps.ts divergingLut). Blend as the
 * overlays: (1 - opacity) * image + opacity * colour.
 */
export async function renderComparisonPng(image: DecodedImage, c: ImageComparison, opts: { colormap?: ColormapName; opacity?: number } = {}): Promise<Buffer> {
  const { width: w, height: h, data } = image;
  const opacity = opts.opacity ?? 0.5;
  const gap = 4;
  const total = 3 * w + 2 * gap;
  const out = new Uint8Array(total * h * 3).fill(255);
  const lut = colormapLut(opts.colormap ?? 'turbo');
  const div = divergingLut();
  const panels: [ArrayLike<number>, (v: number) => number, Uint8ClampedArray][] = [
    [upsampleBilinear(c.a.heatmap.values, c.a.heatmap.width, c.a.heatmap.height, w, h), colormapIndex, lut],
    [upsampleBilinear(c.b.heatmap.values, c.b.heatmap.width, c.b.heatmap.height, w, h), colormapIndex, lut],
    [upsampleBilinear(c.difference, c.width, c.height, w, h), divergingIndex, div],
  ];
  panels.forEach(([values, index, table], p) => {
    const x0 = p * (w + gap);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        const k = 3 * index(values[i]);
        const o = 3 * (y * total + x0 + x);
        for (let ch = 0; ch < 3; ch++) out[o + ch] = Math.round((1 - opacity) * data[3 * i + ch] + opacity * table[k + ch]);
      }
    }
  });
  return sharp(out, { raw: { width: total, height: h, channels: 3 } }).png().toBuffer();
}
