/**
 * Batched inference over a labelled dataset, streaming: images are decoded a batch ahead of the model
 * (sharp decodes on libuv's thread pool while tfjs runs), each batch is freed before the next, and every
 * sample's result goes to `onResult` as soon as its batch is done, so memory stays flat in the number of
 * images and a cancelled scan keeps what it already computed.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError, toErrorInfo } from '../errors';
import { decodeImage } from '../image';
import { resizeBilinearLikeTf } from '../pipeline';
import { applyPreprocess, type PreprocessPreset } from '../preprocess';
import { labelOf, type LoadedModel } from '../model';
import { classLogitValues } from '../outputs';
import type { Dataset, DatasetSample } from './dataset';
import { entropy, normalizedMargin, selfConfidence } from './ranking';

export interface SampleResult {
  path: string;
  relPath: string;
  givenIndex: number;
  givenLabel: string;
  predictedIndex: number;
  predictedLabel: string;
  /** Top 5 classes: index, label, probability. */
  top: { index: number; label: string; probability: number }[];
  selfConfidence: number;
  normalizedMargin: number;
  entropy: number;
  /** Class probabilities (offset removed), kept for confident-learning thresholds. */
  probs: Float32Array;
}

export interface ScanFailure {
  path: string;
  relPath: string;
  error: string;
}

export interface ScanProgress {
  done: number;
  total: number;
  failed: number;
  imagesPerSecond: number;
  secondsLeft: number;
}

export interface ScanOptions {
  batchSize?: number;
  preprocess?: PreprocessPreset;
  maxPixels?: number;
  signal?: AbortSignal;
  onResult?: (r: SampleResult) => void;
  onFailure?: (f: ScanFailure) => void;
  onProgress?: (p: ScanProgress) => void;
}

export interface ScanSummary {
  results: SampleResult[];
  failures: ScanFailure[];
  cancelled: boolean;
  seconds: number;
}

type Prepared = { sample: DatasetSample; data?: Float32Array; error?: string };

async function prepareBatch(model: LoadedModel, batch: DatasetSample[], opts: ScanOptions): Promise<Prepared[]> {
  const preset = opts.preprocess ?? model.metadata.preprocess;
  return Promise.all(batch.map(async (sample) => {
    try {
      const img = await decodeImage(sample.path, { maxPixels: opts.maxPixels });
      const px = resizeBilinearLikeTf(img.data, img.width, img.height, model.inputWidth, model.inputHeight, model.inputChannels);
      return { sample, data: applyPreprocess(px, model.inputChannels, preset) };
    } catch (e) {
      return { sample, error: toErrorInfo(e).message };
    }
  }));
}

function softmaxRows(logits: Float32Array, rows: number, cols: number, sigmoid: boolean): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    if (sigmoid) {
      for (let j = 0; j < cols; j++) out[o + j] = 1 / (1 + Math.exp(-logits[o + j]));
      continue;
    }
    let max = -Infinity;
    for (let j = 0; j < cols; j++) max = Math.max(max, logits[o + j]);
    let sum = 0;
    for (let j = 0; j < cols; j++) {
      out[o + j] = Math.exp(logits[o + j] - max);
      sum += out[o + j];
    }
    for (let j = 0; j < cols; j++) out[o + j] /= sum;
  }
  return out;
}

/** Class probabilities (all model outputs, offset not removed) for a batch of preprocessed inputs. */
export function predictBatch(model: LoadedModel, inputs: Float32Array[]): Float32Array[] {
  const n = inputs.length;
  const { inputHeight: h, inputWidth: w, inputChannels: c } = model;
  const size = h * w * c;
  const flat = new Float32Array(n * size);
  inputs.forEach((d, i) => flat.set(d, i * size));
  const g = model.graph;
  const x = tf.tensor4d(flat, [n, h, w, c]);
  let logits: Float32Array;
  try {
    const res = g.run(new Map([[g.inputIds[0], x]]), [g.outputIds[0]], { logits: true });
    const t = res.get(g.outputIds[0]) as tf.Tensor;
    logits = classLogitValues(model, t.dataSync() as Float32Array);
    t.dispose();
  } finally {
    x.dispose();
  }
  const cols = logits.length / n;
  const probs = softmaxRows(logits, n, cols, g.outputActivation === 'sigmoid');
  return Array.from({ length: n }, (_, i) => probs.subarray(i * cols, (i + 1) * cols));
}

export function describeSample(model: LoadedModel, sample: DatasetSample, all: Float32Array): SampleResult {
  const off = model.metadata.labelOffset;
  const probs = Float32Array.from(all.subarray(off));
  // Renormalise after dropping a background output so scores stay comparable to probabilities over classes.
  if (off > 0) {
    let s = 0;
    for (const p of probs) s += p;
    for (let i = 0; i < probs.length; i++) probs[i] /= s || 1;
  }
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]);
  const top = order.slice(0, 5).map((i) => ({ index: i, label: labelOf(model, i + off), probability: probs[i] }));
  return {
    path: sample.path,
    relPath: sample.relPath,
    givenIndex: sample.givenIndex,
    givenLabel: labelOf(model, sample.givenIndex + off),
    predictedIndex: order[0],
    predictedLabel: labelOf(model, order[0] + off),
    top,
    selfConfidence: selfConfidence(probs, sample.givenIndex),
    normalizedMargin: normalizedMargin(probs, sample.givenIndex),
    entropy: entropy(probs),
    probs,
  };
}

export async function scanDataset(model: LoadedModel, dataset: Dataset, opts: ScanOptions = {}): Promise<ScanSummary> {
  const batchSize = opts.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1024) {
    throw new CamLensError('BAD_ARGUMENT', `scan batch size must be an integer from 1 to 1024, got ${batchSize}`);
  }
  const samples = dataset.samples;
  const total = samples.length;
  const results: SampleResult[] = [];
  const failures: ScanFailure[] = [];
  const t0 = performance.now();
  let done = 0;
  let cancelled = false;
  const batches: DatasetSample[][] = [];
  for (let i = 0; i < total; i += batchSize) batches.push(samples.slice(i, i + batchSize));
  let next: Promise<Prepared[]> | undefined = batches.length ? prepareBatch(model, batches[0], opts) : undefined;
  for (let b = 0; b < batches.length; b++) {
    const prepared = await (next as Promise<Prepared[]>);
    if (opts.signal?.aborted) {
      cancelled = true;
      break;
    }
    // Decode the next batch while this one runs through the model.
    next = b + 1 < batches.length ? prepareBatch(model, batches[b + 1], opts) : undefined;
    const ok = prepared.filter((p) => p.data);
    for (const p of prepared) {
      if (p.error !== undefined) {
        const f = { path: p.sample.path, relPath: p.sample.relPath, error: p.error };
        failures.push(f);
        opts.onFailure?.(f);
      }
    }
    if (ok.length) {
      const probs = predictBatch(model, ok.map((p) => p.data as Float32Array));
      ok.forEach((p, i) => {
        const r = describeSample(model, p.sample, probs[i]);
        results.push(r);
        opts.onResult?.(r);
      });
    }
    done += prepared.length;
    const secs = (performance.now() - t0) / 1000;
    const ips = done / Math.max(secs, 1e-6);
    opts.onProgress?.({ done, total, failed: failures.length, imagesPerSecond: ips, secondsLeft: (total - done) / Math.max(ips, 1e-6) });
    // Let the event loop breathe between batches (progress messages, cancellation).
    await new Promise((r) => setImmediate(r));
  }
  if (next) await next.catch(() => undefined);
  return { results, failures, cancelled, seconds: (performance.now() - t0) / 1000 };
}
