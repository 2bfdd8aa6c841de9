/**
 * Worker threads for a dataset scan (#13 item 5): each loads its own copy of the model from the model file (with
 * the caller's metadata overrides and backend, one wasm thread each) and turns whole batches of image paths into
 * class probabilities: decode, resize, preprocess and the forward pass all run in the worker, so N workers scan
 * about N times as many images per second as one (the calling thread only describes and ranks the results).
 * Every worker gets the same batches the in-thread scan would make and runs them through the same code
 * (scan.ts prepareBatch, predictBatch), so the probabilities do not depend on the number of workers.
 *
 * Messages (structured clone; a worker keeps nothing between batches but its model):
 *   worker → main, once:  {type: 'ready'} | {type: 'failed', message}
 *   main → worker:        {type: 'batch', id, paths, preprocess?, maxPixels?, dicom?}
 *                           → {type: 'scored', id, probs, cols, errors}: `errors[i]` is the message of image i
 *                             (null when it was scored); the scored images' probabilities are the rows of `probs`
 *                             (cols each), in batch order
 *                         {type: 'memory', id}   → {type: 'memory', id, numTensors}
 *                         {type: 'close'}        → the worker disposes its model and exits
 *   a failure of the batch as a whole:           → {type: 'error', id, message}
 *
 * A worker that fails to start is left out; one that dies gives its batches back to the others; with none left,
 * `scanDataset` runs the rest in the calling thread.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { EventLoopUtilization } from 'perf_hooks';
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../errors';
import type { BackendChoice } from '../backend';
import type { MetadataOverrides } from '../metadata';
import { onnxRuntimeSetting, type OnnxRuntimeChoice } from '../formats/onnx/ortRuntime';
import type { PreprocessPreset } from '../preprocess';
import type { DicomSelection } from '../../../shared/dicom';

/** What a scan worker is told at start (workerData). */
export interface ScanWorkerData {
  modelPath: string;
  overrides?: MetadataOverrides;
  backend: BackendChoice;
  /** The ONNX runtime setting of the thread that started the pool (formats/onnx/ortRuntime.ts). */
  onnxRuntime?: OnnxRuntimeChoice;
}

export interface ScanBatchRequest {
  type: 'batch';
  id: number;
  paths: string[];
  preprocess?: PreprocessPreset;
  maxPixels?: number;
  /** DICOM frame and window (scan.ts ScanOptions.dicom). */
  dicom?: DicomSelection;
}

/** One scored batch: per image an error message or null; the scored images' rows in `probs`. */
export interface ScanBatchResult {
  probs: Float32Array;
  cols: number;
  errors: (string | null)[];
}

export type ScanToWorker = ScanBatchRequest | { type: 'memory'; id: number } | { type: 'close' };

export type ScanFromWorker =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | ({ type: 'scored'; id: number } & ScanBatchResult)
  | { type: 'memory'; id: number; numTensors: number }
  | { type: 'error'; id: number; message: string };

/** A worker thread stopped while it held a batch: the batch goes back to the others. */
export class ScanWorkerLostError extends Error {}

/** The worker entry: `scanWorker.js` next to the bundle, else (running from source, tests) the TypeScript file through tsx. */
export function defaultScanWorkerScript(): { script: string; execArgv?: string[] } | undefined {
  const bundled = path.join(__dirname, 'scanWorker.js');
  if (fs.existsSync(bundled)) return { script: bundled };
  const source = path.resolve(__dirname, '..', '..', 'scanWorker.ts');
  if (!__filename.endsWith('.ts') || !fs.existsSync(source)) return undefined;
  try {
    // Worker threads do not inherit tsx's ESM hooks; its CommonJS hook loads a .ts entry.
    return { script: source, execArgv: ['--require', require.resolve('tsx/cjs')] };
  } catch {
    return undefined;
  }
}

function backendChoiceOf(name: string): BackendChoice {
  if (name === 'tensorflow') return 'node';
  if (name === 'wasm' || name === 'cpu') return name;
  return 'auto';
}

/** One worker thread holding one copy of the model. */
export class ScanWorker {
  readonly ready: Promise<boolean>;
  /** Why it failed to start, if it did. */
  failure?: string;
  /** Batches it has scored (tests and benchmarks see the work spread). */
  scored = 0;
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  private nextId = 1;
  private alive = true;
  private isReady = false;
  private readonly exited: Promise<void>;

  constructor(script: string, execArgv: string[] | undefined, data: ScanWorkerData) {
    this.worker = new Worker(script, { workerData: { onnxRuntime: onnxRuntimeSetting(), ...data } satisfies ScanWorkerData, execArgv });
    let settleReady: (ok: boolean) => void = () => undefined;
    this.ready = new Promise<boolean>((r) => (settleReady = r));
    this.exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
    this.worker.on('message', (m: ScanFromWorker) => {
      if (m.type === 'ready') {
        this.isReady = true;
        if (this.pending.size === 0) this.worker.unref();
        settleReady(true);
      } else if (m.type === 'failed') {
        this.failure = m.message;
        this.worker.unref();
        settleReady(false);
      } else this.settle(m);
    });
    this.worker.on('error', (e) => {
      this.failure ??= e.message;
      this.lost();
      settleReady(false);
    });
    this.worker.on('exit', () => {
      this.lost();
      settleReady(false);
    });
  }

