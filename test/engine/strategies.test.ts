/**
 * Model strategies (engine/analysis, issue #14): the spectral clustering's maths on hand cases and synthetic
 * maps with known groups, determinism, the hints on maps whose shares are exact, the box formats, and on the demo
 * model: the map cache (a re-cluster computes no map), cancel, tensors, and the CLI's exit codes and JSON.
 */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { readDataset } from '../../src/extension/engine/scan/dataset';
import { SeededRandom, jacobiEigen, topEigenpairs } from '../../src/extension/engine/analysis/eigen';
import {
  affinityGraph, eigengap, laplacianSpectrum, mapFeatures, nearestNeighbours, spectralCluster, toSparse, type SparseGraph,
} from '../../src/extension/engine/analysis/spectral';
import {
  averageMap, blurRegion, borderShare, cornerShare, interventionWindows, outsideBoxesShare, resizeMap, windowToPixels,
} from '../../src/extension/engine/analysis/hints';
import { boxesFor, parseVocXml, readBoxes } from '../../src/extension/engine/analysis/boxes';
import { MapCache } from '../../src/extension/engine/analysis/maps';
import { analyseStrategies } from '../../src/extension/engine/analysis/strategies';
import type { StrategiesReport } from '../../src/extension/engine/analysis/types';
import { tempDir } from '../helpers/modelFiles';

const ROOT = path.resolve(__dirname, '..', '..');
const G = 32;

/** A 32x32 map: a Gaussian blob at (cx, cy) of radius r, jittered by the rng, plus a little noise. */
function blob(cx: number, cy: number, r: number, rng: SeededRandom): Float32Array {
  const m = new Float32Array(G * G);
  const jx = cx + (rng.next() - 0.5) * 3;
  const jy = cy + (rng.next() - 0.5) * 3;
  for (let y = 0; y < G; y++) for (let x = 0; x < G; x++) m[y * G + x] = Math.exp(-((x - jx) ** 2 + (y - jy) ** 2) / (2 * r * r)) + 0.05 * rng.next();
  return m;
}

/** Groups of blob maps at three far-apart places, `sizes` maps each, interleaved (group of map i: truth[i]). */
function threeGroups(sizes: number[], seed = 3): { maps: Float32Array[]; truth: number[] } {
  const rng = new SeededRandom(seed);
  const centres = [[6, 6], [26, 26], [26, 6]];
  const maps: Float32Array[] = [];
  const truth: number[] = [];
  const left = [...sizes];
  while (left.some((n) => n > 0)) {
    for (let g = 0; g < 3; g++) {
      if (left[g]-- <= 0) continue;
      maps.push(blob(centres[g][0], centres[g][1], 4, rng));
      truth.push(g);
    }
  }
  return { maps, truth };
}

function denseOf(g: SparseGraph): number[][] {
  const d = Array.from({ length: g.n }, () => new Array<number>(g.n).fill(0));
  for (let i = 0; i < g.n; i++) for (let p = g.rowStart[i]; p < g.rowStart[i + 1]; p++) d[i][g.cols[p]] = g.weights[p];
  return d;
}

