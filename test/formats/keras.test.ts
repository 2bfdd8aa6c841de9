/**
 * Keras files opened directly (#12): the fixtures written by scripts/fixtures/make_keras.py (a Keras 3
 * `.keras` Functional model with preprocessing and a nested Sequential, the same deflated and as Keras 3's
 * legacy .h5, a Keras 2 .h5 with a nested model, Depthwise and Separable convolutions) against the logits and
 * Grad-CAM/HiResCAM/LayerCAM maps of an independent PyTorch implementation, on cpu and on wasm; every refusal
 * and bad-input case with its message; and the two real Keras files in ../shared/reference.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/extension/engine/backend';
import { CamLensError } from '../../src/extension/engine/errors';
import { loadModel, type LoadedLayersModel, type LoadedModel } from '../../src/extension/engine/model';
import { describeModel, openImage } from '../../src/extension/engine/pipeline';
import { ScorePool } from '../../src/extension/engine/scorePool';
import { ImageSession } from '../../src/extension/engine/session';
import { SHARED, requireShared, tempDir } from '../helpers/modelFiles';

const FIX = path.resolve(__dirname, '..', 'fixtures', 'keras');

interface LayerMaps {
  height: number;
  width: number;
  gradcam: number[];
  hirescam: number[];
  layercam: number[];
}
interface Expected {
  inputShape: [number, number, number, number];
  input: number[];
  logits: number[];
  probabilities: number[];
  classIndex: number;
  preprocess: string;
  labels: string[];
  layers: Record<string, LayerMaps>;
}

function readExpected(dir: string): Expected {
  return JSON.parse(fs.readFileSync(path.join(FIX, dir, 'expected.json'), 'utf8')) as Expected;
}

function softmax(z: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < z.length; i++) max = Math.max(max, z[i]);
  const e = Array.from({ length: z.length }, (_, i) => Math.exp(z[i] - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.strictEqual(a.length, b.length, 'map sizes differ');
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] / n;
    mb += b[i] / n;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

async function rejection(p: Promise<unknown>): Promise<CamLensError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CamLensError, `expected a CamLensError, got ${(e as Error)?.stack ?? String(e)}`);
    return e;
  }
  assert.fail('expected the load to be refused');
}

/** Loads `file`, runs `fn`, disposes the model whatever happens. */
async function withModel<T>(file: string, fn: (m: LoadedModel) => Promise<T>, opts?: Parameters<typeof loadModel>[1]): Promise<T> {
  const m = await loadModel(file, opts);
  try {
    return await fn(m);
  } finally {
    m.dispose();
  }
}

const PARITY: { name: string; file: string; expected: string }[] = [
  { name: 'Keras 3 .keras (Functional, nested Sequential, preprocessing inside)', file: 'functional/model.keras', expected: 'functional' },
  { name: 'Keras 3 .keras deflated, without vars name attributes', file: 'deflated/model.keras', expected: 'functional' },
  { name: 'Keras 3 legacy .h5', file: 'legacy3/model.h5', expected: 'functional' },
  { name: 'Keras 2 .h5 (nested model, DepthwiseConv2D, SeparableConv2D)', file: 'keras2/nested.h5', expected: 'keras2' },
];

