/**
 * `cam-lens strategies`: what the model looks at across a dataset (issue #14), over engine/analysis/strategies.ts.
 *
 *   cam-lens strategies --model <M> --data <folder|label file> [--labels <csv|json>] [--class <c>]...
 *                       [--group-by given|predicted] [--method <id>] [--layer <name>] [--clusters <k|auto>]
 *                       [--max-clusters <n>] [--map-size <n>] [--neighbours <n>] [--seed <n>] [--boxes <file|folder>]
 *                       [--no-intervention] [--json <file|->] [--html <file>]
 *
 * Per class: the average map, the spectral clusters of the maps (SpRAy) with their sizes, average maps, members
 * nearest the centre and shortcut hints (corner, border, outside the object box, blur intervention), each a
 * number with its rule. --json writes the whole report (maps as number arrays), --html a self-contained page.
 *
 * Conventions as cli.ts: usage errors (all checked here before any file is read) exit 2, bad input or a failure
 * exit 1, each with one line on stderr; progress on stderr (cliProgress.ts), none with --quiet or --json -.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UsageError, intOption, need, oneOf, parseCommandArgs, type Values } from './cliArgs';
import { BACKEND_CHOICES, MAX_WASM_THREADS, initBackend, type BackendChoice } from './engine/backend';
import { CamLensError } from './engine/errors';
import { loadModel } from './engine/model';
import { oneLine } from './engine/modelFormat';
import { METHOD_IDS, METHODS } from './engine/cam/registry';
import { PREPROCESS_PRESETS, type PreprocessPreset } from './engine/preprocess';
import { readDataset } from './engine/scan/dataset';
import { analyseStrategies, type StrategiesSettings } from './engine/analysis/strategies';
import { renderStrategiesHtml } from './engine/analysis/html';
import type { MapGrid, ShortcutHints, StrategiesReport } from './engine/analysis/types';
import { CliProgress } from './cliProgress';
import { suspiciousHints, type HintId } from '../shared/strategies';

export const STRATEGIES_USAGE = `cam-lens strategies — what the model looks at across a dataset (SpRAy over CAM maps)

Usage:
  cam-lens strategies --model <M> --data <folder|label file> [--labels <csv|json>] [--class <index|label>]...
                      [--method <id>] [--layer <name>] [--clusters <k|auto>] [--json <file|->] [--html <file>]

  --model <file>                 the model (model.json, .onnx, .keras, .h5)
  --data <folder|file>           a labelled dataset (<folder>/<class name>/<images>, or a CSV/JSON label file)
  --labels <csv|json>            a label file instead of the folder layout
  --class <index|label>          a class to analyse (repeat for several); default every class with images
  --group-by given|predicted     classes by the dataset's label (default) or by the model's top-1
  --method <id>                  ${METHOD_IDS.join(' | ')} (default gradcam)
  --layer <name>                 target layer (default the model's recommended layer)
  --clusters <k|auto>            clusters per class: a number, or auto (the eigengap; the default)
  --max-clusters <n>             the most clusters auto considers (default 8)
  --map-size <n>                 side of the common map grid (default 32)
  --neighbours <n>               neighbours per map in the affinity graph (default about sqrt(images), 2..16)
  --seed <n>                     seed of the k-means starts (default 1; same seed, same clusters)
  --boxes <file|folder>          object boxes: boxes.json (as samples/boxes.json), COCO JSON, or Pascal VOC XML
                                 (a file or a folder); default <data>/boxes.json where there is one
  --no-intervention              skip the blur check (no forward passes after the maps)
  --json <file|->                the report as JSON (- for stdout)
  --html <file>                  the report as one self-contained HTML page (images inlined, no scripts)
  --backend auto|node|wasm|cpu, --threads <n>, --preprocess <preset>, --max-pixels <n>, --quiet/-q
                                 as for the other commands
Exit codes: 0 success, 2 bad usage, 1 bad input or failure.`;

const OPTIONS = {
  model: { type: 'string' },
  data: { type: 'string' },
  labels: { type: 'string' },
  class: { type: 'string', multiple: true },
  'group-by': { type: 'string' },
  method: { type: 'string' },
  layer: { type: 'string' },
  clusters: { type: 'string' },
  'max-clusters': { type: 'string' },
  'map-size': { type: 'string' },
  neighbours: { type: 'string' },
  seed: { type: 'string' },
  boxes: { type: 'string' },
  'no-intervention': { type: 'boolean' },
  json: { type: 'string' },
  html: { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  preprocess: { type: 'string' },
  'max-pixels': { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface Flags {
  model: string;
  data: string;
  labels?: string;
  settings: StrategiesSettings;
  json?: string;
  html?: string;
  backend: BackendChoice;
  threads: number;
  preprocess?: PreprocessPreset;
  maxPixels: number;
  quiet: boolean;
}

/** Every way the command line alone can be wrong, before any file is read. */
function flags(v: Values): Flags {
  const model = need(v, 'model');
  const data = need(v, 'data');
  const method = oneOf(((v.method as string | undefined) ?? 'gradcam').toLowerCase(), METHOD_IDS, 'method');
  const backend = oneOf((v.backend as string | undefined) ?? 'auto', BACKEND_CHOICES, 'backend');
  const groupBy = oneOf((v['group-by'] as string | undefined) ?? 'given', ['given', 'predicted'] as const, 'grouping (--group-by)');
  const preprocess = v.preprocess === undefined ? undefined : oneOf(v.preprocess as string, PREPROCESS_PRESETS, 'preprocessing');
  const t = v.threads as string | undefined;
  if (t !== undefined && (!/^\s*\+?\d+\s*$/.test(t) || !(Number(t) >= 1))) {
    throw new UsageError(`--threads must be a positive integer (the wasm backend uses at most ${MAX_WASM_THREADS}), got "${t}"`);
  }
  let clusters: number | 'auto' | undefined;
  const c = v.clusters as string | undefined;
  if (c !== undefined) {
    if (c.trim().toLowerCase() === 'auto') clusters = 'auto';
    else clusters = intOption(v, 'clusters', undefined, 1, 64);
  }
  if (v.html === '-') throw new UsageError('--html writes a file: give it a file name (only --json writes to stdout with -)');
  const classes = (v.class as string[] | undefined)?.map((s) => s.trim());
  return {
    model,
    data,
    labels: v.labels as string | undefined,
    settings: {
      method,
      layer: v.layer as string | undefined,
      groupBy,
      ...(classes?.length ? { classes } : {}),
      ...(clusters !== undefined ? { clusters } : {}),
      maxClusters: intOption(v, 'max-clusters', undefined, 1, 32),
      mapSize: intOption(v, 'map-size', undefined, 4, 128),
      neighbours: intOption(v, 'neighbours', undefined, 1, 100),
      seed: intOption(v, 'seed', undefined, 0, 2 ** 31 - 1),
      boxes: v.boxes as string | undefined,
      intervention: v['no-intervention'] !== true,
    },
    json: v.json as string | undefined,
    html: v.html as string | undefined,
    backend,
    threads: t === undefined ? 0 : Math.min(Number(t), Number.MAX_SAFE_INTEGER),
    preprocess,
    maxPixels: intOption(v, 'max-pixels', undefined, 1, Number.MAX_SAFE_INTEGER) ?? 100_000_000,
    quiet: v.quiet === true,
  };
}