describe('strategies: spectral clustering maths', () => {
  it('Jacobi finds the eigenpairs of hand matrices', () => {
    const e = jacobiEigen(Float64Array.from([2, 1, 1, 2]), 2);
    assert.deepStrictEqual(Array.from(e.values, (v) => Number(v.toFixed(12))), [1, 3]);
    assert.ok(Math.abs(Math.abs(e.vectors[1][0]) - Math.SQRT1_2) < 1e-12 && Math.sign(e.vectors[1][0]) === Math.sign(e.vectors[1][1]));
    // [[4,1,0],[1,3,1],[0,1,2]]: trace 9, eigenvalues 3 and 3 +- sqrt(3).
    const f = jacobiEigen(Float64Array.from([4, 1, 0, 1, 3, 1, 0, 1, 2]), 3);
    const want = [3 - Math.sqrt(3), 3, 3 + Math.sqrt(3)];
    f.values.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-12, `eigenvalue ${i}: ${v} vs ${want[i]}`));
  });

  it('the normalised Laplacian of a path and of two disjoint edges has the hand-computed spectrum', () => {
    // Path 0-1-2 with unit weights: degrees 1, 2, 1; L = I - D^-1/2 W D^-1/2 has eigenvalues 0, 1, 2.
    const path3 = laplacianSpectrum(toSparse([new Map([[1, 1]]), new Map([[0, 1], [2, 1]]), new Map([[1, 1]])]), 3);
    path3.values.forEach((v, i) => assert.ok(Math.abs(v - [0, 1, 2][i]) < 1e-12, `path: ${path3.values}`));
    // Two components: 0 twice (one per component), then 2 twice.
    const two = laplacianSpectrum(toSparse([new Map([[1, 1]]), new Map([[0, 1]]), new Map([[3, 5]]), new Map([[2, 5]])]), 4);
    two.values.forEach((v, i) => assert.ok(Math.abs(v - [0, 0, 2, 2][i]) < 1e-12, `two edges: ${two.values}`));
  });

  it('block Lanczos agrees with Jacobi on the largest eigenpairs, repeated eigenvalues included', () => {
    const n = 120;
    const rng = new SeededRandom(5);
    // Block-diagonal: three identical 40x40 blocks, so every eigenvalue is there three times.
    const block = new Float64Array(40 * 40);
    for (let i = 0; i < 40; i++) for (let j = i; j < 40; j++) block[i * 40 + j] = block[j * 40 + i] = rng.next() - 0.5;
    const a = new Float64Array(n * n);
    for (let b = 0; b < 3; b++) for (let i = 0; i < 40; i++) for (let j = 0; j < 40; j++) a[(b * 40 + i) * n + b * 40 + j] = block[i * 40 + j];
    const dense = jacobiEigen(a, n);
    const top = topEigenpairs((x, y) => {
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += a[i * n + j] * x[j];
        y[i] = s;
      }
    }, n, 6, { block: 4, tol: 1e-9 });
    assert.ok(top.residual < 1e-4, `residual ${top.residual}`);
    for (let r = 0; r < 6; r++) assert.ok(Math.abs(top.values[r] - dense.values[n - 1 - r]) < 1e-6, `eigenvalue ${r}: ${top.values[r]} vs ${dense.values[n - 1 - r]}`);
    // The largest eigenvalue is triple: Lanczos found all three copies.
    assert.ok(Math.abs(top.values[2] - top.values[0]) < 1e-6);
  });

  it('the affinity is the symmetrised k-NN graph with self-tuning weights exp(-d^2 / (sigma_i sigma_j))', () => {
    // Points on a line at 0, 1, 3, 7 (1-D features), k = 1: 0<->1 (d 1), 2->1 (d 2), 3->2 (d 4); sigma = 1, 1, 2, 4.
    const g = affinityGraph(Float32Array.from([0, 1, 3, 7]), 1, 1);
    const w = denseOf(g);
    const e = Math.exp;
    const want = [[0, e(-1), 0, 0], [e(-1), 0, e(-4 / 2), 0], [0, e(-2), 0, e(-16 / 8)], [0, 0, e(-2), 0]];
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) assert.ok(Math.abs(w[i][j] - want[i][j]) < 1e-12, `W[${i}][${j}] = ${w[i][j]}, expected ${want[i][j]}`);
    const nn = nearestNeighbours(Float32Array.from([0, 1, 3, 7]), 1, 2);
    assert.deepStrictEqual(Array.from(nn.index), [1, 2, 0, 2, 1, 0, 2, 1]);
  });

  it('the eigengap picks the number of components, else the k before the largest step', () => {
    assert.deepStrictEqual(eigengap([0, 0, 0, 0.5, 0.55, 0.6], 5), { k: 3, gap: 0.5 });
    assert.strictEqual(eigengap([0, 0.4, 0.45, 0.5], 3).k, 1);
    assert.strictEqual(eigengap([0, 0.02, 0.6, 0.62], 3).k, 2);
    // maxK bounds it: the step after the 4th eigenvalue is not considered with maxK 3.
    assert.strictEqual(eigengap([0, 0.1, 0.2, 0.25, 0.9], 3).k, 1);
    // Three connected components (three zeros) win over a larger step further on (the plain argmax would say 6).
    assert.deepStrictEqual(eigengap([0, 0, 0, 0.078, 0.1, 0.137, 0.247, 0.26], 7), { k: 3, gap: 0.078 });
  });

  it('finds three well-separated groups of maps: k = 3 by the eigengap, each group one cluster, largest first', () => {
    const { maps, truth } = threeGroups([50, 40, 30]);
    const f = mapFeatures(maps, G, G);
    const r = spectralCluster(f.data, f.dim, { seed: 1 });
    assert.strictEqual(r.by, 'eigengap');
    assert.strictEqual(r.k, 3, `eigenvalues ${r.eigenvalues.map((v) => v.toFixed(4))}`);
    // Three components: three eigenvalues ~0, then a jump.
    assert.ok(r.eigenvalues[2] < 1e-6 && r.eigenvalues[3] > 0.05, `eigenvalues ${r.eigenvalues}`);
    // Clusters numbered by size: group g (50, 40, 30 maps) is cluster g.
    truth.forEach((t, i) => assert.strictEqual(r.labels[i], t, `map ${i} of group ${t} in cluster ${r.labels[i]}`));
  });

  it('fails to separate the groups with a wrong affinity (a fully connected graph): the test above can catch it', () => {
    // Every map its neighbour (k = n - 1) with self-tuning weights: one connected blob, the three zero
    // eigenvalues are gone. Guards that the k-NN sparsity is what the clustering rests on.
    const { maps } = threeGroups([20, 20, 20]);
    const f = mapFeatures(maps, G, G);
    const r = spectralCluster(f.data, f.dim, { neighbours: 59 });
    assert.ok(r.eigenvalues[1] > 1e-3, `eigenvalues ${r.eigenvalues.map((v) => v.toFixed(4))}`);
  });

  it('a given k overrides the eigengap; fewer than 3 maps make one cluster', () => {
    const { maps } = threeGroups([10, 10, 10]);
    const f = mapFeatures(maps, G, G);
    const r = spectralCluster(f.data, f.dim, { clusters: 2 });
    assert.strictEqual(r.by, 'given');
    assert.strictEqual(r.k, 2);
    const tiny = mapFeatures(maps.slice(0, 2), G, G);
    assert.deepStrictEqual(spectralCluster(tiny.data, tiny.dim).by, 'too few images');
  });

  it('is deterministic: the same maps and seed give the same clusters', () => {
    const { maps } = threeGroups([15, 12, 9], 11);
    // Overlapping groups make k-means' start matter.
    const noisy = maps.map((m, i) => m.map((v, j) => v + 0.3 * Math.sin(i * 7 + j)));
    const f = mapFeatures(noisy, G, G);
    const a = spectralCluster(f.data, f.dim, { clusters: 4, seed: 7 });
    const b = spectralCluster(f.data, f.dim, { clusters: 4, seed: 7 });
    assert.deepStrictEqual(Array.from(a.labels), Array.from(b.labels));
    assert.deepStrictEqual(a.eigenvalues, b.eigenvalues);
  });

  it('clusters 3,000 maps into the three groups: by components, and by block Lanczos with a given k', function () {
    this.timeout(300000);
    const { maps, truth } = threeGroups([1000, 1000, 1000], 2);
    const f = mapFeatures(maps, G, G);
    const auto = spectralCluster(f.data, f.dim, { seed: 1 });
    assert.deepStrictEqual([auto.k, auto.by], [3, 'components']);
    truth.forEach((t, i) => assert.strictEqual(auto.labels[i], t));
    // A given k skips the components rule: the spectrum (principal components, sparse graph, Lanczos) decides.
    const given = spectralCluster(f.data, f.dim, { seed: 1, clusters: 3 });
    assert.ok(given.eigenvalues[2] < 1e-4 && given.eigenvalues[3] > 1e-3, `eigenvalues ${given.eigenvalues.map((v) => v.toExponential(2))}`);
    truth.forEach((t, i) => assert.strictEqual(given.labels[i], t));
  });
});

