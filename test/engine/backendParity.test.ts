/**
 * Backend parity: an explanation must not depend on the backend. Every gradient method (Grad-CAM, Grad-CAM++,
 * XGrad-CAM, HiResCAM, LayerCAM) at every spatial layer of every test model gives the same map on wasm as on
 * cpu: Pearson r >= 0.9999 between the two normalised maps (two constant maps must be equal).
 *
 * This is the test that would have caught issue #11: tfjs-backend-wasm's own MaxPoolGrad sent the gradient of
 * tied windows to their last maximum and misrouted windows whose maximum is <= 0, so on an image with flat
 * regions HiResCAM before a max-pool differed between the backends (r = 0.90 at one layer). The residual-pool
 * model below has that pattern and is fed such an image; the test also checks that the wasm pass really ran
 * MaxPoolGrad and AvgPoolGrad (and lists the gradient kernels each model's backward passes used).
 *
 * The models: those the other tests build in code (test/helpers/parityModels.ts), the bundled demo model on a
 * committed sample, and the reference models under ../shared/reference (skipped where it is absent). The cpu
 * backend is slow on the big ones (a gradient at MobileNet's first layer takes 20 s, at DarkNet's 110 s), so
 * there the test takes the layers a user is offered first (the recommended one and those just before it) and,
 * in the demo model, every activation and pooling output; every other model is covered at every spatial layer.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel, type LoadOptions } from '../../src/extension/engine/model';
import { decodeImage } from '../../src/extension/engine/image';
import { openImage, prepareInput } from '../../src/extension/engine/pipeline';
import { applyPreprocess } from '../../src/extension/engine/preprocess';
import { ImageSession } from '../../src/extension/engine/session';
import { METHODS } from '../../src/extension/engine/cam/registry';
import { SHARED, requireShared, tempDir, writeModel } from '../helpers/modelFiles';
import { flatRegionsImage, parityModels } from '../helpers/parityModels';

const ROOT = path.resolve(__dirname, '..', '..');
const R_MIN = 0.9999;
// The layer-based gradient methods (pixel saliency's wasm/cpu agreement: test/engine/saliency.test.ts, golden on both).
const GRADIENT_METHODS = METHODS.filter((m) => m.needsGradients && m.group !== 'pixel').map((m) => m.id);

/** Pearson r of two maps; two constant maps count as 1 when equal and 0 when not, one constant map as 0. */
function mapAgreement(a: Float32Array, b: Float32Array): number {
  assert.strictEqual(a.length, b.length, 'map sizes');
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) ** 2;
    bb += (b[i] - mb) ** 2;
  }
  if (aa === 0 && bb === 0) return a.every((v, i) => Math.abs(v - b[i]) <= 1e-6) ? 1 : 0;
  if (aa === 0 || bb === 0) return 0;
  return ab / Math.sqrt(aa * bb);
}

interface Subject {
  name: string;
  load: () => Promise<LoadedModel>;
  /** The model input on the current backend. */
  input: (model: LoadedModel) => Promise<tf.Tensor4D>;
  /** Layers to explain; default every spatial layer. */
  layers?: (model: LoadedModel) => string[];
  /** Gradient kernels the wasm pass must have run. */
  mustRun?: string[];
  /** Checks on the cpu session before the maps (that the input exercises what the subject is there for). */
  check?: (session: ImageSession) => Promise<void>;
}

interface BackendRun {
  /** Label index explained (the cpu run's top-1, reused on wasm). */
  label: number;
  /** `${layer}\u0000${method}` → normalised map values. */
  maps: Map<string, Float32Array>;
  /** Gradient kernels run (wasm only). */
  kernels: Set<string>;
  layers: string[];
}

async function runOn(backend: 'cpu' | 'wasm', subject: Subject, label?: number): Promise<BackendRun> {
  await initBackend(backend);
  assert.strictEqual(tf.getBackend(), backend);
  const model = await subject.load();
  const session = new ImageSession(model, await subject.input(model));
  try {
    if (backend === 'cpu' && subject.check) await subject.check(session);
    const chosen = label ?? (await session.predictions(1))[0].index;
    const layers = subject.layers ? subject.layers(model) : model.graph.spatialOps().map((op) => op.name);
    const maps = new Map<string, Float32Array>();
    const kernels = new Set<string>();
    for (const layer of layers) {
      const explainAll = async (): Promise<void> => {
        for (const method of GRADIENT_METHODS) {
          const r = await session.explain({ method, layer, classChoice: chosen });
          maps.set(`${layer}\u0000${method}`, r.heatmap.values);
        }
      };
      if (backend === 'wasm') {
        const profile = await tf.profile(explainAll);
        for (const k of profile.kernels) if (/Grad|Backprop/.test(k.name)) kernels.add(k.name);
      } else {
        await explainAll();
      }
    }
    return { label: chosen, maps, kernels, layers };
  } finally {
    session.dispose();
    model.dispose();
  }
}

