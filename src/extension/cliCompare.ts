/**
 * `cam-lens compare`: two models side by side (issue #14 item 4), over the engine's analysis/compare.ts.
 *
 *   cam-lens compare --model <A> --model-b <B> --image <file> [--class <index|label>] [--method <id>]
 *                    [--layer <name>] [--layer-b <name>] [--json <file|->] [--png <file>]
 *   cam-lens compare --model <A> --model-b <B> --data <folder|label file> [--labels <csv|json>] [--class …]
 *                    [--method <id>] [--layer <name>] [--layer-b <name>] [--json <file|->] [--show <n>]
 *
 * With --image: both models' predictions and maps of one class (default model A's top-1, found in B by its label),
 * the rank correlation of the maps and the mean absolute difference; --png writes A's map, B's map and the
 * difference A - B over the image, side by side. With --data: every sample of a labelled dataset (read with model
 * A's labels), each map explaining the sample's given label (or --class for all), ranked: top-1 disagreements
 * first, then the lowest map correlation.
 *
 * Conventions as cli.ts: usage errors (this module checks them all before reading a file) exit 2, bad input or a
 * failure exit 1, each with one line on stderr; progress on stderr (cliProgress.ts), none with --quiet or --json -.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UsageError, intOption, need, oneOf, parseCommandArgs, type Values } from './cliArgs';
import { BACKEND_CHOICES, MAX_WASM_THREADS, initBackend, type BackendChoice } from './engine/backend';
import { CamLensError } from './engine/errors';
import { loadModel, type LoadedModel } from './engine/model';
import { oneLine } from './engine/modelFormat';
import { METHOD_IDS, METHODS } from './engine/cam/registry';
import { readDataset } from './engine/scan/dataset';
import { compareDataset, compareImage, renderComparisonPng, type ImageComparison, type SampleComparison } from './engine/analysis/compare';
import type { MapResult } from './engine/cam/base';
import { CliProgress } from './cliProgress';

export const COMPARE_USAGE = `cam-lens compare — two models side by side

Usage:
  cam-lens compare --model <A> --model-b <B> --image <file> [--class <index|label>] [--method <id>]
                   [--layer <name>] [--layer-b <name>] [--json <file|->] [--png <file>]
  cam-lens compare --model <A> --model-b <B> --data <folder|label file> [--labels <csv|json>]
                   [--class <index|label>] [--method <id>] [--layer <name>] [--layer-b <name>]
                   [--json <file|->] [--show <n>]

  --model, --model-b <file>      the two models (model.json, .onnx, .keras, .h5), any two formats
  --image <file>                 one image: both predictions and maps, their difference and rank correlation
  --data <folder|file>           a labelled dataset (<folder>/<class name>/<images>, or a CSV/JSON label file)
  --labels <csv|json>            with --data: a label file instead of the folder layout
  --class <index|label>          the class both maps explain; an index is model A's, found in B by its label where
                                 the label lists differ. Default: --image model A's top-1; --data each sample's label
  --method <id>                  ${METHOD_IDS.join(' | ')} (default gradcam)
  --layer, --layer-b <name>      target layers of A and B (default each model's recommended layer)
  --json <file|->                the comparison as JSON (- for stdout)
  --png <file>                   with --image: A's map, B's map and A - B (red: A looks more, blue: B) over the image
  --show <n>                     with --data: how many of the most disagreeing samples to print (default 20)
  --backend auto|node|wasm|cpu, --threads <n>, --max-pixels <n>, --quiet/-q   as for the other commands
Ranking (--data): samples whose top-1 differs first, then the lowest Spearman correlation of the two maps.
Shortcuts (a watermark one model learned): --method eigencam, whose maps are class-independent, shows what each
model's features respond to, and ranks the images that carry the shortcut highest.
Exit codes: 0 success, 2 bad usage, 1 bad input or failure.`;

const OPTIONS = {
  model: { type: 'string' },
  'model-b': { type: 'string' },
  image: { type: 'string' },
  data: { type: 'string' },
  labels: { type: 'string' },
  class: { type: 'string' },
  method: { type: 'string' },
  layer: { type: 'string' },
  'layer-b': { type: 'string' },
  json: { type: 'string' },
  png: { type: 'string' },
  show: { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  'max-pixels': { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface Flags {
  modelA: string;
  modelB: string;
  image?: string;
  data?: string;
  labels?: string;
  classChoice?: string;
  method: string;
  layerA?: string;
  layerB?: string;
  json?: string;
  png?: string;
  show: number;
  backend: BackendChoice;
  threads: number;
  maxPixels: number;
  quiet: boolean;
}

/** Every way the command line alone can be wrong, before any file is read. */
function flags(v: Values): Flags {
  const modelA = need(v, 'model');
  const modelB = need(v, 'model-b');
  if (v.image !== undefined && v.data !== undefined) throw new UsageError('give --image (one image) or --data (a dataset), not both');
  if (v.image === undefined && v.data === undefined) throw new UsageError('missing --image <file> or --data <folder|label file>');
  if (v.image !== undefined) {
    for (const k of ['labels', 'show']) if (v[k] !== undefined) throw new UsageError(`--${k} applies to --data only`);
  }
  if (v.data !== undefined && v.png !== undefined) throw new UsageError('--png applies to --image only');
  if (v.png === '-') throw new UsageError('--png writes a file: give it a file name (only --json writes to stdout with -)');
  const method = oneOf(((v.method as string | undefined) ?? 'gradcam').toLowerCase(), METHOD_IDS, 'method');
  const backend = oneOf((v.backend as string | undefined) ?? 'auto', BACKEND_CHOICES, 'backend');
  const t = v.threads as string | undefined;
  if (t !== undefined && (!/^\s*\+?\d+\s*$/.test(t) || !(Number(t) >= 1))) {
    throw new UsageError(`--threads must be a positive integer (the wasm backend uses at most ${MAX_WASM_THREADS}), got "${t}"`);
  }
  const cls = v.class as string | undefined;
  if (cls !== undefined && cls.trim() === '') throw new UsageError('--class needs a class index or label');
  return {
    modelA,
    modelB,
    image: v.image as string | undefined,
    data: v.data as string | undefined,
    labels: v.labels as string | undefined,
    classChoice: cls?.trim(),
    method,
    layerA: v.layer as string | undefined,
    layerB: v['layer-b'] as string | undefined,
    json: v.json as string | undefined,
    png: v.png as string | undefined,
    show: intOption(v, 'show', 20, 0, 1_000_000),
    backend,
    threads: t === undefined ? 0 : Math.min(Number(t), Number.MAX_SAFE_INTEGER),
    maxPixels: intOption(v, 'max-pixels', 100_000_000, 1, Number.MAX_SAFE_INTEGER),
    quiet: v.quiet === true,
  };
}

