/**
 * A loaded model: the tfjs model, its executable graph, metadata and input geometry. Loading goes through
 * our own IO handler (loader.ts). LayersModels run on our layer-graph executor with BatchNormalization folded
 * for inference (graph.ts); GraphModels run through `GraphModel.execute` (graphModel.ts). Both expose the
 * same ExecGraph interface, so ImageSession and the CAM heads need not know the format.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import { CamLensError } from './errors';
import { artifactsHandler, checkModelPath, readModelJson, type ModelFormat } from './loader';
import { sniffModelFile, type ModelFileFormatId } from './modelFormat';
import { closestLabels, readMetadata, type MetadataOverrides, type ModelMetadata } from './metadata';
import { LayerGraph, type ExecGraph } from './graph';
import { GraphModelGraph, loadGraphModelArtifacts, probeGradients } from './graphModel';
import { currentBackend, initBackend } from './backend';
import { readKerasModel, rescalesAtInput, type KerasSource } from './formats/keras/keras';
import { loadOnnxModel, type LoadedOnnxModel } from './formats/onnx/load';
import { classesOf, type ModelOutput } from './outputs';
import { withShardedWeights } from './weights';

export interface LoadedModelBase {
  format: ModelFormat | 'onnx';
  /** Absolute path of model.json. */
  path: string;
  name: string;
  metadata: ModelMetadata;
  inputHeight: number;
  inputWidth: number;
  inputChannels: 1 | 3;
  /**
   * Number of class logits (classes + labelOffset): the chosen output's units, or 2 for a binary classifier
   * (one sigmoid unit z, exposed as the two classes [-z, z]; outputs.ts).
   */
  numOutputs: number;
  /** The chosen output is one sigmoid unit: two classes, logits [-z, z] (`classLogits`). */
  binary: boolean;
  /** Every output of the model (name, units, activation), in the model's order; most models have one. */
  outputs: ModelOutput[];
  /** The name of the output explained (`graph.outputIds[0]`'s output). */
  output: string;
  graph: ExecGraph;
  /**
   * Whether tf.grad reaches the target layers from the logits, so that the gradient methods (gradcam,
   * gradcam++, xgradcam, hirescam, layercam) can run. Always true for LayersModels. For GraphModels it is
   * probed on first read (tf.grad from the earliest spatial node to the logits on a zero input, on the
   * current backend; see graphModel.ts) and cached. Where false, `gradientNote` says why, and only the
   * methods without gradients (cam, scorecam, eigencam) apply.
   */
  readonly supportsGradients: boolean;
  readonly gradientNote?: string;
  /** Backend the model's weights live on. */
  backend: string;
  weightBytes: number;
  dispose(): void;
}

export interface LoadedLayersModel extends LoadedModelBase {
  format: 'layers-model';
  graph: LayerGraph;
  tfModel: LayersModel;
  /** Set where the model was read from a Keras file directly (formats/keras): which kind of file. */
  source?: KerasSource;
}

export interface LoadedGraphModel extends LoadedModelBase {
  format: 'graph-model';
  graph: GraphModelGraph;
  graphModel: GraphModel;
  /** There is no LayersModel behind a GraphModel: reading this throws (use `graphModel`). */
  readonly tfModel: never;
}

/** Narrow on `format` to reach the format's own tfjs model (`tfModel` or `graphModel`). */
export type LoadedModel = LoadedLayersModel | LoadedGraphModel | LoadedOnnxModel;

export interface LoadOptions {
  /** Labels, preprocessing and labelOffset that win over the metadata files (CLI flags, panel pickers, tests). */
  overrides?: MetadataOverrides;
  /** Fold BatchNormalization into the preceding convolution (default true; LayersModels only). */
  foldBatchNorm?: boolean;
  /**
   * The output to explain where the model has several, by name or index; wins over `overrides.output` and over
   * the metadata's `"output"`. Default: the first output shaped like a classifier (outputs.ts pickOutput).
   */
  output?: string | number;
  /**
   * Filled with the time of each loading phase in ms (model.json files: `read` the files and parse them,
   * `weights` build the layers and upload the weights, `graph` build the executable graph), for the timings a
   * front end reports.
   */
  timings?: Record<string, number>;
  /**
   * A backend start under way: model.json and its shards are read while it starts, and it is awaited before
   * the first tensor is made (without it, loadModel starts the 'auto' backend first if none is running).
   */
  backendStarting?: Promise<unknown>;
}

