/**
 * `cam-lens`: the headless front end over the same engine the extension uses, for scripts and CI.
 *
 *   cam-lens predict --model <model.json> --image <file> [--top <k>] [--json <file|->]
 *   cam-lens cam     --model <model.json> --image <file> [--method <id>] [--class <index|label>] [--layer <name>]
 *                    [--top <k>] [--json <file|->] [--png <file>] [--backend auto|node|wasm|cpu]
 *                    [--batch-size <n>] [--top-channels <n>] [--workers <n>] [--metrics]
 *   cam-lens layers  --model <model.json> [--json <file|->]
 *                    [--recommend --image <file> [--class <index|label>] [--candidates <n|all>]]
 *   cam-lens scan    --model <model.json> --data <folder> [--labels <csv|json>] [--json <file|->] [--csv <file>]
 *                    [--score self_confidence|normalized_margin] [--batch-size <n>] [--show <n>]
 *
 * Exit codes: 0 success; 2 bad usage (unknown command or option, missing argument); 1 any other bad input
 * or failure. Errors are one line on stderr: `cam-lens: <reason>`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import { BACKEND_CHOICES, initBackend, type BackendChoice, type BackendInfo } from './engine/backend';
import { CamLensError } from './engine/errors';
import { loadModel, type LoadedModel } from './engine/model';
import { describeModel, openImage } from './engine/pipeline';
import { METHODS, METHOD_IDS, getMethod } from './engine/cam/registry';
import { PREPROCESS_PRESETS, type PreprocessPreset } from './engine/preprocess';
import { renderOverlayPng } from './engine/overlay';
import { faithfulness, type FaithfulnessReport, type MapScores } from './engine/faithfulness';
import { DEFAULT_CANDIDATES, recommendLayer, type Recommendation } from './engine/recommend';
import { ScorePool, defaultWorkerCount } from './engine/scorePool';
import { SCORECAM_DEFAULT_BATCH } from './engine/cam/scorecam';
import type { MetadataOverrides } from './engine/metadata';
import { readDataset } from './engine/scan/dataset';
import { scanDataset } from './engine/scan/scan';
import { buildReport, readReviewed, reportToCsv } from './engine/scan/report';
import { SCORE_KINDS, type ScoreKind } from './engine/scan/ranking';
import { COLORMAPS, type ColormapName } from '../shared/colormaps';

const USAGE = `cam-lens — Class Activation Maps for TensorFlow.js image classifiers

Usage:
  cam-lens predict --model <model.json> --image <file> [--top <k>] [--json <file|->]
  cam-lens cam     --model <model.json> --image <file> [--method <id>] [--class <index|label>]
                   [--layer <name>] [--top <k>] [--json <file|->] [--png <file>]
  cam-lens layers  --model <model.json> [--json <file|->]
                   [--recommend --image <file> [--class <index|label>] [--candidates <n|all>]]
  cam-lens scan    --model <model.json> --data <folder> [--labels <csv|json>] [--json <file|->] [--csv <file>]

Options for every command:
  --backend auto|node|wasm|cpu   TensorFlow.js backend (default auto: tfjs-node, else wasm, else cpu)
  --class-names <file>           the model's class names (JSON array or one per line) when it has no metadata
  --label-offset <n>             leading model outputs that are not classes (1 for a "background" output)
  --preprocess <preset>          ${PREPROCESS_PRESETS.join(' | ')} (default: the model's metadata, else [0,1])
  --max-pixels <n>               refuse images larger than this many pixels (default 100000000)
cam options:
  --method <id>                  ${METHOD_IDS.join(' | ')} (default gradcam)
  --colormap <name>              ${COLORMAPS.join(' | ')} (default turbo), for --png
  --opacity <0..1>               heatmap opacity in --png (default 0.5)
  --batch-size <n>               inputs per forward pass for scorecam and --metrics (default ${SCORECAM_DEFAULT_BATCH})
  --top-channels <n>             scorecam: only the n channels of largest spatial std ("Faster Score-CAM")
  --workers <n>                  worker threads for scorecam, --metrics and --recommend, besides this one
                                 (default: cores - 1 = ${defaultWorkerCount()}; 0: compute in one thread)
  --metrics                      faithfulness of the map: deletion/insertion AUC, Average Drop, Increase in
                                 Confidence, each also for a random map (adds "metrics" to --json)
layers options:
  --recommend                    rank the candidate layers for --image and --class by the deletion AUC of
                                 their Grad-CAM maps (lower is better); needs --image
  --candidates <n|all>           how many of the last candidate layers to rank (default ${DEFAULT_CANDIDATES})
scan options (find likely mislabeled samples):
  --data <folder>                <folder>/<class name>/<images>, class names matched to the model's labels
  --labels <csv|json>            a label file (path,label rows or [{path,label}]) instead of the folder layout
  --score <kind>                 self_confidence (default) | normalized_margin: the rank order
  --csv <file>                   the report as CSV (--json writes { model, data, counts, samples })
  --show <n>                     how many of the most doubtful samples to print (default 20)
Without --class the top-1 class is explained; without --layer the recommended layer is used.
Exit codes: 0 success, 2 bad usage, 1 bad input or failure.`;

class UsageError extends Error {}

type Values = Record<string, string | boolean | undefined>;

const OPTIONS = {
  model: { type: 'string' },
  image: { type: 'string' },
  method: { type: 'string' },
  class: { type: 'string' },
  layer: { type: 'string' },
  top: { type: 'string' },
  json: { type: 'string' },
  png: { type: 'string' },
  backend: { type: 'string' },
  labels: { type: 'string' },
  preprocess: { type: 'string' },
  colormap: { type: 'string' },
  opacity: { type: 'string' },
  'max-pixels': { type: 'string' },
  'batch-size': { type: 'string' },
  'top-channels': { type: 'string' },
  workers: { type: 'string' },
  metrics: { type: 'boolean' },
  recommend: { type: 'boolean' },
  candidates: { type: 'string' },
  'class-names': { type: 'string' },
  'label-offset': { type: 'string' },
  data: { type: 'string' },
  csv: { type: 'string' },
  score: { type: 'string' },
  show: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const ALLOWED: Record<string, string[]> = {
  predict: ['model', 'image', 'top', 'json', 'backend', 'class-names', 'label-offset', 'preprocess', 'max-pixels'],
  cam: ['model', 'image', 'method', 'class', 'layer', 'top', 'json', 'png', 'backend', 'class-names', 'label-offset', 'preprocess', 'colormap', 'opacity', 'max-pixels',
    'batch-size', 'top-channels', 'workers', 'metrics'],
  layers: ['model', 'json', 'backend', 'class-names', 'label-offset', 'preprocess', 'recommend', 'image', 'class', 'candidates', 'batch-size', 'workers', 'max-pixels'],
  scan: ['model', 'data', 'labels', 'json', 'csv', 'score', 'batch-size', 'show', 'backend', 'class-names', 'label-offset', 'preprocess', 'max-pixels'],
};

function need(v: Values, name: string): string {
  const s = v[name];
  if (typeof s !== 'string' || s === '') throw new UsageError(`missing --${name}`);
  return s;
}

function intOption(v: Values, name: string, def: number, min: number, max: number): number {
  const s = v[name];
  if (s === undefined) return def;
  const n = Number(s);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${s}"`);
  return n;
}

/** Rounds to 6 significant digits: maps are in [0,1]; JSON stays readable and small. */
function round(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(6)) : 0;
}

