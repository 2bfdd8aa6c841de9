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
 * Everything here is pure data; it imports only the pure colormap list and DICOM types beside it.
 */
import { isColormapName, type ColormapName } from './colormaps';
import { isDicomSelection, type DicomImageInfo, type DicomSelection } from './dicom';
import { isClusterCount, type StrategiesView, type StrategyClusterCount } from './strategies';

/**
 * A CAM method's id. The methods are listed in one place only, the engine's registry (engine/cam/registry.ts,
 * where a method is one file and one line); everyone else learns them at run time: the webviews from the
 * `MethodInfo` list the host sends (in registry order, with labels), the worker by looking the id up in the
 * registry (an unknown id gets UNKNOWN_METHOD). The manifest's `camLens.defaultMethod` enum is checked against
 * the registry by a test.
 */
export type CamMethodId = string;
export type ColormapId = ColormapName;
/** The preprocessing presets (engine/preprocess.ts has their formulas). */
export type PreprocessId = '[0,1]' | '[-1,1]' | '[0,255]' | 'caffe' | 'imagenet';
export const PREPROCESS_IDS: readonly PreprocessId[] = ['[0,1]', '[-1,1]', '[0,255]', 'caffe', 'imagenet'];
export const isPreprocessId = (x: unknown): x is PreprocessId => typeof x === 'string' && (PREPROCESS_IDS as readonly string[]).includes(x);

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
  /** The map is the same whatever class is chosen (Eigen-CAM). */
  classIndependent: boolean;
  /** False where the model cannot run it (e.g. `cam` without GAP-then-linear head at the layer). */
  available: boolean;
  reason?: string;
  /**
   * 'cam': a class activation map at a layer's resolution; 'pixel': pixel-level saliency at the model input's
   * resolution (guided backpropagation, gradients, SmoothGrad, Integrated Gradients). Absent: 'cam'.
   */
  group?: 'cam' | 'pixel';
  /** The method reads a target layer: every CAM method, Guided Grad-CAM among the pixel ones. Absent: true. */
  usesLayer?: boolean;
  /**
   * What the user may set in the panel's Options area: the method's own parameters (noise, steps, baseline,
   * budget), then, for a 'cam' method, the options every CAM method takes (CAM_OPTIONS: augSmooth, eigenSmooth),
   * those marked `common`. The values travel in `cam/compute`'s `options`, by parameter id.
   */
  params?: MethodParam[];
}

/** A value of a method option (MethodParam): a number, a choice's value or a flag. */
export type OptionValue = number | string | boolean;

/** One method option, as the engine's registry declares it (engine/cam/base.ts); the panel builds its input from it. */
export interface MethodParam {
  id: string;
  label: string;
  kind: 'number' | 'choice' | 'boolean';
  default: OptionValue;
  min?: number;
  max?: number;
  step?: number;
  /** For 'choice': the values offered, with their labels. */
  choices?: { value: string; label: string }[];
  description: string;
  /** One value for every CAM method (CAM_OPTIONS), not one per method. */
  common?: boolean;
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
  format: 'layers-model' | 'graph-model' | 'onnx';
  /** The file the layers model was read from where it is not a TensorFlow.js model.json: a Keras file read directly. */
  source?: 'keras3' | 'keras3-h5' | 'keras2-h5';
  backend: string;
  inputSize: [number, number, number];
  preprocess: PreprocessId;
  preprocessAssumed: boolean;
  /** Why an assumed preset was chosen, to show beside it ("inside the model": the model rescales its input). */
  preprocessNote?: string;
  /** All class labels in index order (for the searchable class list). */
  labels: string[];
  /** The labels are assumed, not read from the model's metadata (ImageNet's names for 1000 or 1001 outputs). */
  labelsAssumed?: boolean;
  recommendedLayer: string | null;
  /** Spatial layers, in topological order: the target-layer picker. */
  spatialLayers: string[];
  /**
   * Every output of the model, in its order (units: values per image, null where the model does not say). A model
   * with several outputs (heads) explains one of them, `output`; the panels offer a picker only when there are
   * several. Absent from an older host: one output.
   */
  outputs?: ModelOutputInfo[];
  /** The name of the output explained. */
  output?: string;
  /** The output is one sigmoid unit, explained as two classes (the 0 side, the 1 side). */
  binary?: boolean;
}

