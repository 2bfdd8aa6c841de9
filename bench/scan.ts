/**
 * Scan throughput and memory (issue 6): the bundled demo model over a generated labelled folder of N images
 * (default 2,000): images per second, and RSS sampled as the scan goes (it must stay flat, not grow with N).
 *   node --expose-gc --import tsx bench/scan.ts [N]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { initBackend } from '../src/extension/engine/backend';
import { loadModel } from '../src/extension/engine/model';
import { readDataset } from '../src/extension/engine/scan/dataset';
import { scanDataset } from '../src/extension/engine/scan/scan';
import { CLASS_NAMES, IMAGE_SIZE, generateSample } from '../scripts/demo/generator';

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 2000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-scan-bench-'));
  for (let i = 0; i < n; i++) {
    const s = generateSample(777, i);
    fs.mkdirSync(path.join(dir, CLASS_NAMES[s.label]), { recursive: true });
    await sharp(Buffer.from(s.pixels), { raw: { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: 3 } }).png().toFile(path.join(dir, CLASS_NAMES[s.label], `${i}.png`));
  }
  const info = await initBackend('auto');
  const model = await loadModel(path.join(__dirname, '..', 'models', 'demo', 'model.json'));
  const ds = readDataset(dir, model.metadata.labels);
  const rss: [number, number][] = [];
  let peak = 0;
  const scan = await scanDataset(model, ds, {
    batchSize: 32,
    onProgress: (p) => {
      const r = process.memoryUsage().rss;
      peak = Math.max(peak, r);
      if (rss.length === 0 || p.done - rss[rss.length - 1][0] >= n / 10 || p.done === p.total) rss.push([p.done, r]);
    },
  });
  const mb = (b: number) => (b / 2 ** 20).toFixed(0);
  console.log(`scan of ${n} generated 96x96 PNGs with the demo model on ${info.name}: ${(scan.results.length / scan.seconds).toFixed(1)} images/s (${scan.seconds.toFixed(1)} s), peak RSS ${mb(peak)} MiB`);
  console.log(`RSS (MiB) after N images: ${rss.map(([d, r]) => `${d}: ${mb(r)}`).join(', ')}`);
  const first = rss[Math.min(1, rss.length - 1)][1];
  const last = rss[rss.length - 1][1];
  console.log(`growth from the first tenth to the end: ${mb(last - first)} MiB`);
  model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