function writeJson(target: string, obj: unknown): void {
  const text = JSON.stringify(obj, null, 2) + '\n';
  if (target === '-') process.stdout.write(text);
  else writeFileSafely(target, text);
}

function writeFileSafely(target: string, data: string | Buffer): void {
  const dir = path.dirname(path.resolve(target));
  if (!fs.existsSync(dir)) throw new CamLensError('FILE_NOT_FOUND', `cannot write ${target}: folder ${dir} does not exist`);
  fs.writeFileSync(target, data);
}

async function setup(v: Values): Promise<{ backend: BackendInfo; model: LoadedModel; preprocess?: PreprocessPreset; overrides: MetadataOverrides }> {
  const choice = (v.backend ?? 'auto') as string;
  if (!(BACKEND_CHOICES as readonly string[]).includes(choice)) {
    throw new UsageError(`unknown backend "${choice}": expected ${BACKEND_CHOICES.join(', ')}`);
  }
  const preprocess = v.preprocess as string | undefined;
  if (preprocess !== undefined && !(PREPROCESS_PRESETS as readonly string[]).includes(preprocess)) {
    throw new UsageError(`unknown preprocessing "${preprocess}": expected ${PREPROCESS_PRESETS.join(', ')}`);
  }
  const backend = await initBackend(choice as BackendChoice);
  const offset = v['label-offset'] as string | undefined;
  if (offset !== undefined && !/^\d+$/.test(offset)) throw new UsageError(`--label-offset must be a non-negative integer, got "${offset}"`);
  const overrides: MetadataOverrides = {
    labelsFile: v['class-names'] as string | undefined,
    preprocess: preprocess as PreprocessPreset | undefined,
    labelOffset: offset === undefined ? undefined : Number(offset),
  };
  const model = await loadModel(need(v, 'model'), { overrides });
  return { backend, model, preprocess: preprocess as PreprocessPreset | undefined, overrides };
}

