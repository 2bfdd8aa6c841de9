/**
 * Reads a TensorFlow.js `model.json` and its weight shards from disk through an IO handler of our own,
 * so loading never goes through `fetch`/`file://` and works without tfjs-node.
 *
 * Safety contract (a model folder may come from anywhere):
 * - every weight path named in the manifest must resolve inside the model's folder (no `..`, no sibling
 *   folder, no absolute path outside it, no symlink escapes; paths.ts): WEIGHT_PATH_ESCAPE otherwise;
 * - each weight group's shards together must hold exactly the bytes its entries need (dtype, shape,
 *   quantization): SHARD_MISSING / SHARD_SIZE_MISMATCH otherwise;
 * - the JSON must parse and have the fields of a layers-model or graph-model: MODEL_INVALID otherwise; a
 *   file of another model format (ONNX, Keras, SavedModel, TFLite, PyTorch; modelFormat.ts) is named as
 *   such (UNSUPPORTED_MODEL), and a folder given for the file is answered with the model files in it.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { io } from '@tensorflow/tfjs-core';
import { CamLensError } from './errors';
import { confinedPath } from './paths';
import { findModelFiles, hexHead, looksBinary, oneLine, sniffModelFile } from './modelFormat';

export type ModelFormat = 'layers-model' | 'graph-model';

export interface ModelJson {
  format: ModelFormat;
  /** Topology, weight specs and metadata; no weight bytes (`weights` says where they are). */
  artifacts: io.ModelArtifacts;
  /** Absolute path of model.json and its folder. */
  path: string;
  dir: string;
  /** Total bytes of the weights. */
  weightBytes: number;
  /** The weight shards, in manifest order, each checked to exist with the size its entries need. */
  weights: WeightShards;
}

/** Where a model's weights are: the shard files in manifest order, their bytes laid end to end as tfjs expects. */
export interface WeightShards {
  shards: { file: string; bytes: number }[];
  total: number;
}

/** A manifest larger than this is refused before parsing (model.json holds topology, not weights). */
const MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024;

function bytesPerElement(dtype: string, quantDtype?: string): number {
  if (quantDtype) {
    if (quantDtype === 'uint8') return 1;
    if (quantDtype === 'uint16' || quantDtype === 'float16') return 2;
    throw new CamLensError('MODEL_INVALID', `unknown weight quantization dtype "${quantDtype}"`);
  }
  switch (dtype) {
    case 'float32':
    case 'int32':
      return 4;
    case 'bool':
      return 1;
    case 'complex64':
      return 8;
    default:
      throw new CamLensError('MODEL_INVALID', `weights of dtype "${dtype}" are not supported`);
  }
}

const TFJS_HINT = 'choose the model.json that the TensorFlow.js converter wrote';

/** A folder given where a model file belongs: name the model files in it, or say there are none. */
function folderError(dir: string): CamLensError {
  if (fs.existsSync(path.join(dir, 'saved_model.pb'))) {
    return new CamLensError('UNSUPPORTED_MODEL', `${dir} is a TensorFlow SavedModel folder, which CAM Lens cannot open`,
      `export it to ONNX (python -m tf2onnx.convert --saved-model ${dir} --output model.onnx), or save the Keras model as .keras, and open that`);
  }
  const found = findModelFiles(dir);
  if (found.length === 0) {
    return new CamLensError('MODEL_INVALID', `${dir} is a folder, and no model file is in it or in its subfolders`, TFJS_HINT);
  }
  const tfjs = found.filter((f) => f.format.id === 'json');
  const others = found.filter((f) => f.format.id !== 'json');
  const list = [...tfjs.map((f) => f.relPath), ...others.map((f) => `${f.relPath} (${f.format.name})`)];
  const msg = `${dir} is a folder, not a model file; it holds ${list.length === 1 ? 'the model file' : 'the model files'} ${list.join(', ')}`;
  return new CamLensError('MODEL_INVALID', msg, tfjs.length ? `choose ${path.join(dir, tfjs[0].relPath)}` : TFJS_HINT);
}

/** What every model path must be, whatever its format: an existing regular file (a folder names the models in it). */
export function checkModelPath(file: string): fs.Stats {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new CamLensError('FILE_NOT_FOUND', `model file not found: ${file}`);
  }
  if (st.isDirectory()) throw folderError(file);
  if (!st.isFile()) throw new CamLensError('MODEL_INVALID', `${file} is not a regular file`);
  return st;
}

