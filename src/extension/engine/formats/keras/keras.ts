/**
 * Keras model files, opened directly (no Python, no converter): Keras 3 `.keras` archives, Keras 2 `.h5` /
 * `.hdf5` files and Keras 3's legacy `.h5`. The file's model config is normalised into the form tfjs-layers
 * reads (config.ts), the model is built by tfjs-layers, and the weights read from the HDF5 data are set layer
 * by layer with every shape checked (weights.ts). The result is an ordinary tfjs LayersModel, so the layer
 * graph, BatchNormalization folding, the CAM heads, every method, the scan and the inspector work unchanged.
 *
 * Nothing in the file is executed: a Lambda layer or a custom class is refused, naming the layer.
 */
import * as fs from 'fs';
import * as path from 'path';
import { models, type LayersModel } from '@tensorflow/tfjs-layers';
import { CamLensError } from '../../errors';
import type { LayerGraph } from '../../graph';
import { sniffModelFile } from '../../modelFormat';
import { readKerasArchive } from './archive';
import { convertModelConfig, parseConfig, type ConvertedModel, type KerasSource } from './config';
import { H5File } from './hdf5';
import { kerasH5Lookup, kerasV3Lookup, setWeights } from './weights';

export type { KerasSource } from './config';

export interface KerasModelFile {
  tfModel: LayersModel;
  source: KerasSource;
  /** Bytes of the weights set on the model. */
  weightBytes: number;
  /** The Keras version that wrote the file, where it says. */
  kerasVersion?: string;
}

/** A `.h5` is read into memory whole (jsfive reads from an ArrayBuffer): this is the limit. */
const MAX_H5_BYTES = 2 * 1024 * 1024 * 1024 - 1;

/** Which Keras container `file` is, from its first bytes ('keras-v3' zip, 'keras-h5'), or undefined. */
export function kerasFileKind(file: string): 'keras-v3' | 'keras-h5' | undefined {
  try {
    if (!fs.statSync(file).isFile()) return undefined;
    const id = sniffModelFile(file).id;
    return id === 'keras-v3' || id === 'keras-h5' ? id : undefined;
  } catch {
    return undefined;
  }
}

function buildError(e: unknown, file: string): CamLensError {
  if (e instanceof CamLensError) return e;
  const msg = (e as Error)?.message ?? String(e);
  return new CamLensError('MODEL_INVALID', `TensorFlow.js could not build the Keras model in ${path.basename(file)}: ${msg.split('\n')[0].slice(0, 240)}`,
    'the model config uses a form CAM Lens does not know; please report it with the Keras version');
}

async function build(converted: ConvertedModel, file: string): Promise<LayersModel> {
  try {
    return await models.modelFromJSON({ modelTopology: converted.topology as unknown as Record<string, never> });
  } catch (e) {
    throw buildError(e, file);
  }
}

async function fromH5Config(h5: H5File, file: string): Promise<{ converted: ConvertedModel; source: KerasSource; version?: string }> {
  const root = h5.get('');
  const configText = root ? h5.stringAttr(root, 'model_config') : undefined;
  if (configText === undefined) {
    const weightsOnly = h5.group('model_weights') === undefined && (h5.group('layers') !== undefined || (root && h5.stringListAttr(root, 'layer_names') !== undefined));
    throw new CamLensError('MODEL_INVALID',
      weightsOnly
        ? `${path.basename(file)} holds only weights (written by save_weights): the model's architecture is not in it`
        : `${path.basename(file)} is an HDF5 file without a Keras model_config attribute: it is not a whole Keras model`,
      'save the whole model with model.save("model.keras") (or model.save("model.h5"))');
  }
  const version = h5.stringAttr(root!, 'keras_version');
  const config = parseConfig(configText, `the model_config of ${path.basename(file)}`);
  const keras3 = version !== undefined ? /^3\./.test(version) : JSON.stringify(config).includes('"batch_shape"');
  return { converted: convertModelConfig(config, keras3), source: keras3 ? 'keras3-h5' : 'keras2-h5', version };
}

/**
 * Reads a Keras model file into a tfjs LayersModel with its saved weights. Throws CamLensError:
 * UNSUPPORTED_MODEL (Lambda, custom or unknown layers, subclassed models), MODEL_INVALID (damaged or
 * truncated zip or HDF5, a zip bomb, missing config or weights), MANIFEST_MISMATCH (a weight whose count or
 * shape disagrees with the config).
 */
export async function readKerasModel(file: string): Promise<KerasModelFile> {
  const kind = kerasFileKind(file);
  if (!kind) throw new CamLensError('MODEL_INVALID', `${path.basename(file)} is not a Keras .keras or .h5 file`);
  let converted: ConvertedModel;
  let h5: H5File;
  let source: KerasSource;
  let version: string | undefined;
  if (kind === 'keras-v3') {
    const archive = await readKerasArchive(file);
    const config = parseConfig(archive.config, `config.json in ${path.basename(file)}`);
    if (archive.metadata) {
      try {
        const m = JSON.parse(archive.metadata) as { keras_version?: unknown };
        if (typeof m.keras_version === 'string') version = m.keras_version;
      } catch {
        // metadata.json is informative only.
      }
    }
    converted = convertModelConfig(config, true);
    h5 = new H5File(archive.weights, `${file}/model.weights.h5`);
    source = 'keras3';
  } else {
    const size = fs.statSync(file).size;
    if (size > MAX_H5_BYTES) {
      throw new CamLensError('MODEL_INVALID', `${path.basename(file)} is ${size} bytes, more than the ${MAX_H5_BYTES} CAM Lens reads into memory`);
    }
    h5 = new H5File(fs.readFileSync(file), file);
    ({ converted, source, version } = await fromH5Config(h5, file));
  }
  const lookup = source === 'keras3' ? kerasV3Lookup(h5, converted.root) : kerasH5Lookup(h5, converted.root);
  const tfModel = await build(converted, file);
  try {
    const weightBytes = setWeights(tfModel, converted.root, lookup, file);
    return { tfModel, source, weightBytes, kerasVersion: version };
  } catch (e) {
    tfModel.dispose();
    throw e;
  }
}

/**
 * True where the model rescales its input itself: a Rescaling layer reached from the input through input-side
 * layers only (augmentation, Resizing, Normalization). Such a model takes raw [0,255] pixels.
 */
export function rescalesAtInput(graph: LayerGraph): boolean {
  const passing = new Set(['InputLayer', 'Resizing', 'Normalization', 'CenterCrop', 'Identity', 'RandomFlip', 'RandomRotation',
    'RandomZoom', 'RandomTranslation', 'RandomContrast', 'RandomBrightness', 'RandomHeight', 'RandomWidth']);
  let id = graph.inputIds[0];
  for (let guard = 0; guard < 16; guard++) {
    const cons = graph.consumersOf(id);
    if (cons.length !== 1) return false;
    const op = cons[0];
    if (op.className === 'Rescaling') return true;
    if (!passing.has(op.className) && !/^Random/.test(op.className)) return false;
    id = op.outputs[0];
  }
  return false;
}
