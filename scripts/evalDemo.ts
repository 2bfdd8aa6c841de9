/**
 * npm run eval:demo -- [--model models/demo/model.json] [--seed 424242] [--count 600] [--score-count 120]
 *
 * The quality report of the demo model on a held-out set drawn from the generator with a seed the training
 * never used: top-1 accuracy, and for each CAM method the pointing-game hit rate (the maximum of the map,
 * upsampled bilinearly to the image, falls inside the object's box) and the mean IoU between the box and
 * the upsampled map thresholded at 0.5. Maps explain the true class, at the recommended layer. Score-CAM
 * costs one masked forward pass per channel, so it runs on the first --score-count images only.
 * Prints a Markdown table (the README's) and writes it as JSON with --json <file>.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendChoice } from '../src/extension/engine/backend';
import { loadModel } from '../src/extension/engine/model';
import { ImageSession } from '../src/extension/engine/session';
import { applyPreprocess } from '../src/extension/engine/preprocess';
import { METHODS } from '../src/extension/engine/cam/registry';
import { upsampleBilinear } from '../src/shared/heatmap';
import { generateSample, IMAGE_SIZE, type Box } from './demo/generator';

export const EVAL_SEED = 424242;

export interface MethodQuality {
  method: string;
  images: number;
  pointingHits: number;
  meanIoU: number;
}

export interface DemoQuality {
  model: string;
  seed: number;
  count: number;
  accuracy: number;
  methods: MethodQuality[];
}

/** Pointing game and IoU of one map (w x h, in [0,1]) against a box in a size x size image. */
export function localisation(values: Float32Array, w: number, h: number, box: Box, size = IMAGE_SIZE): { hit: boolean; iou: number } {
  const up = upsampleBilinear(values, w, h, size, size);
  let best = 0;
  for (let i = 1; i < up.length; i++) if (up[i] > up[best]) best = i;
  // The upsampled map is flat where it is clamped at the image border, so its maximum is often a plateau of
  // equal pixels; the first of them in row order is an arbitrary corner of it (at a border, a pixel outside an
  // object that touches that border). The point is the plateau's centre.
  let sx = 0;
  let sy = 0;
  let n = 0;
  for (let i = 0; i < up.length; i++) {
    if (up[i] < up[best] - 1e-6) continue;
    sx += i % size;
    sy += Math.floor(i / size);
    n++;
  }
  const bx = Math.round(sx / n);
  const by = Math.round(sy / n);
  const hit = bx >= box.x0 && bx <= box.x1 && by >= box.y0 && by <= box.y1;
  let inter = 0;
  let mask = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (up[y * size + x] < 0.5) continue;
      mask++;
      if (x >= box.x0 && x <= box.x1 && y >= box.y0 && y <= box.y1) inter++;
    }
  }
  const boxArea = (box.x1 - box.x0 + 1) * (box.y1 - box.y0 + 1);
  return { hit, iou: inter / (mask + boxArea - inter) };
}

export async function evaluateDemo(modelPath: string, opts: { seed?: number; count?: number; scoreCount?: number; methods?: string[]; log?: (s: string) => void } = {}): Promise<DemoQuality> {
  const seed = opts.seed ?? EVAL_SEED;
  const count = opts.count ?? 600;
  const scoreCount = Math.min(opts.scoreCount ?? 120, count);
  const methods = opts.methods ?? METHODS.map((m) => m.id);
  const model = await loadModel(modelPath);
  const stats = new Map<string, { n: number; hits: number; iou: number }>(methods.map((m) => [m, { n: 0, hits: 0, iou: 0 }]));
  let correct = 0;
  try {
    for (let i = 0; i < count; i++) {
      const s = generateSample(seed, i);
      const input = tf.tensor4d(applyPreprocess(s.pixels, 3, model.metadata.preprocess), [1, IMAGE_SIZE, IMAGE_SIZE, 3]);
      const session = new ImageSession(model, input);
      try {
        const [top] = await session.predictions(1);
        if (top.index === s.label) correct++;
        for (const m of methods) {
          if (m === 'scorecam' && i >= scoreCount) continue;
          const r = await session.explain({ method: m, classChoice: s.label });
          const q = localisation(r.heatmap.values, r.heatmap.width, r.heatmap.height, s.box);
          const st = stats.get(m) as { n: number; hits: number; iou: number };
          st.n++;
          if (q.hit) st.hits++;
          st.iou += q.iou;
        }
      } finally {
        session.dispose();
      }
      if (opts.log && (i + 1) % 100 === 0) opts.log(`  ${i + 1}/${count} images`);
    }
  } finally {
    model.dispose();
  }
  return {
    model: modelPath,
    seed,
    count,
    accuracy: correct / count,
    methods: methods.map((m) => {
      const st = stats.get(m) as { n: number; hits: number; iou: number };
      return { method: m, images: st.n, pointingHits: st.hits, meanIoU: st.n ? st.iou / st.n : 0 };
    }),
  };
}

export function qualityTable(q: DemoQuality): string {
  const lines = [
    `Held-out set: ${q.count} generated images (seed ${q.seed}); top-1 accuracy **${(q.accuracy * 100).toFixed(1)}%**.`,
    '',
    '| method | images | pointing game | mean IoU (map ≥ 0.5 vs box) |',
    '|---|---:|---:|---:|',
    ...q.methods.map((m) => `| ${m.method} | ${m.images} | ${((m.pointingHits / Math.max(m.images, 1)) * 100).toFixed(1)}% | ${m.meanIoU.toFixed(3)} |`),
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: path.join('models', 'demo', 'model.json') },
      seed: { type: 'string', default: String(EVAL_SEED) },
      count: { type: 'string', default: '600' },
      'score-count': { type: 'string', default: '120' },
      backend: { type: 'string', default: 'auto' },
      json: { type: 'string' },
    },
  });
  const info = await initBackend(values.backend as BackendChoice);
  const t0 = performance.now();
  const q = await evaluateDemo(values.model as string, {
    seed: Number(values.seed),
    count: Number(values.count),
    scoreCount: Number(values['score-count']),
    log: (s) => console.log(s),
  });
  console.log(qualityTable(q));
  console.log(`\n(${info.name} backend, ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(q, null, 2) + '\n');
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