function readJson(file: string): unknown {
  const st = checkModelPath(file);
  const base = path.basename(file);
  // Before the size check: another format's file is large, and its format is the useful thing to say.
  const format = sniffModelFile(file);
  if (format.id !== 'json' && format.id !== 'unknown') {
    throw new CamLensError('UNSUPPORTED_MODEL', `${base} is ${format.name}, not a TensorFlow.js model.json`, format.convert);
  }
  if (st.size > MAX_MODEL_JSON_BYTES) {
    throw new CamLensError('MODEL_INVALID', `${file} is ${st.size} bytes, larger than a model.json can be (${MAX_MODEL_JSON_BYTES})`, TFJS_HINT);
  }
  const bytes = fs.readFileSync(file);
  if (format.id === 'unknown' && looksBinary(bytes.subarray(0, 4096))) {
    throw new CamLensError('MODEL_INVALID', `${base} is a binary file of unknown format (it starts with ${hexHead(bytes)}), not a TensorFlow.js model.json`, TFJS_HINT);
  }
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new CamLensError('MODEL_INVALID', `${base} is not valid JSON (${oneLine((e as Error).message, 120)})`, TFJS_HINT);
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Reads and validates model.json and checks its weight shards. Nothing is created on a tf backend here. */
export function readModelJson(modelPath: string): ModelJson {
  const file = path.resolve(modelPath);
  const dir = path.dirname(file);
  const json = readJson(file);
  if (!isObject(json)) throw new CamLensError('MODEL_INVALID', `${path.basename(file)} is not a TensorFlow.js model: expected a JSON object`);
  const topology = json.modelTopology;
  if (!isObject(topology)) {
    throw new CamLensError('MODEL_INVALID', `${path.basename(file)} is not a TensorFlow.js model: it has no "modelTopology"`, TFJS_HINT);
  }
  const isGraph = json.format === 'graph-model' || Array.isArray((topology as { node?: unknown }).node);
  const format: ModelFormat = isGraph ? 'graph-model' : 'layers-model';
  if (!isGraph && !isObject(topology.model_config) && !isObject(topology.config) && typeof topology.class_name !== 'string') {
    throw new CamLensError('MODEL_INVALID', `${path.basename(file)} has a "modelTopology" without a Keras model_config`);
  }
  const manifest = json.weightsManifest ?? [];
  if (!Array.isArray(manifest)) throw new CamLensError('MODEL_INVALID', `"weightsManifest" in ${path.basename(file)} must be an array`);

  const weightSpecs: io.WeightsManifestEntry[] = [];
  // The shards are checked here (names, sizes) but not read: the weights are read from them into tensors one by
  // one when the model is built (weights.ts), so that they never sit in this thread's memory all at once.
  const shards: { file: string; bytes: number }[] = [];
  let total = 0;
  manifest.forEach((group: unknown, gi: number) => {
    if (!isObject(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new CamLensError('MODEL_INVALID', `weightsManifest[${gi}] needs "paths" and "weights" arrays`);
    }
    let expected = 0;
    for (const w of group.weights as unknown[]) {
      if (!isObject(w) || typeof w.name !== 'string' || !Array.isArray(w.shape) || typeof w.dtype !== 'string') {
        throw new CamLensError('MODEL_INVALID', `weightsManifest[${gi}] has an entry without name, shape and dtype`);
      }
      const shape = w.shape as unknown[];
      if (!shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
        throw new CamLensError('MODEL_INVALID', `weight "${w.name}" has an invalid shape ${JSON.stringify(shape)}`);
      }
      const n = (shape as number[]).reduce((a, b) => a * b, 1);
      const q = isObject(w.quantization) ? (w.quantization.dtype as string) : undefined;
      expected += n * bytesPerElement(w.dtype, q);
      weightSpecs.push(w as unknown as io.WeightsManifestEntry);
    }
    let got = 0;
    for (const rel of group.paths as unknown[]) {
      const shard = confinedPath(dir, rel as string, { what: 'weight file', folderName: 'the model folder', urlEncoded: true });
      let st: fs.Stats | undefined;
      try {
        st = fs.statSync(shard);
      } catch {
        // Reported below.
      }
      if (!st?.isFile()) {
        throw new CamLensError('SHARD_MISSING', `weight shard "${rel}" named in ${path.basename(file)} is missing from ${dir}`,
          'copy every file the converter wrote next to model.json');
      }
      got += st.size;
      shards.push({ file: shard, bytes: st.size });
    }
    if (got !== expected) throw sizeMismatch(gi, group.paths as string[], got, expected);
    total += got;
  });

  const artifacts: io.ModelArtifacts = {
    modelTopology: topology,
    weightSpecs,
    format: typeof json.format === 'string' ? json.format : format,
    generatedBy: typeof json.generatedBy === 'string' ? json.generatedBy : undefined,
    convertedBy: typeof json.convertedBy === 'string' ? json.convertedBy : undefined,
  };
  if (isGraph) {
    if (json.signature !== undefined) artifacts.signature = json.signature as object;
    if (json.userDefinedMetadata !== undefined) artifacts.userDefinedMetadata = json.userDefinedMetadata as Record<string, object>;
    if (json.modelInitializer !== undefined) artifacts.modelInitializer = json.modelInitializer as object;
    if (json.initializerSignature !== undefined) artifacts.initializerSignature = json.initializerSignature as object;
  }
  return { format, artifacts, path: file, dir, weightBytes: total, weights: { shards, total } };
}

function sizeMismatch(gi: number, paths: string[], got: number, expected: number): CamLensError {
  return new CamLensError('SHARD_SIZE_MISMATCH',
    `weight group ${gi} (${paths.join(', ')}) holds ${got} bytes but its manifest entries need ${expected}` +
    (got < expected ? ': the shard looks truncated' : ': the shard has extra bytes'),
    'the weight files do not belong to this model.json, or a download was cut short');
}

/** An IO handler over already-validated artifacts. */
export function artifactsHandler(artifacts: io.ModelArtifacts): io.IOHandler {
  return { load: async () => artifacts };
}
