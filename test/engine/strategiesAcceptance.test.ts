/**
 * Acceptance of issue #14's strategies: on samples-shortcut/ with models/demo-shortcut/ (trained with the corner
 * watermark on 90% of the stars), the star class splits into a cluster whose average map sits on the watermark
 * corner (corner share >= 0.5) and one that looks at the shape, and blurring the watermark cluster's hot region
 * drops the star probability at least 3x as much as blurring a control region of the same size; the clean demo
 * model on the clean samples/ has no cluster with a corner share of 0.15 or more. The measured numbers are printed.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel } from '../../src/extension/engine/model';
import { readDataset } from '../../src/extension/engine/scan/dataset';
import { analyseStrategies } from '../../src/extension/engine/analysis/strategies';
import type { StrategiesReport, StrategyCluster } from '../../src/extension/engine/analysis/types';

const ROOT = path.resolve(__dirname, '..', '..');
const SHORTCUT_MODEL = path.join(ROOT, 'models', 'demo-shortcut', 'model.json');

function describeClusters(r: StrategiesReport): string {
  return r.classes.map((c) => `${c.label} (k ${c.clusterChoice.k}, eigenvalues ${c.clusterChoice.eigenvalues.slice(0, 4).map((v) => v.toFixed(3)).join(' ')}): ` +
    c.clusters.map((k) => `[${k.size}: corner ${k.hints.corner.corner} ${k.hints.corner.share.toFixed(3)}, outside box ${k.hints.outsideBox?.share.toFixed(3)}` +
      (k.hints.intervention ? `, blur ${k.hints.intervention.hotDrop.toFixed(3)} vs ${k.hints.intervention.controlDrop.toFixed(3)}` : '') + ']').join(' ')).join('\n        ');
}

describe('strategies acceptance (#14): the watermark shortcut is found, the clean model shows none', function () {
  this.timeout(600000);

  before(async () => {
    await initBackend('wasm');
  });

  it('splits the shortcut model\'s stars into a watermark-corner cluster and a shape cluster; blurring the corner costs >= 3x the control', async function () {
    if (!fs.existsSync(SHORTCUT_MODEL)) {
      // Not a silent pass: under CI (ciPending.ts) a skip without a kind fails the run.
      console.log('      (skipped: models/demo-shortcut/ is absent; train it with npm run train:demo -- --shortcut)');
      this.skip();
    }
    const model = await loadModel(SHORTCUT_MODEL);
    const before = tf.memory().numTensors;
    try {
      const ds = readDataset(path.join(ROOT, 'samples-shortcut'), model.metadata.labels);
      const r = await analyseStrategies(model, ds, { classes: ['star'] });
      console.log(`        ${describeClusters(r)}`);
      const boxes = JSON.parse(fs.readFileSync(path.join(ROOT, 'samples-shortcut', 'boxes.json'), 'utf8')) as Record<string, { watermark: unknown }>;
      const marked = (rel: string) => boxes[`samples-shortcut/${rel}`].watermark !== null;
      const star = r.classes[0];
      const markedShare = (k: StrategyCluster) => k.members.filter((i) => marked(star.members[i].relPath)).length / k.size;
      const corner = star.clusters.find((k) => k.hints.corner.share >= 0.5 && k.hints.corner.corner === 'bottom-right');
      assert.ok(corner, 'a cluster with corner share >= 0.5 in the bottom-right corner');
      const shape = star.clusters.find((k) => k !== corner && k.hints.corner.share < 0.15 && (k.hints.outsideBox?.share ?? 1) < 0.5);
      assert.ok(shape, 'a cluster that looks at the shape: corner share < 0.15 and most heat inside the object box');
      // The split follows the watermark: the corner cluster holds watermarked stars, the shape cluster mostly clean ones.
      assert.ok(markedShare(corner) >= 0.75, `watermarked share of the corner cluster ${markedShare(corner)}`);
      assert.ok(markedShare(shape) <= 0.5, `watermarked share of the shape cluster ${markedShare(shape)}`);
      const iv = corner.hints.intervention;
      assert.ok(iv, 'the intervention ran');
      assert.ok(iv.hotDrop >= 0.05 && iv.hotDrop >= 3 * Math.max(iv.controlDrop, 0.01), `hot drop ${iv.hotDrop}, control drop ${iv.controlDrop}`);
    } finally {
      assert.strictEqual(tf.memory().numTensors, before);
      model.dispose();
    }
  });

  it('finds no corner cluster for the clean demo model on the clean samples (corner share < 0.15 everywhere)', async () => {
    const model = await loadModel(path.join(ROOT, 'models', 'demo', 'model.json'));
    try {
      const ds = readDataset(path.join(ROOT, 'samples'), model.metadata.labels);
      const r = await analyseStrategies(model, ds, { intervention: false });
      console.log(`        ${describeClusters(r)}`);
      assert.strictEqual(r.classes.length, 6);
      for (const c of r.classes) {
        for (const k of c.clusters) assert.ok(k.hints.corner.share < 0.15, `${c.label} cluster ${k.id}: corner share ${k.hints.corner.share}`);
      }
    } finally {
      model.dispose();
    }
  });
});
