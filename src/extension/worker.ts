/**
 * The engine worker: a `worker_threads` worker owned by the extension host (EngineClient), so that model
 * loading and forward/backward passes never block the host's event loop. Protocol: workerProtocol.ts.
 *
 * Caches (why: switching class, method or colormap on an open image must not redo the forward pass):
 * - Models, LRU (default 3), keyed by (absolute model.json path, metadata overrides) and validated on every
 *   request by a fingerprint of mtime + size of model.json, each weight shard it names and the metadata
 *   files next to it (cam-lens.json, metadata.json, labels.txt, classes.txt, an overriding labels file).
 *   A changed file reloads the model and drops its image sessions.
 * - ImageSessions, LRU (default 4), keyed by (model, absolute image path, preprocessing) and validated by
 *   the image's mtime + size. A session caches the activations of up to 4 layers and 16 (layer, class)
 *   gradients itself, so a new class costs one partial backward pass and a new method only the map.
 *   Evicted sessions and models are disposed (their tensors freed). A model the host released (`model/release`:
 *   the last panel showing it closed) is disposed after WorkerOptions.modelIdleMs (5 minutes) without use.
 * - The last map computed per image path (a small copy), for "Export PNG" (`overlay/render`).
 *
 * Requests run one at a time, in arrival order: an ImageSession is not re-entrant, and a serial queue makes
 * backend switches and evictions safe. Between steps the worker yields to its event loop, so a `cancel`
 * that arrives meanwhile aborts the request at the next check (and inside methods that take the signal).
 *
 * Scans (`scan/run`) run in a lane of their own beside that queue, one at a time: a scan of thousands of
 * images must not hold back the heatmaps the triage view asks for while it runs. This is safe because a scan
 * yields between batches (every tfjs call of a batch is synchronous, so no two requests interleave inside one),
 * uses only its model, never an ImageSession, and pins that model: eviction skips pinned models, and a pinned
 * model that must go (its files changed) is disposed when the scan lets go of it. `backend/set` cancels the
 * scans and waits for them before it frees the old backend's tensors.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parentPort, workerData } from 'worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { availableCores, currentBackend, initBackend, type BackendChoice, type BackendInfo } from './engine/backend';
import { onnxRuntimeSetting, setOnnxRuntime } from './engine/formats/onnx/ortRuntime';
// Before the engine's heavier modules: the backend starts while they load (workerBoot.ts).
import { earlyBackend } from './workerBoot';
import { CamLensError, CancelledError, throwIfAborted, toErrorInfo } from './engine/errors';
import { labelOf, loadModel, numClasses, type LoadedModel } from './engine/model';
import { describeImage, describeModel, dicomOptionsFor, prepareInput } from './engine/pipeline';
import { dicomSelectionKey } from '../shared/dicom';
import { decodeImage, type DecodedImage } from './engine/image';
import { renderOverlayPng, type HeatmapLike } from './engine/overlay';
import { METHODS, getMethod, methodParams } from './engine/cam/registry';
import { findLinearHead } from './engine/head';
import { computeFeatureMaps } from './engine/featureMaps';
import { ScorePool } from './engine/scorePool';
import { readDataset } from './engine/scan/dataset';
import { scanDataset, type SampleResult } from './engine/scan/scan';
import { ScanPool } from './engine/scan/scanPool';
import { buildReport, markReviewed, readReviewed, reviewedFile } from './engine/scan/report';
import { classThreshold, isFlagged, rankOrder, score } from './engine/scan/ranking';
import type { MetadataOverrides } from './engine/metadata';
import { ImageSession } from './engine/session';
import { compareDataset, compareSessions, type SampleComparison } from './engine/analysis/compare';
import { analyseStrategies } from './engine/analysis/strategies';
import { MapCache } from './engine/analysis/maps';
import type { CompareRow } from '../shared/compareProtocol';
import {
  type ImageDescription,
  type LayerSummary,
  type MethodInfo,
  type ModelInfo,
  type PreprocessId,
  type ScanDatasetInfo,
  type ScanFailureInfo,
  type ScanRow,
} from '../shared/protocol';
import {
  isCancelMessage,
  isMarkedCancelled,
  requestProblem,
  transferablesOf,
  type BackendStatus,
  type CamPairMap,
  type ComputationLog,
  type EventMap,
  type ImageRef,
  type ModelRef,
  type RequestOf,
  type RequestType,
  type ResultOf,
  type WorkerErrorPayload,
  type WorkerOptions,
  type WorkerRequest,
  type WorkerToHost,
} from './workerProtocol';

const options: WorkerOptions = (workerData ?? {}) as WorkerOptions;

/** When this thread had loaded its modules (epoch ms, as WorkerOptions.createdAt). */
const BOOTED_AT = performance.timeOrigin + performance.now();
let bootReported = false;

/** `{ boot }`, the ms from the host's `new Worker` until the modules were loaded, for the first request that reports timings. */
function bootTiming(): Record<string, number> {
  if (bootReported || options.createdAt === undefined) return {};
  bootReported = true;
  return { boot: BOOTED_AT - options.createdAt };
}
const MAX_MODELS = Math.max(1, options.maxModels ?? 3);
const MAX_SESSIONS = Math.max(1, options.maxSessions ?? 4);
const MAX_LAST_MAPS = 16;
/** Progress events at most this often (the last one always goes out). */
const PROGRESS_INTERVAL_MS = 30;
/** Images per batch of a scan, unless the request says (ScanParams.batchSize). */
const SCAN_BATCH_SIZE = 16;
/** A scan's results and progress at most this often by default (the last ones always go out). */
const SCAN_EVENT_INTERVAL_MS = 100;
/** Flags of earlier rows are recomputed at most this often, and at most 1/20 of the time (see ScanEvent). */
const FLAG_RECOMPUTE_MIN_MS = 250;
const METADATA_FILES = ['cam-lens.json', 'metadata.json', 'labels.txt', 'classes.txt'];

let backendChoice: BackendChoice = options.backend ?? 'auto';
/** Threads for one forward pass (WorkerOptions.threads; 0: one per core). */
let threadsSetting = options.threads ?? 0;
// ONNX models' forward-only passes on ONNX Runtime unless the host says 'off' (WorkerOptions.onnxRuntime).
setOnnxRuntime(options.onnxRuntime === 'off' ? 'off' : 'auto');