describe('strategies: hints', () => {
  const grid = (f: (x: number, y: number) => number) => ({ width: G, height: G, values: Float32Array.from({ length: G * G }, (_, i) => f(i % G, Math.floor(i / G))) });

  it('corner and border shares are exact on hand maps', () => {
    // Flat map: each corner box (8x8 of 32x32) holds 1/16; the outer 10% (3 cells a side) 1 - 26^2/32^2.
    const flat = grid(() => 1);
    assert.strictEqual(cornerShare(flat).share, 64 / 1024);
    assert.strictEqual(cornerShare(flat).uniform, 64 / 1024);
    assert.strictEqual(borderShare(flat).share, 1 - (26 * 26) / 1024);
    // 3 in the bottom-right 8x8 box, 1 elsewhere: 192 / (192 + 960) = 1/6 in that corner.
    const br = grid((x, y) => (x >= 24 && y >= 24 ? 3 : 1));
    const c = cornerShare(br);
    assert.strictEqual(c.corner, 'bottom-right');
    assert.ok(Math.abs(c.share - 1 / 6) < 1e-12);
    // All heat in the top-left box.
    const tl = grid((x, y) => (x < 8 && y < 8 ? 1 : 0));
    assert.deepStrictEqual([cornerShare(tl).corner, cornerShare(tl).share], ['top-left', 1]);
    assert.ok(c.rule.includes('25%') && borderShare(flat).rule.includes('10%'));
  });

  it('heat outside boxes, and a cluster average equal to the mean of member shares', () => {
    const inBox = grid((x, y) => (x >= 8 && x < 16 && y >= 8 && y < 16 ? 1 : 0));
    assert.strictEqual(outsideBoxesShare(inBox, [{ x0: 0.25, y0: 0.25, x1: 0.5, y1: 0.5 }]).share, 0);
    assert.strictEqual(outsideBoxesShare(grid(() => 1), [{ x0: 0.25, y0: 0.25, x1: 0.5, y1: 0.5 }]).share, 1 - 64 / 1024);
    // Two maps of different strength: the average's corner share is the mean of theirs (1 and 1/16).
    const avg = averageMap([grid((x, y) => (x >= 24 && y >= 24 ? 10 : 0)).values, grid(() => 0.2).values], G, G);
    assert.ok(Math.abs(cornerShare(avg).share - (1 + 1 / 16) / 2) < 1e-6);
  });

  it('intervention regions: the hottest window, and the coldest one not overlapping it', () => {
    const m = grid((x, y) => (x >= 24 && y >= 24 ? 1 : x < 8 && y >= 12 && y < 20 ? 0.5 : 0.1 + 0.001 * x));
    const { hot, control } = interventionWindows(m);
    assert.deepStrictEqual(hot, { x: 24, y: 24, side: 8 });
    assert.ok(control.x + control.side <= hot.x || control.y + control.side <= hot.y);
    assert.deepStrictEqual(windowToPixels(hot, m, 96, 96), [72, 72, 95, 95]);
  });

  it('blurs inside the region only, and leaves a flat image flat', () => {
    const W = 16;
    const img = Float32Array.from({ length: W * W * 3 }, (_, i) => ((Math.floor(i / 3) % 2) ? 1 : 0));
    const out = blurRegion(img, W, W, 3, [4, 4, 11, 11]);
    for (let y = 0; y < W; y++) {
      for (let x = 0; x < W; x++) {
        const i = (y * W + x) * 3;
        if (x < 4 || x > 11 || y < 4 || y > 11) assert.strictEqual(out[i], img[i]);
        else assert.ok(Math.abs(out[i] - 0.5) < 0.1, `(${x}, ${y}) = ${out[i]}`);
      }
    }
    const flat = new Float32Array(W * W * 3).fill(0.3);
    assert.ok(blurRegion(flat, W, W, 3, [0, 0, 15, 15]).every((v) => Math.abs(v - 0.3) < 1e-6));
  });

  it('resizes maps bilinearly with half-pixel centres', () => {
    const r = resizeMap(Float32Array.from([0, 1, 2, 3]), 2, 2, 4, 4);
    assert.deepStrictEqual(Array.from(r.slice(0, 4)), [0, 0.25, 0.75, 1]);
  });
});

