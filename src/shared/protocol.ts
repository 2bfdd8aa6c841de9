/**
 * Messages between the extension host and its webview panels (STYLE.md "Host <-> webview messages").
 *
 * - The webview speaks first (`panel/ready`); the host sends nothing before it.
 * - Requests are imperative (`cam/compute`) and carry a `requestId`; every request gets exactly one reply:
 *   its success notification with the same `requestId`, or `request/didFail` with `{name, message}`.
 *   So no promise in the webview can hang when a host handler throws.
 * - Notifications are past tense (`cam/didCompute`).
 * - Heatmaps and feature maps travel as Float32Array with explicit width/height, never nested arrays.
 * - The host validates every incoming message (`isWebviewMessage`) before acting on it.
 *
 * Everything here is pure data; this file imports nothing.
 */

export type CamMethodId = 'cam' | 'gradcam' | 'gradcam++' | 'xgradcam' | 'hirescam' | 'layercam' | 'scorecam' | 'eigencam';
export const CAM_METHOD_IDS: readonly CamMethodId[] = ['cam', 'gradcam', 'gradcam++', 'xgradcam', 'hirescam', 'layercam', 'scorecam', 'eigencam'];
export type ColormapId = 'turbo' | 'jet' | 'viridis' | 'inferno' | 'gray';
export type PreprocessId = '[0,1]' | '[-1,1]' | '[0,255]' | 'caffe' | 'imagenet';
export const PREPROCESS_IDS: readonly PreprocessId[] = ['[0,1]', '[-1,1]', '[0,255]', 'caffe', 'imagenet'];

export interface ErrorPayload {
  name: string;
  message: string;
  /** Engine error code (CamLensError.code) where known. */
  code?: string;
  /** A next step for the user ("pick another layer"). */
  hint?: string;
}

export interface ClassPrediction {
  /** Class index (label index). */
  index: number;
  label: string;
  probability: number;
}

export interface MethodInfo {
  id: CamMethodId;
  label: string;
  needsGradients: boolean;
  /** False where the model cannot run it (e.g. `cam` without GAP-then-linear head at the layer). */
  available: boolean;
  reason?: string;
}

export interface LayerSummary {
  name: string;
  className: string;
  outputShape: (number | null)[];
  params: number;
  inbound: string[];
  spatial: boolean;
}

export interface ModelInfo {
  path: string;
  name: string;
  format: 'layers-model' | 'graph-model';
  backend: string;
  inputSize: [number, number, number];
  preprocess: PreprocessId;
  preprocessAssumed: boolean;
  /** All class labels in index order (for the searchable class list). */
  labels: string[];
  recommendedLayer: string | null;
  /** Spatial layers, in topological order: the target-layer picker. */
  spatialLayers: string[];
}

/** UI state persisted with `setState` (versioned) and restored by the panel serializer. */
export interface ExplainViewState {
  version: 1;
  imagePath: string;
  modelPath?: string;
  method: CamMethodId;
  classIndex?: number;
  layer?: string;
  preprocess?: PreprocessId;
  opacity: number;
  colormap: ColormapId;
  overlay: boolean;
}

export interface HeatmapPayload {
  width: number;
  height: number;
  values: Float32Array;
  rawMin: number;
  rawMax: number;
}

// ---------------------------------------------------------------------------------------------------------
// Explain panel

export type ExplainWebviewMessage =
  | { type: 'panel/ready' }
  | { type: 'cam/compute'; requestId: number; method: CamMethodId; classIndex?: number; layer?: string; preprocess?: PreprocessId }
  | { type: 'export/png'; requestId: number; colormap: ColormapId; opacity: number }
  | { type: 'export/json'; requestId: number }
  | { type: 'model/select'; requestId: number }
  | { type: 'state/didChange'; state: ExplainViewState };

export type ExplainHostMessage =
  | {
      type: 'panel/didInit';
      /** webview URI of the image, for the <img>/canvas underlay. */
      imageUri: string;
      imageName: string;
      imageSize: [number, number];
      model: ModelInfo;
      methods: MethodInfo[];
      state: ExplainViewState;
    }
  | { type: 'predictions/didCompute'; predictions: ClassPrediction[] }
  | {
      type: 'cam/didCompute';
      requestId: number;
      method: CamMethodId;
      layer: string;
      target: ClassPrediction;
      heatmap: HeatmapPayload;
      timingsMs: Record<string, number>;
      backend: string;
      cached: boolean;
    }
  | { type: 'cam/didProgress'; requestId: number; done: number; total: number }
  | { type: 'export/didSave'; requestId: number; path: string }
  | { type: 'request/didFail'; requestId: number; error: ErrorPayload }
  | { type: 'panel/didFail'; error: ErrorPayload };