export interface ModelOutputInfo {
  name: string;
  units: number | null;
  /** The activation it ends in: 'softmax', 'sigmoid' or 'none'. */
  activation?: string;
}

/** "gender (1 unit, sigmoid)": an output as the pickers show it. */
export function outputLabel(o: ModelOutputInfo): string {
  const units = o.units === null ? '' : `${o.units} unit${o.units === 1 ? '' : 's'}`;
  const parts = [units, o.activation && o.activation !== 'none' ? o.activation : ''].filter(Boolean);
  return parts.length ? `${o.name} (${parts.join(', ')})` : o.name;
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
  /** The output explained, where the model has several (absent: the model's default). */
  output?: string;
  opacity: number;
  colormap: ColormapId;
  overlay: boolean;
  /** A DICOM image's frame and window chosen in the panel (absent: frame 0, the model's or the file's window). */
  dicom?: DicomSelection;
  /** Two or more target layers whose maps are averaged (CAM methods); absent: the one `layer`. */
  layers?: string[];
  /** Option values the user set (MethodInfo.params), by method id then parameter id; absent ones take their default. */
  methodOptions?: Record<string, Record<string, OptionValue>>;
  /** Values of the options every CAM method takes (MethodParam.common: augSmooth, eigenSmooth), by parameter id. */
  camOptions?: Record<string, OptionValue>;
}

/**
 * What the explain panel says about the image beyond its size: the channels the model is fed from (a grayscale
 * image repeated into a 3-channel model, a colour one turned to luma for a 1-channel model), a 16-bit source
 * kept at full depth, and for DICOM the way from stored values to model pixels (shared/dicom.ts, no patient data).
 */
export interface ImageDescription {
  channels: 1 | 3;
  /** 'png', 'jpeg', …, 'dicom'. */
  format: string;
  /** 16 for a 16-bit PNG or TIFF read at full depth. */
  bitDepth?: number;
  dicom?: DicomImageInfo;
}

export interface HeatmapPayload {
  width: number;
  height: number;
  values: Float32Array;
  rawMin: number;
  rawMax: number;
  /**
   * Pixel saliency with a sign (gradients, Integrated Gradients): `values` are in [-1, 1], 0 meaning no
   * attribution, and are drawn with the diverging colormap (shared/colormaps.ts) centred at 0.
   */
  signed?: boolean;
  /** Guided backpropagation's RGB image: width * height * 3 values in [0, 1], drawn as colours. */
  rgb?: Float32Array;
}

/**
 * What a map was made from, where the method had a choice (the engine's MapResult.details): today Score-CAM's
 * channel budget. The panels show `note` in the map's caption; `cam-lens cam --json` writes the object.
 */