/** Runs the subject on both backends and asserts the maps agree; logs the lowest r per method and the kernels. */
async function assertParity(subject: Subject): Promise<void> {
  const cpu = await runOn('cpu', subject);
  const wasm = await runOn('wasm', subject, cpu.label);
  assert.deepStrictEqual(wasm.layers, cpu.layers, 'the same layers on both backends');
  const minR = new Map<string, number>(GRADIENT_METHODS.map((m) => [m, 1]));
  const failures: string[] = [];
  let flat = 0;
  for (const layer of cpu.layers) {
    for (const method of GRADIENT_METHODS) {
      const key = `${layer}\u0000${method}`;
      const expected = cpu.maps.get(key) as Float32Array;
      if (expected.every((v) => v === expected[0])) flat++;
      const r = mapAgreement(wasm.maps.get(key) as Float32Array, expected);
      minR.set(method, Math.min(minR.get(method) as number, r));
      if (!(r >= R_MIN)) failures.push(`${method} at ${layer}: r = ${r.toFixed(6)}`);
    }
  }
  const total = cpu.layers.length * GRADIENT_METHODS.length;
  assert.ok(flat * 2 <= total, `${flat} of ${total} maps are constant: the comparison would say little`);
  const kernels = [...wasm.kernels].sort();
  console.log(`      ${subject.name}: ${cpu.layers.length} layers, class ${cpu.label}, ${flat} constant maps; min r ` +
    `${[...minR].map(([m, r]) => `${m} ${r.toFixed(8)}`).join(', ')}; wasm gradient kernels: ${kernels.join(', ') || 'none'}`);
  assert.deepStrictEqual(failures, [], `maps differ between wasm and cpu (r < ${R_MIN})`);
  for (const k of subject.mustRun ?? []) assert.ok(wasm.kernels.has(k), `the wasm pass ran ${k} (it ran ${kernels.join(', ')})`);
}

/**
 * How many of a layer's max-pool windows (per channel) tie for their maximum and how many have a maximum <= 0,
 * for the pooling geometry given: the windows tfjs-backend-wasm's own MaxPoolGrad got wrong.
 */
function hardWindows(activation: tf.Tensor4D, filterSize: number, strides: number, pad: 'same' | 'valid'): { tied: number; notPositive: number; all: number } {
  const [, h, w, c] = activation.shape;
  const info = tf.backend_util.computePool2DInfo(activation.shape, filterSize, strides, 1, pad);
  const x = activation.dataSync();
  let tied = 0;
  let notPositive = 0;
  for (let oy = 0; oy < info.outHeight; oy++) {
    for (let ox = 0; ox < info.outWidth; ox++) {
      for (let ch = 0; ch < c; ch++) {
        let max = -Infinity;
        let count = 0;
        for (let y = oy * strides - info.padInfo.top; y < oy * strides - info.padInfo.top + filterSize; y++) {
          for (let xx = ox * strides - info.padInfo.left; xx < ox * strides - info.padInfo.left + filterSize; xx++) {
            if (y < 0 || y >= h || xx < 0 || xx >= w) continue;
            const v = x[(y * w + xx) * c + ch];
            if (v > max) {
              max = v;
              count = 1;
            } else if (v === max) {
              count++;
            }
          }
        }
        if (count > 1) tied++;
        if (max <= 0) notPositive++;
      }
    }
  }
  return { tied, notPositive, all: info.outHeight * info.outWidth * c };
}

/** An image's model input with a constant frame of `border` pixels in preprocessed black, like letterboxing. */
async function framedInput(model: LoadedModel, image: string, border: number): Promise<tf.Tensor4D> {
  const t = await prepareInput(model, await decodeImage(image));
  const [, h, w, c] = t.shape;
  const values = (await t.data()) as Float32Array;
  t.dispose();
  const pad = applyPreprocess(new Float32Array(c), c, model.metadata.preprocess);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (y >= border && y < h - border && x >= border && x < w - border) continue;
      for (let ch = 0; ch < c; ch++) values[(y * w + x) * c + ch] = pad[ch];
    }
  }
  return tf.tensor4d(values, [1, h, w, c]);
}