/** Worker threads for the many forward passes of scorecam, --metrics and --recommend (none when --workers 0). */
function makePool(v: Values, model: LoadedModel, overrides: MetadataOverrides): ScorePool | undefined {
  const workers = intOption(v, 'workers', defaultWorkerCount(), 0, 256);
  return workers > 0 ? new ScorePool({ modelPath: model.path, overrides, workers }) : undefined;
}

function metricsJson(r: FaithfulnessReport): Record<string, unknown> {
  const one = (m: MapScores) => ({
    deletionAuc: round(m.deletion.auc),
    insertionAuc: round(m.insertion.auc),
    averageDrop: round(m.averageDrop),
    increaseInConfidence: m.increaseInConfidence,
    originalProbability: round(m.originalScore),
    maskedProbability: round(m.maskedScore),
    deletionCurve: m.deletion.curve.map(round),
    insertionCurve: m.insertion.curve.map(round),
  });
  return { steps: r.steps, baseline: r.baseline, blur: { kernel: r.blur.kernel, sigma: round(r.blur.sigma) }, randomSeed: r.seed, map: one(r.map), random: one(r.random) };
}

function metricsLine(r: FaithfulnessReport): string {
  const f = (x: number) => x.toFixed(3);
  return `faithfulness (random map in brackets): deletion AUC ${f(r.map.deletion.auc)} (${f(r.random.deletion.auc)}, lower is better), ` +
    `insertion AUC ${f(r.map.insertion.auc)} (${f(r.random.insertion.auc)}, higher is better), ` +
    `average drop ${r.map.averageDrop.toFixed(1)}% (${r.random.averageDrop.toFixed(1)}%), ` +
    `increase in confidence ${r.map.increaseInConfidence ? 'yes' : 'no'} (${r.random.increaseInConfidence ? 'yes' : 'no'})`;
}

function checkImageArg(v: Values): string {
  const image = need(v, 'image');
  if (!fs.existsSync(image)) throw new CamLensError('FILE_NOT_FOUND', `image not found: ${image}`);
  return image;
}

async function cmdPredict(v: Values): Promise<void> {
  const top = intOption(v, 'top', 5, 1, 100000);
  const image = checkImageArg(v);
  const t0 = performance.now();
  const { backend, model } = await setup(v);
  const t1 = performance.now();
  const opened = await openImage(model, image, { maxPixels: intOption(v, 'max-pixels', 100_000_000, 1, Number.MAX_SAFE_INTEGER) });
  try {
    const t2 = performance.now();
    const predictions = await opened.session.predictions(top);
    const t3 = performance.now();
    const out = {
      model: model.path,
      image: path.resolve(image),
      backend: backend.name,
      predictions: predictions.map((p) => ({ index: p.index, label: p.label, probability: round(p.probability) })),
      timingsMs: { load: round(t1 - t0), ...mapRound(opened.timingsMs), forward: round(t3 - t2), total: round(t3 - t0) },
    };
    if (v.json !== undefined) writeJson(v.json as string, out);
    if (v.json !== '-') {
      console.log(`${path.basename(image)} — ${model.name} on ${backend.name}`);
      for (const p of predictions) console.log(`  ${(p.probability * 100).toFixed(2).padStart(6)}%  ${p.label} (${p.index})`);
    }
  } finally {
    opened.session.dispose();
    model.dispose();
  }
}

function mapRound(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, round(x)]));
}

