/**
 * Messages between the extension host (EngineClient) and the engine worker (worker.ts, a `worker_threads`
 * worker), so that model loading, forward and backward passes never block the host's event loop.
 *
 * Contract:
 * - Host → worker: requests `{ id, type, ...params }` with a fresh integer `id` and a `type` namespaced by
 *   noun (`cam/compute`), and the notification `{ type: 'cancel', id }` naming a request to abort.
 * - Worker → host: EXACTLY ONE reply per request, `{ id, ok: true, result }` or
 *   `{ id, ok: false, error: { name, message, code?, hint? } }`, also when a handler throws, when the request
 *   was cancelled (code CANCELLED) and when the message itself was malformed (code BAD_REQUEST). Before the
 *   reply, zero or more progress events `{ id, type: 'progress', done, total }`. `cancel` gets no reply of
 *   its own: the cancelled request's reply is its answer. If the worker dies, the host rejects every pending
 *   request itself (EngineClient), so no promise can hang.
 * - Streamed requests (`scan/run`) also send zero or more events `{ id, type: 'event', event }` before their
 *   reply (results as they arrive); the reply is still the one and only final answer. A scan cancelled by its
 *   signal replies with SUCCESS, `cancelled: true` and what was computed until then (see EngineClient's
 *   `waitForCancelledReply`); only a scan cancelled while still queued answers CANCELLED.
 * - Replies carry a `log` entry (model, image, method, layer, backend, ms, cached) for the output channel.
 * - Heatmaps, feature maps and PNGs travel as typed arrays whose ArrayBuffer is transferred, not copied
 *   (`transferablesOf`).
 * - The worker runs requests one at a time in arrival order (an ImageSession is not re-entrant), and checks
 *   cancellation between steps; a request cancelled while still queued is answered at once. Scans are the one
 *   exception: they run in a lane of their own beside that queue (one scan at a time), yielding between
 *   batches, so the triage view's heatmaps are answered while a long scan goes on. A scan touches only its
 *   model (pinned against eviction), never an ImageSession.
 *
 * Types only, plus the guards and the transfer helper; no Node or vscode imports, so both sides (and the
 * tests) share it.
 */
import type {
  CamMethodId,
  ClassPrediction,
  ColormapId,
  ErrorPayload,
  FeatureMapsPayload,
  HeatmapPayload,
  ImageDescription,
  LayerSummary,
  MapDetails,
  MethodInfo,
  ModelInfo,
  PreprocessId,
  ScanDatasetInfo,
  ScanFailureInfo,
  ScanRow,
  ScanScoreKind,
} from '../shared/protocol';
import { SCAN_SCORE_KINDS, isPreprocessId } from '../shared/protocol';
import { isColormapName } from '../shared/colormaps';
import { isDicomSelection, type DicomSelection } from '../shared/dicom';

import type { ComparePayload, CompareRow } from '../shared/compareProtocol';
import type { BackendChoice } from './engine/backend';
import type { OnnxRuntimeChoice } from './engine/formats/onnx/ortRuntime';
import type { ScanReport } from './engine/scan/report';
import type { StrategiesProgress, StrategiesReport, StrategiesRequest } from './engine/analysis/types';

export type { ScanReport };

export type { BackendChoice };
/** The same list as engine/backend's, repeated so that the host bundle does not pull in TensorFlow.js. */
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'node', 'wasm', 'cpu'];
export type { OnnxRuntimeChoice };
/** engine/formats/onnx/ortRuntime's list, repeated for the same reason. */
export const ONNX_RUNTIME_CHOICES: readonly OnnxRuntimeChoice[] = ['auto', 'off'];

