/**
 * A loaded model: the tfjs model, its flattened layer graph, metadata and input geometry. Loading goes
 * through our own IO handler (loader.ts); LayersModels get BatchNormalization folded for inference.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import { CamLensError } from './errors';
import { artifactsHandler, readModelJson, type ModelFormat } from './loader';
import { readMetadata, type MetadataOverrides, type ModelMetadata } from './metadata';
import { LayerGraph } from './graph';
import { currentBackend, initBackend } from './backend';

export interface LoadedModel {
  format: ModelFormat;
  /** Absolute path of model.json. */
  path: string;
  name: string;
  metadata: ModelMetadata;
  inputHeight: number;
  inputWidth: number;
  inputChannels: 1 | 3;
  /** Number of model outputs (classes + labelOffset). */
  numOutputs: number;
  graph: LayerGraph;
  tfModel: LayersModel;
  /** Backend the model's weights live on. */
  backend: string;
  weightBytes: number;
  dispose(): void;
}

export interface LoadOptions {
  overrides?: MetadataOverrides;
  /** Fold BatchNormalization into the preceding convolution (default true). */
  foldBatchNorm?: boolean;
}

function describeLoadError(e: unknown, file: string): CamLensError {
  const msg = (e as Error)?.message ?? String(e);
  if (/weight|Provided weight data|expected.*weights|variable/i.test(msg)) {
    return new CamLensError('MANIFEST_MISMATCH', `the weights in ${path.basename(file)}'s manifest do not match its layers: ${msg.split('\n')[0]}`,
      'the weight files belong to another model, or model.json was edited');
  }
  return new CamLensError('MODEL_INVALID', `TensorFlow.js could not build the model in ${file}: ${msg.split('\n')[0]}`);
}

export async function loadModel(modelPath: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  if (!currentBackend()) await initBackend('auto');
  const json = readModelJson(modelPath);
  if (json.format === 'graph-model') {
    throw new CamLensError('UNSUPPORTED_MODEL', `${json.path} is a GraphModel; this build explains LayersModels only`,
      'convert the Keras model with --output_format tfjs_layers_model');
  }
  const metadata = readMetadata(json.dir, opts.overrides);
  let tfModel: LayersModel;
  try {
    tfModel = await loadLayersModel(artifactsHandler(json.artifacts), { strict: true });
  } catch (e) {
    throw describeLoadError(e, json.path);
  }
  let graph: LayerGraph;
  try {
    graph = new LayerGraph(tfModel, { foldBatchNorm: opts.foldBatchNorm });
  } catch (e) {
    tfModel.dispose();
    throw e;
  }
  const shape = graph.inputShape;
  if (shape.length !== 4) {
    const n = shape.length;
    graph.dispose();
    tfModel.dispose();
    throw new CamLensError('UNSUPPORTED_MODEL', `the model's input has rank ${n} (${JSON.stringify(shape)}); an image classifier takes [batch, height, width, channels]`);
  }
  const channels = shape[3];
  if (channels !== 1 && channels !== 3) {
    graph.dispose();
    tfModel.dispose();
    throw new CamLensError('UNSUPPORTED_MODEL', `the model takes ${channels} input channels; CAM Lens feeds 1 (grayscale) or 3 (RGB)`);
  }
  const [mh, mw] = metadata.inputSize ?? [224, 224];
  const outShape = tfModel.outputs[0].shape;
  const numOutputs = Number(outShape[outShape.length - 1] ?? 0);
  if (metadata.labels.length > 0 && metadata.labels.length + metadata.labelOffset !== numOutputs) {
    const n = metadata.labels.length;
    graph.dispose();
    tfModel.dispose();
    throw new CamLensError('METADATA_INVALID',
      `the model has ${numOutputs} outputs but its metadata (${metadata.source}) lists ${n} labels` + (metadata.labelOffset ? ` with labelOffset ${metadata.labelOffset}` : ''),
      'use the labels file that belongs to this model');
  }
  const name = metadata.name ?? path.basename(json.dir);
  return {
    format: json.format,
    path: json.path,
    name,
    metadata,
    inputHeight: shape[1] ?? mh,
    inputWidth: shape[2] ?? mw,
    inputChannels: channels,
    numOutputs,
    graph,
    tfModel,
    backend: tf.getBackend(),
    weightBytes: json.weightBytes,
    dispose() {
      graph.dispose();
      tfModel.dispose();
    },
  };
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
    const near = labels.filter((l) => l.toLowerCase().includes(s.toLowerCase())).slice(0, 5);
    throw new CamLensError('UNKNOWN_CLASS', `no class labelled "${s}"` + (labels.length ? '' : ' (the model has no labels; use a class index)') +
      (near.length ? `; did you mean ${near.map((x) => `"${x}"`).join(', ')}?` : ''));
  }
  return i + model.metadata.labelOffset;
}