async function cmdCam(v: Values): Promise<void> {
  const top = intOption(v, 'top', 5, 1, 100000);
  const methodId = ((v.method as string | undefined) ?? 'gradcam').toLowerCase();
  getMethod(methodId); // fail fast on an unknown method, before loading anything
  const batchSize = intOption(v, 'batch-size', SCORECAM_DEFAULT_BATCH, 1, 1024);
  const topChannels = v['top-channels'] === undefined ? undefined : intOption(v, 'top-channels', 0, 1, 1 << 20);
  if (topChannels !== undefined && methodId !== 'scorecam') throw new UsageError('--top-channels applies to --method scorecam only');
  if (v['batch-size'] !== undefined && methodId !== 'scorecam' && !v.metrics) throw new UsageError('--batch-size applies to --method scorecam and to --metrics only');
  const colormap = (v.colormap as string | undefined) ?? 'turbo';
  if (!(COLORMAPS as readonly string[]).includes(colormap)) throw new UsageError(`unknown colormap "${colormap}": expected ${COLORMAPS.join(', ')}`);
  const opacity = v.opacity === undefined ? 0.5 : Number(v.opacity);
  if (!(opacity >= 0 && opacity <= 1)) throw new UsageError(`--opacity must be a number from 0 to 1, got "${v.opacity}"`);
  const image = checkImageArg(v);
  const t0 = performance.now();
  const { backend, model, overrides } = await setup(v);
  const t1 = performance.now();
  const opened = await openImage(model, image, { maxPixels: intOption(v, 'max-pixels', 100_000_000, 1, Number.MAX_SAFE_INTEGER) });
  const pool = methodId === 'scorecam' || v.metrics ? makePool(v, model, overrides) : undefined;
  try {
    const predictions = await opened.session.predictions(top);
    const r = await opened.session.explain({
      method: methodId,
      layer: v.layer as string | undefined,
      classChoice: v.class as string | undefined,
      options: methodId === 'scorecam' ? { batchSize, topChannels } : undefined,
      pool,
    });
    let metrics: FaithfulnessReport | undefined;
    let metricsMs: number | undefined;
    if (v.metrics) {
      const tm = performance.now();
      metrics = await faithfulness(opened.session, r.heatmap, r.target.index + model.metadata.labelOffset, { batchSize, pool });
      metricsMs = performance.now() - tm;
    }
    let pngMs: number | undefined;
    if (v.png !== undefined) {
      const tp = performance.now();
      const png = await renderOverlayPng(opened.image, r.heatmap, { colormap: colormap as ColormapName, opacity });
      writeFileSafely(v.png as string, png);
      pngMs = performance.now() - tp;
    }
    const t2 = performance.now();
    const out = {
      model: model.path,
      image: path.resolve(image),
      backend: backend.name,
      method: r.method,
      layer: r.layer,
      target: { index: r.target.index, label: r.target.label, probability: round(r.target.probability) },
      predictions: predictions.map((p) => ({ index: p.index, label: p.label, probability: round(p.probability) })),
      heatmap: {
        width: r.heatmap.width,
        height: r.heatmap.height,
        values: Array.from(r.heatmap.values, round),
        rawMin: round(r.heatmap.rawMin),
        rawMax: round(r.heatmap.rawMax),
      },
      ...(metrics ? { metrics: metricsJson(metrics) } : {}),
      timingsMs: {
        load: round(t1 - t0),
        ...mapRound(opened.timingsMs),
        ...mapRound(r.timingsMs as unknown as Record<string, number>),
        ...(pngMs !== undefined ? { png: round(pngMs) } : {}),
        ...(metricsMs !== undefined ? { metrics: round(metricsMs) } : {}),
        total: round(t2 - t0),
      },
    };
    if (v.json !== undefined) writeJson(v.json as string, out);
    if (v.json !== '-') {
      const m = METHODS.find((x) => x.id === r.method);
      console.log(`${m?.label ?? r.method} for "${r.target.label}" (${(r.target.probability * 100).toFixed(2)}%) at ${r.layer}, ${r.heatmap.width}x${r.heatmap.height} map, ${backend.name}, ${r.timingsMs.total.toFixed(1)} ms`);
      if (metrics) console.log(metricsLine(metrics));
      if (v.png !== undefined) console.log(`overlay written to ${v.png}`);
    }
  } finally {
    await pool?.close();
    opened.session.dispose();
    model.dispose();
  }
}