/** What the worker's options (`workerData`) may hold. */
export interface WorkerOptions {
  /** Backend to initialise on the first request (default 'auto'). */
  backend?: BackendChoice;
  /**
   * Threads for one forward pass on the wasm backend (camLens.threads): 0 (the default) = one per available
   * core, capped at 8; n = n. Score-CAM's pool workers stay single-threaded (engine/backend.ts BackendOptions).
   */
  threads?: number;
  /**
   * ONNX models' forward-only passes (predictions, Score-CAM's masked batches, scans) on ONNX Runtime where
   * onnxruntime-node loads ('auto', the default), or always on tfjs ('off'): camLens.onnxRuntime.
   */
  onnxRuntime?: OnnxRuntimeChoice;
  /** Image sessions kept (LRU), default 4. */
  maxSessions?: number;
  /** Models kept (LRU), default 3. */
  maxModels?: number;
  /** Enables the `debug/crash` request (tests only). */
  testHooks?: boolean;
  /**
   * Run the worker thread at below-normal priority (default true; Linux, best effort), so that the extension
   * host's thread always gets a core first when the worker computes.
   */
  lowPriority?: boolean;
  /**
   * Extra threads for Score-CAM's masked passes (engine/scorePool.ts), each single-threaded; default: the cores the
   * engine's own threads leave, one kept for the host: cores - 1 - threads (none with a thread per core).
   */
  scoreWorkers?: number;
  /**
   * Worker threads of a dataset scan (engine/scan/scanPool.ts), each single-threaded with its own model copy;
   * default: one per core (at most 8), fewer where free memory is short, none on one core or on tfjs-node.
   */
  scanWorkers?: number;
  /**
   * How long a model stays loaded after the host released it (`model/release`: the last panel showing it closed)
   * without being used again, in ms; default 5 minutes. Then its tensors, sessions and worker threads are freed.
   */
  modelIdleMs?: number;
  /** Shared cancel flags (see `markCancelled`); without it, cancellation waits for the worker's next idle moment. */
  cancelBoard?: SharedArrayBuffer;
  /**
   * When the host created the worker (performance.timeOrigin + performance.now(), ms), so that the worker can
   * report its own start-up time (`boot` in the first map's timings).
   */
  createdAt?: number;
}

/**
 * Cancellation that reaches a busy worker. A `cancel` message is only read when the worker's event loop is free,
 * but a long method (Score-CAM: thousands of forward passes, no event-loop turn in between) never frees it. So the
 * host also writes the request id into shared memory, slot id % CANCEL_BOARD_SLOTS, and the worker reads the slot
 * whenever the computation reports progress (after every batch) and between steps, then aborts the request's
 * signal itself. Ids only grow, so a stale slot never matches a newer request.
 */
export const CANCEL_BOARD_SLOTS = 1024;

export function createCancelBoard(): SharedArrayBuffer {
  return new SharedArrayBuffer(CANCEL_BOARD_SLOTS * Int32Array.BYTES_PER_ELEMENT);
}

export function markCancelled(board: SharedArrayBuffer, id: number): void {
  Atomics.store(new Int32Array(board), id % CANCEL_BOARD_SLOTS, id);
}

export function isMarkedCancelled(board: SharedArrayBuffer, id: number): boolean {
  return Atomics.load(new Int32Array(board), id % CANCEL_BOARD_SLOTS) === id;
}

// ---------------------------------------------------------------------------------------------------------
// Parameters

/** A model.json and the metadata overrides that change how it is read (part of the model cache key). */
export interface ModelRef {
  path: string;
  overrides?: {
    labels?: string[];
    labelsFile?: string;
    /** The model's default preprocessing (an image may still override it, see ImageRef). */
    preprocess?: PreprocessId;
    labelOffset?: number;
    /** The output to explain where the model has several (a name, or an index): a model of its own in the cache. */
    output?: string | number;
  };
}

export interface ImageRef {
  path: string;
  /** Preprocessing for this image; default: the model's. Part of the image-session cache key. */
  preprocess?: PreprocessId;
  /** Decompression-bomb guard (camLens.maxImagePixels). */
  maxPixels?: number;
  /** DICOM: frame and window (default frame 0, the model's window, else the file's). Part of the session key. */
  dicom?: DicomSelection;
}

