/**
 * Quality bars of "Find Likely Mislabeled Samples" with the bundled demo model: the planted errors of
 * samples/ are flagged and ranked first; on a generated set with 10% of labels flipped at random, the
 * flagged set's precision and recall against the flips.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { readDataset } from '../../src/extension/engine/scan/dataset';
import { scanDataset } from '../../src/extension/engine/scan/scan';
import { buildReport } from '../../src/extension/engine/scan/report';
import { CLASS_NAMES, IMAGE_SIZE, Rng, generateSample } from '../../scripts/demo/generator';
import { tempDir } from '../helpers/modelFiles';

const ROOT = path.resolve(__dirname, '..', '..');

/** The planted errors listed in samples/MISLABELED.md's table. */
function plantedErrors(): string[] {
  const md = fs.readFileSync(path.join(ROOT, 'samples', 'MISLABELED.md'), 'utf8');
  return [...md.matchAll(/^\|\s*samples\/(\S+\.png)\s*\|/gm)].map((m) => m[1]);
}

describe('mislabeled-sample quality bars (bundled demo model)', function () {
  let model: LoadedModel;
  before(async () => {
    await initBackend('wasm');
    model = await loadModel(path.join(ROOT, 'models', 'demo', 'model.json'));
  });
  after(() => model?.dispose());

  it('flags every planted error of samples/, ranks them first, and flags nothing else there', async () => {
    const planted = plantedErrors();
    assert.strictEqual(planted.length, 5);
    const ds = readDataset(path.join(ROOT, 'samples'), model.metadata.labels);
    const report = buildReport(model.path, model.metadata.labels, ds, await scanDataset(model, ds));
    assert.deepStrictEqual(report.samples.slice(0, planted.length).map((s) => s.relPath).sort(), [...planted].sort());
    const flagged = report.samples.filter((s) => s.flagged).map((s) => s.relPath);
    console.log(`      flagged ${flagged.filter((p) => planted.includes(p)).length} of ${planted.length} planted errors: ${flagged.join(', ')}`);
    assert.deepStrictEqual([...flagged].sort(), [...planted].sort());
    assert.strictEqual(report.counts.flagged, planted.length);
  });

  it('finds randomly flipped labels with precision >= 0.8 and recall >= 0.9', async function () {
    this.timeout(600000);
    const n = 360;
    const seed = 90210;
    const dir = tempDir('cam-lens-flips-');
    const rng = new Rng(4711);
    const flipped = new Set<string>();
    for (let i = 0; i < n; i++) {
      const s = generateSample(seed, i);
      let given = s.label;
      if (rng.next() < 0.1) {
        given = (s.label + 1 + Math.floor(rng.next() * (CLASS_NAMES.length - 1))) % CLASS_NAMES.length;
      }
      const rel = `${CLASS_NAMES[given]}/${String(i).padStart(4, '0')}.png`;
      if (given !== s.label) flipped.add(rel);
      fs.mkdirSync(path.join(dir, CLASS_NAMES[given]), { recursive: true });
      await sharp(Buffer.from(s.pixels), { raw: { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: 3 } }).png().toFile(path.join(dir, rel));
    }
    const ds = readDataset(dir, model.metadata.labels);
    const report = buildReport(model.path, model.metadata.labels, ds, await scanDataset(model, ds, { batchSize: 32 }));
    const flagged = report.samples.filter((s) => s.flagged).map((s) => s.relPath);
    const tp = flagged.filter((p) => flipped.has(p)).length;
    const precision = tp / Math.max(flagged.length, 1);
    const recall = tp / flipped.size;
    console.log(`      ${n} images, ${flipped.size} flipped, ${flagged.length} flagged: precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)}`);
    assert.ok(flipped.size >= 20);
    assert.ok(precision >= 0.8, `precision ${precision.toFixed(3)}`);
    assert.ok(recall >= 0.9, `recall ${recall.toFixed(3)}`);
  });
});