/** Rounds to 6 significant digits (maps are in [0, 1]; the JSON stays small). */
function round(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(6)) : 0;
}

function checkOutputFolder(target: string | undefined): void {
  if (target === undefined || target === '-') return;
  const dir = path.dirname(path.resolve(target));
  if (!fs.existsSync(dir)) throw new CamLensError('FILE_NOT_FOUND', `cannot write ${target}: folder ${dir} does not exist`);
}

function writeJson(target: string, obj: unknown): void {
  const text = JSON.stringify(obj, null, 2) + '\n';
  if (target === '-') process.stdout.write(text);
  else fs.writeFileSync(target, text);
}

const pct = (p: number) => `${(p * 100).toFixed(1)}%`;

function mapJson(m: MapResult): Record<string, unknown> {
  return { width: m.width, height: m.height, values: Array.from(m.values, round), rawMin: round(m.rawMin), rawMax: round(m.rawMax) };
}

function imageJson(c: ImageComparison, image: string, backend: string, seconds: number): Record<string, unknown> {
  const sideJson = (s: ImageComparison['a']) => ({
    model: s.model,
    name: s.name,
    layer: s.layer,
    target: { index: s.target.index, label: s.target.label, probability: round(s.target.probability) },
    predictions: s.predictions.map((p) => ({ index: p.index, label: p.label, probability: round(p.probability) })),
    heatmap: mapJson(s.heatmap),
  });
  return {
    image: path.resolve(image),
    method: c.method,
    class: c.classLabel,
    backend,
    a: sideJson(c.a),
    b: sideJson(c.b),
    top1Differs: c.top1Differs,
    correlation: round(c.correlation),
    meanAbsDifference: round(c.meanAbsDifference),
    difference: { width: c.width, height: c.height, values: Array.from(c.difference, round) },
    seconds: round(seconds),
  };
}