export interface CamParams {
  model: ModelRef;
  image: ImageRef;
  method: CamMethodId;
  /** Default: the recommended layer. */
  layer?: string;
  /** Two or more target layers whose maps are brought to the input size and averaged (CAM methods); wins over `layer`. */
  layers?: string[];
  /** Class index (label index); default: the top-1 class. */
  classIndex?: number;
  /** Method options (e.g. Score-CAM batch size). */
  options?: Record<string, unknown>;
}

export interface FeaturesParams {
  model: ModelRef;
  image: ImageRef;
  layer?: string;
  /** Include each channel's Grad-CAM weight for this class index. */
  classIndex?: number;
  maxChannels?: number;
}

export interface OverlayParams {
  image: ImageRef;
  /** The map to draw; default: the last map computed for this image path. */
  heatmap?: { width: number; height: number; values: Float32Array; signed?: boolean; rgb?: Float32Array };
  colormap: ColormapId;
  opacity: number;
  /** Shrink the PNG to fit this many pixels on its longer side (thumbnails); default: the image's own size. */
  maxSize?: number;
}

/** A labelled dataset scanned for likely label errors (PRODUCT.md flow 3). */
export interface ScanParams {
  model: ModelRef;
  /** A folder in `<root>/<class>/<image>` layout, or a CSV/JSON label file. */
  data: string;
  /** A CSV/JSON label file that wins over the folder layout (the CLI's --labels). */
  labelsFile?: string;
  /** Images per forward pass (default 16). */
  batchSize?: number;
  /** The label-quality score samples are ranked by (default self_confidence). */
  scoreKind?: ScanScoreKind;
  /** Preprocessing for every image; default: the model's. */
  preprocess?: PreprocessId;
  /** Decompression-bomb guard per image (camLens.maxImagePixels). */
  maxPixels?: number;
  /** Results and progress go out at most this often (default 100 ms; 0: after every batch). */
  eventIntervalMs?: number;
}

/** Two maps of one image with the same method and layer: the triage view's given-label and predicted-label heatmaps. */
export interface CamPairParams {
  model: ModelRef;
  image: ImageRef;
  method: CamMethodId;
  /** Default: the recommended layer (both maps use the layer the first one resolved to). */
  layer?: string;
  /** Class indices (label indices), usually [given, predicted]; equal indices are computed once. */
  classes: [number, number];
  options?: Record<string, unknown>;
}

/** Two models on one image (engine/analysis/compare.ts compareSessions): the compare panel's side-by-side view. */
export interface CompareImageParams {
  modelA: ModelRef;
  modelB: ModelRef;
  image: ImageRef;
  method: CamMethodId;
  /** A label, or a class index of model A (found in B by its label); default model A's top-1. */
  classLabel?: string;
  /** Default: each model's recommended layer. */
  layerA?: string;
  layerB?: string;
  options?: Record<string, unknown>;
}

/** Two models over a labelled dataset (engine/analysis/compare.ts compareDataset), streamed like a scan. */
export interface CompareRunParams {
  modelA: ModelRef;
  modelB: ModelRef;
  /** A folder in `<root>/<class>/<image>` layout, or a CSV/JSON label file (read with model A's labels). */
  data: string;
  labelsFile?: string;
  method: CamMethodId;
  /** One class for every sample; default each sample's given label. */
  classLabel?: string;
  layerA?: string;
  layerB?: string;
  maxPixels?: number;
  /** Rows and progress go out at most this often (default 100 ms; 0: after every image). */
  eventIntervalMs?: number;
}

/**
 * A dataset map analysis ("Model Strategies", engine/analysis/strategies.ts) in the scan lane: the engine's request
 * with the model as a ModelRef, the dataset as the scan reads it. Maps are cached in the worker (one MapCache), so
 * the same request with another `clusters`, class filter or seed computes no map again.
 */
export type StrategiesParams = Omit<StrategiesRequest, 'model'> & {
  model: ModelRef;
  labelsFile?: string;
  preprocess?: PreprocessId;
  maxPixels?: number;
};

