/**
 * Model strategies (issue #14): maps per second of `strategies` (Grad-CAM at the recommended layer, decode, map,
 * resize to the 32x32 grid) on the demo model over a generated labelled folder of N images (default 240) and on
 * the reference MobileNet v1 0.25 over copies of the reference photos (skipped where ../shared/reference is
 * absent); a re-cluster from the map cache; the clustering alone (features, k-NN graph, Laplacian spectrum,
 * eigengap, k-means) of 1,000 and 10,000 synthetic 32x32 maps in three groups, separate and bridged, wall and CPU time (the machine is
 * shared: CPU time is the steadier figure); and memory (RSS, and the map cache's size per map).
 *   node --expose-gc --import tsx bench/strategies.ts [N] [--sizes 1000,10000]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import sharp from 'sharp';
import { initBackend } from '../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../src/extension/engine/model';
import { readDataset } from '../src/extension/engine/scan/dataset';
import { analyseStrategies } from '../src/extension/engine/analysis/strategies';
import { MapCache } from '../src/extension/engine/analysis/maps';
import { SeededRandom } from '../src/extension/engine/analysis/eigen';
import { mapFeatures, spectralCluster } from '../src/extension/engine/analysis/spectral';
import { CLASS_NAMES, IMAGE_SIZE, generateSample } from '../scripts/demo/generator';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 240);
const SIZES = flag('--sizes', '1000,10000').split(',').map(Number);
const ROOT = path.join(__dirname, '..');
const SHARED = path.resolve(ROOT, '..', 'shared', 'reference');
const mib = (b: number) => (b / 2 ** 20).toFixed(0);
const gc = () => (globalThis as { gc?: () => void }).gc?.();

async function demoFolder(n: number): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-bench-strategies-'));
  for (const c of CLASS_NAMES) fs.mkdirSync(path.join(dir, c));
  for (let i = 0; i < n; i++) {
    const s = generateSample(4242, i);
    await sharp(Buffer.from(s.pixels), { raw: { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: 3 } }).png().toFile(path.join(dir, s.className, `${i}.png`));
  }
  return dir;
}

function photoFolder(copies: number): string | undefined {
  const images = path.join(SHARED, 'images');
  if (!fs.existsSync(images)) return undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-bench-strategies-photos-'));
  fs.mkdirSync(path.join(dir, 'tabby'));
  const photos = fs.readdirSync(images).filter((f) => !f.startsWith('mnist') && /\.(png|jpe?g)$/i.test(f));
  for (let c = 0; c < copies; c++) for (const f of photos) fs.copyFileSync(path.join(images, f), path.join(dir, 'tabby', `${c}_${f}`));
  return dir;
}

async function mapsPerSecond(name: string, model: LoadedModel, data: string): Promise<void> {
  const ds = readDataset(data, model.metadata.labels);
  const cache = new MapCache();
  let mapsDone = 0;
  let mapsEnd = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const r = await analyseStrategies(model, ds, { intervention: false }, {
    cache,
    onProgress: (p) => {
      if (p.phase === 'maps') {
        mapsDone = p.done;
        mapsEnd = performance.now();
      }
    },
  });
  const cpu = process.cpuUsage(cpu0);
  const mapSecs = (mapsEnd - t0) / 1000;
  const t1 = performance.now();
  const again = await analyseStrategies(model, ds, { intervention: false, clusters: 3 }, { cache });
  const reSecs = (performance.now() - t1) / 1000;
  const t2 = performance.now();
  const withBlur = await analyseStrategies(model, ds, {}, { cache });
  const blurSecs = (performance.now() - t2) / 1000;
  const blurred = withBlur.classes.reduce((s, c) => s + c.clusters.reduce((u, k) => u + (k.hints.intervention?.images ?? 0), 0), 0);
  console.log(`${name}: ${mapsDone} maps in ${mapSecs.toFixed(1)} s = ${(mapsDone / mapSecs).toFixed(1)} maps/s at ${r.layer} (whole run ${r.seconds.toFixed(1)} s, ` +
    `CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s); re-cluster from the cache (k = 3, ${again.counts.fromCache} cached maps) ${reSecs.toFixed(2)} s; ` +
    `with the blur check (${blurred} images x 3 passes) ${blurSecs.toFixed(1)} s`);
}

/**
 * Clustering alone. `bridged` false: three separate groups of blobs (the k-NN graph falls apart: k by components,
 * no eigen-decomposition); true: every tenth map sits anywhere on the line between two group centres, which joins
 * the groups into one graph, so the spectrum (principal components, sparse graph, block Lanczos) decides.
 */
