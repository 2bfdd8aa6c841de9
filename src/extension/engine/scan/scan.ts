/**
 * Batched inference over a labelled dataset, streaming: images are decoded a batch ahead of the model
 * (sharp decodes on libuv's thread pool while tfjs runs), each batch is freed before the next, and every
 * sample's result goes to `onResult` as soon as its batch is done, so memory stays flat in the number of
 * images and a cancelled scan keeps what it already computed. With a pool (scanPool.ts) the batches run on
 * worker threads, one core each, and arrive in the same order with the same results.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError, toErrorInfo } from '../errors';
import { decodeImage } from '../image';
import { dicomOptionsFor, resizeImageLikeTf } from '../pipeline';
import type { DicomSelection } from '../../../shared/dicom';
import { applyPreprocess, type PreprocessPreset } from '../preprocess';
import { labelOf, type LoadedModel } from '../model';
import { classLogitValues } from '../outputs';
import { forwardLogits } from '../forward';
import type { Dataset, DatasetSample } from './dataset';
import { entropy, normalizedMargin, selfConfidence } from './ranking';
import { ScanWorkerLostError, type ScanBatchResult, type ScanPool, type ScanWorker } from './scanPool';

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
  /** DICOM files: the frame and window (default: frame 0, the model's window, else each file's first). */
  dicom?: DicomSelection;
  signal?: AbortSignal;
  onResult?: (r: SampleResult) => void;
  onFailure?: (f: ScanFailure) => void;
  onProgress?: (p: ScanProgress) => void;
  /**
   * Worker threads to score the batches on (scanPool.ts); results still arrive in dataset order and are the
   * same as in one thread. Without it (or with no worker able to start) the scan runs in the calling thread.
   */
  pool?: ScanPool;
}

export interface ScanSummary {
  results: SampleResult[];
  failures: ScanFailure[];
  cancelled: boolean;
  seconds: number;
}

/** An image of a batch, decoded and preprocessed (`data`), or why it could not be (`error`). */
export type Prepared<S extends { path: string } = DatasetSample> = { sample: S; data?: Float32Array; error?: string };