/** A strategies run's streamed event: its progress (maps, then clustering, then the blur interventions). */
export type StrategiesEvent = { kind: 'progress' } & StrategiesProgress;

// ---------------------------------------------------------------------------------------------------------
// Results

export interface BackendStatus {
  /** The backend tf runs on: 'tensorflow' (tfjs-node), 'wasm' or 'cpu'. */
  name: string;
  requested: BackendChoice;
  simd?: boolean;
  /** Threads one forward pass runs on (engine/backend.ts BackendInfo.threads). */
  threads: number;
  /** Why preferred backends were skipped under 'auto', or fewer threads were used than asked. */
  notes: string[];
}

export interface DescribeResult {
  info: ModelInfo;
  layers: LayerSummary[];
  totalParams: number;
  /** The methods of the engine's registry, in picker order, with availability for this model. */
  methods: MethodInfo[];
  backend: BackendStatus;
}

export interface PredictResult {
  predictions: ClassPrediction[];
  /** The image's own size, [width, height]. */
  imageSize: [number, number];
  preprocess: PreprocessId;
  /** The image's channels, depth and, for DICOM, the way from stored values to the model's pixels. */
  image?: ImageDescription;
}

export interface CamResult {
  method: CamMethodId;
  layer: string;
  target: ClassPrediction;
  heatmap: HeatmapPayload;
  timingsMs: Record<string, number>;
  backend: string;
  /** The forward pass (activations of this layer) came from the cache. */
  cached: boolean;
  /** The gradients came from the cache (false for methods without gradients). */
  cachedGradients: boolean;
  imageSize: [number, number];
  /** What the map was made from where the method chose (Score-CAM: which channels were scored). */
  details?: MapDetails;
  /** The layers whose maps were averaged, where several were asked for (`layer` is the first). */
  layers?: string[];
}

export interface FeaturesResult extends FeatureMapsPayload {
  totalChannels: number;
  truncated: boolean;
  selectedBy: 'all' | 'weight' | 'mean';
  /** Original channel index of each payload channel. */
  channelIndex: Int32Array;
}

export interface OverlayResult {
  png: Uint8Array;
  width: number;
  height: number;
}

export interface CamPairMap {
  target: ClassPrediction;
  heatmap: HeatmapPayload;
  /** As CamResult.details. */
  details?: MapDetails;
}

export interface CamPairResult {
  method: CamMethodId;
  /** The method's name as the registry gives it ("Grad-CAM"), for captions. */
  methodLabel: string;
  layer: string;
  /** In the order of `classes`. */
  maps: [CamPairMap, CamPairMap];
  imageSize: [number, number];
  backend: string;
  /** The forward pass came from the image session's cache. */
  cached: boolean;
}

/**
 * A scan's streamed events, in this order: one `dataset` (after the dataset was read, before the first image),
 * then `progress` events carrying the results since the previous one.
 *
 * Flags: a sample is flagged when confident learning assigns it to another class than its given one, with
 * per-class thresholds t_j = average self-confidence of the samples given label j (engine/scan/ranking.ts).
 * The thresholds move as results arrive, so flags of rows sent earlier change: `flagsOn`/`flagsOff` list the
 * `seq`s whose flag changed since the previous event (rows in the same event already carry their current flag).
 * Recomputing every flag costs O(samples x classes), so it runs at most every 250 ms (longer when it is slow);
 * the last event before the reply always carries a full recompute, which equals the report's flags.
 */
export type ScanEvent =
  | { kind: 'dataset'; dataset: ScanDatasetInfo }
  | {
      kind: 'progress';
      /** Samples processed (scanned or failed) of `total`. */
      done: number;
      total: number;
      scanned: number;
      failed: number;
      /** Samples flagged now, reviewed ones left out. */
      flagged: number;
      /** Samples hidden because `.cam-lens/reviewed.json` confirms their label. */
      hidden: number;
      imagesPerSecond: number;
      secondsLeft: number;
      /** New results since the previous event (reviewed ones left out), in arrival (`seq`) order. */
      rows: ScanRow[];
      /** New failures (unreadable images) since the previous event. */
      failures: ScanFailureInfo[];
      flagsOn: Int32Array;
      flagsOff: Int32Array;
      /** Confident-learning threshold per class label (+Infinity where no sample has that label yet). */
      thresholds: Float64Array;
    };

