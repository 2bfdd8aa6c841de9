/**
 * An Inception-v3-size LayersModel with seeded weights (nothing is downloaded): the stem, 3 blocks with 5x5 and
 * double-3x3 branches, a grid reduction, 4 blocks with factorised 7x1/1x7 convolutions, a second reduction, 2
 * blocks with split 1x3/3x1 branches, global average pooling and a softmax head; every convolution without bias,
 * then batch normalisation and ReLU (the shape of bench/threads.ts' network). About 23.9 M parameters at 1000
 * classes, 299x299x3 input; `classes` adds 2048 weights + 1 bias per class.
 *
 * `inceptionSizedFiles()` writes it once per machine into the temp folder, as the converter does (model.json, 4 MB
 * weight shards, cam-lens.json), and reuses that folder afterwards: building and saving takes a while, and the
 * cold-start benchmark and the memory tests need the files, not the model object.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

type T = tfl.SymbolicTensor;

/** Builds the network; call with a backend set (tfjs-layers initialises the weights on it). */
export function inceptionSized(classes = 1000): tfl.LayersModel {
  let seed = 0;
  const convBn = (x: T, filters: number, kh: number, kw: number, strides = 1, padding: 'same' | 'valid' = 'same'): T => {
    const s = ++seed;
    const c = tfl.layers.conv2d({
      filters, kernelSize: [kh, kw], strides, padding, useBias: false,
      kernelInitializer: tfl.initializers.heNormal({ seed: s }), name: `conv${s}`,
    }).apply(x) as T;
    const b = tfl.layers.batchNormalization({ scale: false, epsilon: 1e-3, name: `bn${s}` }).apply(c) as T;
    return tfl.layers.activation({ activation: 'relu', name: `relu${s}` }).apply(b) as T;
  };
  const concat = (xs: T[], name: string): T => tfl.layers.concatenate({ axis: -1, name }).apply(xs) as T;
  const avgPool3 = (x: T): T => tfl.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same' }).apply(x) as T;
  const maxPool3s2 = (x: T): T => tfl.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid' }).apply(x) as T;
  const blockA = (x: T, poolFilters: number, name: string): T => concat([
    convBn(x, 64, 1, 1),
    convBn(convBn(x, 48, 1, 1), 64, 5, 5),
    convBn(convBn(convBn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3),
    convBn(avgPool3(x), poolFilters, 1, 1),
  ], name);
  const blockC = (x: T, mid: number, name: string): T => {
    const b7 = convBn(convBn(convBn(x, mid, 1, 1), mid, 1, 7), 192, 7, 1);
    const bd = convBn(convBn(convBn(convBn(convBn(x, mid, 1, 1), mid, 7, 1), mid, 1, 7), mid, 7, 1), 192, 1, 7);
    return concat([convBn(x, 192, 1, 1), b7, bd, convBn(avgPool3(x), 192, 1, 1)], name);
  };
  const blockE = (x: T, name: string): T => {
    const s = convBn(x, 384, 1, 1);
    const d = convBn(convBn(x, 448, 1, 1), 384, 3, 3);
    return concat([
      convBn(x, 320, 1, 1),
      concat([convBn(s, 384, 1, 3), convBn(s, 384, 3, 1)], `${name}_a`),
      concat([convBn(d, 384, 1, 3), convBn(d, 384, 3, 1)], `${name}_b`),
      convBn(avgPool3(x), 192, 1, 1),
    ], name);
  };
  const input = tfl.input({ shape: [299, 299, 3], name: 'input' });
  let x = convBn(input, 32, 3, 3, 2, 'valid');
  x = convBn(x, 32, 3, 3, 1, 'valid');
  x = convBn(x, 64, 3, 3);
  x = maxPool3s2(x);
  x = convBn(x, 80, 1, 1, 1, 'valid');
  x = convBn(x, 192, 3, 3, 1, 'valid');
  x = maxPool3s2(x);
  x = blockA(x, 32, 'mixed0');
  x = blockA(x, 64, 'mixed1');
  x = blockA(x, 64, 'mixed2');
  x = concat([
    convBn(x, 384, 3, 3, 2, 'valid'),
    convBn(convBn(convBn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, 2, 'valid'),
    maxPool3s2(x),
  ], 'mixed3');
  x = blockC(x, 128, 'mixed4');
  x = blockC(x, 160, 'mixed5');
  x = blockC(x, 160, 'mixed6');
  x = blockC(x, 192, 'mixed7');
  x = concat([
    convBn(convBn(x, 192, 1, 1), 320, 3, 3, 2, 'valid'),
    convBn(convBn(convBn(convBn(x, 192, 1, 1), 192, 1, 7), 192, 7, 1), 192, 3, 3, 2, 'valid'),
    maxPool3s2(x),
  ], 'mixed8');
  x = blockE(x, 'mixed9');
  x = blockE(x, 'mixed10');
  const g = tfl.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as T;
  const out = tfl.layers.dense({
    units: classes, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 9999 }), name: 'predictions',
  }).apply(g) as T;
  return tfl.model({ inputs: input, outputs: out, name: 'inception_sized' });
}

/** Shard size of the TensorFlow.js converter. */
const SHARD_BYTES = 4 * 1024 * 1024;

export interface SizedModelFiles {
  modelJson: string;
  dir: string;
  params: number;
  weightBytes: number;
}

/**
 * The Inception-size model as files in `<tmp>/cam-lens-inception-sized-<classes>-v1`, written on the first call
 * (into a fresh folder renamed into place, so parallel runs never see half a model). The backend current at that
 * call builds it.
 */
export async function inceptionSizedFiles(classes = 1000): Promise<SizedModelFiles> {
  const dir = path.join(os.tmpdir(), `cam-lens-inception-sized-${classes}-v1`);
  const info = path.join(dir, 'files.json');
  if (fs.existsSync(info)) return { ...(JSON.parse(fs.readFileSync(info, 'utf8')) as Omit<SizedModelFiles, 'modelJson' | 'dir'>), dir, modelJson: path.join(dir, 'model.json') };
  const tmp = fs.mkdtempSync(`${dir}.tmp-`);
  const model = inceptionSized(classes);
  const params = model.countParams();
  let weightBytes = 0;
  try {
    await model.save(tf.io.withSaveHandler(async (a) => {
      const data = new Uint8Array(a.weightData as ArrayBuffer);
      weightBytes = data.byteLength;
      const paths: string[] = [];
      for (let off = 0, i = 1; off < data.byteLength; off += SHARD_BYTES, i++) {
        const name = `group1-shard${i}of${Math.ceil(data.byteLength / SHARD_BYTES)}.bin`;
        fs.writeFileSync(path.join(tmp, name), data.subarray(off, off + SHARD_BYTES));
        paths.push(name);
      }
      const json = { format: 'layers-model', generatedBy: 'cam-lens tests', convertedBy: null, modelTopology: a.modelTopology, weightsManifest: [{ paths, weights: a.weightSpecs }] };
      fs.writeFileSync(path.join(tmp, 'model.json'), JSON.stringify(json));
      fs.writeFileSync(path.join(tmp, 'cam-lens.json'), JSON.stringify({ preprocess: '[-1,1]' }));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
  } finally {
    model.dispose();
  }
  fs.writeFileSync(path.join(tmp, 'files.json'), JSON.stringify({ params, weightBytes }));
  try {
    fs.renameSync(tmp, dir);
  } catch {
    // Another run wrote it first: use theirs.
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return { dir, modelJson: path.join(dir, 'model.json'), params, weightBytes };
}