/** Decodes, resizes and preprocesses a batch of images for the model (decodes run in parallel on libuv's threads). */
export async function prepareBatch<S extends { path: string }>(model: LoadedModel, batch: S[], opts: { preprocess?: PreprocessPreset; maxPixels?: number; dicom?: DicomSelection }): Promise<Prepared<S>[]> {
  const preset = opts.preprocess ?? model.metadata.preprocess;
  const dicom = dicomOptionsFor(model, opts.dicom);
  return Promise.all(batch.map(async (sample) => {
    try {
      const img = await decodeImage(sample.path, { maxPixels: opts.maxPixels, dicom });
      const px = resizeImageLikeTf(img, model.inputWidth, model.inputHeight, model.inputChannels);
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

/**
 * Class probabilities (all model outputs, offset not removed) for a batch of preprocessed inputs: one forward
 * pass for the batch, on ONNX Runtime for an ONNX model where it serves it (forward.ts), else on the graph.
 */
export async function predictBatch(model: LoadedModel, inputs: Float32Array[]): Promise<Float32Array[]> {
  const n = inputs.length;
  const { inputHeight: h, inputWidth: w, inputChannels: c } = model;
  const size = h * w * c;
  const flat = new Float32Array(n * size);
  inputs.forEach((d, i) => flat.set(d, i * size));
  const g = model.graph;
  const x = tf.tensor4d(flat, [n, h, w, c]);
  let logits: Float32Array;
  try {
    logits = classLogitValues(model, await forwardLogits(model, x));
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

/** What became of each image of a batch: its probabilities over all model outputs, or why it failed. */
type Outcome = { probs: Float32Array; error?: undefined } | { probs?: undefined; error: string };

/** Scores a batch in this thread. */
async function scoreInThread(model: LoadedModel, batch: DatasetSample[], opts: ScanOptions, prepared?: Promise<Prepared[]>): Promise<Outcome[]> {
  const items = await (prepared ?? prepareBatch(model, batch, opts));
  const ok = items.filter((p) => p.data);
  const probs = ok.length ? await predictBatch(model, ok.map((p) => p.data as Float32Array)) : [];
  let k = 0;
  return items.map((p) => (p.data ? { probs: probs[k++] } : { error: p.error as string }));
}

/** Outcomes of a batch a scan worker scored (ScanBatchResult: error or the next row of `probs`). */
function outcomesOf(r: ScanBatchResult): Outcome[] {
  let k = 0;
  return r.errors.map((error) => (error !== null ? { error } : { probs: r.probs.subarray(k * r.cols, ++k * r.cols) }));
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
  const batches: DatasetSample[][] = [];
  for (let i = 0; i < total; i += batchSize) batches.push(samples.slice(i, i + batchSize));

  /** Hands a finished batch to the callbacks: failures and results in dataset order, then progress. */
  const emit = async (batch: DatasetSample[], outcomes: Outcome[]) => {
    outcomes.forEach((o, i) => {
      const sample = batch[i];
      if (o.error !== undefined) {
        const f = { path: sample.path, relPath: sample.relPath, error: o.error };
        failures.push(f);
        opts.onFailure?.(f);
      }
    });
    outcomes.forEach((o, i) => {
      if (!o.probs) return;
      const r = describeSample(model, batch[i], o.probs);
      results.push(r);
      opts.onResult?.(r);
    });
    done += batch.length;
    const secs = (performance.now() - t0) / 1000;
    const ips = done / Math.max(secs, 1e-6);
    opts.onProgress?.({ done, total, failed: failures.length, imagesPerSecond: ips, secondsLeft: (total - done) / Math.max(ips, 1e-6) });
    // Let the event loop breathe between batches (progress messages, cancellation).
    await new Promise((r) => setImmediate(r));
  };

  const pool = opts.pool && opts.pool.size > 0 && !opts.pool.isClosed ? opts.pool : undefined;
  const cancelled = pool ? await scanPooled(model, batches, pool, opts, emit) : await scanInThread(model, batches, opts, emit);
  return { results, failures, cancelled, seconds: (performance.now() - t0) / 1000 };
}

type Emit = (batch: DatasetSample[], outcomes: Outcome[]) => Promise<void>;

/** The scan in this thread: each batch decoded while the one before runs through the model. Returns whether it was cancelled. */
async function scanInThread(model: LoadedModel, batches: DatasetSample[][], opts: ScanOptions, emit: Emit): Promise<boolean> {
  let next: Promise<Prepared[]> | undefined = batches.length ? prepareBatch(model, batches[0], opts) : undefined;
  try {
    for (let b = 0; b < batches.length; b++) {
      const prepared = await (next as Promise<Prepared[]>);
      if (opts.signal?.aborted) return true;
      // Decode the next batch while this one runs through the model.
      next = b + 1 < batches.length ? prepareBatch(model, batches[b + 1], opts) : undefined;
      await emit(batches[b], await scoreInThread(model, batches[b], opts, Promise.resolve(prepared)));
    }
    return false;
  } finally {
    if (next) await next.catch(() => undefined);
  }
}

/**
 * The scan over a pool's workers. Every worker takes the next batch whenever it holds fewer than two (so that the
 * second one is decoded while the first runs), at most a few batches ahead of the oldest one not yet handed on:
 * finished batches are handed to `emit` strictly in dataset order, so events, the order of results and what a
 * cancel keeps are exactly as in one thread, and memory stays bounded by the window. A lost worker's batches go
 * back to the others; what no worker can run (none started, all lost) runs in this thread, as do the first
 * batches while the workers load their models. A cancel stops handing out batches; the ones in flight finish unseen.
 */
async function scanPooled(model: LoadedModel, batches: DatasetSample[][], pool: ScanPool, opts: ScanOptions, emit: Emit): Promise<boolean> {
  const n = batches.length;
  const workers = pool.workers;
  const window = 2 * Math.max(1, workers.length) + 2;
  // Each batch's outcome, from when it is taken until it is handed on (then dropped: memory stays flat).
  type Pending = { promise: Promise<Outcome[]>; resolve(o: Outcome[]): void; reject(e: unknown): void };
  const pending = new Map<number, Pending>();
  const finished = (b: number): Pending => {
    let p = pending.get(b);
    if (!p) {
      let settle: Omit<Pending, 'promise'> = { resolve: () => undefined, reject: () => undefined };
      const promise = new Promise<Outcome[]>((resolve, reject) => (settle = { resolve, reject }));
      promise.catch(() => undefined); // a batch beyond a failure or a cancel is never awaited
      p = { promise, ...settle };
      pending.set(b, p);
    }
    return p;
  };
  const requeued: number[] = [];
  let taken = 0;
  let emitted = 0;
  let stopped = false;
  let waiters: (() => void)[] = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  /** The next batch to score, waiting while the window is full; undefined when there is none left or the scan stopped. */
  const take = async (): Promise<number | undefined> => {
    for (;;) {
      if (stopped) return undefined;
      if (requeued.length) return requeued.shift();
      if (taken >= n) return undefined;
      if (taken - emitted < window) return taken++;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const paths = (b: number) => batches[b].map((s) => s.path);
  const loop = async (w: ScanWorker): Promise<void> => {
    if (!(await w.ready)) return;
    for (let b = await take(); b !== undefined; b = await take()) {
      try {
        finished(b).resolve(outcomesOf(await w.score(paths(b), opts)));
      } catch (e) {
        if (e instanceof ScanWorkerLostError) {
          requeued.push(b);
          wake();
        } else finished(b).reject(e);
        return;
      }
    }
  };
  // Until the first worker has its model (a model load per worker), this thread scans: a small scan is over
  // before the pool could help, and a large one starts at once.
  let workerUp = false;
  for (const w of workers) void w.ready.then((ok) => (workerUp ||= ok));
  const meanwhile = async (): Promise<void> => {
    while (!workerUp) {
      const b = await take();
      if (b === undefined) return;
      try {
        finished(b).resolve(await scoreInThread(model, batches[b], opts));
      } catch (e) {
        finished(b).reject(e);
        return;
      }
      // Lets the workers' ready messages (and the emitter) in between two batches.
      await new Promise((r) => setImmediate(r));
    }
  };
  const running = Promise.all([meanwhile(), ...workers.flatMap((w) => [loop(w), loop(w)])]).then(async () => {
    // No worker left to run what remains (none started, or all were lost): this thread does.
    for (let b = await take(); b !== undefined; b = await take()) {
      try {
        finished(b).resolve(await scoreInThread(model, batches[b], opts));
      } catch (e) {
        finished(b).reject(e);
        return;
      }
    }
  });
  let onAbort = () => undefined as void;
  const aborted = new Promise<'aborted'>((r) => (onAbort = () => r('aborted')));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (let b = 0; b < n; b++) {
      if (opts.signal?.aborted) return true;
      const outcomes = await Promise.race([finished(b).promise, aborted]);
      pending.delete(b);
      if (outcomes === 'aborted') return true;
      await emit(batches[b], outcomes);
      emitted = b + 1;
      wake();
    }
    return false;
  } finally {
    stopped = true;
    wake();
    opts.signal?.removeEventListener('abort', onAbort);
    // The batches in flight finish (within one batch of a cancel): nothing touches the model after this returns.
    await running;
  }
}