/**
 * Score-CAM's pool workers (each single-threaded) and this thread's own threads share the cores, one core staying
 * with the extension host (and the rest of the editor): by default cores - 1 - (threads in use). With one
 * thread that is cores - 2 workers, as before threads existed; with a thread per core, no pool: XNNPACK's
 * threads run the masked batches (on 2 cores as fast as a pool; bench/threads.ts --scorecam), while threads and
 * a pool at once oversubscribe the cores and are slower than either.
 */
function scoreWorkers(): number {
  if (options.scoreWorkers !== undefined) return Math.max(0, Math.floor(options.scoreWorkers));
  return Math.max(0, availableCores() - 1 - (currentBackend()?.threads ?? 1));
}

/** At most this many scan workers, whatever the core count. */
const MAX_SCAN_WORKERS = 8;

/**
 * A scan's worker threads (engine/scan/scanPool.ts), each single-threaded and holding its own copy of the model.
 * While a scan runs this thread only describes and ranks results, and its wasm threads wait, so the scan gets a
 * worker per core: they are this thread's children and inherit its lower priority, so the host still gets a core
 * first. Fewer where memory is short (a worker costs about 4x the model's weight bytes, at most half the free
 * memory goes to them), none on one core or on tfjs-node (whose own thread pools run a batch on every core).
 */
function scanWorkers(model: LoadedModel, batches: number): number {
  if (options.scanWorkers !== undefined) return Math.max(0, Math.min(Math.floor(options.scanWorkers), batches));
  const cores = availableCores();
  if (cores < 2 || currentBackend()?.name === 'tensorflow') return 0;
  const byMemory = Math.floor(os.freemem() / 2 / (4 * model.weightBytes + 64 * 2 ** 20));
  return Math.max(0, Math.min(cores, MAX_SCAN_WORKERS, byMemory, batches));
}

/**
 * Lowers this thread's scheduling priority (nice 10) so that the host's event loop keeps its latency while the
 * engine saturates a core: on a machine with fewer free cores than busy threads, the kernel then runs the host
 * thread first. Linux names threads by their kernel id in /proc/thread-self; elsewhere this does nothing.
 */
function lowerThreadPriority(): void {
  if (options.lowPriority === false) return;
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0 && tid !== process.pid) os.setPriority(tid, os.constants.priority.PRIORITY_BELOW_NORMAL);
  } catch {
    // Not Linux, or not permitted: normal priority.
  }
}

// ---------------------------------------------------------------------------------------------------------
// Caches

interface ModelEntry {
  key: string;
  fingerprint: string;
  model: LoadedModel;
  /** Distinguishes reloads of the same key in session keys. */
  uid: number;
  /** Score-CAM's extra threads for this model, started on its first Score-CAM. */
  pool?: ScorePool;
  /** Scans using this model: eviction skips it, and disposal waits until the last one lets go. */
  pins: number;
  /** Dropped from the cache while pinned: dispose when unpinned. */
  retired: boolean;
  /** When the host released it (`model/release`), if it has not been used since (performance.now()). */
  releasedAt?: number;
}

interface SessionEntry {
  /** (model uid, image path, preprocess, DICOM frame and window): one live session per slot. */
  slot: string;
  /** mtime + size of the image when it was decoded. */
  fingerprint: string;
  modelUid: number;
  session: ImageSession;
  imagePath: string;
  imageSize: [number, number];
  preprocess: PreprocessId;
  /** Channels, depth and DICOM path of the image (PredictResult.image). */
  image: ImageDescription;
}

const models = new Map<string, ModelEntry>();
const sessions = new Map<string, SessionEntry>();
const lastMaps = new Map<string, HeatmapLike>();
const shardLists = new Map<string, { sig: string; shards: string[] }>();
/** Models being loaded, by cache key: a scan and a map asking for the same model at once share one load. */
const loading = new Map<string, Promise<ModelEntry>>();
let modelSeq = 0;

function statSig(file: string): string {
  try {
    const s = fs.statSync(file);
    return `${s.mtimeMs}:${s.size}`;
  } catch {
    return '-';
  }
}

/** The weight shards a model.json names (re-read only when model.json itself changed). */
function shardsOf(file: string, sig: string): string[] {
  const hit = shardLists.get(file);
  if (hit && hit.sig === sig) return hit.shards;
  const shards: string[] = [];
  try {
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { weightsManifest?: { paths?: unknown[] }[] };
    for (const group of json.weightsManifest ?? []) {
      for (const p of group.paths ?? []) if (typeof p === 'string') shards.push(path.resolve(path.dirname(file), p));
    }
  } catch {
    // loadModel reports an unreadable model.json with its own error.
  }
  shardLists.set(file, { sig, shards });
  return shards;
}

function modelFingerprint(file: string, ref: ModelRef): string {
  const sig = statSig(file);
  const dir = path.dirname(file);
  const parts = [sig, ...shardsOf(file, sig).map(statSig), ...METADATA_FILES.map((f) => statSig(path.join(dir, f)))];
  if (ref.overrides?.labelsFile) parts.push(statSig(path.resolve(ref.overrides.labelsFile)));
  return parts.join('|');
}

