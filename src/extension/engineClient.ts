/**
 * The host side of the engine worker (worker.ts): spawns it, sends typed requests, and guarantees that every
 * promise settles:
 * - a reply settles its request; a progress event goes to that request's `onProgress`, a streamed event
 *   (scan results) to its `onEvent`;
 * - an AbortSignal rejects the request at once with EngineCancelledError (code CANCELLED) and tells the
 *   worker to stop (`cancel`); the worker's own late reply is then ignored. With `waitForCancelledReply`
 *   (scans) the request instead stays pending after the abort and settles with the worker's reply, which for
 *   a scan is a success saying `cancelled: true` and carrying what was computed;
 * - a newer request with the same `supersedeKey` (e.g. one per panel) cancels the older one, which rejects
 *   with EngineCancelledError code SUPERSEDED;
 * - if the worker exits or fails, every pending request rejects with EngineCrashedError, and the next request
 *   starts a fresh worker (with the backend last chosen through setBackend);
 * - after dispose(), requests reject with EngineDisposedError.
 *
 * It does not import `vscode`, so it runs in plain Node (tests, benchmarks); the extension passes the path of
 * dist/worker.js and a `log` callback that writes to the "CAM Lens" output channel.
 */
import * as path from 'path';
import { Worker, type ResourceLimits } from 'worker_threads';
import type { ErrorPayload } from '../shared/protocol';
import type { StrategiesReport } from './engine/analysis/types';
import {
  createCancelBoard,
  isWorkerToHost,
  markCancelled,
  type BackendChoice,
  type OnnxRuntimeChoice,
  type BackendStatus,
  type CamParams,
  type CamPairParams,
  type CamPairResult,
  type CamResult,
  type CompareImageParams,
  type CompareRunParams,
  type CompareRunResult,
  type StrategiesParams,
  type ComputationLog,
  type DescribeResult,
  type EventOf,
  type FeaturesParams,
  type FeaturesResult,
  type ImageRef,
  type MemoryResult,
  type ModelRef,
  type OverlayParams,
  type OverlayResult,
  type ParamsOf,
  type PredictResult,
  type RequestType,
  type ResultOf,
  type ReviewedResult,
  type ScanParams,
  type ScanRunResult,
  type WorkerErrorPayload,
  type WorkerOptions,
  type WorkerToHost,
} from './workerProtocol';

/** An error the engine reported (the worker's CamLensError, or an unexpected error, with its stack). */
export class EngineError extends Error {
  readonly code?: string;
  readonly hint?: string;
  readonly workerStack?: string;
  constructor(payload: WorkerErrorPayload) {
    super(payload.message);
    this.name = payload.name || 'Error';
    this.code = payload.code;
    this.hint = payload.hint;
    this.workerStack = payload.stack;
  }

  /** The `{name, message, code?, hint?}` form the webview protocol carries. */
  toPayload(): ErrorPayload {
    const p: ErrorPayload = { name: this.name, message: this.message };
    if (this.code !== undefined) p.code = this.code;
    if (this.hint !== undefined) p.hint = this.hint;
    return p;
  }
}

/** The request was cancelled by its AbortSignal (code CANCELLED) or by a newer request (code SUPERSEDED). */
export class EngineCancelledError extends EngineError {
  constructor(readonly reason: 'cancelled' | 'superseded', type: RequestType) {
    super({
      name: 'CancelledError',
      code: reason === 'superseded' ? 'SUPERSEDED' : 'CANCELLED',
      message: reason === 'superseded' ? `${type} was superseded by a newer request` : `${type} was cancelled`,
    });
  }
}

/** The worker died (exit, uncaught error, failed start) while the request was pending. */
export class EngineCrashedError extends EngineError {
  constructor(message: string) {
    super({ name: 'EngineCrashedError', code: 'WORKER_EXITED', message, hint: 'the engine restarts with the next request; see the CAM Lens output for details' });
  }
}

export class EngineDisposedError extends EngineError {
  constructor(type: RequestType) {
    super({ name: 'EngineDisposedError', code: 'DISPOSED', message: `${type} was sent after the engine was shut down` });
  }
}

/** True for the errors a UI should swallow silently (the user or a newer request asked for it). */
export function isCancellation(e: unknown): e is EngineCancelledError {
  return e instanceof EngineCancelledError || (e instanceof EngineError && (e.code === 'CANCELLED' || e.code === 'SUPERSEDED'));
}

export type EngineLogEvent =
  /** One computation the worker finished (or failed), for the output channel. */
  | { kind: 'computation'; entry: ComputationLog; error?: ErrorPayload & { stack?: string } }
  /** Worker lifecycle: started, exited, crashed, restarted. */
  | { kind: 'worker'; message: string };

