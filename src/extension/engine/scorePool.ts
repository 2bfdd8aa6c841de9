/**
 * Worker threads for many forward passes of one model: the masked inputs of Score-CAM and the perturbed
 * inputs of the faithfulness scores.
 *
 * Why threads: on the wasm backend TensorFlow.js runs single-threaded in Node, and batching does not make a
 * pass much cheaper (measured on the reference MobileNet, bench/scorecam.ts: a masked input in a batch of 8-32
 * costs 0.93-0.97 of a batch-1 forward pass). To bring a 256-channel Score-CAM under its budget (a masked
 * pass at most half a forward pass) every core has to work. Each worker loads its own
 * copy of the model from the model file (with the caller's metadata overrides and backend) and scores whole
 * batches; the calling thread takes batches too, so work starts at once and the workers join as soon as
 * their model is loaded. A worker that fails to start is simply left out; a worker that dies mid-batch gives
 * its batch back to the others.
 *
 * Messages (structured clone; the only state a worker keeps between requests is the last Score-CAM input, see
 * ScoreRequest, so no job can leak into the next):
 *   worker → main, once:  {type: 'ready'} | {type: 'failed', message}
 *   main → worker:        {type: 'score', id, request}      → {type: 'scored', id, probabilities, logits}
 *                                                              or {type: 'skipped', id} when taken back (below)
 *                         {type: 'memory', id}              → {type: 'memory', id, numTensors}
 *                         {type: 'close'}                   → the worker disposes its model and exits
 *   any failure:                                            → {type: 'error', id, code, message}
 *
 * Scheduling (`runTasks`): every executor (the calling thread, each ready worker) pulls the next batch when it
 * is free. A worker holds two batches: the one it computes and the next, queued in its own message queue. The
 * calling thread reads the workers' replies only between its own batches, so with one batch each a worker
 * would sit idle for up to a whole batch of the calling thread's after every reply (measured: 1.5 of 2 cores
 * busy; with two, both). Each request has a claim cell in shared memory: the worker claims it before it starts
 * the batch, and the calling thread, once the queue is empty, takes back a batch a worker has queued but not
 * started (it would otherwise sit idle while the worker works through two; measured on MobileNet's Score-CAM:
 * the calling thread waited about a fifth of the run). On abort every queued batch is taken back the same way,
 * so at most one batch per executor still completes ("within one batch"), then CancelledError is thrown.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError, CancelledError, type ErrorCode } from './errors';
import type { BackendChoice } from './backend';
import type { MetadataOverrides } from './metadata';
import { onnxRuntimeSetting, type OnnxRuntimeChoice } from './formats/onnx/ortRuntime';
import type { BatchScores } from './cam/base';

/** One batch of inputs for a worker, described compactly where possible. */
export type ScoreRequest =
  /**
   * Score-CAM: `maps` holds n activation channels [h, w, n] (channels last); the worker upsamples each to the
   * input size, min-max normalises it and multiplies the input [1, H, W, C] by it (see scorecam.maskedInputs).
   * Every batch of one Score-CAM has the same input, named by `inputKey`: a worker is sent it with the first
   * of those batches only (PoolWorker drops `input` from the others) and keeps the last one it was sent.
   */
  | { kind: 'masks'; outputIndex: number; inputKey: number; input?: Float32Array; inputShape: [number, number, number, number]; maps: Float32Array; mapShape: [number, number, number] }
  /** Any batch of inputs [n, H, W, C], sent as is. */
  | { kind: 'inputs'; outputIndex: number; data: Float32Array; shape: [number, number, number, number] };

/** One batch of work. */
export interface ScoreTask {
  /** Forward passes in the batch (for progress). */
  size: number;
  /** The request a worker runs; built only when a worker takes the task, so large batches are not all held at once. */
  request(): ScoreRequest | Promise<ScoreRequest>;
  /** Runs the same batch in the calling thread. */
  local(): Promise<BatchScores>;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Called once per finished task, in completion order. */
  onTaskDone?: (index: number, scores: BatchScores) => void;
  /** What is being computed, for the CancelledError message. */
  what?: string;
}

