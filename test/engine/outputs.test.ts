/**
 * Classifier shapes beyond one softmax (issue #12 item 4, #16 item 6): models with several outputs (pick one by
 * name or index; the first classifier-shaped one by default) and single-sigmoid binary classifiers (two classes
 * with logits [-z, z], probabilities [1 - σ(z), σ(z)], names for the 0 and the 1 side), on every format, every
 * method, the inspector's channel weights, faithfulness, layer recommendation, the scan and the score workers.
 *
 * The models are built here with hand-set weights, so every expected number is computed by hand: a 1x1
 * convolution "conv" whose channels are known functions of the input, global average pooling, then three heads:
 * "age" (one linear unit), "race" (3 units, softmax) and "gender" (one sigmoid unit). With z the gender logit,
 * dz/dA_k = Wg_k / (h·w) everywhere, so Grad-CAM's class-1 map is ReLU(Σ_k Wg_k A_k) and class 0's ReLU(-Σ_k Wg_k A_k).
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import { initBackend } from '../../src/extension/engine/backend';
import { CamLensError } from '../../src/extension/engine/errors';
import { labelOf, loadModel, numClasses, resolveClass, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession, classScores } from '../../src/extension/engine/session';
import { METHODS } from '../../src/extension/engine/cam/registry';
import { findClassHead } from '../../src/extension/engine/head';
import { describeModel, openImage } from '../../src/extension/engine/pipeline';
import { computeFeatureMaps } from '../../src/extension/engine/featureMaps';
import { faithfulness } from '../../src/extension/engine/faithfulness';
import { recommendLayer } from '../../src/extension/engine/recommend';
import { ScorePool } from '../../src/extension/engine/scorePool';
import { readDataset } from '../../src/extension/engine/scan/dataset';
import { scanDataset } from '../../src/extension/engine/scan/scan';
import { classLogits, pickOutput, type ModelOutput } from '../../src/extension/engine/outputs';
import { GraphDefBuilder } from '../helpers/graphDef';
import { tempDir, writeModel } from '../helpers/modelFiles';
import { correlation } from '../formats/onnxFixtures';

const FIXTURES = path.resolve(__dirname, '..', 'fixtures');

const H = 5;
const W = 6;
const K = 4;
/** conv: 1x1 from the 3 input channels to K channels (then ReLU). */
const CONV = [
  [1, 0, 0, 0.5],
  [0, 1, 0, -0.5],
  [0, 0, 1, 1],
];
const CONV_B = [0, 0, 0, 0.1];
/** Heads on the pooled K features. */
const AGE_W = [[0.5], [1.5], [-0.25], [2]];
const AGE_B = [20];
const RACE_W = [
  [1, -1, 0.5],
  [-0.5, 2, 0],
  [0.25, 0.5, -1],
  [1, 0, 1],
];
const RACE_B = [0.1, -0.1, 0];
const GENDER_W = [[2], [-3], [0.5], [1]];
const GENDER_B = [0.2];

/** The input: channel 0 grows downwards, 1 to the right, 2 is a bump in the upper left; values around 0..1. */
function inputValues(): Float32Array {
  const x = new Float32Array(H * W * 3);
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
    const o = (i * W + j) * 3;
    x[o] = i / (H - 1);
    x[o + 1] = j / (W - 1);
    x[o + 2] = Math.exp(-((i - 1) ** 2 + (j - 1) ** 2) / 3);
  }
  return x;
}

const input = () => tf.tensor4d(inputValues(), [1, H, W, 3]);

/** A = ReLU(x · CONV + CONV_B), [H*W][K]. */
function activationByHand(): number[][] {
  const x = inputValues();
  return Array.from({ length: H * W }, (_, p) => Array.from({ length: K }, (_, k) => {
    let v = CONV_B[k];
    for (let c = 0; c < 3; c++) v += x[p * 3 + c] * CONV[c][k];
    return Math.max(0, v);
  }));
}

function genderLogitByHand(): number {
  const a = activationByHand();
  let z = GENDER_B[0];
  for (let k = 0; k < K; k++) z += GENDER_W[k][0] * a.reduce((s, row) => s + row[k], 0) / (H * W);
  return z;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

function normalize(m: number[]): number[] {
  const r = m.map((v) => Math.max(v, 0));
  const min = Math.min(...r);
  const max = Math.max(...r);
  return r.map((v) => (v - min) / (max - min + 1e-7));
}

/** Grad-CAM (= HiResCAM = CAM here) of the gender output's class: sign * Σ_k Wg_k A_k, ReLU, normalised. */
function binaryMapByHand(cls: 0 | 1): number[] {
  const sign = cls === 1 ? 1 : -1;
  return normalize(activationByHand().map((row) => sign * row.reduce((s, v, k) => s + v * GENDER_W[k][0], 0)));
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.strictEqual(a.length, b.length, `${what}: ${a.length} vs ${b.length} values`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));

function dense(units: number, activation: 'linear' | 'softmax' | 'sigmoid', name: string, w: number[][], b: number[]): tfl.layers.Layer {
  return tfl.layers.dense({ units, activation, name, weights: [tf.tensor2d(w), tf.tensor1d(b)] });
}

function trunk(): { inp: tfl.SymbolicTensor; gap: tfl.SymbolicTensor } {
  const inp = tfl.input({ shape: [H, W, 3], name: 'img' });
  const conv = tfl.layers.conv2d({ filters: K, kernelSize: 1, activation: 'relu', name: 'conv', weights: [tf.tensor4d(CONV.flat(), [1, 1, 3, K]), tf.tensor1d(CONV_B)] }).apply(inp) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(conv) as tfl.SymbolicTensor;
  return { inp, gap };
}

/** Three heads on one trunk: age (1 linear unit), race (3, softmax), gender (1, sigmoid), in that order. */
function headsModel(): tfl.LayersModel {
  const { inp, gap } = trunk();
  const age = dense(1, 'linear', 'age', AGE_W, AGE_B).apply(gap) as tfl.SymbolicTensor;
  const race = dense(3, 'softmax', 'race', RACE_W, RACE_B).apply(gap) as tfl.SymbolicTensor;
  const gender = dense(1, 'sigmoid', 'gender', GENDER_W, GENDER_B).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: inp, outputs: [age, race, gender] });
}

