import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import {
  CLASS_NAMES, IMAGE_SIZE, MAX_OBJECT_SIZE, MIN_OBJECT_SIZE, NUM_CLASSES, Rng, generateBatch, generateSample, sampleLabel,
} from '../../scripts/demo/generator';
import { MISLABELED, PER_CLASS, planSamples, renderSample } from '../../scripts/makeSamples';

const N = IMAGE_SIZE;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

describe('demo generator', () => {
  it('produces the same bytes, label and box for the same seed and index', () => {
    for (const index of [0, 1, 17, 123456]) {
      const a = generateSample(42, index);
      const b = generateSample(42, index);
      assert.ok(sameBytes(a.pixels, b.pixels), `index ${index}: pixels differ between two calls`);
      assert.strictEqual(a.label, b.label);
      assert.deepStrictEqual(a.box, b.box);
    }
  });

  it('produces different images for a different seed or index', () => {
    const a = generateSample(42, 5);
    assert.ok(!sameBytes(a.pixels, generateSample(43, 5).pixels), 'seed 43 gave the same bytes as seed 42');
    assert.ok(!sameBytes(a.pixels, generateSample(42, 6).pixels), 'index 6 gave the same bytes as index 5');
  });

  it('keeps a reproducible stream: a fixed sample hashes to the same value forever', () => {
    // Guards the committed model and samples against silent generator changes: if this fails on purpose,
    // retrain the demo model and regenerate the samples, then update the expected value.
    const s = generateSample(1, 0);
    let h = 0;
    for (const v of s.pixels) h = (Math.imul(h, 31) + v) >>> 0;
    assert.deepStrictEqual({ className: s.className, box: s.box, hash: h }, {
      className: 'square', box: { x0: 27, y0: 40, x1: 66, y1: 79 }, hash: 455455101,
    });
  });

  it('returns RGB images of 96x96x3 bytes with a label in range and a matching class name', () => {
    for (let i = 0; i < 20; i++) {
      const s = generateSample(3, i);
      assert.strictEqual(s.pixels.length, N * N * 3);
      assert.ok(Number.isInteger(s.label) && s.label >= 0 && s.label < NUM_CLASSES, `label ${s.label}`);
      assert.strictEqual(s.className, CLASS_NAMES[s.label]);
    }
  });

  it('puts a non-empty box inside the image, tight around an object of the documented size', () => {
    for (let i = 0; i < 150; i++) {
      const { box, object } = generateSample(11, i);
      assert.ok(box.x0 >= 0 && box.y0 >= 0 && box.x1 < N && box.y1 < N, `sample ${i}: box ${JSON.stringify(box)} leaves the image`);
      assert.ok(box.x1 >= box.x0 && box.y1 >= box.y0, `sample ${i}: empty box ${JSON.stringify(box)}`);
      const w = box.x1 - box.x0 + 1;
      const h = box.y1 - box.y0 + 1;
      // Every shape spans at least half its circumscribed diameter in both directions (the triangle's height
      // is 0.75 of it), and never more than the diameter plus the anti-aliased border.
      assert.ok(Math.max(w, h) <= MAX_OBJECT_SIZE + 2, `sample ${i}: box ${w}x${h} too large`);
      assert.ok(Math.min(w, h) >= MIN_OBJECT_SIZE / 2, `sample ${i}: box ${w}x${h} too small`);
      assert.ok(object.size >= MIN_OBJECT_SIZE && object.size <= MAX_OBJECT_SIZE);
      // The object centre lies in its box.
      assert.ok(object.cx >= box.x0 && object.cx <= box.x1 + 1 && object.cy >= box.y0 && object.cy <= box.y1 + 1);
    }
  });

  it('draws the classes roughly uniformly', () => {
    // sampleLabel reads only the label stream, so many labels are cheap; a few rendered samples confirm that
    // it agrees with generateSample.
    for (let i = 0; i < 30; i++) assert.strictEqual(generateSample(5, i).label, sampleLabel(5, i));
    const count = 6000;
    const hist = new Array<number>(NUM_CLASSES).fill(0);
    for (let i = 0; i < count; i++) hist[sampleLabel(5, i)]++;
    const expected = count / NUM_CLASSES;
    for (let c = 0; c < NUM_CLASSES; c++) {
      // 1000 expected per class; binomial sd ~29, so +-15% is more than 5 sd.
      assert.ok(Math.abs(hist[c] - expected) < 0.15 * expected, `class ${CLASS_NAMES[c]}: ${hist[c]} of ${count}`);
    }
  });

  it('changes the pixels inside the box and nowhere else when the object is drawn', () => {
    for (let i = 0; i < 60; i++) {
      const withObject = generateSample(21, i);
      const background = generateSample(21, i, { drawObject: false });
      const { box } = withObject;
      let inside = 0;
      let changed = 0;
      let sumDiff = 0;
      for (let y = 0; y < N; y++) {
        for (let x = 0; x < N; x++) {
          const p = (y * N + x) * 3;
          const d = Math.abs(withObject.pixels[p] - background.pixels[p]) + Math.abs(withObject.pixels[p + 1] - background.pixels[p + 1]) +
            Math.abs(withObject.pixels[p + 2] - background.pixels[p + 2]);
          const inBox = x >= box.x0 && x <= box.x1 && y >= box.y0 && y <= box.y1;
          if (!inBox) {
            assert.strictEqual(d, 0, `sample ${i}: pixel (${x},${y}) outside the box changed`);
            continue;
          }
          inside++;
          sumDiff += d;
          if (d > 60) changed++;
        }
      }
      // Every shape covers a good part of its box (the thinnest, a ring or a star, about a third), and the
      // object colour is chosen to contrast with the background under it.
      assert.ok(changed / inside > 0.25, `sample ${i} (${withObject.className}): only ${changed} of ${inside} box pixels clearly changed`);
      assert.ok(sumDiff / inside > 40, `sample ${i}: mean change ${sumDiff / inside} in the box`);
    }
  });

  it('forces a class on request without changing the background', () => {
    const a = generateSample(8, 3, { classIndex: 0, drawObject: false });
    const b = generateSample(8, 3, { classIndex: 5, drawObject: false });
    assert.ok(sameBytes(a.pixels, b.pixels));
    assert.strictEqual(generateSample(8, 3, { classIndex: 4 }).className, 'cross');
    assert.throws(() => generateSample(8, 3, { classIndex: 6 }), /classIndex/);
    assert.throws(() => generateSample(8, -1), /index/);
  });

  it('keeps the object while clutter, canvas size and size range vary (training curriculum options)', () => {
    const full = generateSample(13, 2);
    const calm = generateSample(13, 2, { clutter: 0 });
    assert.deepStrictEqual(calm.box, full.box, 'clutter must not move the object');
    assert.strictEqual(calm.label, full.label);
    assert.ok(!sameBytes(calm.pixels, full.pixels));
    for (let i = 0; i < 40; i++) {
      const small = generateSample(13, i, { imageSize: 56 });
      assert.strictEqual(small.pixels.length, 56 * 56 * 3);
      assert.ok(small.box.x0 >= 0 && small.box.y0 >= 0 && small.box.x1 < 56 && small.box.y1 < 56, `box ${JSON.stringify(small.box)}`);
      const sized = generateSample(13, i, { sizeRange: [30, 32] });
      assert.ok(sized.object.size >= 30 && sized.object.size <= 32);
    }
    assert.throws(() => generateSample(13, 0, { clutter: 2 }), /clutter/);
    assert.throws(() => generateSample(13, 0, { imageSize: 40 }), /imageSize/);
    assert.throws(() => generateSample(13, 0, { sizeRange: [10, 20] }), /sizeRange/);
  });

  it('concatenates a batch in index order', () => {
    const batch = generateBatch(9, 10, 3);
    assert.strictEqual(batch.pixels.length, 3 * N * N * 3);
    for (let k = 0; k < 3; k++) {
      const s = generateSample(9, 10 + k);
      assert.ok(sameBytes(batch.pixels.subarray(k * N * N * 3, (k + 1) * N * N * 3), s.pixels));
      assert.strictEqual(batch.labels[k], s.label);
      assert.deepStrictEqual(batch.boxes[k], s.box);
    }
  });

  it('has a PRNG that is uniform enough and reproducible', () => {
    const a = new Rng(1);
    const b = new Rng(1);
    let sum = 0;
    for (let i = 0; i < 10000; i++) {
      const v = a.next();
      assert.strictEqual(v, b.next());
      assert.ok(v >= 0 && v < 1);
      sum += v;
    }
    assert.ok(Math.abs(sum / 10000 - 0.5) < 0.02);
  });
});