/** Something that runs tasks: the calling thread or one worker. */
interface Executor {
  /** Resolves false when the executor will never run anything (a worker that failed to start). */
  ready: Promise<boolean>;
  run(task: ScoreTask, index: number): Promise<BatchScores>;
  /** Worker executors may be lost (thread died); their task then goes back to the queue. */
  local: boolean;
  /** How many tasks it is given at once (the ones beyond the first wait in its queue). */
  depth: number;
  /** Takes back every task it holds but has not started (their runs reject with TakenBackError). */
  skipQueued?(): void;
  /** Takes back the newest task it holds but has not started; its index, or undefined when there is none. */
  takeBack?(): number | undefined;
}

/** A worker thread died while it held a batch. */
class WorkerLostError extends Error {}

/** A queued batch was taken back from a worker before it started (by the calling thread, or on abort). */
class TakenBackError extends Error {}

const callerThread: Executor = { ready: Promise.resolve(true), run: (t) => t.local(), local: true, depth: 1 };

/** Depth of a worker's queue: the batch it computes and the next one. */
const WORKER_DEPTH = 2;

/** Claim cells per worker (far more than the requests it ever holds at once). */
export const CLAIM_SLOTS = 64;
export const CLAIMED_BY_WORKER = 1;
export const TAKEN_BACK = 2;

/**
 * Runs every task on the executors, each pulling the next task when free. Returns the scores in task order.
 * Throws CancelledError when the signal fired (after the batches in flight finish), the first task error
 * otherwise.
 */
