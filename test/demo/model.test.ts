/**
 * The committed demo model (models/demo, trained by `npm run train:demo`) on the committed samples: it loads,
 * predicts every correctly labelled sample right, and its Grad-CAM maximum falls inside the object's box.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { openImage } from '../../src/extension/engine/pipeline';
import { localisation } from '../../scripts/evalDemo';

const ROOT = path.resolve(__dirname, '..', '..');
const MODEL = path.join(ROOT, 'models', 'demo', 'model.json');

interface BoxEntry { label: string; labelIndex: number; box: { x0: number; y0: number; x1: number; y1: number }; mislabeled: boolean }

describe('bundled demo model', function () {
  let model: LoadedModel;
  const boxes = JSON.parse(fs.readFileSync(path.join(ROOT, 'samples', 'boxes.json'), 'utf8')) as Record<string, BoxEntry>;
  const correct = Object.entries(boxes).filter(([, b]) => !b.mislabeled);

  before(async () => {
    await initBackend('wasm');
    model = await loadModel(MODEL);
  });
  after(() => model?.dispose());

  it('loads with its metadata: six shape classes, 96x96 RGB, [0,1] preprocessing, a GAP-then-dense head', () => {
    assert.deepStrictEqual(model.metadata.labels, ['circle', 'square', 'triangle', 'star', 'cross', 'ring']);
    assert.deepStrictEqual([model.inputHeight, model.inputWidth, model.inputChannels], [96, 96, 3]);
    assert.strictEqual(model.metadata.preprocess, '[0,1]');
    assert.ok(correct.length >= 40, `${correct.length} correctly labelled samples`);
  });

  it('predicts every correctly labelled sample right, and Grad-CAM points inside its object box', async () => {
    const misses: string[] = [];
    let pointed = 0;
    for (const [rel, b] of correct) {
      const opened = await openImage(model, path.join(ROOT, rel));
      try {
        const [top] = await opened.session.predictions(1);
        if (top.label !== b.label) misses.push(`${rel}: predicted ${top.label} (${(top.probability * 100).toFixed(1)}%)`);
        const r = await opened.session.explain({ method: 'gradcam', classChoice: b.label });
        const q = localisation(r.heatmap.values, r.heatmap.width, r.heatmap.height, b.box);
        if (q.hit) pointed++;
        else misses.push(`${rel}: Grad-CAM maximum outside the box`);
      } finally {
        opened.session.dispose();
      }
    }
    assert.deepStrictEqual(misses, []);
    assert.strictEqual(pointed, correct.length);
  });

  it('points at the centre of a map maximum that is a plateau, not at its first pixel (objects at the border)', () => {
    // A 4x4 map whose maximum fills the left column: upsampled to 16 px, the maximum is a plateau 0..2 px wide
    // at the left border; an object box starting at x = 1 holds its centre, not its first pixel (x = 0).
    const v = Float32Array.from([0, 0, 0, 0, 1, 0.2, 0, 0, 1, 0.2, 0, 0, 0, 0, 0, 0]);
    assert.strictEqual(localisation(v, 4, 4, { x0: 1, y0: 4, x1: 6, y1: 11 }, 16).hit, true);
    assert.strictEqual(localisation(v, 4, 4, { x0: 8, y0: 4, x1: 15, y1: 11 }, 16).hit, false);
  });

  it('the README main command writes an overlay at the sample resolution', async () => {
    const opened = await openImage(model, path.join(ROOT, 'samples', 'star', 'star_00.png'));
    try {
      const [top] = await opened.session.predictions(1);
      assert.strictEqual(top.label, 'star');
    } finally {
      opened.session.dispose();
    }
  });
});