/** The gender head alone, as a Sequential model: a plain binary classifier. */
function binarySequential(): tfl.Sequential {
  const m = tfl.sequential();
  m.add(tfl.layers.conv2d({ inputShape: [H, W, 3], filters: K, kernelSize: 1, activation: 'relu', name: 'conv', weights: [tf.tensor4d(CONV.flat(), [1, 1, 3, K]), tf.tensor1d(CONV_B)] }));
  m.add(tfl.layers.globalAveragePooling2d({ name: 'gap' }));
  m.add(dense(1, 'sigmoid', 'gender', GENDER_W, GENDER_B));
  return m;
}

/** The same three heads as a hand-written GraphModel (sinks in the order race, gender). */
function headsGraph(dir: string): string {
  const g = new GraphDefBuilder();
  g.placeholder('img', [-1, H, W, 3]);
  g.const('conv/kernel', [1, 1, 3, K], CONV.flat());
  g.conv('conv/conv', 'img', 'conv/kernel');
  g.const('conv/bias', [K], CONV_B);
  g.op('conv/add', 'BiasAdd', ['conv/conv', 'conv/bias'], { data_format: { s: Buffer.from('NHWC').toString('base64') } });
  g.op('conv', 'Relu', ['conv/add']);
  g.mean('gap', 'conv', [1, 2], false);
  g.const('race/w', [K, 3], RACE_W.flat());
  g.matMul('race/mm', 'gap', 'race/w');
  g.const('race/b', [3], RACE_B);
  g.op('race/add', 'AddV2', ['race/mm', 'race/b']);
  g.op('race', 'Softmax', ['race/add']);
  g.const('gender/w', [K, 1], GENDER_W.flat());
  g.matMul('gender/mm', 'gap', 'gender/w');
  g.const('gender/b', [1], GENDER_B);
  g.op('gender/add', 'AddV2', ['gender/mm', 'gender/b']);
  g.op('gender', 'Sigmoid', ['gender/add']);
  return g.write(dir);
}

async function rejects(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CamLensError, `expected a CamLensError, got ${e}`);
    assert.strictEqual(e.code, code, e.message);
    assert.match(e.message, pattern);
    return;
  }
  assert.fail(`expected ${code}`);
}