function checkOutputFolder(target: string | undefined): void {
  if (target === undefined || target === '-') return;
  const dir = path.dirname(path.resolve(target));
  if (!fs.existsSync(dir)) throw new CamLensError('FILE_NOT_FOUND', `cannot write ${target}: folder ${dir} does not exist`);
}

const r4 = (x: number) => (Number.isFinite(x) ? Math.round(x * 1e4) / 1e4 : 0);
const grid = (m: MapGrid) => ({ width: m.width, height: m.height, values: Array.from(m.values, r4) });

function hintsJson(h: ShortcutHints): Record<string, unknown> {
  const share = (s: { share: number; uniform: number; rule: string }) => ({ ...s, share: r4(s.share), uniform: r4(s.uniform) });
  const iv = h.intervention;
  return {
    border: share(h.border),
    corner: { ...share(h.corner), corner: h.corner.corner },
    ...(h.outsideBox ? { outsideBox: { ...share(h.outsideBox), images: h.outsideBox.images } } : {}),
    ...(iv ? { intervention: { ...iv, hotDrop: r4(iv.hotDrop), controlDrop: r4(iv.controlDrop), ratio: r4(iv.ratio), baseline: r4(iv.baseline) } } : {}),
  };
}

/** The report with typed arrays as plain arrays and numbers rounded to 4 decimals. */
export function reportJson(r: StrategiesReport, backend: string): Record<string, unknown> {
  return {
    ...r,
    backend,
    seconds: r4(r.seconds),
    classes: r.classes.map((c) => ({
      ...c,
      averageMap: grid(c.averageMap),
      averageImage: { width: c.averageImage.width, height: c.averageImage.height, data: Array.from(c.averageImage.data) },
      hints: hintsJson(c.hints),
      clusters: c.clusters.map((k) => ({ ...k, fraction: r4(k.fraction), averageMap: grid(k.averageMap), hints: hintsJson(k.hints) })),
      members: c.members.map((m) => ({ ...m, predictedProbability: r4(m.predictedProbability), probability: r4(m.probability) })),
    })),
  };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
/** A drop of probability: "−12.0%" (a rise shows as "+0.3%"). */
const drop = (x: number) => (x >= 0 ? `−${pct(x)}` : `+${pct(-x)}`);

const HINT_NAMES: Record<HintId, string> = { border: 'border', corner: 'corner', outsideBox: 'outside box', intervention: 'blur' };

function printReport(r: StrategiesReport, backend: string): void {
  const label = METHODS.find((m) => m.id === r.method)?.label ?? r.method;
  console.log(`${r.data}: ${label} maps at ${r.layer} of ${r.counts.analysed} of ${r.counts.images} images (${r.counts.fromCache} cached), ` +
    `${r.classes.length} class${r.classes.length === 1 ? '' : 'es'} by ${r.groupBy} label, on ${backend} in ${r.seconds.toFixed(1)} s` + (r.cancelled ? ' (cancelled: partial)' : ''));
  if (r.boxes) console.log(`  object boxes from ${r.boxes.source} (${r.boxes.format}, ${r.boxes.images} images)`);
  if (r.failures.length) console.log(`  ${r.failures.length} not analysed: ${r.failures.slice(0, 3).map((x) => `${x.relPath} (${x.error})`).join('; ')}${r.failures.length > 3 ? '; …' : ''}`);
  for (const c of r.classes) {
    const cc = c.clusterChoice;
    console.log(`${c.label}: ${c.count} images, ${cc.k} cluster${cc.k === 1 ? '' : 's'} (${cc.by}${cc.eigengap !== undefined ? `, gap ${cc.eigengap.toFixed(3)}` : ''}; eigenvalues ${cc.eigenvalues.slice(0, 6).map((v) => v.toFixed(3)).join(' ')})`);
    for (const k of c.clusters) {
      const h = k.hints;
      const parts = [`corner ${h.corner.corner} ${pct(h.corner.share)}`, `border ${pct(h.border.share)}`];
      if (h.outsideBox) parts.push(`outside box ${pct(h.outsideBox.share)}`);
      if (h.intervention) parts.push(`blur hot ${drop(h.intervention.hotDrop)} vs control ${drop(h.intervention.controlDrop)} (${h.intervention.ratio.toFixed(1)}×)`);
      // The view's rule (shared/strategies.ts), so the CLI marks the clusters the cards mark.
      const marks = suspiciousHints(h);
      const flag = marks.length ? `  <- possible shortcut (${marks.map((m) => HINT_NAMES[m]).join(', ')})` : '';
      console.log(`  cluster ${k.id + 1}: ${k.size} (${pct(k.fraction)}); ${parts.join('; ')}${flag}`);
      console.log(`    nearest the centre: ${k.nearest.slice(0, 4).map((m) => m.relPath).join(', ')}${k.nearest.length > 4 ? ', …' : ''}`);
    }
  }
}

async function run(f: Flags): Promise<void> {
  const backend = await initBackend(f.backend, { threads: f.threads });
  const model = await loadModel(f.model);
  const progress = new CliProgress({ stream: process.stderr, enabled: !f.quiet && f.json !== '-' });
  try {
    const dataset = readDataset(f.data, model.metadata.labels, f.labels);
    if (dataset.samples.length === 0) throw new CamLensError('BAD_ARGUMENT', `${f.data}: no image of a class the model knows (${dataset.counts.images} images, ${dataset.unmatchedClasses.length} unmatched classes)`);
    // One progress step per long phase: the maps, then the blur checks (a new task ends the one before).
    let phase = 'maps';
    let onStep = progress.task('Maps', 'images');
    const report = await analyseStrategies(model, dataset, f.settings, {
      preprocess: f.preprocess,
      maxPixels: f.maxPixels,
      onProgress: (p) => {
        if (p.phase === 'interventions' && phase !== 'interventions') {
          phase = 'interventions';
          onStep = progress.task('Blur checks', 'clusters');
        }
        if (p.phase === phase) onStep(p.done, p.total);
      },
    });
    progress.end();
    if (f.json !== undefined) {
      const text = JSON.stringify(reportJson(report, backend.name), null, 2) + '\n';
      if (f.json === '-') process.stdout.write(text);
      else fs.writeFileSync(f.json, text);
    }
    if (f.html !== undefined) fs.writeFileSync(f.html, await renderStrategiesHtml(report));
    if (f.json !== '-') printReport(report, backend.name);
    if (report.counts.analysed === 0 && !report.cancelled) {
      const first = report.failures[0];
      throw new CamLensError('NOT_AN_IMAGE', `none of the ${report.counts.images} images could be analysed` + (first ? ` (${first.relPath}: ${first.error})` : ''));
    }
  } finally {
    progress.stop();
    model.dispose();
  }
}

/** `cam-lens strategies …` (args after the command name); returns the exit code. */
export async function runStrategies(args: string[]): Promise<number> {
  try {
    const v = parseCommandArgs(args, OPTIONS, '--data <folder>', 'strategies');
    if (v.help) {
      process.stdout.write(STRATEGIES_USAGE + '\n');
      return 0;
    }
    const f = flags(v);
    for (const o of [f.json, f.html]) checkOutputFolder(o);
    if (!fs.existsSync(f.model)) throw new CamLensError('FILE_NOT_FOUND', `model not found: ${f.model}`);
    if (!fs.existsSync(f.data)) throw new CamLensError('FILE_NOT_FOUND', `dataset not found: ${f.data}`);
    await run(f);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`cam-lens: ${oneLine(e.message, 1000)} (see cam-lens strategies --help)\n`);
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