function describeLoadError(e: unknown, file: string): CamLensError {
  const msg = (e as Error)?.message ?? String(e);
  if (/weight|Provided weight data|expected.*weights|variable/i.test(msg)) {
    return new CamLensError('MANIFEST_MISMATCH', `the weights in ${path.basename(file)}'s manifest do not match its layers: ${msg.split('\n')[0]}`,
      'the weight files belong to another model, or model.json was edited');
  }
  return new CamLensError('MODEL_INVALID', `TensorFlow.js could not build the model in ${file}: ${msg.split('\n')[0]}`);
}

/** Input geometry checks shared by both formats. */
function checkInput(shape: (number | null)[]): 1 | 3 {
  if (shape.length !== 4) {
    throw new CamLensError('UNSUPPORTED_MODEL', `the model's input has rank ${shape.length} (${JSON.stringify(shape)}); an image classifier takes [batch, height, width, channels]`);
  }
  const channels = shape[3];
  if (channels !== 1 && channels !== 3) {
    throw new CamLensError('UNSUPPORTED_MODEL', `the model takes ${channels} input channels; CAM Lens feeds 1 (grayscale) or 3 (RGB)`);
  }
  return channels;
}

/** Labels must cover exactly the outputs after the leading non-class ones. */
function checkLabels(metadata: ModelMetadata, numOutputs: number): void {
  const n = metadata.labels.length;
  const off = metadata.labelOffset;
  if (off >= numOutputs && numOutputs > 0) {
    throw new CamLensError('METADATA_INVALID', `labelOffset ${off} leaves no classes: the model has ${numOutputs} outputs`);
  }
  if (n > 0 && n + off !== numOutputs) {
    const hint = n + 1 === numOutputs && off === 0
      ? 'the model has one output more than labels: TF-Hub models put a "background" class first; set "labelOffset": 1 in cam-lens.json'
      : 'use the labels file that belongs to this model';
    const from = metadata.labelsFile ?? 'the labels given';
    throw new CamLensError('METADATA_INVALID',
      `the model has ${numOutputs} outputs but ${from} lists ${n} labels` + (off ? ` with labelOffset ${off}` : ''), hint);
  }
}

/**
 * The model formats CAM Lens opens, one line each: the file kinds a reader takes (sniffed by modelFormat.ts from
 * the first bytes and the extension) and the reader. A new format is a folder under formats/ and one line here.
 * Every other kind (SavedModel, TFLite, PyTorch pickles…) is refused in one line naming it and how to export an
 * openable file; a pickle is never unpickled.
 */
const READERS: readonly { opens: readonly ModelFileFormatId[]; load: (file: string, opts: LoadOptions) => Promise<LoadedModel> }[] = [
  { opens: ['json', 'unknown'], load: loadTfjs },
  { opens: ['onnx'], load: loadOnnxModel },
  { opens: ['keras-h5', 'keras-v3'], load: loadKeras },
];

export async function loadModel(modelPath: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  if (!currentBackend() && !opts.backendStarting) await initBackend('auto');
  // One place for the output choice: the overrides (which score workers are given) carry it from here on.
  if (opts.output !== undefined) opts = { ...opts, overrides: { ...opts.overrides, output: opts.output } };
  const file = path.resolve(modelPath);
  checkModelPath(file);
  const format = sniffModelFile(file);
  const reader = READERS.find((r) => r.opens.includes(format.id));
  if (!reader) throw new CamLensError('UNSUPPORTED_MODEL', `${path.basename(file)} is ${format.name}, which CAM Lens cannot open`, format.convert);
  // Only model.json is read before the backend is needed; the other readers make tensors as they read.
  if (reader.load !== loadTfjs) await backendFor(opts);
  return reader.load(file, opts);
}

/** The backend `opts` said is starting, or the 'auto' one when none runs. */
async function backendFor(opts: LoadOptions): Promise<void> {
  if (opts.backendStarting) await opts.backendStarting;
  if (!currentBackend()) await initBackend('auto');
}