describe('classifier outputs: several heads and binary (single-sigmoid) classifiers', function () {
  this.timeout(300000);
  let dir: string;
  let headsFile: string;
  let seqFile: string;
  let reference: { age: number; race: Float32Array; gender: number };

  before(async () => {
    await initBackend('cpu');
    dir = tempDir('cam-lens-outputs-');
    const heads = headsModel();
    const [age, race, gender] = heads.predict(input()) as tf.Tensor[];
    reference = { age: age.dataSync()[0], race: race.dataSync() as Float32Array, gender: gender.dataSync()[0] };
    tf.dispose([age, race, gender]);
    headsFile = (await writeModel(heads, path.join(dir, 'heads'))).modelJson;
    heads.dispose();
    const seq = binarySequential();
    seqFile = (await writeModel(seq, path.join(dir, 'binary'))).modelJson;
    seq.dispose();
  });

  async function withModel<T>(file: string, opts: Parameters<typeof loadModel>[1], fn: (m: LoadedModel) => Promise<T>): Promise<T> {
    const m = await loadModel(file, opts);
    try {
      return await fn(m);
    } finally {
      m.dispose();
    }
  }

  async function withSession<T>(m: LoadedModel, fn: (s: ImageSession) => Promise<T>): Promise<T> {
    const s = new ImageSession(m, input());
    try {
      return await fn(s);
    } finally {
      s.dispose();
    }
  }

  describe('choosing an output', () => {
    it('lists every output and explains the first classifier-shaped one by default: race, not the one-unit linear age', async () => {
      await withModel(headsFile, {}, async (m) => {
        assert.deepStrictEqual(m.outputs.map((o) => [o.name, o.units, o.activation]), [['age', 1, 'none'], ['race', 3, 'softmax'], ['gender', 1, 'sigmoid']]);
        assert.strictEqual(m.output, 'race');
        assert.strictEqual(m.numOutputs, 3);
        assert.strictEqual(m.binary, false);
        assert.strictEqual(m.graph.outputActivation, 'softmax');
        const d = describeModel(m);
        assert.strictEqual(d.output, 'race');
        assert.deepStrictEqual(d.outputs.map((o) => o.name), ['age', 'race', 'gender']);
        // Only what the chosen output depends on: the other heads are neither layers nor consumers of the pooling.
        assert.deepStrictEqual(d.layers.map((l) => l.name), ['img', 'conv', 'gap', 'race']);
        assert.strictEqual(d.recommendedLayer, 'conv');
      });
    });

    it('picks an output by name or index and gives that head\'s own logits and probabilities', async () => {
      await withModel(headsFile, { output: 'age' }, async (m) => {
        assert.strictEqual(m.output, 'age');
        assert.strictEqual(m.numOutputs, 1);
        assert.strictEqual(m.binary, false, 'one linear unit is not a binary classifier');
        await withSession(m, async (s) => assertClose(await s.logits(), [reference.age], 1e-4, 'age'));
      });
      await withModel(headsFile, { output: 1 }, async (m) => {
        assert.strictEqual(m.output, 'race');
        await withSession(m, async (s) => assertClose(await s.probabilities(), reference.race, 1e-6, 'race probabilities'));
      });
      // By index as a string (the CLI's and the metadata's form), and by name ignoring case.
      for (const choice of ['2', 'GENDER']) {
        await withModel(headsFile, { output: choice }, async (m) => {
          assert.strictEqual(m.output, 'gender');
          assert.strictEqual(m.binary, true);
          await withSession(m, async (s) => {
            const z = genderLogitByHand();
            assertClose(await s.logits(), [-z, z], 1e-5, 'gender logits');
            assertClose(await s.probabilities(), [1 - reference.gender, reference.gender], 1e-6, 'gender probabilities');
          });
        });
      }
      // The output travels in the metadata overrides too (what score workers and the extension's worker pass).
      await withModel(headsFile, { overrides: { output: 'gender' } }, async (m) => assert.strictEqual(m.output, 'gender'));
    });

    it('refuses an unknown output by name or index, listing the outputs there are', async () => {
      await rejects(loadModel(headsFile, { output: 'height' }), 'UNKNOWN_OUTPUT', /no output named "height".*"age" \(0: 1 unit\), "race" \(1: 3 units, softmax\), "gender" \(2: 1 unit, sigmoid\)/);
      await rejects(loadModel(headsFile, { output: 3 }), 'UNKNOWN_OUTPUT', /output index 3 is out of range: .*3 outputs.*"gender"/);
      await rejects(loadModel(seqFile, { output: 'race' }), 'UNKNOWN_OUTPUT', /"gender" \(0: 1 unit, sigmoid\)/);
    });

    it('pickOutput prefers outputs of known classifier shape, and falls back to the first', () => {
      const o = (name: string, units: number | null, activation: ModelOutput['activation'], classifierShaped = true): ModelOutput => ({ name, units, activation, classifierShaped });
      assert.strictEqual(pickOutput([o('age', 1, 'none'), o('mask', 4, 'none', false), o('gender', 1, 'sigmoid')], undefined), 2);
      assert.strictEqual(pickOutput([o('a', null, 'none'), o('b', 10, 'softmax')], undefined), 1);
      assert.strictEqual(pickOutput([o('a', 1, 'none'), o('b', 1, 'none')], undefined), 0);
      assert.strictEqual(pickOutput([o('7', 3, 'none'), o('b', 3, 'none')], '7'), 0, 'a name that looks like an index is a name first');
    });

    it('takes the default output and labels per output from cam-lens.json, and refuses labels for an output the model lacks', async () => {
      const d = path.join(dir, 'heads-meta');
      fs.mkdirSync(d);
      for (const f of ['model.json', 'weights.bin']) fs.copyFileSync(path.join(path.dirname(headsFile), f), path.join(d, f));
      const meta = (m: unknown) => fs.writeFileSync(path.join(d, 'cam-lens.json'), JSON.stringify(m));
      meta({ output: 'gender', labels: { race: ['r0', 'r1', 'r2'], gender: ['female', 'male'] } });
      await withModel(path.join(d, 'model.json'), {}, async (m) => {
        assert.strictEqual(m.output, 'gender');
        assert.deepStrictEqual(m.metadata.labels, ['female', 'male']);
      });
      await withModel(path.join(d, 'model.json'), { output: 'race' }, async (m) => {
        assert.deepStrictEqual(m.metadata.labels, ['r0', 'r1', 'r2']);
        assert.strictEqual(labelOf(m, 2), 'r2');
      });
      // An output without labels in the object is named by index (age: one class).
      await withModel(path.join(d, 'model.json'), { output: 'age' }, async (m) => assert.strictEqual(labelOf(m, 0), '#0'));
      // Overriding labels wins over the per-output object.
      await withModel(path.join(d, 'model.json'), { output: 'race', overrides: { labels: ['x', 'y', 'z'] } }, async (m) => assert.deepStrictEqual(m.metadata.labels, ['x', 'y', 'z']));
      meta({ labels: { race: ['r0', 'r1', 'r2'], sex: ['f', 'm'] } });
      await rejects(loadModel(path.join(d, 'model.json')), 'METADATA_INVALID', /labels for "sex", which the model does not have; its outputs are "age"/);
      meta({ output: 'height' });
      await rejects(loadModel(path.join(d, 'model.json')), 'UNKNOWN_OUTPUT', /no output named "height"/);
      meta({ output: ['gender'] });
      await rejects(loadModel(path.join(d, 'model.json')), 'METADATA_INVALID', /"output" must be an output name or index/);
    });
  });

  describe('binary classifiers (one sigmoid unit)', () => {
    it('exposes two classes whose probabilities are the sigmoid, not a softmax of one value', async () => {
      await withModel(seqFile, {}, async (m) => {
        assert.strictEqual(m.binary, true);
        assert.strictEqual(m.numOutputs, 2);
        assert.strictEqual(numClasses(m), 2);
        assert.deepStrictEqual(m.outputs.map((o) => [o.name, o.units, o.activation]), [['gender', 1, 'sigmoid']]);
        assert.strictEqual(describeModel(m).classes, 2);
        await withSession(m, async (s) => {
          const z = genderLogitByHand();
          assert.ok(Math.abs(z) > 0.1, `the fixture's logit ${z} should be clearly off zero`);
          const p = await s.probabilities();
          assert.strictEqual(p.length, 2);
          assert.ok(Math.abs(p[0] + p[1] - 1) < 1e-6, `sum ${p[0] + p[1]}`);
          assert.ok(Math.abs(p[1] - sigmoid(z)) < 1e-6, `class 1: ${p[1]} vs σ(z) ${sigmoid(z)}`);
          assert.ok(Math.abs(p[1] - sigmoid(2 * z)) > 1e-3, 'not the softmax of [-z, z]');
          const top = await s.predictions(2);
          assert.deepStrictEqual(top.map((t) => t.index), z > 0 ? [1, 0] : [0, 1]);
          // Batched scores (Score-CAM, faithfulness) agree with the single-image ones for both classes.
          const batch = tf.concat([input(), tf.zerosLike(input())]) as tf.Tensor4D;
          const one = await classScores(m, batch, 1);
          const zero = await classScores(m, batch, 0);
          batch.dispose();
          assertClose([one.logits[0], zero.logits[0]], [z, -z], 1e-5, 'batched logits');
          assertClose([one.probabilities[0], zero.probabilities[0]], [p[1], p[0]], 1e-6, 'batched probabilities');
          assert.ok(Math.abs(one.probabilities[1] + zero.probabilities[1] - 1) < 1e-6);
        });
      });
    });

    it('classLogits turns [n, 1] logits into [n, 2] rows [-z, z] and leaves other outputs alone', () => {
      const raw = tf.tensor2d([[1.5], [-2]]);
      const two = classLogits({ numOutputs: 2, binary: true }, raw);
      assert.deepStrictEqual(two.shape, [2, 2]);
      assertClose(two.dataSync(), [-1.5, 1.5, 2, -2], 0, 'binary');
      const three = classLogits({ numOutputs: 3, binary: false }, tf.tensor1d([1, 2, 3]));
      assert.deepStrictEqual(three.shape, [1, 3]);
      tf.dispose([raw, two, three]);
    });

    it('names the classes as Keras does: two names are the 0 then the 1 side, one name L gives "not L", none "not positive"/"positive"', async () => {
      await withModel(seqFile, { overrides: { labels: ['female', 'male'] } }, async (m) => {
        assert.deepStrictEqual([labelOf(m, 0), labelOf(m, 1)], ['female', 'male']);
        assert.strictEqual(resolveClass(m, 'male'), 1);
        await withSession(m, async (s) => {
          const z = genderLogitByHand();
          const male = await s.predictionFor(1);
          assert.strictEqual(male.label, 'male');
          assert.ok(Math.abs(male.probability - sigmoid(z)) < 1e-6, 'the 1 side carries σ(z)');
        });
      });
      await withModel(seqFile, { overrides: { labels: ['pneumonia'] } }, async (m) => {
        assert.deepStrictEqual(m.metadata.labels, ['not pneumonia', 'pneumonia']);
        assert.strictEqual(resolveClass(m, 'not pneumonia'), 0);
      });
      await withModel(seqFile, {}, async (m) => assert.deepStrictEqual(m.metadata.labels, ['not positive', 'positive']));
      // labels.txt beside the model works the same.
      fs.writeFileSync(path.join(path.dirname(seqFile), 'labels.txt'), 'cat\ndog\n');
      try {
        await withModel(seqFile, {}, async (m) => assert.deepStrictEqual(m.metadata.labels, ['cat', 'dog']));
      } finally {
        fs.unlinkSync(path.join(path.dirname(seqFile), 'labels.txt'));
      }
      await rejects(loadModel(seqFile, { overrides: { labels: ['a', 'b', 'c'] } }), 'METADATA_INVALID', /output "gender" is one sigmoid unit \(a binary classifier\) but the labels given lists 3 labels/);
      await rejects(loadModel(seqFile, { overrides: { labelOffset: 1 } }), 'METADATA_INVALID', /labelOffset 1 leaves no classes: output "gender" is one sigmoid unit/);
    });

    it('Grad-CAM of class 0 is the map of -z and differs from class 1\'s; both equal the maps by hand', async () => {
      await withModel(headsFile, { output: 'gender' }, async (m) => withSession(m, async (s) => {
        const one = await s.explain({ method: 'gradcam', classChoice: 1 });
        const zero = await s.explain({ method: 'gradcam', classChoice: 0 });
        assert.strictEqual(one.layer, 'conv');
        assertClose(one.heatmap.values, binaryMapByHand(1), 1e-5, 'class 1');
        assertClose(zero.heatmap.values, binaryMapByHand(0), 1e-5, 'class 0');
        assert.ok(maxDiff(one.heatmap.values, zero.heatmap.values) > 0.5, 'the two maps differ');
        // The gradients themselves are negatives of each other.
        const g1 = s.gradient('conv', 1).dataSync();
        const g0 = s.gradient('conv', 0).dataSync();
        assertClose(g0, Array.from(g1, (v) => -v), 1e-7, 'dz0/dA = -dz1/dA');
        assert.ok(Math.abs(g1[0] - GENDER_W[0][0] / (H * W)) < 1e-6, `dz/dA_0 = Wg_0 / hw, got ${g1[0]}`);
      }));
    });

    it('negates the CAM head ([K, 1] weights become [-W, W]) and CAM gives the same maps as Grad-CAM', async () => {
      await withModel(seqFile, {}, async (m) => withSession(m, async (s) => {
        const head = tf.tidy(() => {
          const h = findClassHead(m, m.graph.op('conv'));
          assert.strictEqual(h.kind, 'dense');
          return { shape: (h.weights as tf.Tensor2D).shape, values: Array.from((h.weights as tf.Tensor2D).dataSync()) };
        });
        assert.deepStrictEqual(head.shape, [K, 2]);
        assertClose(head.values, GENDER_W.flatMap(([w]) => [-w, w]), 1e-7, 'head');
        for (const c of [0, 1] as const) {
          const r = await s.explain({ method: 'cam', classChoice: c });
          assertClose(r.heatmap.values, binaryMapByHand(c), 1e-5, `CAM class ${c}`);
        }
      }));
    });

    it('runs every method on both classes of a binary output: class-dependent methods give two different maps', async () => {
      await withModel(headsFile, { output: 'gender' }, async (m) => withSession(m, async (s) => {
        for (const method of METHODS) {
          const maps = [];
          for (const c of [0, 1]) {
            const options = { scorecam: { batchSize: 2 }, smoothgrad: { samples: 4 }, integratedgradients: { steps: 8 } }[method.id];
            const r = await s.explain({ method: method.id, classChoice: c, options });
            assert.strictEqual(r.target.index, c);
            // Pixel saliency with a sign (gradient, SmoothGrad, Integrated Gradients) is in [-1, 1].
            const lo = r.heatmap.signed ? -1 : 0;
            assert.ok(r.heatmap.values.every((v) => Number.isFinite(v) && v >= lo && v <= 1), `${method.id} class ${c}`);
            maps.push(r.heatmap.values);
          }
          if (method.classIndependent) assertClose(maps[0], maps[1], 0, method.id);
          else assert.ok(maxDiff(maps[0], maps[1]) > 0.05, `${method.id}: class 0 and class 1 maps should differ`);
        }
      }));
    });

    it('gives the inspector opposite channel weights for the two classes, faithfulness the class\'s own probability, and a layer recommendation', async () => {
      await withModel(headsFile, { output: 'gender' }, async (m) => withSession(m, async (s) => {
        const f1 = await computeFeatureMaps(s, { layer: 'conv', classIndex: 1 });
        const f0 = await computeFeatureMaps(s, { layer: 'conv', classIndex: 0 });
        assertClose(f1.weights as Float32Array, GENDER_W.map(([w]) => w / (H * W)), 1e-6, 'alpha class 1');
        assertClose(f0.weights as Float32Array, GENDER_W.map(([w]) => -w / (H * W)), 1e-6, 'alpha class 0');
        const p = await s.probabilities();
        const map = await s.explain({ method: 'gradcam', classChoice: 0 });
        const report = await faithfulness(s, map.heatmap, 0, { steps: 4, batchSize: 4 });
        assert.ok(Math.abs(report.map.originalScore - p[0]) < 1e-6, `Y_0 ${report.map.originalScore} vs ${p[0]}`);
        assert.ok(report.map.deletion.curve.every((v) => v >= 0 && v <= 1));
        const rec = await recommendLayer(s, { classChoice: 0, steps: 4 });
        assert.strictEqual(rec.target.index, 0);
        assert.strictEqual(rec.best, 'conv');
      }));
    });

    it('computes Score-CAM in the pool workers exactly as in this thread for a binary output chosen by name', async function () {
      // race is the default output: a worker that ignored the choice would score race's classes instead.
      await withModel(headsFile, { output: 'gender' }, async (m) => {
        const pool = new ScorePool({ modelPath: headsFile, overrides: { output: 'gender' }, workers: 1, useCallerThread: false, backend: 'cpu' });
        try {
          assert.strictEqual(await pool.whenReady(), 1, pool.failures().join('; '));
          await withSession(m, async (s) => {
            for (const c of [0, 1]) {
              const local = await s.explain({ method: 'scorecam', classChoice: c, options: { batchSize: 2 } });
              const pooled = await s.explain({ method: 'scorecam', classChoice: c, options: { batchSize: 2 }, pool });
              assertClose(pooled.heatmap.values, local.heatmap.values, 1e-6, `class ${c}: worker vs this thread`);
            }
          });
        } finally {
          await pool.close();
        }
      });
    });

    it('scans a labelled folder with a binary model: the 0 and 1 sides\' probabilities sum to 1 and match single images', async () => {
      const root = path.join(dir, 'data');
      const x = inputValues();
      for (const [cls, flip] of [['female', false], ['male', true]] as const) {
        fs.mkdirSync(path.join(root, cls), { recursive: true });
        for (let i = 0; i < 3; i++) {
          const px = Buffer.alloc(H * W * 3);
          for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) {
            const v = flip ? x[((H * W - 1 - p) * 3) + c] : x[p * 3 + c];
            px[p * 3 + c] = Math.round(Math.min(1, v * (0.6 + 0.2 * i)) * 255);
          }
          await sharp(px, { raw: { width: W, height: H, channels: 3 } }).png().toFile(path.join(root, cls, `${i}.png`));
        }
      }
      await withModel(seqFile, { overrides: { labels: ['female', 'male'], preprocess: '[0,1]' } }, async (m) => {
        const ds = readDataset(root, m.metadata.labels);
        assert.strictEqual(ds.samples.length, 6);
        const before = tf.memory().numTensors;
        const scan = await scanDataset(m, ds, { batchSize: 4 });
        assert.strictEqual(tf.memory().numTensors, before, 'no tensor left behind');
        assert.strictEqual(scan.results.length, 6);
        for (const r of scan.results) {
          assert.strictEqual(r.probs.length, 2);
          assert.ok(Math.abs(r.probs[0] + r.probs[1] - 1) < 1e-6);
          assert.ok(['female', 'male'].includes(r.predictedLabel));
          const opened = await openImage(m, r.path);
          try {
            assertClose(await opened.session.probabilities(), r.probs, 1e-5, r.relPath);
          } finally {
            opened.session.dispose();
          }
        }
      });
    });

    it('leaves no tensor behind across outputs, classes, methods, heads and feature maps', async () => {
      await withModel(headsFile, { output: 'gender' }, async (m) => {
        const run = async () => withSession(m, async (s) => {
          await s.probabilities();
          for (const method of ['gradcam', 'cam', 'scorecam', 'layercam']) for (const c of [0, 1]) await s.explain({ method, classChoice: c });
          await computeFeatureMaps(s, { classIndex: 0 });
          await classScores(m, s.input, 0);
        });
        await run();
        const before = tf.memory().numTensors;
        await run();
        await run();
        assert.strictEqual(tf.memory().numTensors, before);
      });
      const before = tf.memory().numTensors;
      for (const output of ['age', 'race', 'gender']) await withModel(headsFile, { output }, async (m) => withSession(m, async (s) => { await s.explain({ method: 'gradcam' }); }));
      assert.strictEqual(tf.memory().numTensors, before, 'loading and disposing each output');
    });
  });

  describe('GraphModels with several outputs', () => {
    let graphFile: string;
    before(() => {
      graphFile = headsGraph(path.join(dir, 'graph'));
    });

    it('lists the output nodes and gives the same logits and maps as the LayersModel for the chosen head', async () => {
      await withModel(graphFile, {}, async (g) => {
        assert.deepStrictEqual(g.outputs.map((o) => [o.name, o.units, o.activation]), [['race', 3, 'softmax'], ['gender', 1, 'sigmoid']]);
        assert.strictEqual(g.output, 'race');
        await withSession(g, async (s) => assertClose(await s.probabilities(), reference.race, 1e-5, 'race'));
      });
      await withModel(graphFile, { output: 'gender' }, async (g) => {
        assert.strictEqual(g.binary, true);
        assert.strictEqual(g.graph.outputActivation, 'sigmoid');
        assert.ok(!describeModel(g).layers.some((l) => l.name.startsWith('race')), 'the race head is not part of the gender graph');
        await withSession(g, async (s) => {
          const z = genderLogitByHand();
          assertClose(await s.logits(), [-z, z], 1e-5, 'logits');
          assertClose(await s.probabilities(), [1 - reference.gender, reference.gender], 1e-5, 'probabilities');
          for (const c of [0, 1] as const) {
            for (const method of ['gradcam', 'cam']) {
              const r = await s.explain({ method, layer: 'conv', classChoice: c });
              assertClose(r.heatmap.values, binaryMapByHand(c), 1e-5, `${method} class ${c}`);
            }
          }
        });
      });
      await rejects(loadModel(graphFile, { output: 'age' }), 'UNKNOWN_OUTPUT', /"race" \(0: 3 units, softmax\), "gender" \(1: 1 unit, sigmoid\)/);
    });
  });
  describe('fixtures from PyTorch (scripts/fixtures): an ONNX export with three heads and a Keras file with two', () => {
    interface RefMaps { gradcam: number[]; hirescam: number[]; layercam: number[]; height: number; width: number }
    const onnxDir = path.join(FIXTURES, 'onnx', 'heads');
    const kerasDir = path.join(FIXTURES, 'keras', 'heads');
    const onnxRef = JSON.parse(fs.readFileSync(path.join(onnxDir, 'outputs.json'), 'utf8')) as {
      input: { file: string; shape: number[] }; layer: { node: string; output: string }; age: number; genderLogit: number; raceLogits: number[]; raceTop: number; maps: Record<string, RefMaps>;
    };
    const kerasRef = JSON.parse(fs.readFileSync(path.join(kerasDir, 'expected.json'), 'utf8')) as {
      input: number[]; inputShape: number[]; layer: string; kindLogits: number[]; sickLogit: number; kindTop: number; maps: Record<string, RefMaps>;
    };
    /** The ONNX fixture's exact input as the engine feeds it: NCHW input.bin to [1, H, W, C]. */
    const onnxInput = (): tf.Tensor4D => tf.tidy(() => {
      const buf = fs.readFileSync(path.join(onnxDir, onnxRef.input.file));
      const x = tf.tensor4d(new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)), onnxRef.input.shape as [number, number, number, number]);
      return tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D;
    });
    const kerasInput = () => tf.tensor4d(kerasRef.input, kerasRef.inputShape as [number, number, number, number]);
    const softmaxOf = (z: number[]) => {
      const e = z.map((v) => Math.exp(v - Math.max(...z)));
      return e.map((v) => v / e.reduce((a, b) => a + b, 0));
    };

    async function checkMaps(s: ImageSession, layer: string, cls: number, ref: RefMaps, what: string): Promise<void> {
      for (const method of ['gradcam', 'hirescam', 'layercam'] as const) {
        const r = await s.explain({ method, layer, classChoice: cls });
        assert.deepStrictEqual([r.heatmap.height, r.heatmap.width], [ref.height, ref.width], `${what} ${method}: size`);
        const corr = correlation(r.heatmap.values, ref[method]);
        assert.ok(corr >= 0.999, `${what} ${method}: r = ${corr}`);
      }
    }

    it('ONNX: lists the three outputs, explains the binary gender head by default and matches PyTorch on both classes', async () => {
      await withModel(path.join(onnxDir, 'heads.onnx'), {}, async (m) => {
        assert.deepStrictEqual(m.outputs.map((o) => [o.name, o.units, o.activation]), [['age', 1, 'none'], ['gender', 1, 'sigmoid'], ['race', 4, 'softmax']]);
        assert.deepStrictEqual([m.output, m.binary, m.numOutputs, m.metadata.labels], ['gender', true, 2, ['female', 'male']]);
        const s = new ImageSession(m, onnxInput());
        try {
          const z = onnxRef.genderLogit;
          assertClose(await s.logits(), [-z, z], 1e-4, 'gender logits');
          assertClose(await s.probabilities(), [1 - sigmoid(z), sigmoid(z)], 1e-5, 'gender probabilities');
          await checkMaps(s, onnxRef.layer.node, 1, onnxRef.maps.gender1, 'class 1 (male)');
          await checkMaps(s, onnxRef.layer.output, 0, onnxRef.maps.gender0, 'class 0 (female)');
          // CAM through the ReduceMean → Gemm head, negated for class 0: the same maps as Grad-CAM here.
          for (const [c, ref] of [[1, onnxRef.maps.gender1], [0, onnxRef.maps.gender0]] as const) {
            const r = await s.explain({ method: 'cam', layer: onnxRef.layer.node, classChoice: c });
            assert.ok(correlation(r.heatmap.values, ref.gradcam) >= 0.999, `CAM class ${c}`);
          }
        } finally {
          s.dispose();
        }
      });
    });

    it('ONNX: the race head by name and the age head by index give their own logits, labels and maps', async () => {
      await withModel(path.join(onnxDir, 'heads.onnx'), { output: 'race' }, async (m) => {
        assert.deepStrictEqual([m.output, m.binary, m.numOutputs, m.metadata.labels], ['race', false, 4, ['r0', 'r1', 'r2', 'r3']]);
        assert.strictEqual(m.graph.outputActivation, 'softmax');
        const s = new ImageSession(m, onnxInput());
        try {
          assertClose(await s.logits(), onnxRef.raceLogits, 1e-4, 'race logits');
          assertClose(await s.probabilities(), softmaxOf(onnxRef.raceLogits), 1e-5, 'race probabilities');
          await checkMaps(s, onnxRef.layer.node, onnxRef.raceTop, onnxRef.maps.raceTop, 'race top class');
        } finally {
          s.dispose();
        }
      });
      await withModel(path.join(onnxDir, 'heads.onnx'), { output: 0 }, async (m) => {
        assert.deepStrictEqual([m.output, m.binary, m.numOutputs], ['age', false, 1]);
        const s = new ImageSession(m, onnxInput());
        try {
          assertClose(await s.logits(), [onnxRef.age], 1e-4, 'age');
        } finally {
          s.dispose();
        }
      });
      await rejects(loadModel(path.join(onnxDir, 'heads.onnx'), { output: 'sex' }), 'UNKNOWN_OUTPUT', /heads\.onnx has no output named "sex"; its outputs are "age" \(0: 1 unit\), "gender" \(1: 1 unit, sigmoid\), "race" \(2: 4 units, softmax\)/);
    });

    it('ONNX: reads the default output and labels per output from the model\'s own metadata_props', async () => {
      const file = path.join(onnxDir, 'heads_props.onnx');
      await withModel(file, {}, async (m) => assert.deepStrictEqual([m.output, m.metadata.labels, m.metadata.source], ['race', ['a', 'b', 'c', 'd'], 'metadata_props']));
      await withModel(file, { output: 'gender' }, async (m) => assert.deepStrictEqual([m.output, m.binary, m.metadata.labels], ['gender', true, ['f', 'm']]));
      await withModel(file, { output: 'age' }, async (m) => assert.deepStrictEqual(m.metadata.labels, []));
    });

    it('ONNX: a single-sigmoid export with one class name is "not L" / "L", and Score-CAM in the workers equals this thread\'s', async () => {
      const file = path.join(onnxDir, 'binary.onnx');
      await withModel(file, {}, async (m) => {
        assert.deepStrictEqual([m.outputs.length, m.output, m.binary, m.metadata.labels], [1, 'prob', true, ['not pneumonia', 'pneumonia']]);
        const pool = new ScorePool({ modelPath: file, workers: 1, useCallerThread: false, backend: 'cpu' });
        const s = new ImageSession(m, onnxInput());
        try {
          const z = onnxRef.genderLogit;
          assertClose(await s.probabilities(), [1 - sigmoid(z), sigmoid(z)], 1e-5, 'probabilities');
          await checkMaps(s, onnxRef.layer.node, 0, onnxRef.maps.gender0, 'not pneumonia');
          assert.strictEqual(await pool.whenReady(), 1, pool.failures().join('; '));
          for (const c of [0, 1]) {
            const local = await s.explain({ method: 'scorecam', layer: onnxRef.layer.node, classChoice: c, options: { batchSize: 4 } });
            const pooled = await s.explain({ method: 'scorecam', layer: onnxRef.layer.node, classChoice: c, options: { batchSize: 4 }, pool });
            assertClose(pooled.heatmap.values, local.heatmap.values, 1e-6, `Score-CAM class ${c}`);
          }
        } finally {
          s.dispose();
          await pool.close();
        }
      });
    });

    it('Keras: two heads, cam-lens.json names the binary one and labels each; both classes match PyTorch, and the softmax head by name', async () => {
      const file = path.join(kerasDir, 'two_heads.keras');
      await withModel(file, {}, async (m) => {
        assert.deepStrictEqual(m.outputs.map((o) => [o.name, o.units, o.activation]), [['kind', 3, 'softmax'], ['sick', 1, 'sigmoid']]);
        assert.deepStrictEqual([m.output, m.binary, m.metadata.labels], ['sick', true, ['healthy', 'sick']]);
        const s = new ImageSession(m, kerasInput());
        try {
          const z = kerasRef.sickLogit;
          assertClose(await s.logits(), [-z, z], 1e-4, 'sick logits');
          assertClose(await s.probabilities(), [1 - sigmoid(z), sigmoid(z)], 1e-5, 'sick probabilities');
          await checkMaps(s, kerasRef.layer, 1, kerasRef.maps.sick1, 'sick');
          await checkMaps(s, kerasRef.layer, 0, kerasRef.maps.sick0, 'healthy');
        } finally {
          s.dispose();
        }
      });
      await withModel(file, { output: 'kind' }, async (m) => {
        assert.deepStrictEqual([m.output, m.binary, m.metadata.labels], ['kind', false, ['cat', 'dog', 'fox']]);
        const s = new ImageSession(m, kerasInput());
        try {
          assertClose(await s.logits(), kerasRef.kindLogits, 1e-4, 'kind logits');
          await checkMaps(s, kerasRef.layer, kerasRef.kindTop, kerasRef.maps.kindTop, 'kind top class');
        } finally {
          s.dispose();
        }
      });
    });

    it('leaves no tensor behind loading and explaining every output of both fixtures', async () => {
      const round = async () => {
        for (const [file, outputs, input] of [[path.join(onnxDir, 'heads.onnx'), ['age', 'gender', 'race'], onnxInput], [path.join(kerasDir, 'two_heads.keras'), ['kind', 'sick'], kerasInput]] as const) {
          for (const output of outputs) {
            await withModel(file, { output }, async (m) => {
              const s = new ImageSession(m, input());
              try {
                for (const method of ['gradcam', 'cam', 'scorecam']) await s.explain({ method, classChoice: 0, options: { batchSize: 4, topChannels: 3 } });
              } finally {
                s.dispose();
              }
            });
          }
        }
      };
      await round();
      const before = tf.memory().numTensors;
      await round();
      assert.strictEqual(tf.memory().numTensors, before);
    });
  });
});