describe('demo samples (samples/)', () => {
  const root = path.join(__dirname, '..', '..');
  const samplesDir = path.join(root, 'samples');

  /** Rows of the markdown table in MISLABELED.md: | file | folder label | true label |. */
  function mislabeledRows(): { file: string; folder: string; truth: string }[] {
    const md = fs.readFileSync(path.join(samplesDir, 'MISLABELED.md'), 'utf8');
    return md.split('\n')
      .filter((line) => /^\|\s*samples\//.test(line))
      .map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()))
      .map(([file, folder, truth]) => ({ file, folder, truth }));
  }

  // samples/ is committed with the project: a missing file is a failure, not a reason to skip.

  it('lists exactly the planted label errors in MISLABELED.md, as existing files in a wrong folder', () => {
    const rows = mislabeledRows();
    assert.strictEqual(rows.length, 5);
    for (const r of rows) {
      assert.ok(fs.existsSync(path.join(root, r.file)), `${r.file} is missing`);
      assert.strictEqual(r.file.split('/')[1], r.folder, `${r.file} is not in the folder ${r.folder}`);
      assert.ok((CLASS_NAMES as readonly string[]).includes(r.truth), `unknown true label ${r.truth}`);
      assert.notStrictEqual(r.folder, r.truth);
    }
    assert.deepStrictEqual(rows.map((r) => ({ ...r })), MISLABELED.map((m) => ({
      file: `samples/${m.folder}/${m.folder}_${String(m.slot).padStart(2, '0')}.png`, folder: m.folder, truth: m.truth,
    })));
  });

  it('has boxes.json with the true label and box of every sample, and nothing else in the class folders', () => {
    const boxes = JSON.parse(fs.readFileSync(path.join(samplesDir, 'boxes.json'), 'utf8')) as
      Record<string, { label: string; labelIndex: number; box: { x0: number; y0: number; x1: number; y1: number }; mislabeled: boolean }>;
    const files = CLASS_NAMES.flatMap((c) => fs.readdirSync(path.join(samplesDir, c)).map((f) => `samples/${c}/${f}`));
    assert.deepStrictEqual(Object.keys(boxes).sort(), files.sort());
    assert.strictEqual(files.length, CLASS_NAMES.length * PER_CLASS);
    const wrong = new Set(mislabeledRows().map((r) => r.file));
    for (const [file, e] of Object.entries(boxes)) {
      const folder = file.split('/')[1];
      assert.strictEqual(e.mislabeled, wrong.has(file), file);
      assert.strictEqual(e.label === folder, !wrong.has(file), `${file}: label ${e.label}`);
      assert.strictEqual(CLASS_NAMES[e.labelIndex], e.label);
      assert.ok(e.box.x0 >= 0 && e.box.y0 >= 0 && e.box.x1 < N && e.box.y1 < N && e.box.x0 <= e.box.x1 && e.box.y0 <= e.box.y1, `${file}: box`);
    }
    assert.strictEqual(boxes['samples/star/star_00.png'].label, 'star', 'the README sample must be a correctly labelled star');
  });

  it('stores PNGs that decode to exactly the generator output of the documented plan', async () => {
    const plan = planSamples();
    for (const p of [plan[0], plan.find((q) => q.file === 'star/star_00.png')!, plan.find((q) => q.truth !== q.folder)!]) {
      const { data, info } = await sharp(path.join(samplesDir, ...p.file.split('/'))).raw().toBuffer({ resolveWithObject: true });
      assert.deepStrictEqual([info.width, info.height, info.channels], [N, N, 3]);
      assert.ok(sameBytes(new Uint8Array(data), renderSample(p).pixels), `${p.file} differs from the generator`);
    }
  });
});