export interface MapDetails {
  /** One line for captions: "top 32 of 256 channels by mean activation", "all 250 channels (6 constant skipped)". */
  note: string;
  /** Score-CAM: the channels masked and scored, one forward pass each. */
  channels?: {
    scored: number;
    /** Channels that are not constant over the map: what scoring "all" scores. */
    usable: number;
    /** Channels of the target layer. */
    total: number;
    /** 'all', or the criterion the scored channels rank highest by ('mean', 'std'). */
    by: string;
    /** Wall time of the masked passes, ms. */
    ms: number;
    /** Estimated wall time of scoring all `usable` channels at this run's rate, ms. */
    allMs: number;
  };
  /** Pixel saliency (engine/saliency): SmoothGrad's noisy copies and their noise (a fraction of the input's range). */
  samples?: number;
  noise?: number;
  /** Integrated Gradients: the steps of the path integral and the baseline it starts from. */
  steps?: number;
  baseline?: 'black' | 'blurred';
  /** Guided backpropagation and Guided Grad-CAM: 'rgb' (colours, `HeatmapPayload.rgb`) or 'magnitude'. */
  render?: 'rgb' | 'magnitude';
  /** Inputs per forward-and-backward pass (SmoothGrad, Integrated Gradients) and the passes run. */
  batchSize?: number;
  passes?: number;
  /**
   * Integrated Gradients' completeness (Sundararajan et al. 2017, axiom): the attributions should add up to the
   * class logit's difference between input and baseline. `gap` = sum - difference; `relativeGap` = gap / |difference|
   * (absent where the difference is 0).
   */
  completeness?: { attributionSum: number; inputScore: number; baselineScore: number; gap: number; relativeGap?: number };
}

// ---------------------------------------------------------------------------------------------------------
// Explain panel

export type ExplainWebviewMessage =
  | { type: 'panel/ready' }
  /**
   * `allChannels`: this one map scores every channel with Score-CAM, whatever the channel budget
   * (camLens.scoreCam.channels); the next request goes back to the budget.
   */
  | {
      type: 'cam/compute';
      requestId: number;
      method: CamMethodId;
      classIndex?: number;
      layer?: string;
      /** Two or more layers whose maps are averaged (CAM methods); `layer` is then the first of them. */
      layers?: string[];
      preprocess?: PreprocessId;
      allChannels?: boolean;
      /** The Options area's values (MethodInfo.params) by parameter id; absent ones take their default. */
      options?: Record<string, OptionValue>;
    }
  /**
   * Stops the `cam/compute` with this id (Score-CAM's Cancel). Not answered itself: the request it names is
   * answered `request/didFail` with code CANCELLED (or its map, when it had finished already).
   */
  | { type: 'cam/cancel'; requestId: number }
  | { type: 'export/png'; requestId: number; colormap: ColormapId; opacity: number }
  | { type: 'export/json'; requestId: number }
  | { type: 'model/select'; requestId: number }
  /**
   * Explain another output of the same model (the output picker, shown where ModelInfo lists several). The host
   * reloads the model with that output: the answer is a new `panel/didInit`, or `request/didFail`.
   */
  | { type: 'output/select'; requestId: number; output: string }
  /**
   * A DICOM image's frame or window (the DICOM section: frame picker, window picker, centre/width fields, a drag
   * on the image). The host decodes the image again with it and answers with a new `panel/didInit` (the image as
   * the model now sees it, then its predictions, then the panel asks for the map), or `request/didFail`.
   */
  | { type: 'dicom/select'; requestId: number; selection: DicomSelection }
  /**
   * "Compare with Another Model…": the host asks for a second model (the model picker) and opens the compare panel
   * on this image with this model, method and class (shared/compareProtocol.ts). A notification: no reply, the
   * panel opens or the user dismissed the picker.
   */
  | { type: 'compare/open' }
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
      /** The image's channels and, for DICOM, how its values became the model's pixels. Absent from an older host. */
      image?: ImageDescription;
    }
  | {
      type: 'predictions/didCompute';
      /** The top-k classes (camLens.topK), most likely first. */
      predictions: ClassPrediction[];
      /**
       * Every class's probability by label index (length = number of classes), so the "Why not another class?"
       * list can show one for each class, not only for the top k. Absent from an older host.
       */
      probabilities?: Float32Array;
    }
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
      /** What the map was made from (Score-CAM: which channels were scored), for its caption. */
      details?: MapDetails;
      /** The layers whose maps were averaged, where there were several (`layer` is the first). */
      layers?: string[];
    }
  | { type: 'cam/didProgress'; requestId: number; done: number; total: number }
  | { type: 'export/didSave'; requestId: number; path: string }
  | { type: 'request/didFail'; requestId: number; error: ErrorPayload }
  /** The panel cannot show this image with this model at all (unreadable image, broken model); `imageName` names the image. */
  | { type: 'panel/didFail'; error: ErrorPayload; imageName?: string };

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
// Mislabeled-sample scan and triage panel (PRODUCT.md flow 3)