export interface ScanRunResult {
  /** The scan was cancelled; `report` holds what was computed before. */
  cancelled: boolean;
  seconds: number;
  dataset: ScanDatasetInfo;
  /** buildReport: `{ model, data, counts, samples }` with samples in rank order (most doubtful first). */
  report: ScanReport;
  /** The `seq` of each report sample, in report order: the final ranking of the rows streamed before. */
  order: Int32Array;
}

export interface ReviewedResult {
  /** `<root>/.cam-lens/reviewed.json`. */
  file: string;
  /** Samples confirmed in it. */
  reviewed: number;
}

export interface MemoryResult {
  numTensors: number;
  numBytes: number;
  models: number;
  sessions: number;
  /** Resident memory of the process the worker runs in (process.memoryUsage().rss), bytes. */
  rss?: number;
  /** wasm backend: the size of its module's memory (it grows and never shrinks), bytes. */
  wasmHeapBytes?: number;
}

/** A folder comparison's streamed event: the rows since the previous one (arrival order) and the progress. */
export interface CompareEvent {
  kind: 'progress';
  done: number;
  total: number;
  failed: number;
  rows: CompareRow[];
}

export interface CompareRunResult {
  cancelled: boolean;
  seconds: number;
  /** The dataset root the rows' paths are relative to. */
  root: string;
  /** Ranked: top-1 disagreements first, then the lowest map correlation. */
  rows: CompareRow[];
  failures: ScanFailureInfo[];
}

/** Request type → parameters and result. The single source of truth for both sides. */
export interface RequestMap {
  'model/describe': { params: { model: ModelRef }; result: DescribeResult };
  'image/predict': { params: { model: ModelRef; image: ImageRef; topK?: number }; result: PredictResult };
  'cam/compute': { params: CamParams; result: CamResult };
  'features/compute': { params: FeaturesParams; result: FeaturesResult };
  'overlay/render': { params: OverlayParams; result: OverlayResult };
  /** `threads` (as WorkerOptions.threads) changes the wasm thread count too; omitted, the worker keeps its own. */
  'backend/set': { params: { backend: BackendChoice; threads?: number; onnxRuntime?: OnnxRuntimeChoice }; result: BackendStatus };
  /** Streams `ScanEvent`s (see EventMap), then replies with the report. */
  'scan/run': { params: ScanParams; result: ScanRunResult };
  /** Marks a sample "label is correct" in `<root>/.cam-lens/reviewed.json`; later scans hide it. */
  'scan/reviewed': { params: { root: string; relPath: string; givenLabel: string }; result: ReviewedResult };
  'cam/pair': { params: CamPairParams; result: CamPairResult };
  /** Two models on one image: both maps of one class, their difference and rank correlation. */
  'compare/image': { params: CompareImageParams; result: ComparePayload };
  /** Two models over a dataset in the scan lane: streams CompareEvents, replies with the ranked rows (cancel keeps them). */
  'compare/run': { params: CompareRunParams; result: CompareRunResult };
  /** Model strategies over a dataset in the scan lane: streams StrategiesEvents, replies with the report (cancel keeps what was computed). */
  'strategies/run': { params: StrategiesParams; result: StrategiesReport };
  /**
   * No panel shows this model file any more (any overrides): the worker frees it once it has gone unused for
   * WorkerOptions.modelIdleMs. A request for it before then keeps it. Replies how many cached models it marked.
   */
  'model/release': { params: { model: ModelRef }; result: { released: number } };
  /** tf.memory() in the worker: leak checks in tests, diagnostics in the output channel. */
  'debug/memory': { params: Record<string, never>; result: MemoryResult };
  /** Test hook (only with WorkerOptions.testHooks): the worker dies, by exit or by an uncaught error. */
  'debug/crash': { params: { how: 'exit' | 'throw' }; result: never };
}