  get isAlive(): boolean {
    return this.alive;
  }

  private lost(): void {
    this.alive = false;
    for (const p of this.pending.values()) p.reject(new ScanWorkerLostError('the scan worker thread stopped'));
    this.pending.clear();
  }

  private settle(m: Exclude<ScanFromWorker, { type: 'ready' } | { type: 'failed' }>): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    // An idle worker must not keep the process alive.
    if (this.pending.size === 0 && this.isReady) this.worker.unref();
    if (m.type === 'error') p.reject(new CamLensError('BAD_ARGUMENT', `in a scan worker: ${m.message}`));
    else if (m.type === 'scored') {
      this.scored++;
      p.resolve({ probs: m.probs, cols: m.cols, errors: m.errors } satisfies ScanBatchResult);
    }
    else p.resolve(m.numTensors);
  }

  private call<T>(msg: Omit<ScanBatchRequest, 'id'> | { type: 'memory' }): Promise<T> {
    if (!this.alive) return Promise.reject(new ScanWorkerLostError('the scan worker thread stopped'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.ref();
      this.worker.postMessage({ ...msg, id });
    });
  }

  /** Scores one batch of image paths. */
  score(paths: string[], opts: { preprocess?: PreprocessPreset; maxPixels?: number; dicom?: DicomSelection }): Promise<ScanBatchResult> {
    return this.call<ScanBatchResult>({ type: 'batch', paths, preprocess: opts.preprocess, maxPixels: opts.maxPixels, ...(opts.dicom ? { dicom: opts.dicom } : {}) });
  }

  /**
   * The share of the time since `since` (an earlier result of this call) the worker spent working rather than
   * waiting for a batch (its event loop's utilisation): near 1 while a scan keeps it fed.
   */
  utilization(since?: EventLoopUtilization): EventLoopUtilization {
    return this.worker.performance.eventLoopUtilization(since);
  }

  /** `tf.memory().numTensors` in the worker (leak checks). */
  memory(): Promise<number> {
    return this.call<number>({ type: 'memory' });
  }

  async close(): Promise<void> {
    if (!this.alive) return;
    this.worker.ref();
    if (!this.isReady) {
      // Still loading its model: nothing to tidy up in there, and no reason to wait for the load.
      await this.worker.terminate();
      return;
    }
    this.worker.postMessage({ type: 'close' } satisfies ScanToWorker);
    // A worker busy with a large batch is not waited for beyond a grace period.
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface ScanPoolOptions {
  /** The model file every worker loads. */
  modelPath: string;
  /** The metadata overrides the model was loaded with (the class count must agree in the workers). */
  overrides?: MetadataOverrides;
  /** Worker threads (0: none, the scan runs in the calling thread). */
  workers: number;
  /** Backend of the workers; default: the one this thread runs on. */
  backend?: BackendChoice;
  /** Worker entry file and its node flags; default `defaultScanWorkerScript()`. */
  workerScript?: string;
  execArgv?: string[];
}

/**
 * Worker threads bound to one model file for the length of a scan (or several): `start()` (or the first scan)
 * starts them, each loading the model in the background; `close()` ends them.
 */
export class ScanPool {
  readonly modelPath: string;
  private readonly opts: ScanPoolOptions;
  private list: ScanWorker[] = [];
  private started = false;
  private closed = false;

  constructor(opts: ScanPoolOptions) {
    this.opts = opts;
    this.modelPath = path.resolve(opts.modelPath);
  }

  /** Number of worker threads asked for. */
  get size(): number {
    return Math.max(0, Math.floor(this.opts.workers));
  }

  /** Starts the workers (done lazily by a scan); a no-op without a worker entry next to this bundle. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    if (this.size === 0) return;
    const entry = this.opts.workerScript ? { script: this.opts.workerScript, execArgv: this.opts.execArgv } : defaultScanWorkerScript();
    if (!entry) return;
    const data: ScanWorkerData = {
      modelPath: this.modelPath,
      overrides: this.opts.overrides,
      backend: this.opts.backend ?? backendChoiceOf(tf.getBackend()),
    };
    for (let i = 0; i < this.size; i++) {
      try {
        this.list.push(new ScanWorker(entry.script, this.opts.execArgv ?? entry.execArgv, data));
      } catch {
        break; // the platform refuses more threads: use those we have
      }
    }
  }

  /** The workers started (some may still be loading, failed, or lost). */
  get workers(): readonly ScanWorker[] {
    this.start();
    return this.list;
  }

  /** Resolves when every worker has loaded its model or failed to; returns how many are ready. */
  async whenReady(): Promise<number> {
    this.start();
    const ok = await Promise.all(this.list.map((w) => w.ready));
    return ok.filter(Boolean).length;
  }

  /** Why workers failed to start (empty when none did). */
  failures(): string[] {
    return this.list.flatMap((w) => (w.failure ? [w.failure] : []));
  }

  /** `tf.memory().numTensors` in each live worker. */
  async workerTensorCounts(): Promise<number[]> {
    const live: ScanWorker[] = [];
    for (const w of this.list) if ((await w.ready) && w.isAlive) live.push(w);
    return Promise.all(live.map((w) => w.memory()));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Ends every worker thread; resolves when they have exited. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.list.map((w) => w.close()));
    this.list = [];
  }
}