/** The label-quality score samples are ranked by, ascending (engine/scan/ranking.ts). */
export type ScanScoreKind = 'self_confidence' | 'normalized_margin';
export const SCAN_SCORE_KINDS: readonly ScanScoreKind[] = ['self_confidence', 'normalized_margin'];

/** What the worker found in a dataset before scanning it. */
export interface ScanDatasetInfo {
  kind: 'folder' | 'csv' | 'json';
  /** The folder or label file the user chose (absolute). */
  source: string;
  /** The folder sample paths are relative to (the folder, or the label file's folder). */
  root: string;
  /** Samples to scan: images whose class matched a model label. */
  total: number;
  counts: { images: number; nonImageFiles: number; unmatchedImages: number; missingFiles: number };
  /** Class names in the data that match no model label, with how many images they hold. */
  unmatchedClasses: { name: string; images: number }[];
  /** The model's class labels (label index order): the filters and "Move to class…". */
  labels: string[];
  scoredBy: ScanScoreKind;
  /** Entries in `.cam-lens/reviewed.json` when the scan started. */
  reviewed: number;
  /** The model's outputs and the one scanned (the triage panel's output picker, shown when there are several). */
  outputs?: ModelOutputInfo[];
  output?: string;
}

/** One scanned sample, as much as a view needs (top 5 instead of the full probability vector). */
export interface ScanRow {
  /** Arrival order over all results of the scan (0-based), reviewed ones included: the key of flag updates. */
  seq: number;
  /** Path relative to the dataset root, '/'-separated: the row's identity in the view (`data-path`). */
  path: string;
  givenIndex: number;
  givenLabel: string;
  predictedIndex: number;
  predictedLabel: string;
  /** Top 5 classes, most likely first. */
  top: ClassPrediction[];
  selfConfidence: number;
  normalizedMargin: number;
  entropy: number;
  /** The ranking score (selfConfidence or normalizedMargin, per ScanDatasetInfo.scoredBy); lower = more doubtful. */
  score: number;
  /** Confident learning assigns the sample to another class than its given one (current thresholds). */
  flagged: boolean;
}

export interface ScanFailureInfo {
  /** Dataset-relative path. */
  path: string;
  error: string;
}

/** A row of the triage view: a scanned sample plus what only the host knows. */
export interface TriageRow extends ScanRow {
  /**
   * Webview URI of the image (thumbnail and heatmap underlay); empty where the webview cannot show the file
   * (DICOM, TIFF): then `rendered` is set and the webview asks the host for a PNG (`sample/render`).
   */
  imageUri: string;
  rendered?: boolean;
  /**
   * Set after "Move to class…": the given label before the move. The scores (selfConfidence, normalizedMargin,
   * score) and the flag are recomputed by the host for the new given label; the row keeps its rank.
   */
  movedFrom?: string;
}

/** The header counts of the triage view. */
export interface TriageCounts {
  /** Image files found (matched or not). */
  images: number;
  /** Images whose class matched a model label: what the scan runs over. */
  samples: number;
  scanned: number;
  failed: number;
  flagged: number;
  /** Hidden because `.cam-lens/reviewed.json` confirms their label (this scan, plus rows marked since). */
  reviewedHidden: number;
  nonImageFiles: number;
  unmatchedImages: number;
  /** Label-file rows naming a file that does not exist. */
  missingFiles: number;
}

export interface TriageMap {
  target: ClassPrediction;
  heatmap: HeatmapPayload;
}