export type RequestType = keyof RequestMap;
export type ParamsOf<T extends RequestType> = RequestMap[T]['params'];
export type ResultOf<T extends RequestType> = RequestMap[T]['result'];

/** Request type → the events it streams before its reply (requests not listed stream none). */
export interface EventMap {
  'scan/run': ScanEvent;
  'compare/run': CompareEvent;
  'strategies/run': StrategiesEvent;
}
export type EventOf<T extends RequestType> = T extends keyof EventMap ? EventMap[T] : never;

/** A request: `{ id, type }` plus the parameters of its type (discriminated by `type`). */
export type WorkerRequest = { [T in RequestType]: { id: number; type: T } & ParamsOf<T> }[RequestType];
export type RequestOf<T extends RequestType> = Extract<WorkerRequest, { type: T }>;

export interface CancelMessage {
  type: 'cancel';
  /** The id of the request to abort. */
  id: number;
}

export type HostToWorker = WorkerRequest | CancelMessage;

/** One computation, for the host's "CAM Lens" output channel. */
export interface ComputationLog {
  type: RequestType;
  model?: string;
  image?: string;
  method?: string;
  layer?: string;
  classIndex?: number;
  backend: string;
  ms: number;
  /** The forward pass / session came from the cache. */
  cached?: boolean;
}

export interface WorkerErrorPayload extends ErrorPayload {
  /** Stack of unexpected (non-engine) errors, for the output channel's full details. */
  stack?: string;
}

export type WorkerReply<T extends RequestType = RequestType> =
  | { id: number; ok: true; result: ResultOf<T>; log?: ComputationLog }
  | { id: number; ok: false; error: WorkerErrorPayload; log?: ComputationLog };

export interface WorkerProgress {
  id: number;
  type: 'progress';
  done: number;
  total: number;
}

/** A streamed event of a request (EventMap), before its reply. */
export interface WorkerEvent {
  id: number;
  type: 'event';
  event: EventMap[keyof EventMap];
}

export type WorkerToHost = WorkerReply | WorkerProgress | WorkerEvent;

// ---------------------------------------------------------------------------------------------------------
// Guards. The worker checks every message before acting on it: a malformed one with a usable id is answered
// with BAD_REQUEST, so even a host bug cannot leave a promise pending.

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;
const isId = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
const isStr = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length < 4096;
const optStr = (x: unknown) => x === undefined || isStr(x);
const optNat = (x: unknown) => x === undefined || (typeof x === 'number' && Number.isInteger(x) && x >= 0);
const optPosInt = (x: unknown) => x === undefined || (typeof x === 'number' && Number.isInteger(x) && x >= 1);
const isLayerList = (x: unknown) => Array.isArray(x) && x.length >= 1 && x.length <= 32 && x.every(isStr);
// The lists behind these live in src/shared; method ids are only checked for form here: the worker looks them
// up in the engine's registry, and an unknown one gets UNKNOWN_METHOD, which names the methods there are.
const isPreprocess = isPreprocessId;
const isColormap = isColormapName;
const isScoreKind = (x: unknown) => (SCAN_SCORE_KINDS as readonly unknown[]).includes(x);

function isModelRef(x: unknown): x is ModelRef {
  if (!isObj(x) || !isStr(x.path)) return false;
  const o = x.overrides;
  if (o === undefined) return true;
  return isObj(o) && (o.labels === undefined || (Array.isArray(o.labels) && o.labels.every((l) => typeof l === 'string'))) &&
    optStr(o.labelsFile) && (o.preprocess === undefined || isPreprocess(o.preprocess)) && optNat(o.labelOffset) &&
    (optStr(o.output) || optNat(o.output));
}

