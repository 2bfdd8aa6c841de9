/**
 * ONNX Runtime for forward-only work on ONNX models (formats/onnx/ortRuntime.ts, engine/forward.ts): the same
 * probabilities (max abs difference 1e-4) and the same Score-CAM maps (correlation >= 0.9999) as the tfjs graph
 * on every fixture; the logits read where they are not a graph output (the model's bytes rewritten); batches of
 * models fixed at batch 1; tfjs when the setting is off or the module does not load; no tensor left behind.
 * Skips, saying so, where onnxruntime-node does not load on this platform.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as esbuild from 'esbuild';
import { EngineClient } from '../../src/extension/engineClient';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession, classScores } from '../../src/extension/engine/session';
import { predictBatch } from '../../src/extension/engine/scan/scan';
import { ScorePool } from '../../src/extension/engine/scorePool';
import { readModelProto } from '../../src/extension/engine/formats/onnx/proto';
import {
  loadOrt, nativeStatus, onnxRuntimeSetting, setOnnxRuntime, setOrtLoaderForTests, withExtraOutputs,
} from '../../src/extension/engine/formats/onnx/ortRuntime';
import type { LoadedOnnxModel } from '../../src/extension/engine/formats/onnx/load';
import { FIXTURES, FIXTURE_NAMES, correlation, inputTensor, modelPath } from './onnxFixtures';
import { ROOT, ensureBuilt } from '../helpers/build';
import { skipBecause } from '../helpers/skip';

/** Every fixture, and the ones whose logits are not a graph output (softmax and sigmoid heads). */
const MODELS: [string, string][] = ([
  ...FIXTURE_NAMES.map((n): [string, string] => [n, modelPath(n)]),
  ['heads (3 outputs, sigmoid)', path.join(FIXTURES, 'heads', 'heads.onnx')],
  ['binary (one sigmoid unit)', path.join(FIXTURES, 'heads', 'binary.onnx')],
] as [string, string][]).filter(([, f]) => fs.existsSync(f));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** A deterministic batch [n, H, W, C] in [0, 1] for a model. */
function batchFor(model: LoadedModel, n: number, seed: number): tf.Tensor4D {
  return tf.randomUniform([n, model.inputHeight, model.inputWidth, model.inputChannels], 0, 1, 'float32', seed) as tf.Tensor4D;
}

async function probabilitiesWith(runtime: 'auto' | 'off', model: LoadedModel, input: tf.Tensor4D): Promise<Float32Array> {
  setOnnxRuntime(runtime);
  const s = new ImageSession(model, tf.clone(input));
  try {
    return Float32Array.from(await s.probabilities());
  } finally {
    s.dispose();
  }
}

