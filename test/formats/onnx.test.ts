/**
 * ONNX models opened directly: the real ONNX model-zoo MNIST (opset 8, CNTK) from ../shared/reference; the
 * layer list and addressing by node and by output name; CAM's linear head; every method on an ONNX model with
 * no tensor left behind; batches (Score-CAM's) equal to single images on graphs that follow the batch, fix
 * it, or compute it from Shape; metadata and assumed presets; and every refusal and bad input, each with its
 * message. (The fixtures against PyTorch: onnxPytorch.test.ts.)
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/extension/engine/backend';
import { CamLensError } from '../../src/extension/engine/errors';
import { loadModel, labelOf, type LoadedModel } from '../../src/extension/engine/model';
import { describeModel, openImage } from '../../src/extension/engine/pipeline';
import { ImageSession, classScores } from '../../src/extension/engine/session';
import { METHODS } from '../../src/extension/engine/cam/registry';
import { candidatesOf } from '../../src/extension/engine/recommend';
import { computeFeatureMaps } from '../../src/extension/engine/featureMaps';
import { ScorePool } from '../../src/extension/engine/scorePool';
import { parseLabelList } from '../../src/extension/engine/formats/onnx/metadata';
import { SHARED, requireShared, tempDir } from '../helpers/modelFiles';
import { FIXTURES, correlation, expectedOf, inputTensor, modelPath } from './onnxFixtures';

const BAD = path.join(FIXTURES, 'bad');
const META = path.join(FIXTURES, 'meta');

async function rejects(p: Promise<unknown> | (() => unknown), code: string, pattern: RegExp): Promise<CamLensError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(e instanceof CamLensError, `expected a CamLensError, got ${(e as Error)?.stack ?? e}`);
    assert.strictEqual(e.code, code, e.message);
    assert.match(e.message, pattern);
    return e;
  }
  return assert.fail(`expected ${code} matching ${pattern}`);
}

/** A copy of a fixture folder (or single files) in a temp dir, so that tests can add files beside it. */
function copyTo(files: string[], extra: Record<string, string> = {}): string {
  const dir = tempDir('cam-lens-onnx-');
  for (const f of files) fs.copyFileSync(f, path.join(dir, path.basename(f)));
  for (const [name, text] of Object.entries(extra)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

describe('ONNX models', function () {
  this.timeout(300000);
  before(async () => {
    await initBackend('cpu');
  });

  describe('the ONNX model-zoo MNIST (opset 8, CNTK export)', () => {
    const dir = path.join(SHARED, 'models', 'onnx_mnist8');
    let model: LoadedModel;
    before(async function () {
      requireShared(this);
      model = await loadModel(path.join(dir, 'opt-mnist.onnx'));
    });
    after(() => model?.dispose());

    it('loads with its input [1, 1, 28, 28], ten outputs and the labels beside it', () => {
      assert.strictEqual(model.format, 'onnx');
      assert.deepStrictEqual([model.inputHeight, model.inputWidth, model.inputChannels], [28, 28, 1]);
      assert.strictEqual(model.numOutputs, 10);
      assert.strictEqual(model.metadata.source, 'labels.txt');
      assert.strictEqual(path.basename(model.metadata.labelsFile ?? ''), 'mnist-labels.txt');
      assert.strictEqual(labelOf(model, 7), 'Seven');
      // One channel, channels first: [0,1] is assumed (ImageNet statistics are for RGB models).
      assert.strictEqual(model.metadata.preprocess, '[0,1]');
      assert.ok(model.metadata.preprocessAssumed);
      assert.strictEqual(model.graph.outputActivation, 'none');
    });

    for (const digit of [0, 3, 5, 7]) {
      it(`reads mnist_${digit}.jpg as ${digit}`, async () => {
        const { session } = await openImage(model, path.join(SHARED, 'images', `mnist_${digit}.jpg`));
        try {
          const [top] = await session.predictions(1);
          assert.strictEqual(top.index, digit, `read as ${top.label} (${top.probability})`);
          // The recommended layer: the last max-pool, whose 4x4 map the Reshape flattens.
          const r = await session.explain({ method: 'gradcam' });
          assert.strictEqual(r.layer, 'Pooling160');
          assert.deepStrictEqual([r.heatmap.width, r.heatmap.height], [4, 4]);
          const early = await session.explain({ method: 'gradcam', layer: 'ReLU114_Output_0' });
          assert.deepStrictEqual([early.heatmap.width, early.heatmap.height], [14, 14]);
          assert.ok(early.heatmap.rawMax > early.heatmap.rawMin);
        } finally {
          session.dispose();
        }
      });
    }

    it('runs a batch of images image by image (its Reshape fixes batch 1), with the same scores as one at a time', async () => {
      const g = model.graph as import('../../src/extension/engine/formats/onnx/onnxGraph').OnnxGraph;
      assert.ok(g.splitBatches, 'the literal Reshape to [1, 256] fixes the batch');
      const x = tf.randomUniform([3, 28, 28, 1], 0, 1, 'float32', 7) as tf.Tensor4D;
      const batch = await classScores(model, x, 4);
      for (let i = 0; i < 3; i++) {
        const one = tf.slice(x, [i, 0, 0, 0], [1, 28, 28, 1]) as tf.Tensor4D;
        const s = await classScores(model, one, 4);
        one.dispose();
        assert.ok(Math.abs(s.logits[0] - batch.logits[i]) < 1e-5);
      }
      x.dispose();
    });
  });

  describe('layers', () => {
    let model: LoadedModel;
    before(async () => {
      model = await loadModel(modelPath('resnet_tiny'));
    });
    after(() => model?.dispose());

    it('lists every node by name with its output tensors, NHWC shapes and parameters; recommends the last block', () => {
      const s = describeModel(model);
      assert.strictEqual(s.format, 'onnx');
      const conv = s.layers.find((l) => l.name === '/stem/stem.0/Conv');
      assert.ok(conv);
      assert.deepStrictEqual(conv.outputShape, [null, 32, 32, 8]);
      assert.strictEqual(conv.params, 8 * 3 * 5 * 5);
      assert.ok(conv.spatial);
      const pool = s.layers.find((l) => l.name === '/pool/MaxPool');
      assert.deepStrictEqual(pool?.outputShape, [null, 17, 17, 8], 'ceil_mode gives 17x17');
      assert.deepStrictEqual(s.layers.find((l) => l.name === '/Flatten')?.outputShape, [null, 16]);
      assert.strictEqual(s.recommendedLayer, '/layer2/relu_1/Relu');
      assert.strictEqual(s.totalParams, 8 * 75 + 4 * 8 + 2 * (8 * 72 + 4 * 8) + 16 * 72 + 16 * 144 + 16 * 8 + 3 * 4 * 16 + 16 * 10 + 10);
      assert.deepStrictEqual(s.layers.find((l) => l.name === '/layer1/relu_1/Relu')?.outputs, ['/layer1/relu_1/Relu_output_0'], 'layers list the output names');
      const g = model.graph;
      assert.strictEqual(g.op('/layer1/relu_1/Relu_output_0').name, '/layer1/relu_1/Relu', 'an output tensor name finds its node');
      assert.ok(g.hasOp('/layer1/relu_1/Relu_output_0'));
    });

    it('offers block outputs, not their convolutions and normalisations, as layer candidates', () => {
      const c = candidatesOf(describeModel(model).layers, Infinity);
      assert.ok(c.includes('/layer1/relu_1/Relu') && c.includes('/layer2/relu_1/Relu'), c.join(', '));
      for (const n of ['/layer1/conv1/Conv', '/layer1/bn1/BatchNormalization', '/stem/stem.0/Conv']) assert.ok(!c.includes(n), n);
    });

    it('refuses an unknown layer with the closest names and a hint', async () => {
      await rejects(() => model.graph.op('/layer1/relu_1'), 'UNKNOWN_LAYER', /no node or value named "\/layer1\/relu_1".*did you mean \/layer1\/relu_1\/Relu/);
    });

    it('gives a map at a fused value: the convolution inside Conv → BatchNormalization → Relu, fed and fetched', async () => {
      const session = new ImageSession(model, inputTensor('resnet_tiny'));
      try {
        for (const layer of ['/layer1/conv1/Conv', '/layer1/bn1/BatchNormalization', '/layer1/relu/Relu']) {
          const r = await session.explain({ method: 'gradcam', layer });
          assert.deepStrictEqual([r.heatmap.width, r.heatmap.height], [17, 17], layer);
          assert.ok(r.heatmap.rawMax > r.heatmap.rawMin, layer);
        }
        // The fused op's result equals the unfused chain's.
        const g = model.graph;
        const x = inputTensor('resnet_tiny');
        const relu = '/layer1/relu/Relu_output_0';
        const fused = g.run(new Map([[g.inputIds[0], x]]), [relu]).get(relu) as tf.Tensor;
        const parts = g.run(new Map([[g.inputIds[0], x]]), [relu, '/layer1/conv1/Conv_output_0']);
        const diff = tf.max(tf.abs(tf.sub(fused, parts.get(relu) as tf.Tensor))).dataSync()[0];
        assert.ok(diff < 1e-5, `fused and unfused differ by ${diff}`);
        tf.dispose([x, fused, ...parts.values()]);
      } finally {
        session.dispose();
      }
    });

    it('gives the inspector feature maps of an ONNX layer, channel by channel, with Grad-CAM weights', async () => {
      const session = new ImageSession(model, inputTensor('resnet_tiny'));
      try {
        const f = await computeFeatureMaps(session, { layer: '/layer1/relu_1/Relu_output_0', classIndex: 3 });
        assert.deepStrictEqual([f.width, f.height, f.channels], [17, 17, 8]);
        // Channel 2 of the payload is channel 2 of the NHWC activation, row-major.
        const a = session.activation('/layer1/relu_1/Relu').dataSync();
        for (const p of [0, 18, 288]) assert.strictEqual(f.values[2 * 289 + p], a[p * 8 + 2]);
        assert.strictEqual(f.weights?.length, 8);
      } finally {
        session.dispose();
      }
    });

    it('addresses the second output of a Split by its name', async () => {
      const m = await loadModel(modelPath('tf_style_nhwc'));
      try {
        const split = m.graph.ops.find((o) => o.className === 'Split' && o.outputs.length === 2);
        assert.ok(split, 'the model splits its channels');
        const second = m.graph.op(split.outputs[1]);
        assert.strictEqual(second.outputs[0], split.outputs[1]);
        assert.deepStrictEqual(second.outputShape, [null, 32, 32, 12]);
        const session = new ImageSession(m, inputTensor('tf_style_nhwc'));
        try {
          const r = await session.explain({ method: 'gradcam', layer: split.outputs[1] });
          assert.strictEqual(r.heatmap.width, second.outputShape[2]);
        } finally {
          session.dispose();
        }
      } finally {
        m.dispose();
      }
    });
  });

  describe('CAM and every method', () => {
    it('finds the linear head: Gemm (ResNet), MatMul + Add before a Softmax (tf2onnx-like), a 1x1 classifier before the pooling (identity)', async () => {
      for (const [name, layer] of [['resnet_tiny', '/layer2/relu_1/Relu'], ['tf_style_nhwc', '/Relu_3'], ['squeeze_mini', '/classifier/classifier.1/Relu']]) {
        const model = await loadModel(modelPath(name));
        const session = new ImageSession(model, inputTensor(name));
        try {
          const target = model.graph.op(layer);
          const c = await session.explain({ method: 'cam', layer: target.name });
          const g = await session.explain({ method: 'gradcam', layer: target.name });
          // With a GAP-then-linear head, Grad-CAM's weights are W[:, c] / (h w): the same map as CAM, h w times
          // smaller before normalisation (whose epsilon then weighs differently: compare the shapes).
          assert.ok(c.heatmap.rawMax > c.heatmap.rawMin, name);
          const r = correlation(c.heatmap.values, g.heatmap.values);
          assert.ok(r > 0.99999, `${name}: CAM and Grad-CAM correlate at ${r}`);
          const ratio = c.heatmap.rawMax / g.heatmap.rawMax;
          assert.ok(Math.abs(ratio - c.heatmap.width * c.heatmap.height) < 1e-2 * ratio, `${name}: raw ratio ${ratio}`);
        } finally {
          session.dispose();
          model.dispose();
        }
      }
    });

    it('refuses CAM where a LayerNormalization sits between the pooling and the classifier (ConvNeXt)', async () => {
      const model = await loadModel(modelPath('convnext_mini'));
      const session = new ImageSession(model, inputTensor('convnext_mini'));
      try {
        await rejects(session.explain({ method: 'cam', layer: '/stage2/Add' }), 'METHOD_NOT_APPLICABLE', /the pooled features go to LayerNormalization "\/norm\/LayerNormalization"/);
        await rejects(session.explain({ method: 'cam', layer: '/stem/stem.1/Transpose_1_output_0' }), 'METHOD_NOT_APPLICABLE', /branches into 2 nodes/);
      } finally {
        session.dispose();
        model.dispose();
      }
    });

    for (const backend of ['cpu', 'wasm'] as const) {
      it(`runs every method on an ONNX model on ${backend}, and repeated runs leave no tensor behind`, async () => {
        await initBackend(backend);
        const model = await loadModel(modelPath('resnet_tiny'));
        try {
          const run = async () => {
            const session = new ImageSession(model, inputTensor('resnet_tiny'));
            try {
              // Class activation maps (pixel saliency on ONNX models: test/engine/saliency.test.ts).
              for (const m of METHODS.filter((x) => x.group !== 'pixel')) {
                const r = await session.explain({ method: m.id, layer: '/layer2/relu_1/Relu', options: { topChannels: 8 } });
                assert.ok(r.heatmap.values.every((v) => v >= 0 && v <= 1 && Number.isFinite(v)), m.id);
              }
            } finally {
              session.dispose();
            }
          };
          await run();
          const before = tf.memory().numTensors;
          await run();
          await run();
          assert.strictEqual(tf.memory().numTensors, before, 'tensors left behind');
        } finally {
          model.dispose();
          await initBackend('cpu');
        }
      });
    }

    it('runs Score-CAM in pool workers that load the ONNX file by path, with the same map as this thread', async () => {
      const file = modelPath('tf_style_nhwc');
      const model = await loadModel(file);
      const pool = new ScorePool({ modelPath: file, workers: 1, useCallerThread: false, backend: 'cpu' });
      const s = new ImageSession(model, inputTensor('tf_style_nhwc'));
      try {
        assert.strictEqual(await pool.whenReady(), 1, pool.failures().join('; '));
        const local = await s.explain({ method: 'scorecam', layer: '/Relu_3', options: { batchSize: 8, topChannels: 16 } });
        const pooled = await s.explain({ method: 'scorecam', layer: '/Relu_3', options: { batchSize: 8, topChannels: 16 }, pool });
        let worst = 0;
        for (let i = 0; i < local.heatmap.values.length; i++) worst = Math.max(worst, Math.abs(local.heatmap.values[i] - pooled.heatmap.values[i]));
        assert.ok(local.heatmap.rawMax > local.heatmap.rawMin);
        assert.ok(worst <= 1e-6, `worker map differs by ${worst}`);
      } finally {
        s.dispose();
        model.dispose();
        await pool.close();
      }
    });

    it('scores batches like single images where the graph computes the batch from Shape (dynamic axes)', async () => {
      const model = await loadModel(modelPath('shufflenet_dynamic'));
      try {
        const g = model.graph as import('../../src/extension/engine/formats/onnx/onnxGraph').OnnxGraph;
        assert.ok(!g.splitBatches, g.splitReason);
        const x = tf.randomNormal([3, 64, 64, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
        const batch = await classScores(model, x, 2);
        for (let i = 0; i < 3; i++) {
          const one = tf.slice(x, [i, 0, 0, 0], [1, 64, 64, 3]) as tf.Tensor4D;
          const s = await classScores(model, one, 2);
          one.dispose();
          assert.ok(Math.abs(s.logits[0] - batch.logits[i]) < 1e-4, `image ${i}: ${s.logits[0]} vs ${batch.logits[i]}`);
        }
        x.dispose();
      } finally {
        model.dispose();
      }
    });
  });

  describe('operators no exported fixture uses (ops11.onnx, ops13.onnx against numpy)', () => {
    const dir = path.join(FIXTURES, 'ops');
    const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected_logits.json'), 'utf8')) as { logSoftmax: number[] };
    const input = (): tf.Tensor4D => {
      const b = fs.readFileSync(path.join(dir, 'input.bin'));
      return tf.tidy(() => tf.transpose(tf.tensor4d(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), [1, 3, 16, 16]), [0, 2, 3, 1]) as tf.Tensor4D);
    };
    for (const backend of ['cpu', 'wasm'] as const) {
      for (const opset of [11, 13]) {
        it(`opset ${opset} on ${backend}: the probabilities match, and gradients through Split, reflect Pad, strided Slice and Gather match finite differences`, async () => {
          await initBackend(backend);
          const model = await loadModel(path.join(dir, `ops${opset}.onnx`));
          const session = new ImageSession(model, input());
          try {
            assert.strictEqual(model.graph.outputActivation, 'softmax', 'the final LogSoftmax is bypassed for the logits');
            const probs = await session.probabilities();
            const d = Math.max(...expected.logSoftmax.map((l, i) => Math.abs(Math.exp(l) - probs[i])));
            assert.ok(d < 1e-5, `probabilities differ from numpy's by ${d}`);
            // tf.grad at the Elu output against central differences of the logit.
            const g = model.graph;
            const c = 2;
            const a = session.activation('elu');
            const grad = (await session.gradient('elu', c).data()) as Float32Array;
            const order = Array.from(grad.keys()).sort((i, j) => Math.abs(grad[j]) - Math.abs(grad[i])).slice(0, 12);
            let checked = 0;
            for (const i of order) {
              const logit = (delta: number) => tf.tidy(() => {
                const bump = new Float32Array(a.size);
                bump[i] = delta;
                const fed = tf.add(a, tf.tensor(bump, a.shape));
                const out = g.run(new Map([['e', fed]]), [g.outputIds[0]], { logits: true }).get(g.outputIds[0]) as tf.Tensor;
                return out.dataSync()[c];
              });
              const h = 2e-3;
              const [up, mid, down] = [logit(h), logit(0), logit(-h)];
              // Max and GlobalMaxPool have kinks: skip an element where the one-sided slopes disagree.
              if (Math.abs((up - mid) - (mid - down)) > 0.1 * Math.abs(up - down) / 2) continue;
              const num = (up - down) / (2 * h);
              assert.ok(Math.abs(num - grad[i]) <= 2e-2 * Math.abs(grad[i]) + 1e-3, `element ${i}: tf.grad ${grad[i]}, finite differences ${num}`);
              checked++;
            }
            assert.ok(checked >= 4, `only ${checked} elements away from kinks`);
            const r = await session.explain({ method: 'gradcam', layer: 'mul', classChoice: c });
            assert.ok(r.heatmap.rawMax > r.heatmap.rawMin);
          } finally {
            session.dispose();
            model.dispose();
            await initBackend('cpu');
          }
        });
      }
    }
  });

  describe('metadata', () => {
    it('reads labels and the preset from metadata_props (a JSON list; a Python dict and Windows ML pixel range)', async () => {
      const a = await loadModel(path.join(META, 'props.onnx'));
      const b = await loadModel(path.join(META, 'props_dict.onnx'));
      try {
        assert.deepStrictEqual(a.metadata.labels, ['cat', 'dog', 'bird']);
        assert.strictEqual(a.metadata.source, 'metadata_props');
        assert.strictEqual(a.metadata.preprocess, '[-1,1]');
        assert.ok(!a.metadata.preprocessAssumed);
        assert.deepStrictEqual(b.metadata.labels, ['red', 'green', 'blue']);
        assert.strictEqual(b.metadata.preprocess, '[0,255]');
      } finally {
        a.dispose();
        b.dispose();
      }
    });

    it('parses label lists in each form and names a broken one', () => {
      assert.deepStrictEqual(parseLabelList('k', '["a", "b"]'), ['a', 'b']);
      assert.deepStrictEqual(parseLabelList('k', '{"1": "b", "0": "a"}'), ['a', 'b']);
      assert.deepStrictEqual(parseLabelList('k', "{0: 'a', 1: \"b c\"}"), ['a', 'b c']);
      assert.deepStrictEqual(parseLabelList('k', 'a\nb\n'), ['a', 'b']);
      assert.deepStrictEqual(parseLabelList('k', 'a, b'), ['a', 'b']);
      assert.throws(() => parseLabelList('names', '{0: a}'), /metadata_props "names" is neither JSON nor a Python dict of labels/);
      assert.throws(() => parseLabelList('names', '{"0": "a", "2": "c"}'), /has no label for class 1/);
    });

    it('assumes the ImageNet class names for 1000 outputs, and a background class first for 1001, marked assumed', async () => {
      const a = await loadModel(path.join(META, 'classes1000.onnx'));
      const b = await loadModel(path.join(META, 'classes1001.onnx'));
      try {
        assert.strictEqual(a.metadata.labels.length, 1000);
        assert.strictEqual(a.metadata.labels[0], 'tench');
        assert.strictEqual(a.metadata.labels[281], 'tabby');
        assert.ok(a.metadata.labelsAssumed);
        assert.strictEqual(a.metadata.source, 'imagenet');
        assert.strictEqual(describeModel(a).labelsFrom, 'imagenet');
        assert.strictEqual(b.metadata.labelOffset, 1);
        assert.strictEqual(labelOf(b, 1), 'tench');
        assert.strictEqual(labelOf(b, 0), 'background');
      } finally {
        a.dispose();
        b.dispose();
      }
    });

    it('prefers labels.txt over nothing, metadata_props over labels.txt, <file>.cam-lens.json over both', async () => {
      const labels = 'one\ntwo\nthree\n';
      let dir = copyTo([path.join(META, 'classes1000.onnx')]);
      fs.copyFileSync(path.join(META, 'props.onnx'), path.join(dir, 'props.onnx'));
      fs.writeFileSync(path.join(dir, 'labels.txt'), labels);
      let m = await loadModel(path.join(dir, 'props.onnx'));
      assert.deepStrictEqual(m.metadata.labels, ['cat', 'dog', 'bird'], 'metadata_props beat labels.txt');
      m.dispose();
      fs.writeFileSync(path.join(dir, 'props.cam-lens.json'), JSON.stringify({ labels: ['x', 'y', 'z'], preprocess: 'caffe' }));
      m = await loadModel(path.join(dir, 'props.onnx'));
      assert.deepStrictEqual(m.metadata.labels, ['x', 'y', 'z']);
      assert.strictEqual(m.metadata.preprocess, 'caffe');
      m.dispose();
      dir = copyTo([path.join(BAD, 'valid.onnx')], { 'labels.txt': 'a\nb\nc\nd\n' });
      m = await loadModel(path.join(dir, 'valid.onnx'));
      assert.strictEqual(m.metadata.source, 'labels.txt');
      assert.strictEqual(labelOf(m, 3), 'd');
      m.dispose();
    });

    it('takes a dynamic input size from <file>.cam-lens.json, else 224', async () => {
      const m = await loadModel(modelPath('shufflenet_dynamic'));
      assert.deepStrictEqual([m.inputHeight, m.inputWidth], [64, 64]);
      m.dispose();
      const dir = copyTo([modelPath('shufflenet_dynamic')]);
      const n = await loadModel(path.join(dir, 'shufflenet_dynamic.onnx'));
      assert.deepStrictEqual([n.inputHeight, n.inputWidth], [224, 224]);
      assert.deepStrictEqual(describeModel(n).layers.find((l) => l.name === '/stage3/stage3.1/Reshape_1')?.outputShape, [null, 14, 14, 32]);
      n.dispose();
    });

    it('suggests a preset, marked assumed: imagenet for RGB channels-first, [0,255] where the model rescales, else [0,1]', async () => {
      const cases: [string, string, string | undefined][] = [
        ['resnet_tiny', 'imagenet', 'channels-first export'],
        ['tf_style_nhwc', '[0,255]', 'inside the model'],
        ['gray_mini', '[0,1]', undefined],
      ];
      for (const [name, preset, note] of cases) {
        const m = await loadModel(modelPath(name));
        try {
          assert.strictEqual(m.metadata.preprocess, preset, name);
          assert.ok(m.metadata.preprocessAssumed, name);
          assert.strictEqual(m.metadata.preprocessNote, note, name);
        } finally {
          m.dispose();
        }
      }
      const m = await loadModel(modelPath('resnet_tiny'), { overrides: { preprocess: '[0,1]' } });
      assert.strictEqual(m.metadata.preprocess, '[0,1]');
      assert.ok(!m.metadata.preprocessAssumed);
      m.dispose();
    });

    it('reads the probe image through the assumed preset as the fixture input', async () => {
      const m = await loadModel(modelPath('tf_style_nhwc'));
      const { session } = await openImage(m, path.join(FIXTURES, 'tf_style_nhwc', 'probe.png'));
      try {
        const probs = await session.probabilities();
        const e = expectedOf('tf_style_nhwc');
        const d = Math.max(...e.probabilities.map((p, i) => Math.abs(p - probs[i])));
        assert.ok(d < 1e-4, `differs by ${d}`);
      } finally {
        session.dispose();
        m.dispose();
      }
    });

    it('refuses labels that do not match the outputs, naming where they came from', async () => {
      const dir = copyTo([path.join(BAD, 'valid.onnx')], { 'labels.txt': 'a\nb\n' });
      await rejects(loadModel(path.join(dir, 'valid.onnx')), 'METADATA_INVALID', /the model has 4 outputs but .*labels\.txt lists 2 labels/);
    });
  });

  describe('refusals and bad input', () => {
    const cases: [string, string, RegExp][] = [
      ['unsupported_op.onnx', 'UNSUPPORTED_MODEL', /uses an operator CAM Lens does not run: Einsum \(node "the_einsum"\)/],
      ['other_domain.onnx', 'UNSUPPORTED_MODEL', /FusedRelu \(domain com\.microsoft\) \(node "contrib_relu"\)/],
      ['control_flow.onnx', 'UNSUPPORTED_MODEL', /If \(control flow\) \(node "the_if"\)/],
      ['bad_attribute.onnx', 'UNSUPPORTED_MODEL', /operator MaxPool \(node "dilated_pool"\): dilations \[2, 2\] are not supported/],
      ['bad_auto_pad.onnx', 'UNSUPPORTED_MODEL', /operator Conv \(node "conv"\): auto_pad "SAME_MIDDLE" is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID/],
      ['weight_size.onnx', 'MODEL_INVALID', /initializer "w" has 288 bytes of data, but its shape \[4, 3, 3, 3\] of float needs 432/],
      ['weight_shape.onnx', 'MODEL_INVALID', /node "conv" \(Conv\): weight of shape \[4, 2, 3, 3\] with group 1 does not fit an input with 3 channels/],
      ['huge_dims.onnx', 'MODEL_INVALID', /initializer "w" has shape \[1000000, 1000000\] \(1000000000000 elements\), more than CAM Lens loads/],
      ['huge_constant.onnx', 'MODEL_INVALID', /node "huge_constant" \(ConstantOfShape\): would build a constant of shape \[1, 1, 100000, 100000\] \(10000000000 values\)/],
      ['external_escape.onnx', 'WEIGHT_PATH_ESCAPE', /refusing external data file of initializer "w" "\.\.\/outside\.bin"/],
      ['external_absolute.onnx', 'WEIGHT_PATH_ESCAPE', /refusing external data file of initializer "w" "\/etc\/passwd": an absolute path/],
      ['external_missing.onnx', 'SHARD_MISSING', /the external data file "missing\.bin" of initializer "w" is missing/],
      ['external_short.onnx', 'SHARD_SIZE_MISMATCH', /initializer "w" reads bytes 0\.\.432 of "short\.bin", which has 100 bytes/],
      ['four_channels.onnx', 'UNSUPPORTED_MODEL', /the input "x" has shape \[1, 4, 8, 8\]: 4 channels; CAM Lens feeds 1 \(grayscale\) or 3 \(RGB\)/],
      ['old_opset.onnx', 'UNSUPPORTED_MODEL', /opset 6 is older than CAM Lens reads \(7 and newer\)/],
      ['no_graph.onnx', 'MODEL_INVALID', /no_graph\.onnx is not an ONNX model: it has no graph/],
    ];
    for (const [file, code, pattern] of cases) {
      it(`refuses ${file}: ${pattern.source.slice(0, 60).replace(/\\/g, '')}`, async () => {
        await rejects(loadModel(path.join(BAD, file)), code, pattern);
      });
    }

    it('explains the classifier of a graph with two outputs (y, and the feature map r), and refuses r as a classifier', async () => {
      const m = await loadModel(path.join(BAD, 'two_outputs.onnx'));
      assert.deepStrictEqual([m.output, m.numOutputs, m.outputs.map((o) => o.name)], ['y', 4, ['y', 'r']]);
      m.dispose();
      await rejects(loadModel(path.join(BAD, 'two_outputs.onnx'), { output: 'r' }), 'UNSUPPORTED_MODEL', /the output "r" has shape \[1, 4, 8, 8\]; an image classifier outputs \[batch, classes\]/);
    });

    it('loads the valid little model those are made from', async () => {
      const m = await loadModel(path.join(BAD, 'valid.onnx'));
      assert.strictEqual(m.numOutputs, 4);
      m.dispose();
    });

    it('refuses a truncated file at every cut, naming where it ends', async () => {
      const bytes = fs.readFileSync(modelPath('resnet_tiny'));
      const dir = tempDir('cam-lens-onnx-cut-');
      const file = path.join(dir, 'cut.onnx');
      for (const cut of [0, 1, 7, 100, 1000, Math.floor(bytes.length / 2), bytes.length - 1]) {
        fs.writeFileSync(file, bytes.subarray(0, cut));
        const e = await rejects(loadModel(file), 'MODEL_INVALID', cut === 0 ? /the file is empty/ : /cut\.onnx is not a readable ONNX model: .* \(in .*, byte \d+ of \d+\)|it has no graph/);
        assert.ok(e.hint === undefined || /truncated or corrupt|exporter/.test(e.hint));
      }
    });

    it('answers 60 corruptions of a model with a CamLensError or a model, never another error', async () => {
      const bytes = fs.readFileSync(path.join(BAD, 'valid.onnx'));
      const dir = tempDir('cam-lens-onnx-bits-');
      const file = path.join(dir, 'corrupt.onnx');
      let seed = 12345;
      const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
      let refused = 0;
      for (let k = 0; k < 60; k++) {
        const b = Buffer.from(bytes);
        const n = 1 + Math.floor(rand() * 4);
        for (let j = 0; j < n; j++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
        fs.writeFileSync(file, b);
        try {
          const m = await loadModel(file);
          const s = new ImageSession(m, tf.zeros([1, m.inputHeight, m.inputWidth, m.inputChannels]) as tf.Tensor4D);
          try {
            await s.predictions(1);
          } finally {
            s.dispose();
            m.dispose();
          }
        } catch (e) {
          assert.ok(e instanceof CamLensError, `corruption ${k}: ${(e as Error)?.stack ?? e}`);
          refused++;
        }
      }
      assert.ok(refused > 10, `only ${refused} of 60 corruptions were refused`);
    });

    it('refuses a text file named .onnx, and a missing file', async () => {
      const dir = copyTo([], { 'model.onnx': '{"modelTopology": {}}' });
      await rejects(loadModel(path.join(dir, 'model.onnx')), 'MODEL_INVALID', /model\.onnx is not a readable ONNX model|it has no graph/);
      await rejects(loadModel(path.join(dir, 'absent.onnx')), 'FILE_NOT_FOUND', /model file not found/);
    });
  });
});