/** A TensorFlow.js model.json: a LayersModel (our layer-graph executor) or a GraphModel. */
async function loadTfjs(modelPath: string, opts: LoadOptions): Promise<LoadedModel> {
  const t0 = performance.now();
  const json = readModelJson(modelPath);
  const metadata = readMetadata(json.dir, opts.overrides);
  const name = metadata.name ?? path.basename(json.dir);
  const t1 = performance.now();
  if (opts.timings) opts.timings.read = t1 - t0;
  await backendFor(opts);
  if (json.format === 'graph-model') return loadGraph(json, metadata, name);

  const t2 = performance.now();
  let tfModel: LayersModel;
  try {
    tfModel = await withShardedWeights(json.weights, (weightData) => loadLayersModel(artifactsHandler({ ...json.artifacts, weightData }), { strict: true }));
  } catch (e) {
    // A shard that changed while it was read says so itself.
    throw e instanceof CamLensError ? e : describeLoadError(e, json.path);
  }
  const t3 = performance.now();
  const model = layersModel(tfModel, { path: json.path, name, metadata, weightBytes: json.weightBytes }, opts);
  if (opts.timings) Object.assign(opts.timings, { weights: t3 - t2, graph: performance.now() - t3 });
  return model;
}

/** A Keras .keras/.h5 file read directly; metadata beside it as for model.json, or `<file>.cam-lens.json`. */
async function loadKeras(file: string, opts: LoadOptions): Promise<LoadedLayersModel> {
  const metadata = readMetadata(path.dirname(file), opts.overrides, { modelFile: file });
  const k = await readKerasModel(file);
  const name = metadata.name ?? path.basename(file).replace(/\.[^.]+$/, '');
  return layersModel(k.tfModel, { path: file, name, metadata, weightBytes: k.weightBytes, source: k.source }, opts, (graph) => {
    // No preprocessing named anywhere, and the model rescales its input itself: it takes raw pixels.
    if (metadata.preprocessAssumed && rescalesAtInput(graph)) {
      metadata.preprocess = '[0,255]';
      metadata.preprocessNote = 'inside the model';
    }
  });
}

interface LayersModelInfo {
  path: string;
  name: string;
  metadata: ModelMetadata;
  weightBytes: number;
  source?: KerasSource;
}

/** Wraps a built LayersModel (owned from here on) with its graph and checks; disposes it on failure. */
function layersModel(tfModel: LayersModel, info: LayersModelInfo, opts: LoadOptions, adjust?: (graph: LayerGraph) => void): LoadedLayersModel {
  const { metadata, name } = info;
  let graph: LayerGraph | undefined;
  try {
    graph = new LayerGraph(tfModel, { foldBatchNorm: opts.foldBatchNorm, output: metadata.output });
    adjust?.(graph);
    const shape = graph.inputShape;
    const channels = checkInput(shape);
    const [mh, mw] = metadata.inputSize ?? [224, 224];
    const outputs = graph.outputs.map((o) => ({ ...o }));
    const units = Number(outputs[graph.outputIndex].units ?? 0);
    const { numOutputs, binary } = classesOf(metadata, outputs, graph.outputIndex, units);
    checkLabels(metadata, numOutputs);
    const g = graph;
    const m = tfModel;
    return {
      format: 'layers-model',
      path: info.path,
      name,
      metadata,
      inputHeight: shape[1] ?? mh,
      inputWidth: shape[2] ?? mw,
      inputChannels: channels,
      numOutputs,
      binary,
      outputs,
      output: outputs[graph.outputIndex].name,
      graph: g,
      tfModel: m,
      supportsGradients: true,
      backend: tf.getBackend(),
      weightBytes: info.weightBytes,
      ...(info.source ? { source: info.source } : {}),
      dispose() {
        g.dispose();
        m.dispose();
      },
    };
  } catch (e) {
    graph?.dispose();
    tfModel.dispose();
    throw e;
  }
}