export interface EngineClientOptions {
  /** The bundled worker script (dist/worker.js). */
  workerPath: string;
  /** Backend the worker starts with (default 'auto'); setBackend changes it for later restarts too. */
  backend?: BackendChoice;
  /** Threads for one forward pass (camLens.threads; default 0: one per core, capped); setThreads changes it. */
  threads?: number;
  /** ONNX Runtime for ONNX models' forward-only passes (camLens.onnxRuntime; default 'auto'); setBackend changes it. */
  onnxRuntime?: OnnxRuntimeChoice;
  maxSessions?: number;
  maxModels?: number;
  /** Enables the worker's `debug/crash` request (tests only). */
  testHooks?: boolean;
  /** Worker thread at below-normal priority (default true; see WorkerOptions). */
  lowPriority?: boolean;
  /** Score-CAM's extra threads (default cores - 1 - the engine's threads; see WorkerOptions). */
  scoreWorkers?: number;
  /** A scan's worker threads (default one per core; see WorkerOptions). */
  scanWorkers?: number;
  /** How long the worker keeps a released model (see holdModel) without use, ms; default 5 minutes. */
  modelIdleMs?: number;
  resourceLimits?: ResourceLimits;
  log?: (event: EngineLogEvent) => void;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** A newer request with the same key cancels this one (one live request per panel and kind). */
  supersedeKey?: string;
  onProgress?: (done: number, total: number) => void;
  /** Streamed events of requests that have them (EventMap: `scan/run`). */
  onEvent?: (event: unknown) => void;
  /**
   * When `signal` aborts, ask the worker to stop but keep waiting for its reply (which carries what was computed)
   * instead of rejecting at once. Supersession and worker death still reject at once.
   */
  waitForCancelledReply?: boolean;
}

/** CallOptions with the request's own event type. */
export type CallOptionsOf<T extends RequestType> = Omit<CallOptions, 'onEvent'> & { onEvent?: (event: EventOf<T>) => void };

interface Pending {
  id: number;
  type: RequestType;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  onProgress?: (done: number, total: number) => void;
  onEvent?: (event: unknown) => void;
  waitForCancelledReply?: boolean;
  supersedeKey?: string;
  /** Removes the abort listener. */
  cleanup(): void;
}

export class EngineClient {
  private worker?: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly byKey = new Map<string, number>();
  private backend: BackendChoice;
  private threads: number;
  private onnxRuntime: OnnxRuntimeChoice;
  private disposed = false;
  private generation = 0;
  /** Holders per model file (holdModel). */
  private readonly holds = new Map<string, number>();
  /** Shared with every worker this client starts: cancellation reaches a worker busy in a long method. */
  private readonly cancelBoard = createCancelBoard();

  constructor(private readonly opts: EngineClientOptions) {
    this.backend = opts.backend ?? 'auto';
    this.threads = opts.threads ?? 0;
    this.onnxRuntime = opts.onnxRuntime ?? 'auto';
  }

  describeModel(model: ModelRef, call?: CallOptions): Promise<DescribeResult> {
    return this.request('model/describe', { model }, call);
  }

  predict(params: { model: ModelRef; image: ImageRef; topK?: number }, call?: CallOptions): Promise<PredictResult> {
    return this.request('image/predict', params, call);
  }

  computeCam(params: CamParams, call?: CallOptions): Promise<CamResult> {
    return this.request('cam/compute', params, call);
  }

  featureMaps(params: FeaturesParams, call?: CallOptions): Promise<FeaturesResult> {
    return this.request('features/compute', params, call);
  }

  renderOverlay(params: OverlayParams, call?: CallOptions): Promise<OverlayResult> {
    return this.request('overlay/render', params, call);
  }

  /**
   * Switches the backend and/or the wasm thread count (0: one per core; default: the count in use); the worker
   * reloads its models when either changes. Both stay in force for later worker restarts.
   */
  async setBackend(backend: BackendChoice, call?: CallOptions, threads = this.threads, onnxRuntime = this.onnxRuntime): Promise<BackendStatus> {
    const status = await this.request('backend/set', { backend, threads, onnxRuntime }, call);
    this.backend = backend;
    this.threads = threads;
    this.onnxRuntime = onnxRuntime;
    return status;
  }

  /**
   * Scans a dataset in the worker: `onEvent` gets the dataset, then rows and progress as they arrive; the promise
   * resolves with the report. Aborting `signal` stops the scan and still resolves, with `cancelled: true` and
   * the results so far (a scan still queued behind another rejects with EngineCancelledError instead).
   */
  scan(params: ScanParams, call: CallOptionsOf<'scan/run'> = {}): Promise<ScanRunResult> {
    return this.request('scan/run', params, { ...call, onEvent: call.onEvent as ((e: unknown) => void) | undefined, waitForCancelledReply: call.waitForCancelledReply ?? true });
  }