/** Results for the summary printed at the end: the worst case of each method at each layer and backend. */
const summary: string[] = [];

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`Keras fixtures against the PyTorch reference on ${backend}`, () => {
    before(async () => {
      await initBackend(backend);
    });

    for (const fx of PARITY) {
      it(`${fx.name}: logits and Grad-CAM/HiResCAM/LayerCAM at two layers`, async () => {
        const exp = readExpected(fx.expected);
        await withModel(path.join(FIX, fx.file), async (m) => {
          const x = tf.tensor4d(exp.input, exp.inputShape);
          const session = new ImageSession(m, x);
          try {
            const probs = softmax(await session.logits());
            const diff = Math.max(...probs.map((p, i) => Math.abs(p - exp.probabilities[i])));
            assert.ok(diff <= 1e-4, `softmax differs from the reference by ${diff}`);
            const rs: string[] = [];
            for (const [layer, ref] of Object.entries(exp.layers)) {
              for (const method of ['gradcam', 'hirescam', 'layercam'] as const) {
                const r = await session.explain({ method, layer, classChoice: exp.classIndex - m.metadata.labelOffset });
                assert.deepStrictEqual([r.heatmap.height, r.heatmap.width], [ref.height, ref.width], `${method} at ${layer}: map size`);
                const corr = pearson(r.heatmap.values, ref[method]);
                assert.ok(corr >= 0.999, `${method} at ${layer}: r = ${corr}`);
                rs.push(`${method}@${layer} r=${corr.toFixed(6)}`);
              }
            }
            summary.push(`${backend} ${fx.file}: softmax max|diff|=${diff.toExponential(2)}; ${rs.join(', ')}`);
          } finally {
            session.dispose();
          }
        });
      });
    }

    it('feeds the probe PNG through the preset the metadata gives, to the exact reference input', async () => {
      for (const [file, dir] of [['functional/model.keras', 'functional'], ['keras2/nested.h5', 'keras2']]) {
        const exp = readExpected(dir);
        await withModel(path.join(FIX, file), async (m) => {
          assert.strictEqual(m.metadata.preprocess, exp.preprocess);
          const img = await openImage(m, path.join(FIX, dir, 'probe.png'));
          try {
            const got = await img.session.input.data();
            assert.strictEqual(got.length, exp.input.length);
            let worst = 0;
            for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - exp.input[i]));
            assert.ok(worst <= 1e-6, `${file}: input differs by ${worst}`);
          } finally {
            img.session.dispose();
          }
        });
      }
    });

    it('runs every method on a Keras model, and repeated runs do not grow the tensor count', async () => {
      const exp = readExpected('functional');
      await withModel(path.join(FIX, 'functional/model.keras'), async (m) => {
        const runAll = async () => {
          const session = new ImageSession(m, tf.tensor4d(exp.input, exp.inputShape));
          try {
            for (const method of ['cam', 'gradcam', 'gradcam++', 'xgradcam', 'hirescam', 'layercam', 'scorecam', 'eigencam']) {
              const r = await session.explain({ method, layer: 'conv_last', options: method === 'scorecam' ? { batchSize: 16 } : undefined });
              assert.ok(r.heatmap.values.every((v) => Number.isFinite(v) && v >= 0 && v <= 1), `${method}: values outside [0, 1]`);
            }
            await session.explain({ method: 'gradcam', layer: 'inner/inner_dw' });
          } finally {
            session.dispose();
          }
        };
        await runAll();
        const before = tf.memory().numTensors;
        await runAll();
        await runAll();
        assert.strictEqual(tf.memory().numTensors, before, 'tensors leaked across runs');
      });
    });
  });
}

