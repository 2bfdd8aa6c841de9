/**
 * ONNX fixtures against PyTorch (scripts/fixtures/make_onnx.py wrote the models and the expected outputs):
 * for each fixture, on cpu and on wasm, the probabilities equal PyTorch's softmax of its logits (max abs
 * difference 1e-4), and the Grad-CAM, HiResCAM and LayerCAM maps at two layers correlate with PyTorch's at
 * r >= 0.999 at the layer's own spatial size (the probe image is asymmetric, so a map upside down or
 * mirrored fails). Layers are addressed by ONNX node name, and once per fixture by output tensor name.
 */
import * as assert from 'assert';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession } from '../../src/extension/engine/session';
import { FIXTURE_NAMES, correlation, expectedOf, inputTensor, modelPath } from './onnxFixtures';

function softmax(z: number[]): number[] {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

const METHODS = ['gradcam', 'hirescam', 'layercam'] as const;

/** Results printed once per run for the report (min r per method and layer, max softmax difference). */
const summary: string[] = [];

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`ONNX fixtures against PyTorch on ${backend}`, function () {
    this.timeout(300000);
    before(async () => {
      await initBackend(backend);
    });
    after(() => {
      if (backend === 'wasm' && summary.length && process.env.CAM_LENS_ONNX_SUMMARY) console.log(summary.join('\n'));
    });

    for (const name of FIXTURE_NAMES) {
      it(`${name}: the probabilities and the three maps at two layers match PyTorch`, async () => {
        const e = expectedOf(name);
        const model: LoadedModel = await loadModel(modelPath(name));
        const session = new ImageSession(model, inputTensor(name));
        try {
          assert.strictEqual(model.format, 'onnx');
          const probs = await session.probabilities();
          const want = softmax(e.logits);
          assert.strictEqual(probs.length, want.length);
          const diff = Math.max(...want.map((p, i) => Math.abs(p - probs[i])));
          assert.ok(diff <= 1e-4, `softmax differs from PyTorch's by ${diff}`);
          const line = [`${backend} ${name}: softmax max abs diff ${diff.toExponential(2)}`];
          for (const [li, layer] of e.layers.entries()) {
            for (const method of METHODS) {
              // The first layer by node name, the second by its output tensor's name.
              const target = li === 0 ? layer.node : layer.output;
              const r = await session.explain({ method, layer: target, classChoice: e.classIndex });
              assert.strictEqual(r.heatmap.width, layer.width, `${method} at ${target}: width`);
              assert.strictEqual(r.heatmap.height, layer.height, `${method} at ${target}: height`);
              const corr = correlation(r.heatmap.values, layer.maps[method]);
              assert.ok(corr >= 0.999, `${method} at ${target} (${layer.module}): r = ${corr}`);
              line.push(`${layer.module} ${method} 1-r=${(1 - corr).toExponential(1)}`);
            }
          }
          summary.push(line.join('; '));
        } finally {
          session.dispose();
          model.dispose();
        }
      });
    }
  });
}