function clusterBench(n: number, bridged: boolean): void {
  const G = 32;
  const rng = new SeededRandom(9);
  const centres = [[6, 6], [26, 26], [26, 6]];
  const maps: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    let [cx, cy] = centres[i % 3];
    if (bridged && i % 10 === 9) {
      const t = rng.next();
      const [ox, oy] = centres[(i + 1) % 3];
      cx += (ox - cx) * t;
      cy += (oy - cy) * t;
    }
    const jx = cx + (rng.next() - 0.5) * 4;
    const jy = cy + (rng.next() - 0.5) * 4;
    const m = new Float32Array(G * G);
    for (let y = 0; y < G; y++) for (let x = 0; x < G; x++) m[y * G + x] = Math.exp(-((x - jx) ** 2 + (y - jy) ** 2) / 32) + 0.05 * rng.next();
    maps.push(m);
  }
  gc();
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const f = mapFeatures(maps, G, G);
  const r = spectralCluster(f.data, f.dim, { seed: 1 });
  const cpu = process.cpuUsage(cpu0);
  const secs = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  // Recovered: every map of a group (the bridging ones left out) in its group's cluster.
  const ok = r.k === 3 && r.labels.every((c, i) => (bridged && i % 10 === 9) || c === r.labels[i % 3]);
  console.log(`cluster ${n} maps (32x32), ${bridged ? 'groups bridged (one graph)' : 'separate groups'}: ${secs.toFixed(1)} s wall, ` +
    `${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU; k = ${r.k} (${r.by}; eigenvalues ${r.eigenvalues.slice(0, 5).map((v) => v.toExponential(1)).join(' ')}), ` +
    `${r.neighbours} neighbours, groups recovered: ${ok}; RSS +${mib(peak - rss0)} MiB at peak`);
}

async function main(): Promise<void> {
  const backend = await initBackend('auto');
  console.log(`strategies benchmark on ${backend.name} (${backend.threads} thread${backend.threads === 1 ? '' : 's'}), load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}, ${os.cpus().length} cores`);
  const demo = await loadModel(path.join(ROOT, 'models', 'demo', 'model.json'));
  const dir = await demoFolder(N);
  try {
    await mapsPerSecond(`demo model, ${N} generated images`, demo, dir);
  } finally {
    demo.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const mobilenet = path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json');
  const photos = fs.existsSync(mobilenet) ? photoFolder(4) : undefined;
  if (photos) {
    const labels = JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes.json'), 'utf8')) as string[];
    const m = await loadModel(mobilenet, { overrides: { labels, preprocess: '[-1,1]' } });
    try {
      await mapsPerSecond(`MobileNet v1 0.25 (224x224), ${readDataset(photos, labels).samples.length} photos`, m, photos);
    } finally {
      m.dispose();
      fs.rmSync(photos, { recursive: true, force: true });
    }
  } else console.log('MobileNet: skipped (../shared/reference is absent)');
  for (const n of SIZES) for (const bridged of [false, true]) clusterBench(n, bridged);
  // The cache: what one map costs in memory (map and thumbnail on the 32x32 grid, plus the entry and its key).
  gc();
  const h0 = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const cache = new MapCache();
  for (let i = 0; i < 10000; i++) {
    cache.set(`key ${i} /some/dataset/class/image_${i}.png 1700000000000:12345`, { map: new Float32Array(1024), thumb: new Uint8Array(3072), imageWidth: 96, imageHeight: 96, predictedIndex: 0, predictedProbability: 1, explainedIndex: 0, probability: 1 });
  }
  gc();
  const h1 = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  console.log(`map cache: ${((h1 - h0) / 10000 / 1024).toFixed(1)} KiB per map (10,000 maps: ${mib(h1 - h0)} MiB); RSS now ${mib(process.memoryUsage().rss)} MiB`);
  cache.clear();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