describe('Keras files: what the loader reports', () => {
  before(async () => {
    await initBackend('cpu');
  });

  it('names the kind of Keras file, and leaves no tensor behind once disposed', async () => {
    const base = tf.memory().numTensors;
    const kinds: Record<string, string> = { 'functional/model.keras': 'keras3', 'legacy3/model.h5': 'keras3-h5', 'keras2/nested.h5': 'keras2-h5' };
    for (const [file, source] of Object.entries(kinds)) {
      await withModel(path.join(FIX, file), async (m) => {
        assert.strictEqual(m.format, 'layers-model');
        assert.strictEqual((m as LoadedLayersModel).source, source);
        assert.strictEqual(m.path, path.join(FIX, file));
      });
    }
    assert.strictEqual(tf.memory().numTensors, base);
  });

  it('takes labels from labels.txt and assumes [0,255] "inside the model" where the model rescales its input', async () => {
    await withModel(path.join(FIX, 'functional/model.keras'), async (m) => {
      assert.deepStrictEqual(m.metadata.labels, readExpected('functional').labels);
      assert.strictEqual(m.metadata.source, 'labels.txt');
      assert.strictEqual(m.metadata.preprocess, '[0,255]');
      assert.strictEqual(m.metadata.preprocessAssumed, true);
      assert.strictEqual(m.metadata.preprocessNote, 'inside the model');
    });
    await withModel(path.join(FIX, 'legacy3/model.h5'), async (m) => {
      assert.strictEqual(m.metadata.preprocess, '[0,255]');
      assert.strictEqual(m.metadata.preprocessNote, 'inside the model');
    });
    // A preset the user chose wins, and carries no note.
    await withModel(path.join(FIX, 'legacy3/model.h5'), async (m) => {
      assert.strictEqual(m.metadata.preprocess, '[0,1]');
      assert.strictEqual(m.metadata.preprocessNote, undefined);
    }, { overrides: { preprocess: '[0,1]' } });
  });

  it('reads <model file name>.cam-lens.json beside an .h5, and assumes [0,1] for a model without rescaling', async () => {
    await withModel(path.join(FIX, 'keras2/nested.h5'), async (m) => {
      assert.deepStrictEqual(m.metadata.labels, ['circle', 'square', 'triangle']);
      assert.strictEqual(m.metadata.source, 'cam-lens.json');
      assert.strictEqual(m.metadata.labelsFile, path.join(FIX, 'keras2', 'nested.cam-lens.json'));
      assert.strictEqual(m.metadata.preprocessAssumed, false);
      assert.strictEqual(m.name, 'nested');
    });
    const dir = tempDir();
    fs.copyFileSync(path.join(FIX, 'keras2/nested.h5'), path.join(dir, 'nested.h5'));
    await withModel(path.join(dir, 'nested.h5'), async (m) => {
      assert.strictEqual(m.metadata.preprocess, '[0,1]');
      assert.strictEqual(m.metadata.preprocessAssumed, true);
      assert.strictEqual(m.metadata.preprocessNote, undefined);
    });
  });

  it('runs Score-CAM in pool workers that load the Keras file by path, with the same map as this thread', async () => {
    const file = path.join(FIX, 'keras2/nested.h5');
    const exp = readExpected('keras2');
    await withModel(file, async (m) => {
      const pool = new ScorePool({ modelPath: file, workers: 1, useCallerThread: false, backend: 'cpu' });
      const s = new ImageSession(m, tf.tensor4d(exp.input, exp.inputShape));
      try {
        assert.strictEqual(await pool.whenReady(), 1, pool.failures().join('; '));
        const local = await s.explain({ method: 'scorecam', layer: 'conv2d_1', options: { batchSize: 4 } });
        const pooled = await s.explain({ method: 'scorecam', layer: 'conv2d_1', options: { batchSize: 4 }, pool });
        let worst = 0;
        for (let i = 0; i < local.heatmap.values.length; i++) worst = Math.max(worst, Math.abs(local.heatmap.values[i] - pooled.heatmap.values[i]));
        assert.ok(worst <= 1e-6, `worker map differs by ${worst}`);
      } finally {
        s.dispose();
        await pool.close();
      }
    });
  });

  it('lists the Keras layers, nested ones under their model, with the Keras class names', async () => {
    await withModel(path.join(FIX, 'functional/model.keras'), async (m) => {
      const layers = describeModel(m).layers;
      const cls = new Map(layers.map((l) => [l.name, l.className]));
      assert.strictEqual(cls.get('rescaling'), 'Rescaling');
      assert.strictEqual(cls.get('normalization'), 'Normalization');
      assert.strictEqual(cls.get('random_flip'), 'RandomFlip');
      assert.strictEqual(cls.get('inner/inner_conv'), 'Conv2D');
      assert.strictEqual(cls.get('inner/inner_dw'), 'DepthwiseConv2D');
      assert.strictEqual(m.graph.recommendedTarget().name, 'conv_last');
    });
  });
});