function recommendationJson(r: Recommendation, image: string): Record<string, unknown> {
  return {
    image: path.resolve(image),
    method: r.method,
    metric: 'deletionAuc',
    steps: r.steps,
    target: { index: r.target.index, label: r.target.label, probability: round(r.target.probability) },
    best: r.best,
    conventional: r.conventional,
    ranking: r.ranking.map((l) => ({
      layer: l.layer,
      outputShape: l.outputShape,
      ...(l.deletionAuc !== undefined ? { deletionAuc: round(l.deletionAuc), rank: l.rank, best: l.best } : {}),
      ...(l.emptyMap ? { emptyMap: true } : {}),
      ...(l.error ? { error: l.error.message } : {}),
    })),
  };
}

async function cmdLayers(v: Values): Promise<void> {
  if (!v.recommend) {
    for (const k of ['image', 'class', 'candidates', 'batch-size', 'workers', 'max-pixels']) {
      if (v[k] !== undefined) throw new UsageError(`--${k} applies to "layers --recommend" only`);
    }
  }
  const image = v.recommend ? checkImageArg(v) : undefined;
  let lastN = DEFAULT_CANDIDATES;
  if (v.candidates === 'all') lastN = Infinity;
  else if (v.candidates !== undefined) lastN = intOption(v, 'candidates', DEFAULT_CANDIDATES, 1, 100000);
  const batchSize = intOption(v, 'batch-size', SCORECAM_DEFAULT_BATCH, 1, 1024);
  const { model, overrides } = await setup(v);
  let rec: Recommendation | undefined;
  try {
    if (image) {
      const opened = await openImage(model, image, { maxPixels: intOption(v, 'max-pixels', 100_000_000, 1, Number.MAX_SAFE_INTEGER) });
      const pool = makePool(v, model, overrides);
      try {
        rec = await recommendLayer(opened.session, { classChoice: v.class as string | undefined, lastN, batchSize, pool });
      } finally {
        await pool?.close();
        opened.session.dispose();
      }
    }
    const s = describeModel(model);
    if (v.json !== undefined) writeJson(v.json as string, rec && image ? { ...s, recommendation: recommendationJson(rec, image) } : s);
    if (v.json !== '-') {
      console.log(`${s.name}: ${s.layers.length} layers, ${s.totalParams} parameters, input ${s.input.height}x${s.input.width}x${s.input.channels} (${s.input.preprocess}), ${s.classes} classes, backend ${s.backend}`);
      const w = Math.max(...s.layers.map((l) => l.name.length), 5);
      const cw = Math.max(...s.layers.map((l) => l.className.length), 5);
      for (const l of s.layers) {
        const shape = `[${l.outputShape.map((d) => d ?? 'N').join(', ')}]`;
        const mark = rec
          ? (l.name === rec.best ? '  <- recommended target (earned)' : l.name === s.recommendedLayer ? '  <- conventional target' : l.spatial ? '  (spatial)' : '')
          : (l.name === s.recommendedLayer ? '  <- recommended target' : l.spatial ? '  (spatial)' : '');
        console.log(`  ${l.name.padEnd(w)}  ${l.className.padEnd(cw)}  ${shape.padEnd(20)} ${String(l.params).padStart(9)}${mark}`);
      }
      if (rec) {
        console.log(`${rec.method} maps for "${rec.target.label}" (${(rec.target.probability * 100).toFixed(2)}%) ranked by deletion AUC (lower is better, ${rec.steps} steps):`);
        const lw = Math.max(...rec.ranking.map((l) => l.layer.length), 5);
        for (const l of rec.ranking) {
          const shape = `[${l.outputShape.map((d) => d ?? 'N').join(', ')}]`;
          const score = l.deletionAuc !== undefined ? `${String(l.rank).padStart(3)}. ${l.deletionAuc.toFixed(4)}${l.best ? '  best' : ''}${l.emptyMap ? '  (empty map)' : ''}` : `  -  ${l.error?.message ?? ''}`;
          console.log(`  ${l.layer.padEnd(lw)}  ${shape.padEnd(20)} ${score}`);
        }
      }
    }
  } finally {
    model.dispose();
  }
}