// ---------------------------------------------------------------------------------------------------------
// Model inspector panel

export type FeatureSort = 'index' | 'mean' | 'weight';

export interface FeatureMapsPayload {
  layer: string;
  width: number;
  height: number;
  channels: number;
  /** Channel-major: channel c occupies values[c*w*h .. (c+1)*w*h), row-major inside. */
  values: Float32Array;
  /** Per-channel min, max, mean. */
  min: Float32Array;
  max: Float32Array;
  mean: Float32Array;
  /** Per-channel weight for `classIndex` (Grad-CAM alpha_k), when a class was given. */
  weights?: Float32Array;
  classIndex?: number;
}

export type InspectorWebviewMessage =
  | { type: 'panel/ready' }
  | { type: 'image/choose'; requestId: number }
  | { type: 'features/compute'; requestId: number; layer: string; classIndex?: number }
  | { type: 'model/use'; requestId: number };

export type InspectorHostMessage =
  | { type: 'panel/didInit'; model: ModelInfo; layers: LayerSummary[]; totalParams: number }
  | { type: 'image/didChoose'; requestId: number; imageName: string; imageUri: string; predictions: ClassPrediction[] }
  | ({ type: 'features/didCompute'; requestId: number } & FeatureMapsPayload)
  | { type: 'model/didUse'; requestId: number; path: string }
  | { type: 'request/didFail'; requestId: number; error: ErrorPayload }
  | { type: 'panel/didFail'; error: ErrorPayload };

// ---------------------------------------------------------------------------------------------------------
// Guards: the host runs these on every message before acting on it.

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;
const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
const optInt = (x: unknown) => x === undefined || isInt(x);
const optStr = (x: unknown) => x === undefined || (typeof x === 'string' && x.length < 4096);
const isMethod = (x: unknown): x is CamMethodId => typeof x === 'string' && (CAM_METHOD_IDS as readonly string[]).includes(x);
const isColormap = (x: unknown): x is ColormapId => x === 'turbo' || x === 'jet' || x === 'viridis' || x === 'inferno' || x === 'gray';
const isPreprocess = (x: unknown): x is PreprocessId => typeof x === 'string' && (PREPROCESS_IDS as readonly string[]).includes(x);

export function isExplainViewState(x: unknown): x is ExplainViewState {
  return isObj(x) && x.version === 1 && typeof x.imagePath === 'string' && optStr(x.modelPath) && isMethod(x.method) &&
    optInt(x.classIndex) && optStr(x.layer) && (x.preprocess === undefined || isPreprocess(x.preprocess)) &&
    typeof x.opacity === 'number' && x.opacity >= 0 && x.opacity <= 1 && isColormap(x.colormap) && typeof x.overlay === 'boolean';
}

export function isExplainWebviewMessage(x: unknown): x is ExplainWebviewMessage {
  if (!isObj(x) || typeof x.type !== 'string') return false;
  const m = x as Record<string, unknown>;
  switch (m.type) {
    case 'panel/ready':
      return true;
    case 'cam/compute':
      return isInt(m.requestId) && isMethod(m.method) && optInt(m.classIndex) && optStr(m.layer) && (m.preprocess === undefined || isPreprocess(m.preprocess));
    case 'export/png':
      return isInt(m.requestId) && isColormap(m.colormap) && typeof m.opacity === 'number' && m.opacity >= 0 && m.opacity <= 1;
    case 'export/json':
    case 'model/select':
      return isInt(m.requestId);
    case 'state/didChange':
      return isExplainViewState(m.state);
    default:
      return false;
  }
}

export function isInspectorWebviewMessage(x: unknown): x is InspectorWebviewMessage {
  if (!isObj(x) || typeof x.type !== 'string') return false;
  const m = x as Record<string, unknown>;
  switch (m.type) {
    case 'panel/ready':
      return true;
    case 'image/choose':
    case 'model/use':
      return isInt(m.requestId);
    case 'features/compute':
      return isInt(m.requestId) && typeof m.layer === 'string' && m.layer.length < 4096 && optInt(m.classIndex);
    default:
      return false;
  }
}