function isImageRef(x: unknown): x is ImageRef {
  return isObj(x) && isStr(x.path) && (x.preprocess === undefined || isPreprocess(x.preprocess)) && optPosInt(x.maxPixels) &&
    (x.dicom === undefined || isDicomSelection(x.dicom));
}

function isHeatmap(x: unknown): boolean {
  return isObj(x) && x.width !== undefined && x.height !== undefined && optPosInt(x.width) && optPosInt(x.height) &&
    x.values instanceof Float32Array && (x.signed === undefined || typeof x.signed === 'boolean') &&
    (x.rgb === undefined || x.rgb instanceof Float32Array);
}

/** Why a message is not a valid request, or undefined when it is. */
export function requestProblem(m: unknown): string | undefined {
  if (!isObj(m)) return 'the message is not an object';
  if (!isId(m.id)) return 'the message has no integer id';
  switch (m.type) {
    case 'model/describe':
      return isModelRef(m.model) ? undefined : 'model/describe needs model: { path }';
    case 'image/predict':
      return isModelRef(m.model) && isImageRef(m.image) && optPosInt(m.topK) ? undefined : 'image/predict needs model, image and an optional topK >= 1';
    case 'cam/compute':
      return isModelRef(m.model) && isImageRef(m.image) && isStr(m.method) && optStr(m.layer) && optNat(m.classIndex) &&
        (m.layers === undefined || isLayerList(m.layers)) && (m.options === undefined || isObj(m.options))
        ? undefined : 'cam/compute needs model, image, method and optional layer, layers (1 to 32 names), classIndex, options';
    case 'features/compute':
      return isModelRef(m.model) && isImageRef(m.image) && optStr(m.layer) && optNat(m.classIndex) && optPosInt(m.maxChannels)
        ? undefined : 'features/compute needs model, image and optional layer, classIndex, maxChannels';
    case 'overlay/render':
      return isImageRef(m.image) && (m.heatmap === undefined || isHeatmap(m.heatmap)) && isColormap(m.colormap) &&
        typeof m.opacity === 'number' && m.opacity >= 0 && m.opacity <= 1 && optPosInt(m.maxSize)
        ? undefined : 'overlay/render needs image, colormap, opacity in [0,1] and an optional heatmap and maxSize';
    case 'backend/set':
      return (BACKEND_CHOICES as readonly unknown[]).includes(m.backend) && optNat(m.threads) &&
        (m.onnxRuntime === undefined || (ONNX_RUNTIME_CHOICES as readonly unknown[]).includes(m.onnxRuntime))
        ? undefined : `backend/set needs backend: one of ${BACKEND_CHOICES.join(', ')}, optional threads >= 0 and optional onnxRuntime: ${ONNX_RUNTIME_CHOICES.join(' or ')}`;
    case 'scan/run':
      return isModelRef(m.model) && isStr(m.data) && optStr(m.labelsFile) && (m.batchSize === undefined || (optPosInt(m.batchSize) && (m.batchSize as number) <= 1024)) &&
        (m.scoreKind === undefined || isScoreKind(m.scoreKind)) && (m.preprocess === undefined || isPreprocess(m.preprocess)) &&
        optPosInt(m.maxPixels) && optNat(m.eventIntervalMs)
        ? undefined : 'scan/run needs model, data and optional labelsFile, batchSize 1..1024, scoreKind, preprocess, maxPixels, eventIntervalMs';
    case 'scan/reviewed':
      return isStr(m.root) && isStr(m.relPath) && typeof m.givenLabel === 'string' && m.givenLabel.length < 4096
        ? undefined : 'scan/reviewed needs root, relPath and givenLabel';
    case 'cam/pair':
      return isModelRef(m.model) && isImageRef(m.image) && isStr(m.method) && optStr(m.layer) &&
        Array.isArray(m.classes) && m.classes.length === 2 && m.classes.every((c) => optNat(c) && c !== undefined) &&
        (m.options === undefined || isObj(m.options)) ? undefined : 'cam/pair needs model, image, method, classes: [index, index] and optional layer, options';
    case 'compare/image':
      return isModelRef(m.modelA) && isModelRef(m.modelB) && isImageRef(m.image) && isStr(m.method) && optStr(m.classLabel) &&
        optStr(m.layerA) && optStr(m.layerB) && (m.options === undefined || isObj(m.options))
        ? undefined : 'compare/image needs modelA, modelB, image, method and optional classLabel, layerA, layerB, options';
    case 'compare/run':
      return isModelRef(m.modelA) && isModelRef(m.modelB) && isStr(m.data) && optStr(m.labelsFile) && isStr(m.method) && optStr(m.classLabel) &&
        optStr(m.layerA) && optStr(m.layerB) && optPosInt(m.maxPixels) && optNat(m.eventIntervalMs)
        ? undefined : 'compare/run needs modelA, modelB, data, method and optional labelsFile, classLabel, layerA, layerB, maxPixels, eventIntervalMs';
    case 'strategies/run':
      return isModelRef(m.model) && isStr(m.data) && optStr(m.labelsFile) && optStr(m.method) && optStr(m.layer) && optStr(m.boxes) &&
        (m.clusters === undefined || m.clusters === 'auto' || optPosInt(m.clusters)) &&
        (m.classes === undefined || (Array.isArray(m.classes) && m.classes.length <= 100_000 && m.classes.every((c) => isStr(c) || (c !== undefined && optNat(c))))) &&
        (m.groupBy === undefined || m.groupBy === 'given' || m.groupBy === 'predicted') && (m.explain === undefined || m.explain === 'group' || m.explain === 'predicted') &&
        (m.methodOptions === undefined || isObj(m.methodOptions)) && optPosInt(m.maxClusters) && optPosInt(m.mapSize) && optPosInt(m.neighbours) &&
        (m.seed === undefined || Number.isSafeInteger(m.seed)) && (m.intervention === undefined || typeof m.intervention === 'boolean') && optNat(m.nearest) &&
        (m.preprocess === undefined || isPreprocess(m.preprocess)) && optPosInt(m.maxPixels)
        ? undefined : "strategies/run needs model, data and optional labelsFile, classes, groupBy, explain, method, layer, methodOptions, clusters ('auto' or >= 1), maxClusters, mapSize, neighbours, seed, boxes, intervention, nearest, preprocess, maxPixels";
    case 'model/release':
      return isModelRef(m.model) ? undefined : 'model/release needs model: { path }';
    case 'debug/memory':
      return undefined;
    case 'debug/crash':
      return m.how === 'exit' || m.how === 'throw' ? undefined : "debug/crash needs how: 'exit' | 'throw'";
    default:
      return `unknown request type ${JSON.stringify(m.type)}`;
  }
}