async function runTasks(tasks: ScoreTask[], executors: Executor[], opts: RunOptions): Promise<BatchScores[]> {
  const results: (BatchScores | undefined)[] = new Array(tasks.length);
  const queue = tasks.map((_, i) => i);
  let failure: { error: unknown } | undefined;
  const live = new Set(executors);
  /** Tasks each executor holds (computing or queued). */
  const busy = new Map<Executor, number>();
  // Workers still loading their model stop waiting once nothing is left for them to take (a fresh signal per round).
  let wake: () => void = () => undefined;
  let stopped: Promise<undefined> = Promise.resolve(undefined);
  const onAbort = () => {
    for (const ex of executors) ex.skipQueued?.();
    wake();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const loop = async (ex: Executor): Promise<void> => {
    const ok = await Promise.race([ex.ready, stopped]);
    if (ok === undefined) return;
    if (!ok) {
      live.delete(ex);
      return;
    }
    // The calling thread's batches block it: let the workers take (and post) their first batches before it
    // starts its own, or they would wait a whole batch for their first request.
    if (ex.local) await new Promise((r) => setImmediate(r));
    while (!failure && !opts.signal?.aborted) {
      // A worker queues a second batch only while more than one is left: the last one goes to whoever is free
      // first, not behind the batch a worker is still computing.
      if ((busy.get(ex) ?? 0) > 0 && queue.length <= 1) return;
      let i = queue.shift();
      if (queue.length === 0) wake();
      // Nothing left to take: the calling thread takes back a batch still waiting in a worker's queue.
      if (i === undefined && ex.local) for (const w of executors) if (i === undefined) i = w.takeBack?.();
      if (i === undefined) return;
      let r: BatchScores;
      busy.set(ex, (busy.get(ex) ?? 0) + 1);
      try {
        r = await ex.run(tasks[i], i);
      } catch (e) {
        // Taken back before the worker started it: someone else runs it (or the run was aborted).
        if (e instanceof TakenBackError) continue;
        if (e instanceof WorkerLostError && !ex.local) {
          queue.unshift(i);
          live.delete(ex);
          return;
        }
        failure ??= { error: e };
        wake();
        return;
      } finally {
        busy.set(ex, (busy.get(ex) ?? 1) - 1);
      }
      results[i] = r;
      opts.onTaskDone?.(i, r);
      // The calling thread's batches never leave the microtask queue (wasm resolves `data()` at once), so
      // without a turn of the event loop the workers' replies would wait until this thread ran out of work,
      // and the workers would sit idle after their first batch.
      if (ex.local) await new Promise((r) => setImmediate(r));
    }
  };
  try {
    // A task handed back by a lost worker may arrive after the others found the queue empty: go round again.
    while (queue.length > 0 && live.size > 0 && !failure && !opts.signal?.aborted) {
      stopped = new Promise<undefined>((r) => (wake = () => r(undefined)));
      await Promise.all([...live].flatMap((ex) => Array.from({ length: ex.depth }, () => loop(ex))));
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure.error;
  if (opts.signal?.aborted) throw new CancelledError(opts.what ?? 'the computation');
  if (queue.length > 0) {
    throw new CamLensError('BACKEND_UNAVAILABLE', `${queue.length} of ${tasks.length} batches could not run: every worker thread failed`,
      'set the number of Score-CAM workers to 0 to compute in one thread');
  }
  return results as BatchScores[];
}

/** Runs the tasks one after the other in the calling thread. */
export function runInThread(tasks: ScoreTask[], opts: RunOptions = {}): Promise<BatchScores[]> {
  return runTasks(tasks, [callerThread], opts);
}

/** Default number of worker threads: one per core besides the calling thread, which takes batches too. */
export function defaultWorkerCount(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(0, cores - 1);
}

/** The worker entry: `scoreWorker.js` next to the bundle, else (running from source, tests) the TypeScript file through tsx. */
export function defaultWorkerScript(): { script: string; execArgv?: string[] } | undefined {
  const bundled = path.join(__dirname, 'scoreWorker.js');
  if (fs.existsSync(bundled)) return { script: bundled };
  const source = path.resolve(__dirname, '..', 'scoreWorker.ts');
  if (!__filename.endsWith('.ts') || !fs.existsSync(source)) return undefined;
  try {
    // Worker threads do not inherit tsx's ESM hooks; its CommonJS hook loads a .ts entry.
    return { script: source, execArgv: ['--require', require.resolve('tsx/cjs')] };
  } catch {
    return undefined;
  }
}

export interface ScorePoolOptions {
  /** model.json of the model every worker loads. */
  modelPath: string;
  /** The metadata overrides the model was loaded with (label counts must agree in the workers too). */
  overrides?: MetadataOverrides;
  foldBatchNorm?: boolean;
  /** Worker threads (default: cores - 1). 0 means none: everything runs in the calling thread. */
  workers?: number;
  /** Backend of the workers; default: the one this thread runs on. */
  backend?: BackendChoice;
  /** Also take batches in the calling thread (default true). */
  useCallerThread?: boolean;
  /** Worker entry file and its node flags; default `defaultWorkerScript()`. */
  workerScript?: string;
  execArgv?: string[];
}

/** What a worker is told at start (workerData). */
export interface ScoreWorkerData {
  modelPath: string;
  /**
   * Int32Array[CLAIM_SLOTS] over a SharedArrayBuffer: the claim cell of request `id` is `id % CLAIM_SLOTS`, 0 when
   * posted. Before it starts a request the worker changes its cell from 0 to CLAIMED_BY_WORKER; the pool takes a
   * request back by changing it from 0 to TAKEN_BACK. Whoever changes it first owns the batch; a worker that
   * finds it taken back answers `{type: 'skipped', id}`.
   */
  claims: SharedArrayBuffer;
  overrides?: MetadataOverrides;
  foldBatchNorm?: boolean;
  backend: BackendChoice;
  /** The ONNX runtime setting of the thread that started the pool (formats/onnx/ortRuntime.ts). */
  onnxRuntime?: OnnxRuntimeChoice;
}

type FromWorker =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'scored'; id: number; probabilities: Float32Array; logits: Float32Array }
  | { type: 'memory'; id: number; numTensors: number }
  | { type: 'skipped'; id: number }
  | { type: 'error'; id: number; code?: ErrorCode; message: string };

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

function backendChoiceOf(name: string): BackendChoice {
  if (name === 'tensorflow') return 'node';
  if (name === 'wasm' || name === 'cpu') return name;
  return 'auto';
}

/** One worker thread holding one copy of the model. */
class PoolWorker implements Executor {
  readonly local = false;
  readonly depth = WORKER_DEPTH;
  private readonly claims: Int32Array;
  /** Score requests posted and not answered yet: id → task index, oldest first. */
  private readonly posted = new Map<number, number>();
  readonly ready: Promise<boolean>;
  /** Why it failed to start, if it did. */
  failure?: string;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** `inputKey` of the last Score-CAM input posted to the worker. */
  private inputSent?: number;
  private alive = true;
  private isReady = false;
  readonly exited: Promise<void>;

  constructor(script: string, execArgv: string[] | undefined, data: Omit<ScoreWorkerData, 'claims'>) {
    const shared = new SharedArrayBuffer(4 * CLAIM_SLOTS);
    this.claims = new Int32Array(shared);
    // Referenced while it starts (someone may be waiting for it) and while it holds a request; an idle pool
    // must not keep the process alive.
    this.worker = new Worker(script, { workerData: { onnxRuntime: onnxRuntimeSetting(), ...data, claims: shared } satisfies ScoreWorkerData, execArgv });
    let settleReady: (ok: boolean) => void = () => undefined;
    this.ready = new Promise<boolean>((r) => (settleReady = r));
    this.exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
    this.worker.on('message', (m: FromWorker) => {
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

  private lost(): void {
    this.alive = false;
    for (const p of this.pending.values()) p.reject(new WorkerLostError('the worker thread stopped'));
    this.pending.clear();
  }

  private settle(m: Exclude<FromWorker, { type: 'ready' } | { type: 'failed' }>): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (this.pending.size === 0 && this.isReady) this.worker.unref();
    if (m.type === 'error') p.reject(new CamLensError(m.code ?? 'BAD_ARGUMENT', `in a Score-CAM worker: ${m.message}`));
    else if (m.type === 'skipped') p.reject(new TakenBackError('a queued batch was taken back'));
    else if (m.type === 'scored') p.resolve({ probabilities: m.probabilities, logits: m.logits });
    else p.resolve(m.numTensors);
  }

  private call<T>(msg: Record<string, unknown>, id = this.nextId++): Promise<T> {
    if (!this.alive) return Promise.reject(new WorkerLostError('the worker thread stopped'));
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.ref();
      this.worker.postMessage({ ...msg, id });
    });
  }

  async run(task: ScoreTask, index: number): Promise<BatchScores> {
    let request = await task.request();
    if (request.kind === 'masks') {
      // The worker keeps the input it was sent last (requests reach it in order, taken back or not).
      if (request.inputKey === this.inputSent) request = { ...request, input: undefined };
      else this.inputSent = request.inputKey;
    }
    const id = this.nextId++;
    Atomics.store(this.claims, id % CLAIM_SLOTS, 0);
    this.posted.set(id, index);
    try {
      return await this.call<BatchScores>({ type: 'score', request }, id);
    } finally {
      this.posted.delete(id);
    }
  }

  takeBack(): number | undefined {
    // Newest first: the one the worker has not reached yet (the older one is usually running).
    for (const [id, index] of [...this.posted].reverse()) {
      if (Atomics.compareExchange(this.claims, id % CLAIM_SLOTS, 0, TAKEN_BACK) === 0) return index;
    }
    return undefined;
  }

  skipQueued(): void {
    // Every request posted that has not started is taken back; the one running finishes.
    for (const id of this.posted.keys()) Atomics.compareExchange(this.claims, id % CLAIM_SLOTS, 0, TAKEN_BACK);
  }

  memory(): Promise<number> {
    return this.call<number>({ type: 'memory' });
  }

  get isAlive(): boolean {
    return this.alive;
  }

  async close(): Promise<void> {
    if (!this.alive) return;
    this.worker.ref();
    if (!this.isReady) {
      // Still loading its model: nothing to tidy up in there, and no reason to wait for the load.
      await this.worker.terminate();
      return;
    }
    this.worker.postMessage({ type: 'close' });
    // A worker busy in a long batch is not waited for beyond a grace period.
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Worker threads bound to one model file. Make one per model and keep it while the model is in use (starting
 * a worker costs about one model load); `close()` ends the threads. Safe to use from one thread at a time.
 */
export class ScorePool {
  readonly modelPath: string;
  private readonly opts: ScorePoolOptions;
  private workers: PoolWorker[] = [];
  private started = false;
  private closed = false;

  constructor(opts: ScorePoolOptions) {
    this.opts = opts;
    this.modelPath = path.resolve(opts.modelPath);
  }

  /** True when this pool's workers run the model at `modelPath`. */
  serves(modelPath: string): boolean {
    return !this.closed && path.resolve(modelPath) === this.modelPath;
  }

  /** Number of worker threads asked for. */
  get size(): number {
    return Math.max(0, Math.floor(this.opts.workers ?? defaultWorkerCount()));
  }

  /** Starts the workers (done lazily by `run`); they load the model in the background. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    const n = this.size;
    if (n === 0) return;
    const entry = this.opts.workerScript ? { script: this.opts.workerScript, execArgv: this.opts.execArgv } : defaultWorkerScript();
    if (!entry) return; // no worker bundle next to this one: in-thread only
    const data: Omit<ScoreWorkerData, 'claims'> = {
      modelPath: this.modelPath,
      overrides: this.opts.overrides,
      foldBatchNorm: this.opts.foldBatchNorm,
      backend: this.opts.backend ?? backendChoiceOf(tf.getBackend()),
    };
    for (let i = 0; i < n; i++) {
      try {
        this.workers.push(new PoolWorker(entry.script, this.opts.execArgv ?? entry.execArgv, data));
      } catch {
        break; // the platform refuses more threads: use those we have
      }
    }
  }

  /** Resolves when every worker has loaded its model or failed to; returns how many are ready. */
  async whenReady(): Promise<number> {
    this.start();
    const ok = await Promise.all(this.workers.map((w) => w.ready));
    return ok.filter(Boolean).length;
  }

  /** Why workers failed to start (empty when none did). */
  failures(): string[] {
    return this.workers.flatMap((w) => (w.failure ? [w.failure] : []));
  }

  /**
   * Runs the tasks over the workers and (unless `useCallerThread` is false) the calling thread. Scores come
   * back in task order. With no worker able to run, the calling thread does everything.
   */
  async run(tasks: ScoreTask[], opts: RunOptions = {}): Promise<BatchScores[]> {
    if (this.closed) throw new CamLensError('BAD_ARGUMENT', 'this Score-CAM worker pool was closed');
    this.start();
    const executors: Executor[] = this.workers.filter((w) => w.isAlive);
    if (this.opts.useCallerThread !== false || executors.length === 0) executors.unshift(callerThread);
    return runTasks(tasks, executors, opts);
  }

  /** How many threads `run` spreads tasks over (starting the workers if needed): callers size batches with it. */
  get parallelism(): number {
    this.start();
    const workers = this.workers.filter((w) => w.isAlive).length;
    return workers + (this.opts.useCallerThread !== false || workers === 0 ? 1 : 0);
  }

  /** `tf.memory().numTensors` in each live worker (for leak checks). */
  async workerTensorCounts(): Promise<number[]> {
    const live = [];
    for (const w of this.workers) if ((await w.ready) && w.isAlive) live.push(w);
    return Promise.all(live.map((w) => w.memory()));
  }

  /** Number of worker threads still running. */
  get liveWorkers(): number {
    return this.workers.filter((w) => w.isAlive).length;
  }

  /** Ends every worker thread; resolves when they have exited. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.close()));
    this.workers = [];
  }
}