describe('strategies: boxes', () => {
  let dir: string;
  before(() => {
    dir = tempDir();
  });

  it('reads boxes.json (as samples/boxes.json), matching paths by their trailing segments', () => {
    const set = readBoxes(path.join(ROOT, 'samples', 'boxes.json'));
    assert.strictEqual(set.format, 'boxes.json');
    const b = boxesFor(set, 'circle/circle_00.png', 96, 96);
    // samples/boxes.json: circle_00 box 43,5 - 85,47 inclusive.
    assert.deepStrictEqual(b, [{ x0: 43 / 96, y0: 5 / 96, x1: 86 / 96, y1: 48 / 96 }]);
    assert.strictEqual(boxesFor(set, 'circle/none.png', 96, 96), undefined);
  });

  it('reads COCO-style JSON ([x, y, w, h]) with the image size it gives', () => {
    const f = path.join(dir, 'coco.json');
    fs.writeFileSync(f, JSON.stringify({ images: [{ id: 7, file_name: 'a/dog.jpg', width: 200, height: 100 }], annotations: [{ image_id: 7, bbox: [10, 20, 50, 40], category_id: 1 }, { image_id: 7, bbox: [100, 0, 100, 100] }] }));
    const set = readBoxes(f);
    assert.strictEqual(set.format, 'coco');
    assert.deepStrictEqual(boxesFor(set, 'dog.jpg', 1, 1), [{ x0: 0.05, y0: 0.2, x1: 0.3, y1: 0.6 }, { x0: 0.5, y0: 0, x1: 1, y1: 1 }]);
  });

  it('reads Pascal VOC XML (1-based inclusive), one file or a folder', () => {
    const xml = '<annotation><folder>VOC</folder><filename>horse.jpg</filename><size><width>100</width><height>50</height><depth>3</depth></size>' +
      '<object><name>horse</name><bndbox><xmin>11</xmin><ymin>6</ymin><xmax>60</xmax><ymax>30</ymax></bndbox></object></annotation>';
    assert.deepStrictEqual(parseVocXml(xml, 'x.xml'), { name: 'horse.jpg', boxes: { boxes: [{ x0: 10, y0: 5, x1: 59, y1: 29 }], width: 100, height: 50 } });
    fs.mkdirSync(path.join(dir, 'voc'));
    fs.writeFileSync(path.join(dir, 'voc', 'horse.xml'), xml);
    const set = readBoxes(path.join(dir, 'voc'));
    assert.deepStrictEqual(boxesFor(set, 'horse/horse.jpg', 1, 1), [{ x0: 0.1, y0: 0.1, x1: 0.6, y1: 0.6 }]);
    assert.throws(() => readBoxes(path.join(dir, 'nothing.json')), /boxes not found/);
  });
});

