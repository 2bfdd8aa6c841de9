/**
 * Messages of the compare panel ("Compare with Another Model…", "Compare Two Models on Folder"; issue #14 item 4),
 * host <-> webview, and the payloads the engine worker sends for them. Kept beside protocol.ts in a file of its
 * own so that the panel's contract reads in one place; the conventions are protocol.ts's: the webview speaks first
 * (`panel/ready`), every request (with a `requestId`) gets exactly one reply, success or `request/didFail`, maps
 * travel as typed arrays with explicit width and height, and the host validates what it receives.
 *
 * The panel shows one image at a time side by side (model A's map, model B's map, the difference A - B, the rank
 * correlation); in folder mode it also lists the folder's samples, most disagreeing first, each openable in the
 * side-by-side view.
 *
 * Pure types and guards: no imports beyond protocol.ts.
 */
import type { ClassPrediction, ErrorPayload, HeatmapPayload } from './protocol';

/** One model of the pair as the panel names it. */
export interface CompareModelInfo {
  path: string;
  name: string;
}

/** One side of an image comparison. */
export interface CompareSidePayload {
  name: string;
  predictions: ClassPrediction[];
  layer: string;
  /** The class explained, with this model's probability of it. */
  target: ClassPrediction;
  heatmap: HeatmapPayload;
}

/** An image compared (engine/analysis/compare.ts ImageComparison, as it crosses to the panel). */
export interface ComparePayload {
  method: string;
  methodLabel: string;
  classLabel: string;
  a: CompareSidePayload;
  b: CompareSidePayload;
  /** A - B on the common grid, in [-1, 1]. */
  difference: { width: number; height: number; values: Float32Array };
  correlation: number;
  meanAbsDifference: number;
  top1Differs: boolean;
  imageSize: [number, number];
}

/** One ranked sample of a folder comparison. */
export interface CompareRow {
  /** Relative to the dataset root. */
  path: string;
  givenLabel: string;
  top1A: ClassPrediction;
  top1B: ClassPrediction;
  top1Differs: boolean;
  correlation: number;
  meanAbsDifference: number;
}

export interface CompareViewState {
  version: 1;
  modelA: string;
  modelB: string;
  /** Image mode: the image; folder mode: the dataset folder or label file. */
  mode: 'image' | 'folder';
  source: string;
  method: string;
  /** '' = the default class (image: model A's top-1; folder: each sample's given label). */
  classLabel: string;
  /** Folder mode: the sample shown side by side (relative path). */
  selected?: string;
  opacity: number;
}

export type CompareWebviewMessage =
  | { type: 'panel/ready' }
  /** Compare the pair on one image: the panel's image, or in folder mode a sample by relative path. */
  | { type: 'compare/compute'; requestId: number; path?: string; method: string; classLabel: string }
  /** Folder mode: run (again) over the folder with the current method and class. */
  | { type: 'folder/run'; method: string; classLabel: string }
  | { type: 'folder/cancel' }
  | { type: 'state/didChange'; state: CompareViewState };

export type CompareHostMessage =
  | {
      type: 'panel/didInit';
      mode: 'image' | 'folder';
      modelA: CompareModelInfo;
      modelB: CompareModelInfo;
      /** The image (image mode) or folder name, for the header. */
      sourceName: string;
      /** Methods both models can run, in picker order. */
      methods: { id: string; label: string }[];
      /** Labels both models have (model A's order). */
      classes: string[];
      state: CompareViewState;
    }
  | { type: 'compare/didCompute'; requestId: number; path: string; imageName: string; imageUri?: string; result: ComparePayload }
  | { type: 'folder/didStart'; runId: number; total: number }
  | { type: 'folder/didProgress'; runId: number; done: number; total: number; failed: number; rows: CompareRow[] }
  | { type: 'folder/didFinish'; runId: number; rows: CompareRow[]; failed: number; cancelled: boolean; seconds: number }
  | { type: 'folder/didFail'; runId: number; error: ErrorPayload }
  | { type: 'request/didFail'; requestId: number; error: ErrorPayload }
  | { type: 'panel/didFail'; error: ErrorPayload };

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;
const isStr = (x: unknown, max = 4096): x is string => typeof x === 'string' && x.length <= max;
const isId = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;

export function isCompareViewState(x: unknown): x is CompareViewState {
  return isObj(x) && x.version === 1 && isStr(x.modelA) && isStr(x.modelB) && (x.mode === 'image' || x.mode === 'folder') &&
    isStr(x.source) && isStr(x.method, 64) && isStr(x.classLabel) && (x.selected === undefined || isStr(x.selected)) &&
    typeof x.opacity === 'number' && x.opacity >= 0 && x.opacity <= 1;
}

/** The host checks every webview message with this before acting on it. */
export function isCompareWebviewMessage(x: unknown): x is CompareWebviewMessage {
  if (!isObj(x)) return false;
  switch (x.type) {
    case 'panel/ready':
    case 'folder/cancel':
      return true;
    case 'compare/compute':
      return isId(x.requestId) && (x.path === undefined || isStr(x.path)) && isStr(x.method, 64) && isStr(x.classLabel);
    case 'folder/run':
      return isStr(x.method, 64) && isStr(x.classLabel);
    case 'state/didChange':
      return isCompareViewState(x.state);
    default:
      return false;
  }
}