function sampleJson(s: SampleComparison, rank: number): Record<string, unknown> {
  return {
    rank,
    path: s.path,
    relPath: s.relPath,
    givenLabel: s.givenLabel,
    explained: { label: s.explained.label, probabilityA: round(s.explained.probabilityA), probabilityB: round(s.explained.probabilityB) },
    top1A: { ...s.top1A, probability: round(s.top1A.probability) },
    top1B: { ...s.top1B, probability: round(s.top1B.probability) },
    top1Differs: s.top1Differs,
    correlation: round(s.correlation),
    meanAbsDifference: round(s.meanAbsDifference),
    layerA: s.layerA,
    layerB: s.layerB,
  };
}

async function loadBoth(f: Flags): Promise<[LoadedModel, LoadedModel, string]> {
  const backend = await initBackend(f.backend, { threads: f.threads });
  const a = await loadModel(f.modelA);
  try {
    return [a, await loadModel(f.modelB), backend.name];
  } catch (e) {
    a.dispose();
    throw e;
  }
}

async function compareOneImage(f: Flags, image: string): Promise<void> {
  const t0 = performance.now();
  const [a, b, backend] = await loadBoth(f);
  const progress = new CliProgress({ stream: process.stderr, enabled: !f.quiet && f.json !== '-' });
  try {
    const c = await compareImage(a, b, image, {
      method: f.method, classChoice: f.classChoice, layerA: f.layerA, layerB: f.layerB, maxPixels: f.maxPixels,
      onProgress: progress.task(METHODS.find((m) => m.id === f.method)?.label ?? f.method, 'steps'),
    });
    progress.end();
    if (f.png !== undefined) fs.writeFileSync(f.png, await renderComparisonPng(c.image, c));
    if (f.json !== undefined) writeJson(f.json, imageJson(c, image, backend, (performance.now() - t0) / 1000));
    if (f.json === '-') return;
    const label = METHODS.find((m) => m.id === c.method)?.label ?? c.method;
    console.log(`${path.basename(image)}: ${label} maps for "${c.classLabel}" on ${backend}`);
    for (const [which, s] of [['A', c.a], ['B', c.b]] as const) {
      const top = s.predictions[0];
      console.log(`  ${which} ${s.name}: top-1 "${top.label}" ${pct(top.probability)}; "${s.target.label}" ${pct(s.target.probability)}; map ${s.heatmap.width}x${s.heatmap.height} at ${s.layer}`);
    }
    console.log(`  top-1 ${c.top1Differs ? 'DIFFERS' : 'agrees'}; rank correlation of the maps ${c.correlation.toFixed(3)}; mean |A - B| ${c.meanAbsDifference.toFixed(3)} on ${c.width}x${c.height}`);
    if (f.png !== undefined) console.log(`  maps A, B and A - B written to ${f.png}`);
  } finally {
    progress.stop();
    a.dispose();
    b.dispose();
  }
}