/** UI state of the triage panel, persisted with setState (versioned) and restored by its serializer. */
export interface TriageViewState {
  version: 1;
  /** The dataset folder or label file. */
  source: string;
  modelPath: string;
  /** Class index filters (undefined: all classes). */
  givenFilter?: number;
  predictedFilter?: number;
  flaggedOnly: boolean;
  /** Path (dataset-relative) of the selected row. */
  selected?: string;
  /** The output scanned, where the model has several (absent: the model's default). */
  output?: string;
}

/**
 * Webview → host. Requests carry a requestId and get exactly one reply (their `did…` message or
 * `request/didFail`). `scan/cancel` and `scan/rescan` are answered by the scan's notifications instead:
 * a cancelled scan ends with `scan/didFinish { cancelled: true }`, a rescan starts with a new `scan/didStart`.
 * Samples are named by their dataset-relative path; the host acts only on paths of its current scan.
 */
export type TriageWebviewMessage =
  | { type: 'panel/ready' }
  | { type: 'scan/cancel' }
  | { type: 'scan/rescan' }
  /** Scan again with another output of the model (the output picker); answered like a rescan, by a new scan's notifications. */
  | { type: 'output/select'; output: string }
  /** The heatmaps of the sample's given and predicted labels (default method, recommended layer). */
  | { type: 'cam/pair'; requestId: number; path: string }
  /** Opens the full explain panel for the sample (`camLens.showCam`). */
  | { type: 'sample/open'; requestId: number; path: string }
  /** "Label is correct": recorded in `.cam-lens/reviewed.json`, so the next scan hides the sample. */
  | { type: 'sample/markCorrect'; requestId: number; path: string }
  /** "Move to class…": the host asks which class (quick pick) and relabels the sample, undoably. */
  | { type: 'sample/move'; requestId: number; path: string }
  /**
   * Undoes the last move of the sample (moves the file back, or restores its label-file text). VS Code's own
   * Ctrl+Z in the Explorer undoes only the Explorer's edits, not an extension's WorkspaceEdit, hence this.
   * Answered by `sample/didMove` with the restored row.
   */
  | { type: 'sample/undoMove'; requestId: number; path: string }
  | { type: 'report/save'; requestId: number; format: 'csv' | 'json' }
  /** A PNG of a sample the webview cannot show itself (TriageRow.rendered), at most `maxSize` pixels on a side. */
  | { type: 'sample/render'; requestId: number; path: string; maxSize: number }
  /** Opens the strategies panel (`camLens.showStrategies`) for this dataset and model; a notification, not answered. */
  | { type: 'strategies/show' }
  | { type: 'state/didChange'; state: TriageViewState };

/**
 * Host → webview. A scan's messages carry its `scanId`; messages of an older scan (after a rescan) are
 * ignored. After the webview reloads (hidden and shown again) the host replays the current scan: didInit,
 * didStart, the rows so far in didProgress messages, and didFinish when it has finished.
 */