async function loadGraph(json: ReturnType<typeof readModelJson>, metadata: ModelMetadata, name: string): Promise<LoadedGraphModel> {
  const { graphModel, graph } = await withShardedWeights(json.weights,
    (weightData) => loadGraphModelArtifacts({ ...json.artifacts, weightData }, json.path, { fallbackSize: metadata.inputSize, output: metadata.output }));
  try {
    const channels = checkInput(graph.inputShape);
    const [mh, mw] = metadata.inputSize ?? [224, 224];
    const outShape = graph.producerOf(graph.outputIds[0])?.outputShape ?? [];
    const units = Number(outShape[outShape.length - 1] ?? 0);
    if (!(units > 0)) throw new CamLensError('UNSUPPORTED_MODEL', `the GraphModel's output has shape [${outShape.join(', ')}]; an image classifier outputs [batch, classes]`);
    const outputs = graph.outputs.map((o, i) => (i === graph.outputIndex ? { ...o, units } : { ...o }));
    const { numOutputs, binary } = classesOf(metadata, outputs, graph.outputIndex, units);
    checkLabels(metadata, numOutputs);
    let probe: ReturnType<typeof probeGradients> | undefined;
    const model = {
      format: 'graph-model',
      path: json.path,
      name,
      metadata,
      inputHeight: graph.inputShape[1] ?? mh,
      inputWidth: graph.inputShape[2] ?? mw,
      inputChannels: channels,
      numOutputs,
      binary,
      outputs,
      output: outputs[graph.outputIndex].name,
      graph,
      graphModel,
      backend: tf.getBackend(),
      weightBytes: json.weightBytes,
      dispose() {
        graph.dispose();
        graphModel.dispose();
      },
    } as Omit<LoadedGraphModel, 'tfModel' | 'supportsGradients' | 'gradientNote'> as LoadedGraphModel;
    // Probed on first use (one forward and one backward pass), so that loading, predicting and the
    // gradient-free methods never pay for it. Not enumerable: spreading or logging the model runs nothing.
    const probed = () => (probe ??= probeGradients(graph));
    Object.defineProperties(model, {
      supportsGradients: { get: () => probed().ok, enumerable: false },
      gradientNote: { get: () => { const p = probed(); return p.ok ? undefined : p.reason; }, enumerable: false },
      tfModel: {
        get: () => {
          throw new CamLensError('BAD_ARGUMENT', `${json.path} is a GraphModel: it has no LayersModel (use graphModel)`);
        },
        enumerable: false,
      },
    });
    return model;
  } catch (e) {
    graph.dispose();
    graphModel.dispose();
    throw e;
  }
}

/** Label of model output `index` (offset applied), or `#index`. */
export function labelOf(model: LoadedModel, outputIndex: number): string {
  const i = outputIndex - model.metadata.labelOffset;
  if (i < 0) return 'background';
  return model.metadata.labels[i] ?? `#${i}`;
}

/** Number of classes the user can pick (outputs minus the leading non-class outputs). */
export function numClasses(model: LoadedModel): number {
  return model.numOutputs - model.metadata.labelOffset;
}

/**
 * Resolves a user's class choice — an index or a label (exact, then case-insensitive) — to a model output
 * index. Indices are class indices (the label list's), not raw outputs.
 */
export function resolveClass(model: LoadedModel, choice: string | number): number {
  const n = numClasses(model);
  if (typeof choice === 'number' || /^\d+$/.test(String(choice).trim())) {
    const i = Number(choice);
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      throw new CamLensError('UNKNOWN_CLASS', `class index ${choice} is out of range: the model has ${n} classes (0..${n - 1})`);
    }
    return i + model.metadata.labelOffset;
  }
  const s = String(choice).trim();
  const labels = model.metadata.labels;
  let i = labels.indexOf(s);
  if (i < 0) i = labels.findIndex((l) => l.toLowerCase() === s.toLowerCase());
  // ImageNet-style labels list synonyms: "tabby, tabby cat" answers to "tabby" and to "tabby cat".
  if (i < 0) i = labels.findIndex((l) => l.split(',').some((alias) => alias.trim().toLowerCase() === s.toLowerCase()));
  if (i < 0) {
    if (!labels.length) throw new CamLensError('UNKNOWN_CLASS', `no class labelled "${s}": the model has no labels; use a class index from 0 to ${n - 1}`);
    // The closest labels, or all of them where there are few and none is close.
    const near = closestLabels(labels, s);
    const shown = near.length ? near : labels.length <= 10 ? labels.map((label, index) => ({ index, label })) : [];
    const list = shown.map((x) => `"${x.label}" (${x.index})`).join(', ');
    const all = shown.length === labels.length;
    throw new CamLensError('UNKNOWN_CLASS', `no class labelled "${s}" among the model's ${n} classes` +
      (all ? `; they are ${list}` : near.length ? `; closest: ${list}` : '; none is close'),
    all ? undefined : 'pick one from the list of classes, or give its index');
  }
  return i + model.metadata.labelOffset;
}
