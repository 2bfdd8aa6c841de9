/** The ONNX fixtures (scripts/fixtures/make_onnx.py) and their expected outputs, for the ONNX tests and the bench. */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';

export const FIXTURES = path.resolve(__dirname, '..', 'fixtures', 'onnx');

export interface Expected {
  model: string;
  input: { file: string; layout: 'NCHW' | 'NHWC'; shape: number[]; preprocess: string; probe: string };
  logits: number[];
  probabilities: number[];
  classIndex: number;
  layers: { module: string; node: string; output: string; opType: string; height: number; width: number; channels: number; maps: Record<string, number[]> }[];
}

export const FIXTURE_NAMES = fs.existsSync(FIXTURES)
  ? fs.readdirSync(FIXTURES).filter((d) => fs.existsSync(path.join(FIXTURES, d, 'expected.json'))).sort()
  : [];

export function expectedOf(name: string): Expected {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'expected.json'), 'utf8')) as Expected;
}

export function modelPath(name: string): string {
  return path.join(FIXTURES, name, expectedOf(name).model);
}

/** The fixture's exact input as the engine feeds it: [1, H, W, C]. */
export function inputTensor(name: string): tf.Tensor4D {
  const e = expectedOf(name);
  const buf = fs.readFileSync(path.join(FIXTURES, name, e.input.file));
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const t = tf.tensor4d(data, e.input.shape as [number, number, number, number]);
  if (e.input.layout === 'NHWC') return t;
  const nhwc = tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;
  t.dispose();
  return nhwc;
}

export function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.strictEqual(a.length, b.length, `maps of ${a.length} and ${b.length} values`);
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= a.length;
  mb /= b.length;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) ** 2;
    bb += (b[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