describe('Keras files that are refused', () => {
  before(async () => {
    await initBackend('cpu');
  });

  const cases: { file: string; code: string; message: RegExp; hint?: RegExp }[] = [
    { file: 'refused/lambda.keras', code: 'UNSUPPORTED_MODEL', message: /layer "times_two" \(Lambda\) runs Python code saved in the file, which CAM Lens never runs/, hint: /Rescaling/ },
    { file: 'refused/lambda2.h5', code: 'UNSUPPORTED_MODEL', message: /layer "lambda" \(Lambda\) runs Python code/ },
    { file: 'refused/custom.keras', code: 'UNSUPPORTED_MODEL', message: /layer "scale" \(my_project>ScaleLayer\) is a custom class/ },
    { file: 'bad/shape_mismatch.keras', code: 'MANIFEST_MISMATCH', message: /weight kernel of layer "conv_b" \(Conv2D\) has shape \[3, 3, 6, 5\] in shape_mismatch\.keras \(vars\/0\); its config needs \[3, 3, 6, 6\]/ },
    { file: 'bad/bomb.keras', code: 'MODEL_INVALID', message: /bomb\.keras looks like a zip bomb: model\.weights\.h5 would expand from 0\.078 MiB to 80 MiB/ },
    { file: 'bad/lying.keras', code: 'MODEL_INVALID', message: /entry model\.weights\.h5 does not hold the 1000 bytes it declares/ },
    { file: 'bad/many_entries.keras', code: 'MODEL_INVALID', message: /holds 1004 entries; a Keras archive has a handful \(at most 1000 are read\)/ },
    { file: 'bad/no_weights.keras', code: 'MODEL_INVALID', message: /no_weights\.keras has no model\.weights\.h5 \(it holds metadata\.json, config\.json\)/ },
    { file: 'bad/bad_config.keras', code: 'MODEL_INVALID', message: /config\.json in bad_config\.keras is not valid JSON/ },
    { file: 'bad/weights_only.weights.h5', code: 'MODEL_INVALID', message: /weights_only\.weights\.h5 holds only weights \(written by save_weights\): the model's architecture is not in it/, hint: /model\.save/ },
    { file: 'bad/checkpoint.pt', code: 'UNSUPPORTED_MODEL', message: /checkpoint\.pt is a PyTorch checkpoint/, hint: /torch\.onnx\.export/ },
    { file: 'bad/legacy.pth', code: 'UNSUPPORTED_MODEL', message: /legacy\.pth is a PyTorch checkpoint/, hint: /torch\.onnx\.export/ },
  ];
  for (const c of cases) {
    it(`refuses ${c.file}: ${c.message.source.slice(0, 60).replace(/\\/g, '')}…`, async () => {
      const e = await rejection(loadModel(path.join(FIX, c.file)));
      assert.strictEqual(e.code, c.code, e.message);
      assert.match(e.message, c.message);
      if (c.hint) assert.match(e.hint ?? '', c.hint);
    });
  }

  it('refuses a truncated .keras as a damaged archive', async () => {
    const dir = tempDir();
    const bytes = fs.readFileSync(path.join(FIX, 'functional/model.keras'));
    fs.writeFileSync(path.join(dir, 'half.keras'), bytes.subarray(0, bytes.length >> 1));
    const e = await rejection(loadModel(path.join(dir, 'half.keras')));
    assert.strictEqual(e.code, 'MODEL_INVALID');
    assert.match(e.message, /half\.keras is not a readable Keras archive: .*central directory/);
    fs.writeFileSync(path.join(dir, 'empty.keras'), Buffer.alloc(0));
    assert.match((await rejection(loadModel(path.join(dir, 'empty.keras')))).message, /empty\.keras is not a readable Keras archive/);
  });

  it('refuses a truncated or non-HDF5 .h5 with the file named', async () => {
    const dir = tempDir();
    const bytes = fs.readFileSync(path.join(FIX, 'keras2/nested.h5'));
    for (const keep of [0.9, 0.5, 0.1]) {
      fs.writeFileSync(path.join(dir, 'cut.h5'), bytes.subarray(0, Math.floor(bytes.length * keep)));
      const e = await rejection(loadModel(path.join(dir, 'cut.h5')));
      assert.strictEqual(e.code, 'MODEL_INVALID', e.message);
      assert.match(e.message, new RegExp(`cut\\.h5 is truncated: it has ${Math.floor(bytes.length * keep)} bytes, its HDF5 superblock says ${bytes.length}`));
    }
    fs.writeFileSync(path.join(dir, 'text.h5'), 'not an HDF5 file at all\n');
    const e = await rejection(loadModel(path.join(dir, 'text.h5')));
    assert.match(e.message, /text\.h5 is not a readable HDF5 file/);
  });

  it('answers every corrupted .h5 with a CamLensError or a model, never another error or a hang', async function () {
    this.timeout(60000);
    const dir = tempDir();
    const bytes = fs.readFileSync(path.join(FIX, 'legacy3/model.h5'));
    let refused = 0;
    let loaded = 0;
    const start = Date.now();
    // Overwrite 64-byte runs across the file (superblock, object headers, B-trees, heaps, attributes, data).
    for (let at = 0; at < bytes.length; at += Math.floor(bytes.length / 48)) {
      const copy = Buffer.from(bytes);
      for (let i = at; i < Math.min(copy.length, at + 64); i++) copy[i] = (copy[i] * 31 + 7) & 0xff;
      fs.writeFileSync(path.join(dir, 'corrupt.h5'), copy);
      try {
        const m = await loadModel(path.join(dir, 'corrupt.h5'));
        m.dispose();
        loaded++;
      } catch (e) {
        assert.ok(e instanceof CamLensError, `offset ${at}: ${(e as Error)?.stack ?? String(e)}`);
        refused++;
      }
    }
    assert.ok(refused > 10, `only ${refused} of ${refused + loaded} corruptions were noticed`);
    assert.ok(Date.now() - start < 50000);
  });
});

describe('the real Keras files in ../shared/reference', () => {
  before(async function () {
    requireShared(this);
    await initBackend('cpu');
  });

  const FASHION = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

  function image(h: number, w: number, f: (y: number, x: number) => number): tf.Tensor4D {
    const a = new Float32Array(h * w);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) a[y * w + x] = f(y, x);
    return tf.tensor4d(a, [1, h, w, 1]);
  }

  it('Keras 3 Fashion-MNIST CNN (.keras, Sequential): drawn items are read as what they are', async () => {
    const file = path.join(SHARED, 'models', 'keras3_fashion_mnist_cnn', 'model.keras');
    await withModel(file, async (m) => {
      assert.strictEqual((m as LoadedLayersModel).source, 'keras3');
      assert.deepStrictEqual([m.inputHeight, m.inputWidth, m.inputChannels, m.numOutputs], [28, 28, 1, 10]);
      // Light items on black, in [0,1] as the model was trained (x/255).
      const items: Record<string, (y: number, x: number) => number> = {
        Trouser: (y, x) => (y >= 3 && y <= 25 && ((x >= 8 && x <= 12) || (x >= 15 && x <= 19) || (y <= 8 && x >= 8 && x <= 19)) ? 0.8 : 0),
        Bag: (y, x) => ((y >= 10 && y <= 24 && x >= 4 && x <= 23) || (y >= 4 && y < 10 && [9, 10, 17, 18].includes(x)) || (y >= 4 && y <= 5 && x >= 9 && x <= 18) ? 0.7 : 0),
        'T-shirt/top': (y, x) => ((y >= 4 && y <= 24 && x >= 8 && x <= 19) || (y >= 4 && y <= 10 && x >= 3 && x <= 24) ? 0.75 : 0),
      };
      for (const [label, f] of Object.entries(items)) {
        const session = new ImageSession(m, image(28, 28, f));
        try {
          const [top] = await session.predictions(1);
          assert.strictEqual(top.label, label, `${label} was read as ${top.label} (${top.probability})`);
          const r = await session.explain({ method: 'gradcam', layer: 'conv2d_1' });
          assert.deepStrictEqual([r.heatmap.height, r.heatmap.width], [11, 11]);
        } finally {
          session.dispose();
        }
      }
    }, { overrides: { labels: FASHION } });
  });

  it('Keras 2 mini-Xception gender model (.hdf5, SeparableConv2D): predicts and explains at conv2d_7', async () => {
    const file = path.join(SHARED, 'models', 'keras2_gender_mini_xception', 'gender_mini_XCEPTION.21-0.95.hdf5');
    await withModel(file, async (m) => {
      assert.strictEqual((m as LoadedLayersModel).source, 'keras2-h5');
      assert.deepStrictEqual([m.inputHeight, m.inputWidth, m.inputChannels, m.numOutputs], [64, 64, 1, 2]);
      assert.strictEqual(m.graph.outputActivation, 'softmax');
      // A drawn face: a light oval with dark eyes and mouth, in [-1, 1].
      const face = image(64, 64, (y, x) => {
        let v = ((x - 32) / 22) ** 2 + ((y - 34) / 28) ** 2 < 1 ? 0.75 : 0.2;
        if ((x - 24) ** 2 + (y - 28) ** 2 < 9 || (x - 40) ** 2 + (y - 28) ** 2 < 9) v = 0.1;
        if (y >= 46 && y <= 49 && x >= 25 && x <= 39) v = 0.3;
        return v * 2 - 1;
      });
      const session = new ImageSession(m, face);
      try {
        const preds = await session.predictions(2);
        assert.ok(Math.abs(preds[0].probability + preds[1].probability - 1) < 1e-5);
        assert.deepStrictEqual(preds.map((p) => p.label).sort(), ['man', 'woman']);
        const r = await session.explain({ method: 'gradcam', layer: 'conv2d_7' });
        assert.deepStrictEqual([r.heatmap.height, r.heatmap.width], [4, 4]);
        assert.ok(r.heatmap.rawMax > 0);
        summary.push(`gender model on a drawn face: ${preds.map((p) => `${p.label} ${p.probability.toFixed(3)}`).join(', ')}`);
      } finally {
        session.dispose();
      }
    }, { overrides: { labels: ['woman', 'man'], preprocess: '[-1,1]' } });
  });
});

after(() => {
  if (process.env.CAM_LENS_KERAS_SUMMARY) for (const line of summary) process.stdout.write(`    ${line}\n`);
});