describe('strategies on the demo model: cache, cancel, tensors', () => {
  let model: LoadedModel;
  before(async () => {
    await initBackend('wasm');
    model = await loadModel(path.join(ROOT, 'models', 'demo', 'model.json'));
  });
  after(() => model?.dispose());

  it('re-clustering with another k reads every map from the cache and computes none; no tensor is left', async () => {
    const ds = readDataset(path.join(ROOT, 'samples'), model.metadata.labels);
    const cache = new MapCache();
    const before = tf.memory().numTensors;
    const a = await analyseStrategies(model, ds, { classes: ['star', 'ring'], intervention: false }, { cache });
    assert.strictEqual(cache.computed, 16);
    assert.strictEqual(a.counts.fromCache, 0);
    const b = await analyseStrategies(model, ds, { classes: ['star', 'ring'], clusters: 2, intervention: false }, { cache });
    assert.strictEqual(cache.computed, 16, 'no new map');
    assert.strictEqual(b.counts.fromCache, 16);
    assert.deepStrictEqual(b.classes.map((c) => c.clusters.length), [2, 2]);
    assert.deepStrictEqual(Array.from(b.classes[0].averageMap.values), Array.from(a.classes[0].averageMap.values));
    assert.strictEqual(tf.memory().numTensors, before, 'tensors after two runs');
    // The report's structure: members, hints with rules, boxes from samples/boxes.json.
    const star = a.classes.find((c) => c.label === 'star');
    assert.ok(star && star.count === 8 && star.members.length === 8);
    assert.ok(a.boxes?.format === 'boxes.json' && star.hints.outsideBox && star.hints.outsideBox.images === 8);
  });

  it('runs the blur intervention without leaving tensors', async () => {
    const ds = readDataset(path.join(ROOT, 'samples'), model.metadata.labels);
    const before = tf.memory().numTensors;
    const r = await analyseStrategies(model, ds, { classes: ['cross'] });
    assert.strictEqual(tf.memory().numTensors, before);
    for (const k of r.classes[0].clusters) {
      const iv = k.hints.intervention;
      assert.ok(iv && iv.images === Math.min(16, k.size) && Number.isFinite(iv.hotDrop) && Number.isFinite(iv.controlDrop));
    }
  });

  it('keeps the intervention\'s probabilities in the cache: the same clusters again run no model and give the same drops', async () => {
    const ds = readDataset(path.join(ROOT, 'samples'), model.metadata.labels);
    const cache = new MapCache();
    const drops = (r: StrategiesReport) => r.classes.flatMap((c) => c.clusters.map((k) => k.hints.intervention));
    const a = await analyseStrategies(model, ds, { classes: ['cross', 'ring'] }, { cache });
    const computed = cache.probesComputed;
    // Per cluster: its members (at most 16) as they are, hot region blurred, control blurred.
    const expected = a.classes.flatMap((c) => c.clusters.map((k) => 3 * Math.min(16, k.size))).reduce((x, y) => x + y, 0);
    assert.strictEqual(computed, expected, 'three probabilities per member');
    const before = tf.memory().numTensors;
    const b = await analyseStrategies(model, ds, { classes: ['cross', 'ring'] }, { cache });
    assert.strictEqual(cache.probesComputed, computed, 'no probability computed again');
    assert.strictEqual(cache.probesServed, computed);
    assert.strictEqual(tf.memory().numTensors, before);
    assert.deepStrictEqual(drops(b), drops(a));
    // The cached numbers are those of a run without a cache.
    const c = await analyseStrategies(model, ds, { classes: ['cross', 'ring'] });
    assert.deepStrictEqual(drops(c), drops(a));
  });

  it('stops when cancelled, keeps what it computed, and leaves no tensor', async () => {
    const ds = readDataset(path.join(ROOT, 'samples'), model.metadata.labels);
    const ac = new AbortController();
    const before = tf.memory().numTensors;
    const r = await analyseStrategies(model, ds, {}, {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.phase === 'maps' && p.done >= 8) ac.abort();
      },
    });
    assert.strictEqual(r.cancelled, true);
    assert.ok(r.counts.analysed >= 8 && r.counts.analysed < 48, `analysed ${r.counts.analysed}`);
    assert.strictEqual(tf.memory().numTensors, before);
  });
});