export type TriageHostMessage =
  | {
      type: 'panel/didInit';
      modelName: string;
      modelPath: string;
      source: string;
      sourceName: string;
      /** The method of the heatmap pair (camLens.defaultMethod) and how it is drawn (camLens.colormap, camLens.opacity). */
      method: CamMethodId;
      colormap: ColormapId;
      opacity: number;
      state: TriageViewState;
    }
  | { type: 'scan/didStart'; scanId: number; dataset: ScanDatasetInfo; counts: TriageCounts }
  | {
      type: 'scan/didProgress';
      scanId: number;
      done: number;
      total: number;
      imagesPerSecond: number;
      secondsLeft: number;
      counts: TriageCounts;
      /** New rows, in arrival order. */
      rows: TriageRow[];
      failures: ScanFailureInfo[];
      /** `seq`s whose flag changed (on / off) since the previous message. */
      flagsOn: Int32Array;
      flagsOff: Int32Array;
    }
  | {
      type: 'scan/didFinish';
      scanId: number;
      cancelled: boolean;
      seconds: number;
      counts: TriageCounts;
      /** Final ranking: `seq`s in rank order, most doubtful first. */
      order: Int32Array;
      /** `seq`s flagged in the final report. */
      flagged: Int32Array;
    }
  | { type: 'scan/didFail'; scanId: number; error: ErrorPayload }
  /** `note`: what the maps were made from, where the method chose (MapDetails.note: Score-CAM's channels). */
  | { type: 'cam/didComputePair'; requestId: number; path: string; method: CamMethodId; methodLabel: string; layer: string; given: TriageMap; predicted: TriageMap; note?: string }
  | { type: 'sample/didOpen'; requestId: number; path: string }
  | { type: 'sample/didMarkCorrect'; requestId: number; path: string; counts: TriageCounts }
  /**
   * The row after the move (new path, given label and image URI, `movedFrom` set, scores and flag for the new
   * label) or after its undo, and the counts (the flagged count follows the row's flag).
   */
  | { type: 'sample/didMove'; requestId: number; path: string; row: TriageRow; counts: TriageCounts }
  /** A row changed on the host's initiative (a move undone from its notification); `path` is its path before. */
  | { type: 'sample/didChange'; path: string; row: TriageRow; counts: TriageCounts }
  | { type: 'report/didSave'; requestId: number; path: string }
  | { type: 'sample/didRender'; requestId: number; path: string; png: Uint8Array }
  | { type: 'request/didFail'; requestId: number; error: ErrorPayload }
  | { type: 'panel/didFail'; error: ErrorPayload };

// ---------------------------------------------------------------------------------------------------------
// Guards: the host runs these on every message before acting on it.

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;
const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
const optInt = (x: unknown) => x === undefined || isInt(x);
const optStr = (x: unknown) => x === undefined || (typeof x === 'string' && x.length < 4096);
/** A method id is checked for form here; whether the engine has it, the worker says (UNKNOWN_METHOD). */
const isMethod = (x: unknown): x is CamMethodId => typeof x === 'string' && x.length > 0 && x.length < 64;
const isColormap = isColormapName;
const isPreprocess = isPreprocessId;

/** A method option's value: a finite number, a short string or a flag. */
const isOptionValue = (x: unknown): x is OptionValue =>
  typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x)) || (typeof x === 'string' && x.length < 256);
/** Option values by parameter id: at most 64 of them, ids of 1..64 characters. */
export function isOptionRecord(x: unknown): x is Record<string, OptionValue> {
  if (!isObj(x) || Array.isArray(x)) return false;
  const entries = Object.entries(x);
  return entries.length <= 64 && entries.every(([k, v]) => k.length > 0 && k.length <= 64 && isOptionValue(v));
}
/** Target layers to average: 1..32 names. */
const isLayerList = (x: unknown): x is string[] =>
  Array.isArray(x) && x.length > 0 && x.length <= 32 && x.every((l) => typeof l === 'string' && l.length > 0 && l.length < 4096);
const isMethodOptions = (x: unknown) =>
  isObj(x) && !Array.isArray(x) && Object.keys(x).length <= 64 && Object.entries(x).every(([k, v]) => isMethod(k) && isOptionRecord(v));

export function isExplainViewState(x: unknown): x is ExplainViewState {
  return isObj(x) && x.version === 1 && typeof x.imagePath === 'string' && optStr(x.modelPath) && isMethod(x.method) &&
    optInt(x.classIndex) && optStr(x.layer) && (x.preprocess === undefined || isPreprocess(x.preprocess)) && optStr(x.output) &&
    typeof x.opacity === 'number' && x.opacity >= 0 && x.opacity <= 1 && isColormap(x.colormap) && typeof x.overlay === 'boolean' &&
    (x.dicom === undefined || isDicomSelection(x.dicom)) && (x.layers === undefined || isLayerList(x.layers)) &&
    (x.methodOptions === undefined || isMethodOptions(x.methodOptions)) && (x.camOptions === undefined || isOptionRecord(x.camOptions));
}