/** Overrides in a canonical form (sorted keys), so equal overrides give equal keys. */
function canonical(x: unknown): string {
  if (x === undefined || x === null) return '';
  if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`;
  if (typeof x === 'object') {
    return `{${Object.keys(x as object).sort().filter((k) => (x as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${k}:${canonical((x as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(x);
}

function touch<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
}

function dropSession(e: SessionEntry): void {
  if (sessions.get(e.slot) === e) sessions.delete(e.slot);
  e.session.dispose();
}

function dropModel(e: ModelEntry): void {
  if (models.get(e.key) === e) models.delete(e.key);
  for (const s of [...sessions.values()]) if (s.modelUid === e.uid) dropSession(s);
  if (e.pins > 0) {
    e.retired = true;
    return;
  }
  e.model.dispose();
  void e.pool?.close();
}

function pinModel(e: ModelEntry): void {
  e.pins++;
}

function unpinModel(e: ModelEntry): void {
  e.pins--;
  if (e.pins === 0 && e.retired) {
    e.model.dispose();
    void e.pool?.close();
  }
}

/** How long a released model stays loaded without use (WorkerOptions.modelIdleMs). */
const MODEL_IDLE_MS = Math.max(0, options.modelIdleMs ?? 5 * 60_000);
let idleSweep: { timer: NodeJS.Timeout; at: number } | undefined;

/** Sweeps in `ms`, or earlier if a sweep is due before that. */
function scheduleIdleSweep(ms: number): void {
  const at = performance.now() + ms;
  if (idleSweep && idleSweep.at <= at) return;
  if (idleSweep) clearTimeout(idleSweep.timer);
  const timer = setTimeout(sweepIdleModels, ms);
  // A pending sweep must not keep the thread alive.
  timer.unref();
  idleSweep = { timer, at };
}

/**
 * Frees the released models that have gone unused for MODEL_IDLE_MS. Not while a request runs (it may hold a model
 * it fetched before the release, a long Score-CAM say) nor while a scan uses the model (pinned): then it looks
 * again a second later.
 */
function sweepIdleModels(): void {
  idleSweep = undefined;
  const now = performance.now();
  let next = Infinity;
  for (const m of [...models.values()]) {
    if (m.releasedAt === undefined) continue;
    const left = m.releasedAt + MODEL_IDLE_MS - now;
    if (left > 0) next = Math.min(next, left);
    else if (running || m.pins > 0) next = Math.min(next, 1000);
    else dropModel(m);
  }
  if (next < Infinity) scheduleIdleSweep(next);
}

function dropAll(): void {
  for (const s of [...sessions.values()]) dropSession(s);
  for (const m of [...models.values()]) dropModel(m);
  lastMaps.clear();
}

function modelOverrides(ref: ModelRef): MetadataOverrides {
  const o = ref.overrides ?? {};
  return { labels: o.labels, labelsFile: o.labelsFile, preprocess: o.preprocess, labelOffset: o.labelOffset, output: o.output };
}

/**
 * The model of `ref`, from the cache or loaded. `timings` (ms) gets the phases of a load: `backend` (its start,
 * when this request started it; model.json is read meanwhile), `read`, `weights`, `graph` (LoadOptions.timings).
 */
async function getModel(ref: ModelRef, timings?: Record<string, number>): Promise<{ entry: ModelEntry; cached: boolean }> {
  const t0 = performance.now();
  const starting = currentBackend() ? undefined : ensureBackend();
  if (starting) {
    // Awaited below or by loadModel; this branch only keeps a failure that nobody awaits from going unhandled.
    starting.then(() => timings && (timings.backend = performance.now() - t0), () => undefined);
  }
  const file = path.resolve(ref.path);
  const key = `${file}\u0000${canonical(ref.overrides)}`;
  const fingerprint = modelFingerprint(file, ref);
  const hit = models.get(key);
  if (hit && hit.fingerprint === fingerprint) {
    await starting;
    touch(models, key, hit);
    hit.releasedAt = undefined;
    return { entry: hit, cached: true };
  }
  const inflight = loading.get(key);
  if (inflight) return { entry: await inflight, cached: true };
  if (hit) dropModel(hit);
  const load = (async () => {
    const model = await loadModel(file, { overrides: modelOverrides(ref), timings, backendStarting: starting });
    const entry: ModelEntry = { key, fingerprint, model, uid: ++modelSeq, pins: 0, retired: false };
    models.set(key, entry);
    while (models.size > MAX_MODELS) {
      // The least recently used model that no scan is using; pinned ones may push the cache over its size.
      const victim = [...models.values()].find((m) => m.pins === 0 && m !== entry);
      if (!victim) break;
      dropModel(victim);
    }
    return entry;
  })();
  loading.set(key, load);
  try {
    return { entry: await load, cached: false };
  } finally {
    loading.delete(key);
  }
}

/** An image decode started before its model was ready (`decodeAhead`). */
interface Decoding {
  file: string;
  fingerprint: string;
  image: Promise<DecodedImage>;
}

/**
 * Starts decoding the image of a request before its model is loaded, so that sharp decodes it on libuv's threads
 * while this thread reads and builds the model (a cold start pays the longer of the two, not both). Nothing when a
 * session of that image file is cached: a class or method switch decodes nothing.
 */
function decodeAhead(ref: ImageRef): Decoding | undefined {
  const file = path.resolve(ref.path);
  const fingerprint = statSig(file);
  for (const s of sessions.values()) if (s.imagePath === file && s.fingerprint === fingerprint) return undefined;
  const image = decodeImage(file, { maxPixels: ref.maxPixels, dicom: ref.dicom });
  // Awaited by getSession, which reports a failure; a request that fails before that leaves it unawaited.
  image.catch(() => undefined);
  return { file, fingerprint, image };
}

/**
 * The session of an image with a model, from the cache or opened (with the decode `ahead` started, if it is of
 * this file as it is now). `timings` gets `decode` (what was left to wait for of the decode) and `preprocess`.
 */
async function getSession(me: ModelEntry, ref: ImageRef, timings?: Record<string, number>, ahead?: Decoding): Promise<{ entry: SessionEntry; cached: boolean }> {
  const file = path.resolve(ref.path);
  const preprocess = ref.preprocess ?? me.model.metadata.preprocess;
  const slot = `${me.uid}\u0000${file}\u0000${preprocess}\u0000${dicomSelectionKey(ref.dicom)}`;
  const fingerprint = statSig(file);
  const hit = sessions.get(slot);
  if (hit && hit.fingerprint === fingerprint) {
    const [w, h] = hit.imageSize;
    if (ref.maxPixels !== undefined && w * h > ref.maxPixels) {
      throw new CamLensError('IMAGE_TOO_LARGE', `"${file}" is ${w}x${h} = ${w * h} pixels, more than the limit of ${ref.maxPixels}`,
        'Raise camLens.maxImagePixels if you trust this image.');
    }
    touch(sessions, slot, hit);
    return { entry: hit, cached: true };
  }
  if (hit) dropSession(hit);
  const t0 = performance.now();
  const dicom = dicomOptionsFor(me.model, ref.dicom);
  let image = await (ahead && ahead.file === file && ahead.fingerprint === fingerprint ? ahead.image : decodeImage(file, { maxPixels: ref.maxPixels, dicom }));
  // A DICOM decoded ahead did not know the model's window: again with it (the frame is cached, only the window runs).
  if (image.dicom && dicom?.modelWindow && !ref.dicom?.window && image.dicom.window?.source !== 'model') image = await decodeImage(file, { maxPixels: ref.maxPixels, dicom });
  const t1 = performance.now();
  const session = new ImageSession(me.model, await prepareInput(me.model, image, preprocess));
  if (timings) Object.assign(timings, { decode: t1 - t0, preprocess: performance.now() - t1 });
  const entry: SessionEntry = {
    slot,
    fingerprint,
    modelUid: me.uid,
    session,
    imagePath: file,
    imageSize: [image.width, image.height],
    preprocess,
    image: describeImage(image),
  };
  sessions.set(slot, entry);
  while (sessions.size > MAX_SESSIONS) {
    const [oldest] = sessions.values();
    dropSession(oldest);
  }
  return { entry, cached: false };
}

// ---------------------------------------------------------------------------------------------------------
// Backend

/** The start under way: the one begun while the modules loaded (workerBoot.ts), then any later one. */
let backendStarting: Promise<BackendInfo> | undefined = earlyBackend?.finally(() => {
  backendStarting = undefined;
});
backendStarting?.catch(() => undefined);

/** The backend, initialised once even when a scan and another request ask for it at the same time. */
async function ensureBackend(): Promise<BackendInfo> {
  const info = currentBackend();
  if (info) return info;
  backendStarting ??= initBackend(backendChoice, { threads: threadsSetting }).finally(() => {
    backendStarting = undefined;
  });
  return backendStarting;
}

function backendStatus(info: BackendInfo): BackendStatus {
  const s: BackendStatus = { name: info.name, requested: info.requested, threads: info.threads, notes: [...info.notes] };
  if (info.simd !== undefined) s.simd = info.simd;
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// Handlers

interface JobContext {
  signal: AbortSignal;
  /** Aborts the signal if the host flagged this request in the shared cancel board. */
  checkBoard(): void;
  progress(done: number, total: number): void;
  /** Streams an event of this request (EventMap) to the host, before the reply. */
  event(e: EventMap[keyof EventMap]): void;
  /** Filled in by the handler; sent with the reply. */
  log: ComputationLog;
}

/** Lets queued `cancel` messages in between two steps of a request. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

async function step(ctx: JobContext, what: string): Promise<void> {
  await tick();
  ctx.checkBoard();
  throwIfAborted(ctx.signal, what);
}

function methodInfos(model: LoadedModel, recommended: string | null): MethodInfo[] {
  const out: MethodInfo[] = [];
  for (const m of METHODS) {
    const info: MethodInfo = {
      id: m.id, label: m.label, needsGradients: m.needsGradients, classIndependent: m.classIndependent === true, available: true,
      group: m.group, usesLayer: m.usesLayer !== false, params: methodParams(m),
    };
    if (recommended === null) {
      info.available = false;
      info.reason = 'the model has no layer with a spatial output';
    } else if (m.id === 'cam') {
      try {
        const op = model.graph.op(recommended);
        // findLinearHead makes a reshaped view of the classifier kernel: tidy frees it.
        tf.tidy(() => {
          findLinearHead(model.graph, op);
        });
      } catch (e) {
        info.available = false;
        info.reason = (e as Error).message;
      }
    }
    out.push(info);
  }
  return out;
}

/** Score-CAM's thread pool of a model, started on its first Score-CAM. */
function scorePoolFor(me: ModelEntry, ref: ModelRef, method: string): ScorePool | undefined {
  const workers = method === 'scorecam' && !me.pool ? scoreWorkers() : 0;
  if (workers > 0) {
    me.pool = new ScorePool({ modelPath: me.model.path, overrides: modelOverrides(ref), workers });
  }
  return me.pool;
}

/** The view's part of a sample's result: top 5, scores, flag; not the full probability vector. */
function scanRow(r: SampleResult, seq: number, scoreValue: number, flagged: boolean): ScanRow {
  return {
    seq,
    path: r.relPath,
    givenIndex: r.givenIndex,
    givenLabel: r.givenLabel,
    predictedIndex: r.predictedIndex,
    predictedLabel: r.predictedLabel,
    top: r.top.map((t) => ({ index: t.index, label: t.label, probability: t.probability })),
    selfConfidence: r.selfConfidence,
    normalizedMargin: r.normalizedMargin,
    entropy: r.entropy,
    score: scoreValue,
    flagged,
  };
}

/**
 * Scans a dataset, streaming results as they arrive (see ScanEvent in workerProtocol.ts for the events and how
 * flags follow the moving confident-learning thresholds). Memory: the engine keeps each sample's probability
 * vector (the thresholds and the final ranking need them all); the host gets only rows.
 */
async function runScan(req: RequestOf<'scan/run'>, ctx: JobContext): Promise<ResultOf<'scan/run'>> {
  const { entry } = await getModel(req.model);
  pinModel(entry);
  let pool: ScanPool | undefined;
  try {
    const model = entry.model;
    const labels = model.metadata.labels;
    Object.assign(ctx.log, { model: model.path, image: path.resolve(req.data) });
    const dataset = readDataset(path.resolve(req.data), labels, req.labelsFile ? path.resolve(req.labelsFile) : undefined);
    const kind = req.scoreKind ?? 'self_confidence';
    const reviewed = readReviewed(dataset.root);
    const info: ScanDatasetInfo = {
      kind: dataset.kind,
      source: dataset.source,
      root: dataset.root,
      total: dataset.samples.length,
      counts: { ...dataset.counts },
      unmatchedClasses: dataset.unmatchedClasses.map((u) => ({ ...u })),
      labels: [...labels],
      scoredBy: kind,
      reviewed: Object.keys(reviewed.reviewed).length,
      outputs: model.outputs.map((o) => ({ name: o.name, units: o.units, activation: o.activation })),
      output: model.output,
    };
    ctx.event({ kind: 'dataset', dataset: info });

    const numClasses = labels.length;
    const total = dataset.samples.length;
    // Running sums for the thresholds t_j = mean self-confidence of the samples given label j.
    const sum = new Float64Array(numClasses);
    const count = new Float64Array(numClasses);
    const thresholds = new Float64Array(numClasses).fill(Infinity);
    const updateThreshold = (j: number) => {
      thresholds[j] = classThreshold(sum[j], count[j]);
    };
    const results: SampleResult[] = [];
    const flags = new Uint8Array(total);
    const hidden = new Uint8Array(total);
    let hiddenCount = 0;
    let failed = 0;
    /** Rows not yet sent (seqs); rows below `sentUpTo` were sent, so their flag changes must be announced. */
    let pending: number[] = [];
    let pendingFailures: ScanFailureInfo[] = [];
    let flagsOn: number[] = [];
    let flagsOff: number[] = [];
    let sentUpTo = 0;
    let lastEvent = 0;
    let lastRecompute = performance.now();
    let recomputeCost = 0;
    let progress = { done: 0, total, failed: 0, imagesPerSecond: 0, secondsLeft: 0 };
    const interval = req.eventIntervalMs ?? SCAN_EVENT_INTERVAL_MS;

    const recomputeFlags = () => {
      const t = performance.now();
      for (let i = 0; i < results.length; i++) {
        const f = isFlagged(results[i], thresholds) ? 1 : 0;
        if (f === flags[i]) continue;
        flags[i] = f;
        if (i < sentUpTo && !hidden[i]) (f ? flagsOn : flagsOff).push(i);
      }
      lastRecompute = performance.now();
      recomputeCost = lastRecompute - t;
    };

    const flush = (final: boolean) => {
      const now = performance.now();
      if (final || now - lastRecompute >= Math.max(FLAG_RECOMPUTE_MIN_MS, 20 * recomputeCost)) recomputeFlags();
      const rows = pending.map((seq) => scanRow(results[seq], seq, score(kind, results[seq].probs, results[seq].givenIndex), flags[seq] === 1));
      let flagged = 0;
      for (let i = 0; i < results.length; i++) if (flags[i] && !hidden[i]) flagged++;
      ctx.event({
        kind: 'progress',
        ...progress,
        scanned: results.length,
        failed,
        flagged,
        hidden: hiddenCount,
        rows,
        failures: pendingFailures,
        flagsOn: Int32Array.from(flagsOn),
        flagsOff: Int32Array.from(flagsOff),
        thresholds: Float64Array.from(thresholds),
      });
      sentUpTo = results.length;
      pending = [];
      pendingFailures = [];
      flagsOn = [];
      flagsOff = [];
      lastEvent = now;
    };

    const batchSize = req.batchSize ?? SCAN_BATCH_SIZE;
    const workers = scanWorkers(model, Math.ceil(total / batchSize));
    pool = workers > 0 ? new ScanPool({ modelPath: model.path, overrides: modelOverrides(req.model), workers }) : undefined;
    const summary = await scanDataset(model, dataset, {
      pool,
      batchSize,
      preprocess: req.preprocess,
      maxPixels: req.maxPixels,
      signal: ctx.signal,
      onResult: (r) => {
        const seq = results.length;
        results.push(r);
        sum[r.givenIndex] += r.probs[r.givenIndex];
        count[r.givenIndex] += 1;
        updateThreshold(r.givenIndex);
        flags[seq] = isFlagged(r, thresholds) ? 1 : 0;
        if (reviewed.reviewed[r.relPath]?.givenLabel === r.givenLabel) {
          hidden[seq] = 1;
          hiddenCount++;
        } else pending.push(seq);
      },
      onFailure: (f) => {
        failed++;
        pendingFailures.push({ path: f.relPath, error: f.error });
      },
      onProgress: (p) => {
        // The one regular moment between batches: see a cancel the host wrote to the shared board.
        ctx.checkBoard();
        progress = { done: p.done, total: p.total, failed: p.failed, imagesPerSecond: p.imagesPerSecond, secondsLeft: p.secondsLeft };
        if (performance.now() - lastEvent >= interval && p.done < p.total) flush(false);
      },
    });
    flush(true);
    const report = buildReport(model.path, labels, dataset, summary, kind, reviewed);
    const order = Int32Array.from(rankOrder(summary.results, kind).filter((i) => !hidden[i]));
    return { cancelled: summary.cancelled, seconds: summary.seconds, dataset: info, report, order };
  } finally {
    // Closed per scan: its workers hold a model copy each, and a scan is rarely repeated at once.
    void pool?.close();
    unpinModel(entry);
  }
}

/** The compare panel's part of a sample comparison. */
function compareRow(s: SampleComparison): CompareRow {
  return {
    path: s.relPath, givenLabel: s.givenLabel, top1A: { ...s.top1A }, top1B: { ...s.top1B }, top1Differs: s.top1Differs,
    correlation: s.correlation, meanAbsDifference: s.meanAbsDifference,
  };
}

/**
 * Two models on one image (the compare panel): both models cached side by side (A is pinned while B loads, so that
 * B's load cannot evict it), each with its own cached session of the image, so switching class or method is cheap.
 */
async function compareImageJob(req: RequestOf<'compare/image'>, ctx: JobContext): Promise<ResultOf<'compare/image'>> {
  const a = (await getModel(req.modelA)).entry;
  pinModel(a);
  try {
    const b = (await getModel(req.modelB)).entry;
    Object.assign(ctx.log, { model: `${a.model.path} | ${b.model.path}`, image: path.resolve(req.image.path), method: req.method });
    await step(ctx, 'the comparison');
    const sa = (await getSession(a, req.image)).entry;
    const sb = (await getSession(b, req.image)).entry;
    await step(ctx, 'the comparison');
    const c = await compareSessions(sa.session, sb.session, {
      method: req.method, classChoice: req.classLabel, layerA: req.layerA, layerB: req.layerB, options: req.options,
      signal: ctx.signal, onProgress: (done, total) => ctx.progress(done, total),
    });
    const side = (x: typeof c.a) => {
      const { details: _details, ...heatmap } = x.heatmap;
      return { name: x.name, predictions: x.predictions, layer: x.layer, target: x.target, heatmap };
    };
    ctx.log.layer = `${c.a.layer} | ${c.b.layer}`;
    return {
      method: c.method, methodLabel: getMethod(c.method).label, classLabel: c.classLabel, a: side(c.a), b: side(c.b),
      difference: { width: c.width, height: c.height, values: c.difference }, correlation: c.correlation,
      meanAbsDifference: c.meanAbsDifference, top1Differs: c.top1Differs, imageSize: sa.imageSize,
    };
  } finally {
    unpinModel(a);
  }
}

/** Two models over a dataset, in the scan lane (see the file comment): both models pinned, no cached session touched. */
async function compareRunJob(req: RequestOf<'compare/run'>, ctx: JobContext): Promise<ResultOf<'compare/run'>> {
  const a = (await getModel(req.modelA)).entry;
  pinModel(a);
  let b: ModelEntry | undefined;
  try {
    b = (await getModel(req.modelB)).entry;
    pinModel(b);
    Object.assign(ctx.log, { model: `${a.model.path} | ${b.model.path}`, image: path.resolve(req.data), method: req.method });
    const dataset = readDataset(path.resolve(req.data), a.model.metadata.labels, req.labelsFile ? path.resolve(req.labelsFile) : undefined);
    const interval = req.eventIntervalMs ?? SCAN_EVENT_INTERVAL_MS;
    let pending: CompareRow[] = [];
    let last = 0;
    const r = await compareDataset(a.model, b.model, dataset, {
      method: req.method, classChoice: req.classLabel, layerA: req.layerA, layerB: req.layerB, maxPixels: req.maxPixels, signal: ctx.signal,
      onResult: (s) => pending.push(compareRow(s)),
      onProgress: (p) => {
        ctx.checkBoard();
        const now = performance.now();
        if (now - last < interval && p.done < p.total) return;
        last = now;
        ctx.event({ kind: 'progress', done: p.done, total: p.total, failed: p.failed, rows: pending });
        pending = [];
      },
    });
    return {
      cancelled: r.cancelled, seconds: r.seconds, root: dataset.root, rows: r.results.map(compareRow),
      failures: r.failures.map((f) => ({ path: f.relPath, error: f.error })),
    };
  } finally {
    unpinModel(a);
    if (b) unpinModel(b);
  }
}

/**
 * The strategies view's maps (cache policy here, with the others): another k, class filter or seed computes no map
 * again. One cache per loaded model, so that a model reloaded because its files changed never gets the old
 * model's maps (the cache's key names the file, not its contents), and an evicted model's maps go with it. About
 * 7 KB a map on the default 32 x 32 grid; the oldest go first.
 */
const strategyMaps = new WeakMap<LoadedModel, MapCache>();

function strategyMapsOf(model: LoadedModel): MapCache {
  let cache = strategyMaps.get(model);
  if (!cache) {
    cache = new MapCache(50_000);
    strategyMaps.set(model, cache);
  }
  return cache;
}

/** Model strategies over a dataset, in the scan lane: its model pinned, no cached session touched. */
async function strategiesJob(req: RequestOf<'strategies/run'>, ctx: JobContext): Promise<ResultOf<'strategies/run'>> {
  const { entry } = await getModel(req.model);
  pinModel(entry);
  try {
    const model = entry.model;
    Object.assign(ctx.log, { model: model.path, image: path.resolve(req.data), method: req.method ?? 'gradcam', layer: req.layer });
    const dataset = readDataset(path.resolve(req.data), model.metadata.labels, req.labelsFile ? path.resolve(req.labelsFile) : undefined);
    const { id: _id, type: _type, model: _model, data: _data, labelsFile: _labelsFile, preprocess, maxPixels, ...settings } = req;
    let last = 0;
    const report = await analyseStrategies(model, dataset, settings, {
      cache: strategyMapsOf(model),
      signal: ctx.signal,
      preprocess,
      maxPixels,
      onProgress: (p) => {
        ctx.checkBoard();
        const now = performance.now();
        if (now - last < SCAN_EVENT_INTERVAL_MS && p.done < p.total) return;
        last = now;
        ctx.event({ kind: 'progress', ...p });
      },
    });
    ctx.log.layer = report.layer;
    return report;
  } finally {
    unpinModel(entry);
  }
}

type Handler<T extends RequestType> = (req: RequestOf<T>, ctx: JobContext) => Promise<ResultOf<T>>;

const handlers: { [T in RequestType]: Handler<T> } = {
  async 'model/describe'(req, ctx) {
    const { entry, cached } = await getModel(req.model);
    await step(ctx, 'describing the model');
    const m = entry.model;
    const backend = backendStatus(await ensureBackend());
    Object.assign(ctx.log, { model: m.path, backend: backend.name, cached });
    const summary = describeModel(m);
    const off = m.metadata.labelOffset;
    const info: ModelInfo = {
      path: m.path,
      name: m.name,
      format: m.format,
      backend: backend.name,
      inputSize: [m.inputHeight, m.inputWidth, m.inputChannels],
      ...(m.format === 'layers-model' && m.source ? { source: m.source } : {}),
      preprocess: m.metadata.preprocess,
      preprocessAssumed: m.metadata.preprocessAssumed,
      ...(m.metadata.preprocessNote ? { preprocessNote: m.metadata.preprocessNote } : {}),
      labels: Array.from({ length: numClasses(m) }, (_, i) => labelOf(m, i + off)),
      ...(m.metadata.labelsAssumed ? { labelsAssumed: true } : {}),
      recommendedLayer: summary.recommendedLayer,
      spatialLayers: summary.layers.filter((l) => l.spatial).map((l) => l.name),
      outputs: m.outputs.map((o) => ({ name: o.name, units: o.units, activation: o.activation })),
      output: m.output,
      ...(m.binary ? { binary: true } : {}),
    };
    const layers: LayerSummary[] = summary.layers.map((l) => ({
      name: l.name,
      className: l.className,
      outputShape: l.outputShape,
      params: l.params,
      inbound: l.inbound,
      spatial: l.spatial,
    }));
    return { info, layers, totalParams: summary.totalParams, methods: methodInfos(m, summary.recommendedLayer), backend };
  },

  async 'image/predict'(req, ctx) {
    const ahead = decodeAhead(req.image);
    const me = await getModel(req.model);
    Object.assign(ctx.log, { model: me.entry.model.path, image: path.resolve(req.image.path) });
    await step(ctx, 'the prediction');
    const { entry, cached } = await getSession(me.entry, req.image, undefined, ahead);
    ctx.log.cached = cached;
    await step(ctx, 'the prediction');
    // The panel asks for a map of the recommended layer next: computing that layer's activation now gives
    // the logits from the same forward pass, so the first map does not run the network again.
    try {
      entry.session.activation();
    } catch {
      // No spatial layer: predictions still work.
    }
    const predictions = await entry.session.predictions(req.topK ?? 5);
    return { predictions, imageSize: entry.imageSize, preprocess: entry.preprocess, image: entry.image };
  },

  async 'cam/compute'(req, ctx) {
    const t0 = performance.now();
    // Phases of a cold start: the worker's own start (first request only), the backend, the model's load, the
    // image's decode; `model` and `image` are the time each step took here (the decode overlaps the load).
    const phases: Record<string, number> = bootTiming();
    const ahead = decodeAhead(req.image);
    const me = await getModel(req.model, phases);
    const t1 = performance.now();
    Object.assign(ctx.log, { model: me.entry.model.path, image: path.resolve(req.image.path), method: req.method, classIndex: req.classIndex });
    await step(ctx, 'the explanation');
    const { entry } = await getSession(me.entry, req.image, phases, ahead);
    const t2 = performance.now();
    await step(ctx, 'the explanation');
    const res = await entry.session.explain({
      pool: scorePoolFor(me.entry, req.model, req.method),
      method: req.method,
      layer: req.layer,
      // Several target layers averaged (#15): their maps brought to the input size (cam/combine.ts).
      layers: req.layers,
      classChoice: req.classIndex,
      signal: ctx.signal,
      onProgress: (done, total) => ctx.progress(done, total),
      options: req.options,
    });
    const values = res.heatmap.values;
    // The reply transfers `values`; "Export PNG" renders from this copy.
    const { signed, rgb } = res.heatmap;
    touch(lastMaps, entry.imagePath, { width: res.heatmap.width, height: res.heatmap.height, values: values.slice(), ...(signed ? { signed } : {}), ...(rgb ? { rgb: rgb.slice() } : {}) });
    while (lastMaps.size > MAX_LAST_MAPS) lastMaps.delete(lastMaps.keys().next().value as string);
    Object.assign(ctx.log, { layer: res.layer, classIndex: res.target.index, cached: res.cached.forward });
    const { details, ...heatmap } = res.heatmap;
    return {
      method: res.method,
      layer: res.layer,
      target: res.target,
      heatmap,
      ...(details ? { details } : {}),
      ...(res.layers && res.layers.length > 1 ? { layers: res.layers } : {}),
      timingsMs: { ...phases, model: t1 - t0, image: t2 - t1, ...res.timingsMs, total: performance.now() - t0 },
      backend: me.entry.model.backend,
      cached: res.cached.forward,
      cachedGradients: res.cached.gradients,
      imageSize: entry.imageSize,
    };
  },

  async 'features/compute'(req, ctx) {
    const ahead = decodeAhead(req.image);
    const me = await getModel(req.model);
    Object.assign(ctx.log, { model: me.entry.model.path, image: path.resolve(req.image.path), method: 'features', classIndex: req.classIndex });
    await step(ctx, 'the feature maps');
    const { entry, cached } = await getSession(me.entry, req.image, undefined, ahead);
    await step(ctx, 'the feature maps');
    const fm = await computeFeatureMaps(entry.session, { layer: req.layer, classIndex: req.classIndex, maxChannels: req.maxChannels, signal: ctx.signal });
    Object.assign(ctx.log, { layer: fm.layer, cached });
    return fm;
  },

  async 'overlay/render'(req, ctx) {
    await ensureBackend();
    const file = path.resolve(req.image.path);
    ctx.log.image = file;
    const heat = req.heatmap ?? lastMaps.get(file);
    if (!heat) {
      throw new CamLensError('BAD_ARGUMENT', `no map has been computed for "${file}" yet, and the request carries none`, 'compute a map first');
    }
    const img = await decodeImage(file, { maxPixels: req.image.maxPixels, dicom: req.image.dicom });
    await step(ctx, 'the overlay');
    const png = await renderOverlayPng(img, heat, { colormap: req.colormap, opacity: req.opacity, maxSize: req.maxSize });
    // A fresh copy: sharp's Buffer may sit in a shared pool, which cannot be transferred.
    return { png: new Uint8Array(png), width: img.width, height: img.height };
  },

  async 'backend/set'(req, ctx) {
    // A start under way (the worker's own, a scan's) finishes before another backend is set up.
    await backendStarting?.catch(() => undefined);
    const before = currentBackend();
    const threads = req.threads ?? threadsSetting;
    const onnxRuntime = req.onnxRuntime ?? onnxRuntimeSetting();
    if (before && before.requested === req.backend && threads === threadsSetting && onnxRuntime === onnxRuntimeSetting()) return backendStatus(before);
    // The pools' workers took the ONNX runtime setting when they started: dropAll below ends them.
    setOnnxRuntime(onnxRuntime);
    // A scan runs on the old backend's model: it stops (keeping what it computed) before those tensors go.
    await stopScans();
    // Tensors cannot move between backends: everything cached is reloaded on demand.
    dropAll();
    const info = await initBackend(req.backend, { threads });
    backendChoice = req.backend;
    threadsSetting = threads;
    ctx.log.backend = info.name;
    return backendStatus(info);
  },

  'scan/run': runScan,

  'compare/image': compareImageJob,

  'compare/run': compareRunJob,

  'strategies/run': strategiesJob,

  async 'scan/reviewed'(req) {
    const root = path.resolve(req.root);
    if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new CamLensError('FILE_NOT_FOUND', `dataset folder not found: ${root}`);
    const r = markReviewed(root, req.relPath, req.givenLabel);
    return { file: reviewedFile(root), reviewed: Object.keys(r.reviewed).length };
  },

  async 'cam/pair'(req, ctx) {
    const ahead = decodeAhead(req.image);
    const me = await getModel(req.model);
    Object.assign(ctx.log, { model: me.entry.model.path, image: path.resolve(req.image.path), method: req.method, classIndex: req.classes[0] });
    await step(ctx, 'the explanation');
    const { entry } = await getSession(me.entry, req.image, undefined, ahead);
    const maps: CamPairMap[] = [];
    let layer = req.layer;
    let cached = true;
    for (const classIndex of req.classes) {
      await step(ctx, 'the explanation');
      const same = maps.find((m) => m.target.index === classIndex);
      if (same) {
        maps.push(same);
        continue;
      }
      const res = await entry.session.explain({
        pool: scorePoolFor(me.entry, req.model, req.method),
        method: req.method,
        layer,
        classChoice: classIndex,
        signal: ctx.signal,
        onProgress: (done, total) => ctx.progress(done, total),
        options: req.options,
      });
      if (maps.length === 0) cached = res.cached.forward;
      layer = res.layer;
      const { details, ...heatmap } = res.heatmap;
      maps.push({ target: res.target, heatmap, ...(details ? { details } : {}) });
    }
    Object.assign(ctx.log, { layer, cached });
    return {
      method: req.method,
      methodLabel: getMethod(req.method).label,
      layer: layer as string,
      maps: [maps[0], maps[1]],
      imageSize: entry.imageSize,
      backend: me.entry.model.backend,
      cached,
    };
  },

  async 'model/release'(req) {
    const file = path.resolve(req.model.path);
    let released = 0;
    for (const m of models.values()) {
      if (m.model.path !== file && !m.key.startsWith(`${file}\u0000`)) continue;
      m.releasedAt = performance.now();
      released++;
    }
    if (released) scheduleIdleSweep(MODEL_IDLE_MS);
    return { released };
  },

  async 'debug/memory'() {
    await ensureBackend();
    const mem = tf.memory();
    const heap = (tf.backend() as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.byteLength;
    return {
      numTensors: mem.numTensors, numBytes: mem.numBytes, models: models.size, sessions: sessions.size, rss: process.memoryUsage.rss(),
      ...(heap !== undefined ? { wasmHeapBytes: heap } : {}),
    };
  },

  async 'debug/crash'(req) {
    if (!options.testHooks) throw new CamLensError('BAD_ARGUMENT', 'debug/crash is a test hook and is disabled in this worker');
    if (req.how === 'exit') process.exit(70);
    setImmediate(() => {
      throw new Error('engine worker test crash');
    });
    return new Promise<never>(() => undefined);
  },
};

// ---------------------------------------------------------------------------------------------------------
// Queue and replies

interface Job {
  req: WorkerRequest;
  controller: AbortController;
  started: boolean;
}

const jobs = new Map<number, Job>();
const queue: Job[] = [];
let running = false;
/** The scan lane (see the file comment): its own queue, one scan at a time. */
const scanQueue: Job[] = [];
let scanning: Promise<void> | undefined;
let activeScan: Job | undefined;

/** Requests that run in the scan lane rather than the main queue. */
const inScanLane = (req: WorkerRequest) => req.type === 'scan/run' || req.type === 'compare/run' || req.type === 'strategies/run';

function post(msg: WorkerToHost, transfer: ArrayBuffer[] = []): void {
  if (!parentPort) return;
  try {
    parentPort.postMessage(msg, transfer);
  } catch (e) {
    // Exactly one reply, even when the result cannot be cloned.
    if ('ok' in msg) parentPort.postMessage({ id: msg.id, ok: false, error: errorPayload(e) } satisfies WorkerToHost);
  }
}

function errorPayload(e: unknown): WorkerErrorPayload {
  const info: WorkerErrorPayload = toErrorInfo(e);
  if (!(e instanceof CamLensError) && e instanceof Error && e.stack) info.stack = e.stack;
  return info;
}

async function run(job: Job): Promise<void> {
  const { req, controller } = job;
  const t0 = performance.now();
  const log: ComputationLog = { type: req.type, backend: currentBackend()?.name ?? tf.getBackend() ?? 'none', ms: 0 };
  let lastProgress = 0;
  const board = options.cancelBoard;
  const ctx: JobContext = {
    signal: controller.signal,
    log,
    checkBoard() {
      if (board && !controller.signal.aborted && isMarkedCancelled(board, req.id)) controller.abort();
    },
    event(e) {
      post({ id: req.id, type: 'event', event: e }, transferablesOf(e));
    },
    progress(done, total) {
      // Called between batches of long methods, which never yield to the event loop: the one place to see a cancel.
      ctx.checkBoard();
      const now = performance.now();
      if (done < total && now - lastProgress < PROGRESS_INTERVAL_MS) return;
      lastProgress = now;
      post({ id: req.id, type: 'progress', done, total });
    },
  };
  try {
    ctx.checkBoard();
    throwIfAborted(controller.signal, req.type);
    const handler = handlers[req.type] as Handler<RequestType>;
    const result = await handler(req as RequestOf<RequestType>, ctx);
    log.ms = performance.now() - t0;
    log.backend = currentBackend()?.name ?? log.backend;
    post({ id: req.id, ok: true, result, log }, transferablesOf(result));
  } catch (e) {
    log.ms = performance.now() - t0;
    const err = controller.signal.aborted && !(e instanceof CancelledError) ? new CancelledError(req.type) : e;
    post({ id: req.id, ok: false, error: errorPayload(err), log });
  } finally {
    jobs.delete(req.id);
  }
}

async function pump(): Promise<void> {
  if (running) return;
  running = true;
  try {
    for (let job = queue.shift(); job; job = queue.shift()) {
      job.started = true;
      await run(job);
    }
  } finally {
    running = false;
  }
}

function pumpScans(): void {
  if (scanning) return;
  scanning = (async () => {
    try {
      for (let job = scanQueue.shift(); job; job = scanQueue.shift()) {
        job.started = true;
        activeScan = job;
        await run(job);
        activeScan = undefined;
      }
    } finally {
      activeScan = undefined;
      scanning = undefined;
    }
  })();
}

/** Cancels every scan, running or queued, and waits until the lane is idle (each scan still gets its reply). */
async function stopScans(): Promise<void> {
  for (const job of [...scanQueue, ...(activeScan ? [activeScan] : [])]) job.controller.abort();
  while (scanning) await scanning;
}

function onMessage(msg: unknown): void {
  if (isCancelMessage(msg)) {
    const job = jobs.get(msg.id);
    if (!job) return;
    job.controller.abort();
    if (!job.started) {
      // Still queued: answer now rather than after whatever runs ahead of it.
      const q = queue.includes(job) ? queue : scanQueue;
      q.splice(q.indexOf(job), 1);
      jobs.delete(msg.id);
      post({ id: msg.id, ok: false, error: errorPayload(new CancelledError(job.req.type)) });
    }
    return;
  }
  const problem = requestProblem(msg);
  if (problem) {
    const id = (msg as { id?: unknown } | null)?.id;
    if (typeof id === 'number' && Number.isInteger(id)) {
      post({ id, ok: false, error: { name: 'ProtocolError', message: `bad request: ${problem}`, code: 'BAD_REQUEST' } });
    }
    return;
  }
  const req = msg as WorkerRequest;
  if (jobs.has(req.id)) {
    post({ id: req.id, ok: false, error: { name: 'ProtocolError', message: `request id ${req.id} is already in use`, code: 'BAD_REQUEST' } });
    return;
  }
  const job: Job = { req, controller: new AbortController(), started: false };
  jobs.set(req.id, job);
  if (inScanLane(req)) {
    scanQueue.push(job);
    pumpScans();
    return;
  }
  queue.push(job);
  void pump();
}

if (parentPort) {
  lowerThreadPriority();
  parentPort.on('message', onMessage);
}