async function compareOnData(f: Flags, data: string): Promise<void> {
  const [a, b, backend] = await loadBoth(f);
  const progress = new CliProgress({ stream: process.stderr, enabled: !f.quiet && f.json !== '-' });
  try {
    const dataset = readDataset(data, a.metadata.labels, f.labels);
    const onProgress = progress.task('Compare', 'images');
    const r = await compareDataset(a, b, dataset, {
      method: f.method, layerA: f.layerA, layerB: f.layerB, classChoice: f.classChoice, maxPixels: f.maxPixels,
      onProgress: (p) => onProgress(p.done, p.total),
    });
    progress.end();
    const differs = r.results.filter((s) => s.top1Differs).length;
    if (f.json !== undefined) {
      writeJson(f.json, {
        modelA: a.path, modelB: b.path, data: dataset.source, method: r.method, explained: f.classChoice ?? 'given label', backend,
        ranking: 'top-1 disagreements first, then by map correlation (Spearman), lowest first',
        counts: { samples: dataset.samples.length, compared: r.results.length, failed: r.failures.length, top1Differs: differs },
        samples: r.results.map((s, i) => sampleJson(s, i + 1)),
        failures: r.failures.map((x) => ({ path: x.path, relPath: x.relPath, error: x.error })),
        cancelled: r.cancelled,
        seconds: round(r.seconds),
      });
    }
    if (f.json !== '-') {
      const label = METHODS.find((m) => m.id === r.method)?.label ?? r.method;
      console.log(`${dataset.source}: ${r.results.length} of ${dataset.samples.length} images compared, A ${a.name} against B ${b.name}, ${label} maps of ` +
        `${f.classChoice ? `"${f.classChoice}"` : 'the given label'}, on ${backend} in ${r.seconds.toFixed(1)} s; ${differs} top-1 disagreement${differs === 1 ? '' : 's'}`);
      if (r.failures.length) console.log(`  ${r.failures.length} not compared: ${r.failures.slice(0, 3).map((x) => `${x.relPath} (${x.error})`).join('; ')}${r.failures.length > 3 ? '; …' : ''}`);
      const rows = r.results.slice(0, f.show);
      if (rows.length) console.log('most disagreeing first (top-1 differs, then lowest map correlation):');
      rows.forEach((s, i) => {
        console.log(`  ${String(i + 1).padStart(4)}. ${s.top1Differs ? 'TOP-1 DIFFERS ' : '              '}${s.relPath}: correlation ${s.correlation.toFixed(3)}, ` +
          `A "${s.top1A.label}" ${pct(s.top1A.probability)}, B "${s.top1B.label}" ${pct(s.top1B.probability)}`);
      });
    }
    if (r.results.length === 0 && !r.cancelled) {
      const first = r.failures[0];
      throw new CamLensError('NOT_AN_IMAGE', `none of the ${dataset.samples.length} samples could be compared` + (first ? ` (${first.relPath}: ${first.error})` : ''));
    }
  } finally {
    progress.stop();
    a.dispose();
    b.dispose();
  }
}

/** `cam-lens compare …` (args after the command name); returns the exit code. */
export async function runCompare(args: string[]): Promise<number> {
  try {
    const v = parseCommandArgs(args, OPTIONS, '--image <file>', 'compare');
    if (v.help) {
      process.stdout.write(COMPARE_USAGE + '\n');
      return 0;
    }
    const f = flags(v);
    for (const o of [f.json, f.png]) checkOutputFolder(o);
    for (const m of [f.modelA, f.modelB]) if (!fs.existsSync(m)) throw new CamLensError('FILE_NOT_FOUND', `model not found: ${m}`);
    if (f.image !== undefined) {
      if (!fs.existsSync(f.image)) throw new CamLensError('FILE_NOT_FOUND', `image not found: ${f.image}`);
      await compareOneImage(f, f.image);
    } else {
      const data = f.data as string;
      if (!fs.existsSync(data)) throw new CamLensError('FILE_NOT_FOUND', `dataset not found: ${data}`);
      await compareOnData(f, data);
    }
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`cam-lens: ${oneLine(e.message, 1000)} (see cam-lens compare --help)\n`);
      return 2;
    }
    if (e instanceof CamLensError) {
      process.stderr.write(`cam-lens: ${oneLine(e.message + (e.hint ? ` (${e.hint})` : ''), 2000)}\n`);
      return 1;
    }
    const err = e as Error;
    process.stderr.write(`cam-lens: unexpected error: ${oneLine(err?.message ?? String(e), 1000)}\n`);
    if (process.env.CAM_LENS_DEBUG) process.stderr.write(`${err?.stack}\n`);
    return 1;
  }
}