export function isExplainWebviewMessage(x: unknown): x is ExplainWebviewMessage {
  if (!isObj(x) || typeof x.type !== 'string') return false;
  const m = x as Record<string, unknown>;
  switch (m.type) {
    case 'panel/ready':
      return true;
    case 'cam/compute':
      return isInt(m.requestId) && isMethod(m.method) && optInt(m.classIndex) && optStr(m.layer) && (m.preprocess === undefined || isPreprocess(m.preprocess)) &&
        (m.allChannels === undefined || typeof m.allChannels === 'boolean') && (m.layers === undefined || isLayerList(m.layers)) &&
        (m.options === undefined || isOptionRecord(m.options));
    case 'cam/cancel':
      return isInt(m.requestId);
    case 'export/png':
      return isInt(m.requestId) && isColormap(m.colormap) && typeof m.opacity === 'number' && m.opacity >= 0 && m.opacity <= 1;
    case 'export/json':
    case 'model/select':
      return isInt(m.requestId);
    case 'output/select':
      return isInt(m.requestId) && typeof m.output === 'string' && m.output.length > 0 && m.output.length < 4096;
    case 'dicom/select':
      return isInt(m.requestId) && isDicomSelection(m.selection);
    case 'compare/open':
      return true;
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

export function isTriageViewState(x: unknown): x is TriageViewState {
  return isObj(x) && x.version === 1 && typeof x.source === 'string' && x.source.length > 0 && x.source.length < 4096 &&
    typeof x.modelPath === 'string' && x.modelPath.length > 0 && x.modelPath.length < 4096 &&
    optInt(x.givenFilter) && optInt(x.predictedFilter) && typeof x.flaggedOnly === 'boolean' && optStr(x.selected) && optStr(x.output);
}

const isPath = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length < 4096;

export function isTriageWebviewMessage(x: unknown): x is TriageWebviewMessage {
  if (!isObj(x) || typeof x.type !== 'string') return false;
  const m = x as Record<string, unknown>;
  switch (m.type) {
    case 'panel/ready':
    case 'scan/cancel':
    case 'scan/rescan':
    case 'strategies/show':
      return true;
    case 'cam/pair':
    case 'sample/open':
    case 'sample/markCorrect':
    case 'sample/move':
    case 'sample/undoMove':
      return isInt(m.requestId) && isPath(m.path);
    case 'report/save':
      return isInt(m.requestId) && (m.format === 'csv' || m.format === 'json');
    case 'sample/render':
      return isInt(m.requestId) && isPath(m.path) && isInt(m.maxSize) && m.maxSize >= 16 && m.maxSize <= 4096;
    case 'output/select':
      return isPath(m.output);
    case 'state/didChange':
      return isTriageViewState(m.state);
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Model strategies panel (issue #14): per class the average map, the clusters of the maps ("strategies") as cards

/** UI state of the strategies panel, persisted with setState (versioned) and restored by its serializer. */
export interface StrategiesViewState {
  version: 1;
  /** The dataset folder or label file. */
  source: string;
  modelPath: string;
  method: CamMethodId;
  /** Target layer (absent: the model's recommended one). */
  layer?: string;
  clusters: StrategyClusterCount;
  /** The one class analysed (label index); absent: every class. */
  classIndex?: number;
  /** Cluster cards shown expanded, as "classIndex:clusterId". */
  expanded?: string[];
}

/** The options of one analysis: a change of method, layer or class computes the maps again, a change of k does not. */
export interface StrategiesRunOptions {
  method: CamMethodId;
  layer?: string;
  clusters: StrategyClusterCount;
  classIndex?: number;
}

/**
 * Webview → host. `strategies/run` and `strategies/cancel` are answered by the run's notifications (a new
 * `strategies/didStart`, then `didProgress`, then `didFinish` — with `cancelled: true` and what was computed — or
 * `didFail`); the requests with a requestId get exactly one reply each, their `did…` or `request/didFail`.
 */
export type StrategiesWebviewMessage =
  | { type: 'panel/ready' }
  | { type: 'strategies/run'; options: StrategiesRunOptions }
  | { type: 'strategies/cancel' }
  /** Clusters the maps of the last run again with another k (or 'auto'): instant, the maps are cached. */
  | { type: 'strategies/recluster'; requestId: number; clusters: StrategyClusterCount }
  /** Opens a cluster member (dataset-relative path) in the explain panel for `classIndex` (`camLens.showCam`). */
  | { type: 'sample/open'; requestId: number; path: string; classIndex: number }
  | { type: 'state/didChange'; state: StrategiesViewState };

/**
 * Host → webview. A run's messages carry its `runId`; those of an older run are ignored. After the webview
 * reloads (hidden and shown again) the host replays: didInit, then the current run's didStart and its last
 * didProgress, or its didFinish.
 */
export type StrategiesHostMessage =
  | {
      type: 'panel/didInit';
      modelName: string;
      modelPath: string;
      source: string;
      sourceName: string;
      /** The CAM methods (engine registry order) and the model's spatial layers, for the pickers. */
      methods: { id: CamMethodId; label: string; available: boolean }[];
      layers: string[];
      recommendedLayer: string | null;
      /** The model's class labels (label index order): the class filter. */
      labels: string[];
      colormap: ColormapId;
      opacity: number;
      state: StrategiesViewState;
    }
  | { type: 'strategies/didStart'; runId: number; options: StrategiesRunOptions }
  | {
      type: 'strategies/didProgress';
      runId: number;
      phase: 'maps' | 'clusters' | 'interventions';
      done: number;
      total: number;
      mapsPerSecond: number;
      secondsLeft: number;
      failed: number;
    }
  | { type: 'strategies/didFinish'; runId: number; view: StrategiesView }
  | { type: 'strategies/didFail'; runId: number; error: ErrorPayload }
  | { type: 'strategies/didRecluster'; requestId: number; clusters: StrategyClusterCount; view: StrategiesView }
  | { type: 'sample/didOpen'; requestId: number; path: string }
  | { type: 'request/didFail'; requestId: number; error: ErrorPayload }
  | { type: 'panel/didFail'; error: ErrorPayload };

const isExpandedKey = (x: unknown) => typeof x === 'string' && /^\d{1,6}:\d{1,4}$/.test(x);

export function isStrategiesViewState(x: unknown): x is StrategiesViewState {
  return isObj(x) && x.version === 1 && isPath(x.source) && isPath(x.modelPath) && isMethod(x.method) && optStr(x.layer) &&
    isClusterCount(x.clusters) && optInt(x.classIndex) &&
    (x.expanded === undefined || (Array.isArray(x.expanded) && x.expanded.length <= 4096 && x.expanded.every(isExpandedKey)));
}

function isStrategiesRunOptions(x: unknown): x is StrategiesRunOptions {
  return isObj(x) && isMethod(x.method) && optStr(x.layer) && isClusterCount(x.clusters) && optInt(x.classIndex);
}

export function isStrategiesWebviewMessage(x: unknown): x is StrategiesWebviewMessage {
  if (!isObj(x) || typeof x.type !== 'string') return false;
  const m = x as Record<string, unknown>;
  switch (m.type) {
    case 'panel/ready':
    case 'strategies/cancel':
      return true;
    case 'strategies/run':
      return isStrategiesRunOptions(m.options);
    case 'strategies/recluster':
      return isInt(m.requestId) && isClusterCount(m.clusters);
    case 'sample/open':
      return isInt(m.requestId) && isPath(m.path) && isInt(m.classIndex);
    case 'state/didChange':
      return isStrategiesViewState(m.state);
    default:
      return false;
  }
}
