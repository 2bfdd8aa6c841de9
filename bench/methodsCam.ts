/**
 * `npm run bench` (methodsCam): the class-activation-map family of #15 items 3-5 against a forward pass, on the
 * bundled demo model (models/demo, 96x96) and the reference MobileNet v1 0.25 (224x224, ../shared/reference;
 * skipped where absent), wasm backend by default. Per model, at the recommended layer, it prints for each
 * method and option, end to end on a fresh image (the forward pass included), the median ms, the ratio to a
 * forward pass measured in the same rounds (median / median, and fastest / fastest, which other load on a shared
 * machine disturbs less) and the ratio to plain Grad-CAM (medians):
 *
 *   gradcam                    the reference;
 *   gradcamelementwise, eigengradcam;
 *   ablationcam                default budget (32 channels), and every channel (one pass of the layers after the
 *                              target per channel);
 *   gradcam + eigenSmooth, + augSmooth (6 copies), + 2 layers (the recommended one and the spatial layer before
 *   it), scorecam + eigenSmooth.
 *
 *   node --expose-gc --import tsx bench/methodsCam.ts [--backend wasm|cpu] [--reps n]
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendChoice } from '../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../src/extension/engine/model';
import { ImageSession, type ExplainRequest } from '../src/extension/engine/session';
import { decodeImage } from '../src/extension/engine/image';
import { prepareInput } from '../src/extension/engine/pipeline';

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
    console.log(`bench methodsCam: ${mobilenet} is absent (../shared/reference); the demo model only`);
  }
  return list;
}

async function benchModel(bm: BenchModel, reps: number): Promise<void> {
  const model = await bm.load();
  const input = await prepareInput(model, await decodeImage(bm.image));
  const before = tf.memory().numTensors;
  const g = model.graph;
  const target = g.recommendedTarget();
  const spatial = g.ops.filter((o) => o.outputShape.length === 4 && o.className !== 'InputLayer').map((o) => o.name);
  const at = spatial.indexOf(target.name);
  const two = [spatial[at - 1] ?? spatial[at], target.name];
  const fresh = () => new ImageSession(model, tf.clone(input));
  const forwardOnce = async () => {
    const s = fresh();
    await s.logits();
    s.dispose();
  };
  const explainOnce = (req: ExplainRequest) => async () => {
    const s = fresh();
    await s.explain(req);
    s.dispose();
  };
  const cases: Array<[string, ExplainRequest]> = [
    ['gradcam', { method: 'gradcam' }],
    ['gradcamelementwise', { method: 'gradcamelementwise' }],
    ['eigengradcam', { method: 'eigengradcam' }],
    ['ablationcam (32 ch)', { method: 'ablationcam' }],
    ['ablationcam (all)', { method: 'ablationcam', options: { channels: 'all' } }],
    ['gradcam eigenSmooth', { method: 'gradcam', options: { eigenSmooth: true } }],
    ['gradcam augSmooth', { method: 'gradcam', options: { augSmooth: true } }],
    ['gradcam 2 layers', { method: 'gradcam', layers: two }],
    ['scorecam', { method: 'scorecam' }],
    ['scorecam eigenSmooth', { method: 'scorecam', options: { eigenSmooth: true } }],
  ];
  // Warm every path once (first wasm calls pay for kernel set-up).
  await forwardOnce();
  for (const [, req] of cases) await explainOnce(req)();
  // Forward and method runs alternate, so that drift in machine load hits both alike.
  const paired = async (f: () => Promise<void>): Promise<[number, number, number]> => {
    const fw: number[] = [];
    const me: number[] = [];
    for (let i = 0; i < reps; i++) {
      let t = performance.now();
      await forwardOnce();
      fw.push(performance.now() - t);
      t = performance.now();
      await f();
      me.push(performance.now() - t);
    }
    return [median(fw), median(me), Math.min(...me) / Math.min(...fw)];
  };
  const k = target.outputShape[3];
  console.log(`\n${bm.name}: layer ${target.name} (${k} channels; 2 layers: ${two.join(' + ')}), ${reps} runs, median ms, end to end`);
  const w = [22, 10, 10, 8, 12, 10];
  console.log(row(['method', 'ms', 'fwd ms', 'x fwd', 'x fwd (min)', 'x gradcam'], w));
  let gradcamMs = NaN;
  for (const [name, req] of cases) {
    const [fw, ms, best] = await paired(explainOnce(req));
    if (name === 'gradcam') gradcamMs = ms;
    console.log(row([name, ms, fw, ms / fw, best, ms / gradcamMs], w));
  }
  input.dispose();
  console.log(`tensors before/after: ${before}/${tf.memory().numTensors}`);
  model.dispose();
}

async function main(): Promise<void> {
  const backend = (arg('backend') ?? 'wasm') as BackendChoice;
  const reps = Number(arg('reps') ?? 5);
  const info = await initBackend(backend);
  console.log(`bench methodsCam: the CAM family on ${info.name}${info.threads ? `, ${info.threads} threads` : ''}`);
  for (const bm of models()) await benchModel(bm, reps);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
