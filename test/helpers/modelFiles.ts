/** Writes tfjs models built in tests to a folder as model.json + one weight shard, like the converter does. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { skipBecause } from './skip';

export function tempDir(prefix = 'cam-lens-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface WrittenModel {
  dir: string;
  modelJson: string;
}

/** Saves `model` into `dir` (created) as model.json + weights.bin; `meta` becomes cam-lens.json. */
export async function writeModel(model: LayersModel, dir: string, meta?: Record<string, unknown>): Promise<WrittenModel> {
  fs.mkdirSync(dir, { recursive: true });
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    const data = artifacts.weightData as ArrayBuffer;
    fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(data));
    const json = {
      format: 'layers-model',
      generatedBy: 'cam-lens tests',
      convertedBy: null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    };
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  if (meta) fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify(meta));
  return { dir, modelJson: path.join(dir, 'model.json') };
}

export const SHARED = path.resolve(__dirname, '..', '..', '..', 'shared', 'reference');

/** Skips the calling suite with a clear message where ../shared/reference is absent. */
export function requireShared(ctx: Mocha.Context): void {
  if (!fs.existsSync(SHARED)) skipBecause(ctx, 'shared-absent', `${SHARED} is absent; the real-model tests need ../shared/reference next to the clone`);
}
