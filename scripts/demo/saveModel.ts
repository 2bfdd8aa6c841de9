/**
 * Writes a tfjs LayersModel to a folder in the standard `model.json` + binary shards layout, through an IO
 * handler of our own (tf.io.withSaveHandler), plus CAM Lens's `cam-lens.json` metadata next to it.
 *
 * Layout written (what loadLayersModel / the CAM Lens loader expect):
 *   model.json       { format: 'layers-model', generatedBy, convertedBy: null, modelTopology,
 *                      weightsManifest: [{ paths: ['group1-shard1of2.bin', ...], weights: [specs] }] }
 *   group1-shardKofN.bin   the weight bytes in manifest order, split into shards of at most shardBytes
 *   cam-lens.json    labels, input size, preprocessing (see CamLensMetadata)
 * Shard paths are bare file names, i.e. relative to the model folder, so the folder can be moved as a whole.
 * The optimizer state is never saved: the demo model is for inference.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

/** Contents of `cam-lens.json`. inputSize is [height, width]; preprocess '[0,1]' means pixel / 255. */
export interface CamLensMetadata {
  name: string;
  labels: string[];
  inputSize: [number, number];
  channels: number;
  preprocess: '[0,1]' | '[-1,1]' | '[0,255]' | 'caffe' | 'imagenet';
  labelOffset: number;
  trainedBy?: string;
  [extra: string]: unknown;
}

export interface SaveOptions {
  /** Largest shard in bytes (tfjs's converter uses 4 MiB). */
  shardBytes?: number;
}

const DEFAULT_SHARD_BYTES = 4 * 1024 * 1024;

/** Flattens tfjs's WeightData (one ArrayBuffer or a list of them) into one byte array. */
function weightBytes(data: tf.io.WeightData | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  return new Uint8Array(tf.io.CompositeArrayBuffer.join(data));
}

/**
 * Saves `model` into `dir` (created if missing; files of a previous save with the same names are replaced,
 * and stale shards named group1-shard* are removed so the folder matches the manifest exactly).
 * Returns the paths written.
 */
export async function saveLayersModel(
  model: tfl.LayersModel,
  dir: string,
  metadata: CamLensMetadata,
  opts: SaveOptions = {},
): Promise<string[]> {
  const shardBytes = opts.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!Number.isInteger(shardBytes) || shardBytes <= 0) throw new RangeError(`shardBytes must be a positive integer, got ${shardBytes}`);
  fs.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    if (!artifacts.modelTopology || artifacts.modelTopology instanceof ArrayBuffer) {
      throw new Error('saveLayersModel: the model produced no JSON topology');
    }
    const bytes = weightBytes(artifacts.weightData);
    const count = Math.max(1, Math.ceil(bytes.byteLength / shardBytes));
    const paths: string[] = [];
    for (const old of fs.readdirSync(dir)) if (/^group1-shard\d+of\d+\.bin$/.test(old)) fs.rmSync(path.join(dir, old));
    for (let k = 0; k < count; k++) {
      const name = `group1-shard${k + 1}of${count}.bin`;
      const file = path.join(dir, name);
      fs.writeFileSync(file, bytes.subarray(k * shardBytes, Math.min(bytes.byteLength, (k + 1) * shardBytes)));
      paths.push(name);
      written.push(file);
    }
    const modelJson = {
      format: 'layers-model',
      generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version_core}`,
      convertedBy: null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths, weights: artifacts.weightSpecs ?? [] }],
    };
    const modelFile = path.join(dir, 'model.json');
    fs.writeFileSync(modelFile, JSON.stringify(modelJson));
    written.unshift(modelFile);
    return {
      modelArtifactsInfo: {
        dateSaved: new Date(),
        modelTopologyType: 'JSON',
        modelTopologyBytes: JSON.stringify(artifacts.modelTopology).length,
        weightSpecsBytes: JSON.stringify(artifacts.weightSpecs ?? []).length,
        weightDataBytes: bytes.byteLength,
      },
    };
  }));
  const metaFile = path.join(dir, 'cam-lens.json');
  fs.writeFileSync(metaFile, JSON.stringify(metadata, null, 2) + '\n');
  written.push(metaFile);
  return written;
}
