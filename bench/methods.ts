/**
 * `npm run bench` (methods): the pixel-level saliency methods of #15 (engine/saliency) against a forward pass, on
 * the bundled demo model (models/demo, 96x96) and the reference MobileNet v1 0.25 (224x224, ../shared/reference;
 * skipped where absent), wasm backend by default. Per model it prints:
 *
 *   forward            one forward pass (ImageSession.logits on a fresh session), median ms;
 *   each method        with its default options, end to end on a fresh image (the forward pass included), median
 *                      ms and the ratio to the forward pass measured in the same rounds (median / median);
 *   batched vs 1 by 1  SmoothGrad (16 samples) and Integrated Gradients (32 steps) with their default batches and
 *                      with batch size 1: time per sample (one forward-and-backward pass each), and the speed-up.
 *
 *   node --expose-gc --import tsx bench/methods.ts [--backend wasm|cpu] [--reps n]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendChoice } from '../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../src/extension/engine/model';
import { ImageSession } from '../src/extension/engine/session';
import { decodeImage } from '../src/extension/engine/image';
import { prepareInput } from '../src/extension/engine/pipeline';
import { METHODS } from '../src/extension/engine/cam/registry';

const ROOT = path.resolve(__dirname, '..');
const SHARED = path.resolve(ROOT, '..', 'shared', 'reference');

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => (typeof c === 'number' ? c.toFixed(c >= 100 ? 0 : 2) : c).padStart(widths[i])).join('  ');
}

interface BenchModel {
  name: string;
  load: () => Promise<LoadedModel>;
  image: string;
}

function models(): BenchModel[] {
  const list: BenchModel[] = [];
  const demoSamples = path.join(ROOT, 'samples', 'star');
  list.push({
    name: 'demo (96x96)',
    load: () => loadModel(path.join(ROOT, 'models', 'demo', 'model.json')),
    image: path.join(demoSamples, fs.readdirSync(demoSamples).filter((f) => f.endsWith('.png')).sort()[0]),
  });
  const mobilenet = path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json');
  if (fs.existsSync(mobilenet)) {
    list.push({
      name: 'MobileNet v1 0.25 (224x224)',
      load: () => {
        const labels = JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes.json'), 'utf8')) as string[];
        return loadModel(mobilenet, { overrides: { labels, preprocess: '[-1,1]' } });
      },
      image: path.join(SHARED, 'images', 'pgc_both_cat_dog.png'),
    });
  } else {
    console.log(`bench methods: ${mobilenet} is absent (../shared/reference); the demo model only`);
  }
  return list;
}

async function benchModel(bm: BenchModel, reps: number): Promise<void> {
  const model = await bm.load();
  const input = await prepareInput(model, await decodeImage(bm.image));
  const before = tf.memory().numTensors;
  const fresh = () => new ImageSession(model, tf.clone(input));
  const forwardOnce = async () => {
    const s = fresh();
    await s.logits();
    s.dispose();
  };
  const explainOnce = (method: string, options?: Record<string, unknown>) => async () => {
    const s = fresh();
    await s.explain({ method, options });
    s.dispose();
  };
  const pixel = METHODS.filter((m) => m.group === 'pixel');
  // Warm every path once (first wasm calls pay for kernel set-up).
  await forwardOnce();
  for (const m of [...pixel.map((x) => x.id), 'gradcam']) await explainOnce(m, { samples: 2, steps: 8 })();
  // Forward and method runs alternate, so that drift in machine load hits both alike.
  const paired = async (f: () => Promise<void>, n = reps): Promise<[number, number]> => {
    const fw: number[] = [];
    const me: number[] = [];
    for (let i = 0; i < n; i++) {
      let t = performance.now();
      await forwardOnce();
      fw.push(performance.now() - t);
      t = performance.now();
      await f();
      me.push(performance.now() - t);
    }
    return [median(fw), median(me)];
  };
  console.log(`\n${bm.name}: ${reps} runs, median ms, each method end to end with its default options; load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`);
  const w = [22, 10, 10, 8];
  console.log(row(['method', 'ms', 'fwd ms', 'x fwd'], w));
  for (const id of ['gradcam', ...pixel.map((m) => m.id)]) {
    const [fw, ms] = await paired(explainOnce(id));
    console.log(row([id, ms, fw, ms / fw], w));
  }
  console.log('batched against one input per pass (time per sample = one forward-and-backward pass):');
  const wb = [22, 8, 12, 12, 12, 9];
  console.log(row(['method', 'samples', 'batch', 'ms/sample', '1x1 ms/sample', 'speed-up'], wb));
  for (const [id, key, n] of [['smoothgrad', 'samples', 16], ['integratedgradients', 'steps', 32]] as const) {
    const s = fresh();
    const r = await s.explain({ method: id, options: { [key]: n } });
    s.dispose();
    const batch = r.heatmap.details?.batchSize ?? 0;
    const [, batched] = await paired(explainOnce(id, { [key]: n }), Math.max(2, Math.ceil(reps / 2)));
    const [, single] = await paired(explainOnce(id, { [key]: n, batchSize: 1 }), Math.max(2, Math.ceil(reps / 2)));
    console.log(row([id, n, batch, batched / n, single / n, single / batched], wb));
  }
  input.dispose();
  console.log(`tensors before/after: ${before}/${tf.memory().numTensors}; load average ${os.loadavg()[0].toFixed(1)}`);
  model.dispose();
}

async function main(): Promise<void> {
  const backend = (arg('backend') ?? 'wasm') as BackendChoice;
  const reps = Number(arg('reps') ?? 5);
  const info = await initBackend(backend);
  console.log(`bench methods: pixel saliency on ${info.name}${info.threads ? `, ${info.threads} threads` : ''}`);
  for (const bm of models()) await benchModel(bm, reps);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
