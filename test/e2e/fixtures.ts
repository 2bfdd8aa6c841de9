/**
 * Stand-in fixtures for the end-to-end run, used only where the repository does not have them yet:
 * a small model (test/helpers/models.ts bnModel, written with cam-lens.json labels) and sample PNGs.
 * The runner prefers models/demo/ and samples/<class>/*.png when they exist.
 *
 *   node --import tsx test/e2e/fixtures.ts model <dir>          writes <dir>/model.json, weights.bin, cam-lens.json
 *   node --import tsx test/e2e/fixtures.ts samples <dir> <n>    writes <dir>/sample_<i>.png (32x32 RGB)
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { bnModel } from '../helpers/models';
import { writeModel } from '../helpers/modelFiles';

const LABELS = ['circle', 'square', 'triangle', 'star', 'cross'];

async function writeFixtureModel(dir: string): Promise<void> {
  await tf.setBackend('cpu');
  const model = bnModel();
  // Random initial weights give near-uniform outputs whose top-1 could flip between backends; a sharper
  // classifier head makes the top-1 class of each sample unambiguous.
  const fc = model.getLayer('fc');
  const [kernel, bias] = fc.getWeights();
  fc.setWeights([tf.mul(kernel, 12), bias]);
  try {
    await writeModel(model, dir, { name: 'E2E stand-in model', labels: LABELS, inputSize: [16, 16], channels: 3, preprocess: '[0,1]', labelOffset: 0 });
  } finally {
    model.dispose();
  }
}

/** Distinct, deterministic images: a coloured disc or square on a gradient, one per index. */
async function writeSamples(dir: string, n: number): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const size = 32;
  for (let i = 0; i < n; i++) {
    const px = Buffer.alloc(size * size * 3);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const o = (y * size + x) * 3;
        const inside = i % 2 === 0 ? (x - 10 - 4 * i) ** 2 + (y - 12) ** 2 < 49 : Math.abs(x - 18) < 6 && Math.abs(y - 8 - 3 * i) < 6;
        px[o] = inside ? 230 : 8 * x;
        px[o + 1] = inside ? 40 * i : 8 * y;
        px[o + 2] = inside ? 30 : 120;
      }
    }
    await sharp(px, { raw: { width: size, height: size, channels: 3 } }).png().toFile(path.join(dir, `sample_${i}.png`));
  }
}

async function main(): Promise<void> {
  const [what, dir, count] = process.argv.slice(2);
  if (what === 'model' && dir) await writeFixtureModel(path.resolve(dir));
  else if (what === 'samples' && dir) await writeSamples(path.resolve(dir), Number(count ?? 3));
  else throw new Error('usage: fixtures.ts model <dir> | samples <dir> <n>');
}

main().catch((e) => {
  console.error(`fixtures: ${(e as Error).message}`);
  process.exit(1);
});