async function cmdScan(v: Values): Promise<void> {
  const data = need(v, 'data');
  const batchSize = intOption(v, 'batch-size', 16, 1, 1024);
  const show = intOption(v, 'show', 20, 0, 1_000_000);
  const kind = ((v.score as string | undefined) ?? 'self_confidence') as ScoreKind;
  if (!(SCORE_KINDS as readonly string[]).includes(kind)) throw new UsageError(`unknown score "${kind}": expected ${SCORE_KINDS.join(', ')}`);
  if (!fs.existsSync(data)) throw new CamLensError('FILE_NOT_FOUND', `dataset not found: ${data}`);
  const { backend, model } = await setup(v);
  try {
    const labels = model.metadata.labels;
    const dataset = readDataset(data, labels, v.labels as string | undefined);
    const quiet = v.json === '-';
    let lastLine = 0;
    const scan = await scanDataset(model, dataset, {
      batchSize,
      maxPixels: intOption(v, 'max-pixels', 100_000_000, 1, Number.MAX_SAFE_INTEGER),
      onProgress: (p) => {
        if (quiet || !process.stderr.isTTY || performance.now() - lastLine < 500) return;
        lastLine = performance.now();
        process.stderr.write(`\rscanned ${p.done}/${p.total} · ${p.imagesPerSecond.toFixed(1)} images/s · ${Math.ceil(p.secondsLeft)} s left   `);
      },
    });
    if (!quiet && process.stderr.isTTY) process.stderr.write('\n');
    const report = buildReport(model.path, labels, dataset, scan, kind, readReviewed(dataset.root));
    if (v.json !== undefined) writeJson(v.json as string, { ...report, backend: backend.name, seconds: round(scan.seconds) });
    if (v.csv !== undefined) writeFileSafely(v.csv as string, reportToCsv(report));
    if (!quiet) {
      const c = report.counts;
      console.log(`${dataset.source}: ${c.scanned} of ${c.images} images scanned with ${model.name} on ${backend.name} in ${scan.seconds.toFixed(1)} s ` +
        `(${(c.scanned / Math.max(scan.seconds, 1e-6)).toFixed(1)} images/s); ${c.flagged} flagged as likely mislabeled`);
      if (c.failed) console.log(`  ${c.failed} unreadable: ${report.failures.slice(0, 3).map((f) => path.basename(f.path)).join(', ')}${c.failed > 3 ? ', …' : ''}`);
      if (report.unmatchedClasses.length) console.log(`  class folders/labels matching no model label: ${report.unmatchedClasses.map((u) => `${u.name} (${u.images})`).join(', ')}`);
      if (c.nonImageFiles) console.log(`  ${c.nonImageFiles} non-image files skipped`);
      if (c.reviewedHidden) console.log(`  ${c.reviewedHidden} samples hidden: marked "label is correct" in .cam-lens/reviewed.json`);
      const rows = report.samples.slice(0, show);
      if (rows.length) console.log(`most doubtful first (${kind}):`);
      for (const s of rows) {
        console.log(`  ${String(s.rank).padStart(4)}. ${s.flagged ? 'FLAGGED ' : '        '}${s.relPath}: given "${s.givenLabel}" (${(s.selfConfidence * 100).toFixed(1)}%), predicted "${s.predictedLabel}" (${((s.probabilities[s.predictedLabel] ?? 0) * 100).toFixed(1)}%)`);
      }
    }
  } finally {
    model.dispose();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return command ? 0 : 2;
  }
  try {
    const allowed = ALLOWED[command];
    if (!allowed) throw new UsageError(`unknown command "${command}": expected predict, cam, layers or scan`);
    let values: Values;
    try {
      values = parseArgs({ args: rest, options: OPTIONS, strict: true, allowPositionals: false }).values as Values;
    } catch (e) {
      throw new UsageError((e as Error).message.split('\n')[0].replace(/\. To specify.*$/, ''));
    }
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    for (const k of Object.keys(values)) {
      if (!allowed.includes(k)) throw new UsageError(`option --${k} does not apply to "${command}"`);
    }
    if (command === 'predict') await cmdPredict(values);
    else if (command === 'cam') await cmdCam(values);
    else if (command === 'scan') await cmdScan(values);
    else await cmdLayers(values);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`cam-lens: ${e.message} (see cam-lens --help)\n`);
      return 2;
    }
    if (e instanceof CamLensError) {
      process.stderr.write(`cam-lens: ${e.message}${e.hint ? ` (${e.hint})` : ''}\n`);
      return 1;
    }
    const err = e as Error;
    process.stderr.write(`cam-lens: unexpected error: ${(err?.message ?? String(e)).split('\n')[0]}\n`);
    if (process.env.CAM_LENS_DEBUG) process.stderr.write(`${err?.stack}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`cam-lens: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