describe('ONNX Runtime for forward-only work (formats/onnx/ortRuntime.ts)', function () {
  this.timeout(120_000);

  before(async function () {
    await initBackend('wasm', { threads: 1 });
    const { reason } = loadOrt();
    if (reason) skipBecause(this, 'optional-absent', `onnxruntime-node does not load: ${reason}`);
  });

  afterEach(() => {
    setOnnxRuntime('auto');
    setOrtLoaderForTests();
  });

  it('appends graph outputs to a model\'s bytes that our reader reads back, every other field as it was', function () {
    const file = path.join(FIXTURES, 'tf_style_nhwc', 'tf_style_nhwc.onnx');
    const bytes = new Uint8Array(fs.readFileSync(file));
    const before = readModelProto(bytes, 'a.onnx');
    const after = readModelProto(withExtraOutputs(bytes, ['/Add_output_0', 'x_ü']), 'b.onnx');
    assert.ok(before.graph && after.graph);
    assert.deepEqual(after.graph.outputs.map((o) => o.name), [...before.graph.outputs.map((o) => o.name), '/Add_output_0', 'x_ü']);
    assert.equal(after.graph.nodes.length, before.graph.nodes.length);
    assert.equal(after.graph.initializers.length, before.graph.initializers.length);
    assert.deepEqual(after.opsetImports, before.opsetImports);
    assert.deepEqual(after.metadataProps, before.metadataProps);
    assert.throws(() => withExtraOutputs(new Uint8Array([8, 7]), ['y']), /no graph/);
  });

  for (const [name, file] of MODELS) {
    it(`${name}: the same probabilities on ONNX Runtime and on tfjs (max abs difference <= 1e-4), and no tensor left`, async function () {
      const model = (await loadModel(file)) as LoadedOnnxModel;
      const x = FIXTURE_NAMES.includes(name) ? inputTensor(name) : batchFor(model, 1, 7);
      try {
        const ref = await probabilitiesWith('off', model, x);
        const before = tf.memory().numTensors;
        const got = await probabilitiesWith('auto', model, x);
        assert.deepEqual(await nativeStatus(model), { runtime: 'onnxruntime' });
        assert.equal(tf.memory().numTensors, before, 'tensors left by the ONNX Runtime forward pass');
        const d = maxAbsDiff(ref, got);
        assert.ok(d <= 1e-4, `max abs difference ${d.toExponential(2)}`);
        // The probabilities are not all equal (a model whose logits were lost would give a uniform row).
        assert.ok(Math.max(...got) - Math.min(...got) > 1e-3, `flat probabilities ${Array.from(got.slice(0, 4))}`);
      } finally {
        x.dispose();
        model.dispose();
      }
    });
  }

  it('scores a batch of 3 as tfjs does, also on a model fixed at batch 1 (run image by image) and with a softmax head', async function () {
    for (const name of ['mobilenet_v2', 'tf_style_nhwc']) {
      const model = await loadModel(modelPath(name));
      const x = batchFor(model, 3, 11);
      try {
        setOnnxRuntime('off');
        const ref = await classScores(model, x, 1);
        setOnnxRuntime('auto');
        const before = tf.memory().numTensors;
        const got = await classScores(model, x, 1);
        assert.equal(tf.memory().numTensors, before, `${name}: tensors left`);
        assert.equal(got.probabilities.length, 3);
        assert.ok(maxAbsDiff(ref.probabilities, got.probabilities) <= 1e-4, `${name}: probabilities ${ref.probabilities} vs ${got.probabilities}`);
        assert.ok(maxAbsDiff(ref.logits, got.logits) <= 1e-3, `${name}: logits ${ref.logits} vs ${got.logits}`);
        assert.deepEqual(await nativeStatus(model as LoadedOnnxModel), { runtime: 'onnxruntime' });
      } finally {
        x.dispose();
        model.dispose();
      }
    }
  });

  it('gives the same Score-CAM map on ONNX Runtime as on tfjs (correlation >= 0.9999), with no tensor left', async function () {
    for (const name of ['mobilenet_v2', 'resnet_tiny', 'tf_style_nhwc']) {
      const model = await loadModel(modelPath(name));
      const x = inputTensor(name);
      try {
        const run = async (runtime: 'auto' | 'off') => {
          setOnnxRuntime(runtime);
          const s = new ImageSession(model, tf.clone(x));
          try {
            const r = await s.explain({ method: 'scorecam', options: { batchSize: 8 } });
            return { map: Float32Array.from(r.heatmap.values), classIndex: r.target.index };
          } finally {
            s.dispose();
          }
        };
        const ref = await run('off');
        const before = tf.memory().numTensors;
        const got = await run('auto');
        assert.equal(tf.memory().numTensors, before, `${name}: tensors left`);
        assert.equal(got.classIndex, ref.classIndex);
        const r = correlation(ref.map, got.map);
        assert.ok(r >= 0.9999, `${name}: correlation ${r}`);
        assert.deepEqual(await nativeStatus(model as LoadedOnnxModel), { runtime: 'onnxruntime' });
      } finally {
        x.dispose();
        model.dispose();
      }
    }
  });

  it('gives the same Score-CAM map with the masked batches in a pool worker on ONNX Runtime (correlation >= 0.9999)', async function () {
    const file = modelPath('mobilenet_v2');
    const model = await loadModel(file);
    const x = inputTensor('mobilenet_v2');
    setOnnxRuntime('off');
    const s = new ImageSession(model, tf.clone(x));
    let pool: ScorePool | undefined;
    try {
      const ref = await s.explain({ method: 'scorecam' });
      // The pool's worker takes this thread's setting when it starts.
      setOnnxRuntime('auto');
      pool = new ScorePool({ modelPath: file, workers: 1, useCallerThread: false, backend: 'wasm' });
      assert.equal(await pool.whenReady(), 1, pool.failures().join('; '));
      const pooled = await s.explain({ method: 'scorecam', pool });
      const r = correlation(ref.heatmap.values, pooled.heatmap.values);
      assert.ok(r >= 0.9999, `correlation ${r}`);
    } finally {
      s.dispose();
      x.dispose();
      model.dispose();
      await pool?.close();
    }
  });

  it('gives the scan the same probabilities on both runtimes (predictBatch)', async function () {
    const model = await loadModel(modelPath('resnet_tiny'));
    const x = batchFor(model, 4, 3);
    try {
      const rows = Array.from({ length: 4 }, (_, i) => (x.dataSync() as Float32Array).slice(i * (x.size / 4), (i + 1) * (x.size / 4)));
      setOnnxRuntime('off');
      const ref = await predictBatch(model, rows);
      setOnnxRuntime('auto');
      const got = await predictBatch(model, rows);
      ref.forEach((r, i) => assert.ok(maxAbsDiff(r, got[i]) <= 1e-4, `image ${i}`));
    } finally {
      x.dispose();
      model.dispose();
    }
  });

  it('runs on tfjs, with the reason, when onnxruntime-node does not load', async function () {
    setOrtLoaderForTests(() => {
      throw new Error('Cannot find module \'../bin/napi-v6/linux/riscv64/onnxruntime_binding.node\'');
    });
    const model = (await loadModel(modelPath('resnet_tiny'))) as LoadedOnnxModel;
    const x = inputTensor('resnet_tiny');
    try {
      const got = await probabilitiesWith('auto', model, x);
      const status = await nativeStatus(model);
      assert.equal(status.runtime, 'tfjs');
      assert.match(status.reason ?? '', /onnxruntime-node does not load .*riscv64/);
      const ref = await probabilitiesWith('off', model, x);
      assert.deepEqual(got, ref, 'the fallback is the tfjs graph itself');
    } finally {
      x.dispose();
      model.dispose();
    }
  });

  it('runs on tfjs when the setting is off, and refuses an unknown setting', async function () {
    setOnnxRuntime('off');
    assert.equal(onnxRuntimeSetting(), 'off');
    const model = (await loadModel(modelPath('resnet_tiny'))) as LoadedOnnxModel;
    const x = inputTensor('resnet_tiny');
    try {
      await probabilitiesWith('off', model, x);
      assert.deepEqual(await nativeStatus(model), { runtime: 'tfjs', reason: 'the ONNX runtime setting is off' });
    } finally {
      x.dispose();
      model.dispose();
    }
    assert.throws(() => setOnnxRuntime('gpu' as 'auto'), /unknown ONNX runtime "gpu"/);
  });
});