  /** Marks a sample "label is correct" in `<root>/.cam-lens/reviewed.json`. */
  markReviewed(params: { root: string; relPath: string; givenLabel: string }, call?: CallOptions): Promise<ReviewedResult> {
    return this.request('scan/reviewed', params, call);
  }

  /** Two maps of one image (given and predicted label) with one method and layer. */
  camPair(params: CamPairParams, call?: CallOptions): Promise<CamPairResult> {
    return this.request('cam/pair', params, call);
  }

  /** Two models on one image: both maps of one class, their difference and rank correlation (the compare panel). */
  compareImage(params: CompareImageParams, call?: CallOptions): Promise<ResultOf<'compare/image'>> {
    return this.request('compare/image', params, call);
  }

  /**
   * Two models over a dataset in the worker's scan lane: `onEvent` gets rows and progress as they arrive; the
   * promise resolves with the ranked rows. Aborting `signal` stops it and still resolves, with `cancelled: true`.
   */
  compareRun(params: CompareRunParams, call: CallOptionsOf<'compare/run'> = {}): Promise<CompareRunResult> {
    return this.request('compare/run', params, { ...call, onEvent: call.onEvent as ((e: unknown) => void) | undefined, waitForCancelledReply: call.waitForCancelledReply ?? true });
  }

  /**
   * Model strategies over a dataset in the worker's scan lane (engine/analysis/strategies.ts): `onEvent` gets the
   * progress; the promise resolves with the report. Aborting `signal` stops it and still resolves, with
   * `cancelled: true` and the classes clustered from the maps computed so far. The worker caches the maps: the
   * same request with another `clusters` computes none again.
   */
  strategies(params: StrategiesParams, call: CallOptionsOf<'strategies/run'> = {}): Promise<StrategiesReport> {
    return this.request('strategies/run', params, { ...call, onEvent: call.onEvent as ((e: unknown) => void) | undefined, waitForCancelledReply: call.waitForCancelledReply ?? true });
  }

  /**
   * Says that something (a panel) shows the model file at `modelPath`; the returned function says it no longer does
   * (once; later calls do nothing). When the last holder of a file lets go, the worker is told (`model/release`)
   * and frees the model after WorkerOptions.modelIdleMs without use, unless it is asked for again meanwhile.
   */
  holdModel(modelPath: string): () => void {
    const key = path.resolve(modelPath);
    this.holds.set(key, (this.holds.get(key) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const n = (this.holds.get(key) ?? 1) - 1;
      if (n > 0) {
        this.holds.set(key, n);
        return;
      }
      this.holds.delete(key);
      // Nothing to free in a worker that is not running; a failure only means the model stays cached.
      if (this.worker && !this.disposed) this.request('model/release', { model: { path: key } }).catch(() => undefined);
    };
  }

  /** tf.memory() inside the worker (leak checks, diagnostics). */
  memory(call?: CallOptions): Promise<MemoryResult> {
    return this.request('debug/memory', {}, call);
  }

  /** Requests in flight. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** The worker's thread id, or undefined before the first request / after a crash. */
  get workerThreadId(): number | undefined {
    return this.worker?.threadId;
  }

  /** Any request by type; the typed methods above are thin wrappers. */
  request<T extends RequestType>(type: T, params: ParamsOf<T>, call: CallOptions = {}): Promise<ResultOf<T>> {
    if (this.disposed) return Promise.reject(new EngineDisposedError(type));
    if (call.signal?.aborted) return Promise.reject(new EngineCancelledError('cancelled', type));
    return new Promise<ResultOf<T>>((resolve, reject) => {
      const id = this.nextId++;
      const onAbort = () => this.cancel(id, 'cancelled');
      const p: Pending = {
        id,
        type,
        resolve: resolve as (v: unknown) => void,
        reject,
        onProgress: call.onProgress,
        onEvent: call.onEvent,
        waitForCancelledReply: call.waitForCancelledReply,
        supersedeKey: call.supersedeKey,
        cleanup: () => call.signal?.removeEventListener('abort', onAbort),
      };
      if (call.supersedeKey !== undefined) {
        const older = this.byKey.get(call.supersedeKey);
        if (older !== undefined) this.cancel(older, 'superseded');
        this.byKey.set(call.supersedeKey, id);
      }
      this.pending.set(id, p);
      call.signal?.addEventListener('abort', onAbort, { once: true });
      let worker: Worker;
      try {
        worker = this.ensureWorker();
        worker.ref();
        worker.postMessage({ ...params, id, type });
      } catch (e) {
        this.settle(id)?.reject(e instanceof EngineError ? e : new EngineCrashedError(`the engine worker could not take the request: ${(e as Error).message}`));
      }
    });
  }

  /** Rejects all pending requests and stops the worker. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const id of [...this.pending.keys()]) {
      const p = this.settle(id);
      p?.reject(new EngineDisposedError(p.type));
    }
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  // -------------------------------------------------------------------------------------------------------

  /** Removes a pending request from the books; returns it for settling, or undefined if already settled. */
  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    p.cleanup();
    if (p.supersedeKey !== undefined && this.byKey.get(p.supersedeKey) === id) this.byKey.delete(p.supersedeKey);
    if (this.pending.size === 0) this.worker?.unref();
    return p;
  }