describe('cam-lens strategies', () => {
  const run = (args: string[]) => {
    // The CLI from source (no build): its main() through tsx's CommonJS hook.
    const code = `require(${JSON.stringify(path.join(ROOT, 'src', 'extension', 'cli.ts'))}).main(process.argv.slice(1)).then((c) => { process.exitCode = c; })`;
    const r = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', code, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 240000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('exits 2 on bad usage before reading any file, 1 on bad input, each with one line', () => {
    for (const args of [['--model', 'nope.json', '--data', 'nowhere', '--clusters', '0'], ['--model', 'nope.json'], ['--model', 'a', '--data', 'b', '--method', 'gradkam'], ['--model', 'a', '--data', 'b', '--html', '-']]) {
      const r = run(['strategies', ...args]);
      assert.strictEqual(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.strictEqual(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    const missing = run(['strategies', '--model', 'models/demo/model.json', '--data', 'nowhere']);
    assert.strictEqual(missing.code, 1);
    assert.match(missing.stderr.trim(), /^cam-lens: dataset not found: nowhere$/);
  });

  it('marks the clusters the view marks, naming the hints: the shortcut model\'s badge cluster of star, none of the clean model', () => {
    const shortcut = run(['strategies', '--model', 'models/demo-shortcut/model.json', '--data', 'samples-shortcut', '--class', 'star', '-q']);
    assert.strictEqual(shortcut.code, 0, shortcut.stderr);
    const marked = shortcut.stdout.split('\n').filter((l) => l.includes('possible shortcut'));
    assert.strictEqual(marked.length, 1, shortcut.stdout);
    assert.match(marked[0], /cluster \d: 8 .*corner bottom-right .*<- possible shortcut \(corner, outside box, blur\)$/);
    const clean = run(['strategies', '--model', 'models/demo/model.json', '--data', 'samples-shortcut', '--class', 'star', '--no-intervention', '-q']);
    assert.strictEqual(clean.code, 0, clean.stderr);
    assert.match(clean.stdout, /star: 12 images/);
    assert.ok(!clean.stdout.includes('possible shortcut'), clean.stdout);
  });

  it('writes the JSON report and a self-contained HTML page', () => {
    const dir = tempDir();
    const json = path.join(dir, 'r.json');
    const html = path.join(dir, 'r.html');
    const r = run(['strategies', '--model', 'models/demo/model.json', '--data', 'samples', '--class', 'star', '--no-intervention', '--json', json, '--html', html, '-q']);
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /star: 8 images/);
    const rep = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.strictEqual(rep.classes.length, 1);
    assert.strictEqual(rep.classes[0].averageMap.values.length, 32 * 32);
    assert.ok(rep.classes[0].clusters[0].hints.corner.rule.includes('25%'));
    const page = fs.readFileSync(html, 'utf8');
    assert.ok(page.includes('data:image/png;base64,'));
    assert.ok(!/<script/i.test(page) && !/src="(?!data:)/.test(page), 'no script, no external source');
  });
});