describe('cam-lens --onnx-runtime', function () {
  this.timeout(240_000);
  const cli = path.join(ROOT, 'dist', 'cli.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });

  before(function () {
    ensureBuilt(['cli.js'], ['src']);
  });

  it('predicts the same probabilities with auto and off, and refuses another value as usage', function () {
    const model = modelPath('mobilenet_v2');
    const image = path.join(FIXTURES, 'mobilenet_v2', 'probe.png');
    const probs = (runtime: string) => {
      const r = run('predict', '--model', model, '--image', image, '--top', '3', '--json', '-', '--onnx-runtime', runtime);
      assert.equal(r.status, 0, r.stderr);
      return (JSON.parse(r.stdout).predictions as { index: number; probability: number }[]);
    };
    const auto = probs('auto');
    const off = probs('off');
    assert.deepEqual(auto.map((p) => p.index), off.map((p) => p.index));
    auto.forEach((p, i) => assert.ok(Math.abs(p.probability - off[i].probability) <= 1e-4, `${p.probability} vs ${off[i].probability}`));
    const bad = run('predict', '--model', model, '--image', image, '--onnx-runtime', 'gpu');
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /unknown ONNX runtime "gpu": expected auto, off/);
  });
});

describe('the engine worker\'s ONNX runtime setting (WorkerOptions.onnxRuntime, backend/set)', function () {
  this.timeout(240_000);
  let client: EngineClient | undefined;

  before(async function () {
    const { reason } = loadOrt();
    if (reason) skipBecause(this, 'optional-absent', `onnxruntime-node does not load: ${reason}`);
    const outfile = path.join(ROOT, 'node_modules', '.cache', 'cam-lens-test', 'worker-ort.js');
    await esbuild.build({
      entryPoints: [path.join(ROOT, 'src', 'extension', 'worker.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node18',
      outfile, external: ['vscode', 'sharp', '@tensorflow/*', 'onnxruntime-node'], logLevel: 'warning',
    });
    client = new EngineClient({ workerPath: outfile, backend: 'wasm', threads: 1, onnxRuntime: 'off' });
  });

  after(async () => {
    await client?.dispose();
  });

  it('takes the setting from the host (off) and from backend/set (auto) with the same Score-CAM map, and refuses another value', async function () {
    const c = client as EngineClient;
    const req = { model: { path: modelPath('resnet_tiny') }, image: { path: path.join(FIXTURES, 'resnet_tiny', 'probe.png') }, method: 'scorecam' };
    const off = await c.computeCam(req);
    const status = await c.setBackend('wasm', undefined, 1, 'auto');
    assert.equal(status.name, 'wasm');
    const auto = await c.computeCam(req);
    assert.equal(auto.target.index, off.target.index);
    const r = correlation(off.heatmap.values, auto.heatmap.values);
    assert.ok(r >= 0.9999, `correlation ${r}`);
    await assert.rejects(c.setBackend('wasm', undefined, 1, 'gpu' as 'auto'), /onnxRuntime: auto or off/);
  });
});