  private cancel(id: number, reason: 'cancelled' | 'superseded'): void {
    const waiting = this.pending.get(id);
    if (!waiting) return;
    // The reply will carry what was computed: keep the request pending (worker death still rejects it).
    const keep = reason === 'cancelled' && waiting.waitForCancelledReply === true;
    const p = keep ? waiting : this.settle(id);
    if (!p) return;
    if (keep) p.cleanup();
    markCancelled(this.cancelBoard, id);
    try {
      this.worker?.postMessage({ type: 'cancel', id });
    } catch {
      // The worker is gone: nothing to stop.
    }
    if (!keep) p.reject(new EngineCancelledError(reason, p.type));
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const workerData: WorkerOptions = {
      backend: this.backend,
      threads: this.threads,
      onnxRuntime: this.onnxRuntime,
      maxSessions: this.opts.maxSessions,
      maxModels: this.opts.maxModels,
      testHooks: this.opts.testHooks,
      lowPriority: this.opts.lowPriority,
      scoreWorkers: this.opts.scoreWorkers,
      scanWorkers: this.opts.scanWorkers,
      modelIdleMs: this.opts.modelIdleMs,
      cancelBoard: this.cancelBoard,
      createdAt: performance.timeOrigin + performance.now(),
    };
    const w = new Worker(this.opts.workerPath, { workerData, resourceLimits: this.opts.resourceLimits });
    const gen = ++this.generation;
    this.worker = w;
    this.opts.log?.({ kind: 'worker', message: `engine worker ${w.threadId} started (${this.opts.workerPath}, backend ${this.backend}, threads ${this.threads || 'auto'})` });
    w.on('message', (m: unknown) => this.onMessage(m));
    w.on('error', (e: Error) => this.onDeath(gen, `the engine worker failed: ${e.message}`, e));
    w.on('exit', (code) => this.onDeath(gen, `the engine worker exited with code ${code}`));
    w.on('messageerror', (e: Error) => this.opts.log?.({ kind: 'worker', message: `a message from the engine worker could not be read: ${e.message}` }));
    return w;
  }

  /** The worker of generation `gen` is gone: every request it held rejects; the next request respawns. */
  private onDeath(gen: number, message: string, error?: Error): void {
    if (gen !== this.generation) return;
    const w = this.worker;
    this.worker = undefined;
    this.generation++;
    if (error) void w?.terminate();
    if (this.disposed) return;
    const n = this.pending.size;
    this.opts.log?.({ kind: 'worker', message: `${message}${error?.stack ? `\n${error.stack}` : ''}; ${n} pending request(s) rejected, the next request starts a new worker` });
    for (const id of [...this.pending.keys()]) {
      const p = this.settle(id);
      p?.reject(new EngineCrashedError(`${message} while ${p.type} was running`));
    }
  }

  private onMessage(m: unknown): void {
    if (!isWorkerToHost(m)) {
      this.opts.log?.({ kind: 'worker', message: `ignored a malformed message from the engine worker: ${JSON.stringify(m)?.slice(0, 200)}` });
      return;
    }
    const msg = m as WorkerToHost;
    if ('type' in msg) {
      const p = this.pending.get(msg.id);
      if (msg.type === 'progress') p?.onProgress?.(msg.done, msg.total);
      else {
        try {
          p?.onEvent?.(msg.event);
        } catch (e) {
          // A listener's bug must not break the message loop that settles every other request.
          this.opts.log?.({ kind: 'worker', message: `an event listener of ${p?.type} failed: ${(e as Error)?.stack ?? String(e)}` });
        }
      }
      return;
    }
    if (msg.log) this.opts.log?.({ kind: 'computation', entry: msg.log, error: msg.ok ? undefined : msg.error });
    const p = this.settle(msg.id);
    if (!p) return; // cancelled or superseded earlier: the late reply has no one to go to
    if (msg.ok) p.resolve(msg.result);
    else if (msg.error.code === 'CANCELLED') p.reject(new EngineCancelledError('cancelled', p.type));
    else p.reject(new EngineError(msg.error));
  }
}