/** The recommended layer and the `before` spatial layers just before it. */
function recommendedAndBefore(before: number): (model: LoadedModel) => string[] {
  return (model) => {
    const names = model.graph.spatialOps().map((op) => op.name);
    const at = names.indexOf(model.graph.recommendedTarget().name);
    return names.slice(Math.max(0, at - before), at + 1);
  };
}

describe('backend parity: every gradient method gives the same map on wasm as on cpu', function () {
  const dir = tempDir('cam-lens-parity-');
  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  parityModels().forEach(({ name, build }, i) => {
    it(`${name}: every spatial layer, on an input with flat regions`, async function () {
      await initBackend('cpu');
      const built = build();
      const written = await writeModel(built, path.join(dir, `m${i}`));
      built.dispose();
      await assertParity({
        name,
        load: () => loadModel(written.modelJson),
        input: async (model) => {
          const [h, w, c] = [model.inputHeight, model.inputWidth, model.inputChannels];
          return tf.tensor4d(flatRegionsImage(h, w, c), [1, h, w, c]);
        },
        // The first model is issue #11's pattern: its backward passes go through both pooling gradients, and
        // its pools see many tied windows (after the ReLU) and windows with a maximum <= 0 (after 'mid').
        mustRun: i === 0 ? [tf.MaxPoolGrad, tf.AvgPoolGrad] : undefined,
        check: i === 0 ? async (session) => {
          const pool = hardWindows(session.activation('res_relu'), 3, 2, 'same');
          const pool2 = hardWindows(session.activation('mid'), 2, 2, 'valid');
          assert.ok(pool.tied > pool.all / 10, `'pool': ${pool.tied} of ${pool.all} windows tie`);
          assert.ok(pool2.notPositive > pool2.all / 10 && pool2.tied > 0,
            `'pool2': ${pool2.notPositive} of ${pool2.all} windows have a maximum <= 0, ${pool2.tied} tie`);
        } : undefined,
      });
    });
  });

  it('the bundled demo model on a committed sample (flat background): every activation and pooling output', async function () {
    const demo = path.join(ROOT, 'models', 'demo', 'model.json');
    await assertParity({
      name: 'demo',
      load: () => loadModel(demo),
      input: async (model) => {
        const opened = await openImage(model, path.join(ROOT, 'samples', 'star', 'star_00.png'));
        const input = tf.clone(opened.session.input);
        opened.session.dispose();
        return input;
      },
      layers: (model) => model.graph.spatialOps().filter((op) => /Activation|Pooling|ReLU/.test(op.className) ||
        op === model.graph.recommendedTarget()).map((op) => op.name),
      mustRun: [tf.MaxPoolGrad],
    });
  });

  describe('reference models (../shared/reference)', function () {
    before(function () {
      requireShared(this);
    });

    const imagenet = (): string[] => JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes.json'), 'utf8')) as string[];
    const photo = path.join(SHARED, 'images', 'pgc_both_cat_dog.png');
    const cases: Array<[string, string, () => LoadOptions]> = [
      ['MobileNet v1 0.25 (LayersModel)', 'mobilenet_v1_0.25_224', () => ({ overrides: { labels: imagenet(), preprocess: '[-1,1]' } })],
      ['MobileNet v1 0.25 (GraphModel)', 'mobilenet_v1_025_224_graph', () => ({ overrides: { labels: imagenet(), labelOffset: 1, preprocess: '[0,1]' } })],
      ['DarkNet-tiny', 'darknet_tiny', () => ({ overrides: { preprocess: '[0,1]' } })],
    ];
    for (const [name, folder, options] of cases) {
      const darknet = folder === 'darknet_tiny';
      it(`${name}: the recommended layer${darknet ? '' : ' and the three before it'}, on a photo in a flat frame`, async function () {
        await assertParity({
          name,
          load: () => loadModel(path.join(SHARED, 'models', folder, 'model.json'), options()),
          input: (model) => framedInput(model, photo, 24),
          // DarkNet's backward pass on cpu takes 17 s from the layer before its classifier, 110 s from the first.
          layers: recommendedAndBefore(darknet ? 0 : 3),
        });
      });
    }
  });
});