export function isCancelMessage(m: unknown): m is CancelMessage {
  return isObj(m) && m.type === 'cancel' && isId(m.id);
}

export function isWorkerToHost(m: unknown): m is WorkerToHost {
  if (!isObj(m) || !isId(m.id)) return false;
  if (m.type === 'progress') return typeof m.done === 'number' && typeof m.total === 'number';
  if (m.type === 'event') return isObj(m.event) && typeof m.event.kind === 'string';
  if (m.ok === true) return 'result' in m;
  return m.ok === false && isObj(m.error) && typeof m.error.message === 'string';
}

/**
 * The ArrayBuffers of the typed arrays inside `value` (searched a few levels deep) that can be transferred
 * without taking anything else along: each view must cover its whole buffer (a view into a shared or pooled
 * buffer is copied instead). A buffer is listed once, as postMessage requires.
 */
export function transferablesOf(value: unknown, depth = 3): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const visit = (v: unknown, d: number) => {
    if (ArrayBuffer.isView(v)) {
      const buf = v.buffer;
      if (buf instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === buf.byteLength) out.add(buf);
      return;
    }
    if (d <= 0 || !isObj(v)) return;
    for (const x of Object.values(v)) visit(x, d - 1);
  };
  visit(value, depth);
  return [...out];
}
