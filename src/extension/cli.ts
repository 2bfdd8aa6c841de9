/**
 * `cam-lens`: the headless front end over the same engine the extension uses, for scripts and CI.
 *
 *   cam-lens predict --model <model.json> --image <file> [--top <k>] [--json <file|->]
 *   cam-lens cam     --model <model.json> --image <file> [--method <id>] [--class <index|label>] [--layer <name>]
 *                    [--top <k>] [--json <file|->] [--png <file>] [--backend auto|node|wasm|cpu] [--threads <n>]
 *                    [--batch-size <n>] [--channels <n|all>] [--workers <n>] [--metrics]
 *                    [--samples <n>] [--noise <0..1>] [--steps <n>] [--baseline black|blurred] [--render rgb|magnitude]
 *                    (pixel saliency: cliMethodOptions.ts)
 *   cam-lens layers  --model <model.json> [--json <file|->]
 *                    [--recommend --image <file> [--class <index|label>] [--candidates <n|all>]]
 *   cam-lens scan    --model <model.json> --data <folder> [--labels <csv|json>] [--json <file|->] [--csv <file>]
 *                    [--score self_confidence|normalized_margin] [--batch-size <n>] [--show <n>]
 *   cam-lens labels  --model <model.json> [--json <file|->]
 *
 * DICOM images (predict, cam, layers --recommend, scan) take [--frame <n>] [--window <center,width|file|file:n|minmax>].
 *
 * Exit codes: 0 success; 2 bad usage; 1 any other bad input or failure. Errors are one line on stderr:
 * `cam-lens: <reason>`.
 *
 * Progress (cliProgress.ts): steps that run over a second (Score-CAM, --metrics, --recommend, scan) report on
 * stderr, a bar on a terminal and plain lines otherwise; nothing with --quiet, nor with --json - (stdout is
 * then the JSON, and scripts often merge stderr into it).
 *
 * Bad usage is what the command line alone shows to be wrong, without reading any file: an unknown command
 * or option, an option of another command or method, a missing option or value, a value outside the
 * option's own fixed set (method, backend, preprocessing, colormap, score) or range (numbers). All of it is
 * checked before any file is read, so a usage error is never hidden behind a file error. Whatever needs a
 * file to judge is bad input: a missing or unreadable file, a class or layer the model does not have (the
 * model decides which exist), labels that do not fit the model, a dataset with nothing to scan.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UsageError, intOption, need, oneOf, parseCommandArgs, type Values } from './cliArgs';
import { ONNX_RUNTIME_CHOICES, setOnnxRuntime, type OnnxRuntimeChoice } from './engine/formats/onnx/ortRuntime';
import { BACKEND_CHOICES, MAX_WASM_THREADS, availableCores, defaultThreads, initBackend, type BackendChoice, type BackendInfo } from './engine/backend';
import { CamLensError } from './engine/errors';
import { loadModel, type LoadedModel } from './engine/model';
import { describeModel, openImage } from './engine/pipeline';
import type { ImageSession } from './engine/session';
import type { MapDetails } from './engine/cam/base';
import { METHODS, METHOD_IDS } from './engine/cam/registry';
import { PREPROCESS_PRESETS, type PreprocessPreset } from './engine/preprocess';
import { renderOverlayPng } from './engine/overlay';
import { faithfulness, type FaithfulnessReport, type MapScores } from './engine/faithfulness';
import { DEFAULT_CANDIDATES, recommendLayer, type Recommendation } from './engine/recommend';
import { ScorePool, defaultWorkerCount } from './engine/scorePool';
import { SCORECAM_DEFAULT_BATCH, SCORECAM_DEFAULT_CHANNELS, estimateScoreCamMs, planScoreCam } from './engine/cam/scorecam';
import { CliProgress } from './cliProgress';
import { PIXEL_BATCHED, PIXEL_OPTIONS, PIXEL_OPTION_NAMES, PIXEL_USAGE, metricsMap, pixelDetailsJson, pixelHeatmapJson, pixelMethodOptions } from './cliMethodOptions';
import { runCompare } from './cliCompare';
import { runStrategies } from './cliStrategies';
import { CAM_FAMILY_OPTIONS, CAM_FAMILY_OPTION_NAMES, CAM_FAMILY_USAGE, CHANNEL_BUDGET_METHODS, layerChoice, smoothingOptions } from './cliCamOptions';
import { formatDuration, formatMs } from '../shared/format';
import { closestLabels, type MetadataOverrides } from './engine/metadata';
import { labelOf, numClasses } from './engine/model';
import { oneLine } from './engine/modelFormat';
import { readDataset } from './engine/scan/dataset';
import { scanDataset } from './engine/scan/scan';
import { ScanPool } from './engine/scan/scanPool';
import { buildReport, readReviewed, reportToCsv } from './engine/scan/report';
import { SCORE_KINDS } from './engine/scan/ranking';
import { COLORMAPS, type ColormapName } from '../shared/colormaps';
import { channelNote, dicomJson, dicomLine, formatWindowChoice, parseWindowChoice, type DicomSelection, type DicomWindowChoice } from '../shared/dicom';
import type { DecodedImage } from './engine/image';

const USAGE = `cam-lens — Class Activation Maps for TensorFlow.js image classifiers

Usage:
  cam-lens predict --model <model.json> --image <file> [--top <k>] [--json <file|->]
  cam-lens cam     --model <model.json> --image <file> [--method <id>] [--class <index|label>]
                   [--layer <name>] [--top <k>] [--json <file|->] [--png <file>]
  cam-lens layers  --model <model.json> [--json <file|->]
                   [--recommend --image <file> [--class <index|label>] [--candidates <n|all>]]
  cam-lens scan    --model <model.json> --data <folder> [--labels <csv|json>] [--json <file|->] [--csv <file>]
  cam-lens labels  --model <model.json> [--json <file|->]     the model's classes, by index
  cam-lens compare --model <A> --model-b <B> (--image <file> | --data <folder>)   two models side by side
                   (options: cam-lens compare --help)
  cam-lens strategies --model <M> --data <folder> [--class <c>] [--clusters <k|auto>] [--json <file|->] [--html <file>]
                   what the model looks at across a dataset: map clusters, shortcut hints (cam-lens strategies --help)

Options for every command:
  --backend auto|node|wasm|cpu   TensorFlow.js backend (default auto: tfjs-node, else wasm, else cpu)
  --threads <n>                  threads for one forward pass on the wasm backend (default: one per core,
                                 at most ${MAX_WASM_THREADS}; ${defaultThreads()} here)
  --onnx-runtime auto|off        ONNX models: predictions, Score-CAM's masked passes and scan batches on ONNX
                                 Runtime where onnxruntime-node loads (auto, the default), or always on tfjs (off)
  --class-names <file>           the model's class names (JSON array or one per line) when it has no metadata
  --label-offset <n>             leading model outputs that are not classes (1 for a "background" output)
  --output <name|index>          the output to explain, for a model with several (heads); default: its metadata's
                                 "output", else the first that looks like a classifier (cam-lens layers lists them)
  --preprocess <preset>          ${PREPROCESS_PRESETS.join(' | ')} (default: the model's metadata, else [0,1])
                                 (not for labels)
  --max-pixels <n>               refuse images larger than this many pixels (default 100000000)
                                 (where images are read: predict, cam, layers --recommend, scan)
  --frame <n>                    DICOM: the frame of a multi-frame file, from 0 (default 0)
  --window <w>                   DICOM: the VOI window onto the model's pixels: <center,width> (e.g. 40,400),
                                 file (the file's first window), file:<n> (its n-th), minmax (the frame's range);
                                 default: the model's cam-lens.json "dicom": {"window": …}, else file
                                 (where images are read: predict, cam, layers --recommend, scan)
  --quiet, -q                    no progress on stderr (errors still go there)
cam options:
  --method <id>                  ${METHOD_IDS.join(' | ')} (default gradcam)
  --class <index|label>          the class to explain (labels: cam-lens labels --model <model.json>)
  --colormap <name>              ${COLORMAPS.join(' | ')} (default turbo), for --png
  --opacity <0..1>               heatmap opacity in --png (default 0.5)
  --batch-size <n>               inputs per forward pass for scorecam and --metrics (default ${SCORECAM_DEFAULT_BATCH})
  --channels <n|all>             scorecam: score the n channels of largest mean activation (default ${SCORECAM_DEFAULT_CHANNELS});
                                 all (or 0): every channel, one forward pass each, with an estimate of the
                                 time on stderr first (--top-channels <n> is the older name)
  --workers <n>                  worker threads for scorecam, --metrics and --recommend, besides this one;
                                 for scan, threads the batches spread over (default one per core, at most 8)
                                 (default: the cores --threads leaves, cores - threads: ${Math.max(0, availableCores() - defaultThreads())} here,
                                 ${defaultWorkerCount()} with --threads 1; 0: compute in this thread only)
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
Progress: steps that run over a second (scorecam, --metrics, --recommend, scan) report on stderr, as a bar on
a terminal and as plain lines otherwise. --quiet (any command) turns it off; with --json - (JSON on stdout)
there is none either.
${CAM_FAMILY_USAGE}
${PIXEL_USAGE}
Without --class the top-1 class is explained; without --layer the recommended layer is used.
Exit codes: 0 success, 2 bad usage, 1 bad input or failure.`;

const OPTIONS = {
  model: { type: 'string' },
  image: { type: 'string' },
  method: { type: 'string' },
  class: { type: 'string' },
  top: { type: 'string' },
  json: { type: 'string' },
  png: { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  'onnx-runtime': { type: 'string' },
  labels: { type: 'string' },
  preprocess: { type: 'string' },
  colormap: { type: 'string' },
  opacity: { type: 'string' },
  'max-pixels': { type: 'string' },
  frame: { type: 'string' },
  window: { type: 'string' },
  'batch-size': { type: 'string' },
  'top-channels': { type: 'string' },
  channels: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  workers: { type: 'string' },
  metrics: { type: 'boolean' },
  recommend: { type: 'boolean' },
  candidates: { type: 'string' },
  'class-names': { type: 'string' },
  'label-offset': { type: 'string' },
  output: { type: 'string' },
  data: { type: 'string' },
  csv: { type: 'string' },
  score: { type: 'string' },
  show: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  ...PIXEL_OPTIONS,
  ...CAM_FAMILY_OPTIONS,
} as const;

const COMMANDS = ['predict', 'cam', 'layers', 'scan', 'labels'] as const;
type Command = (typeof COMMANDS)[number];

const ALLOWED: Record<Command, string[]> = {
  predict: ['model', 'image', 'top', 'json', 'backend', 'threads', 'onnx-runtime', 'class-names', 'label-offset', 'output', 'preprocess', 'max-pixels', 'frame', 'window', 'quiet'],
  cam: ['model', 'image', 'method', 'class', 'layer', 'top', 'json', 'png', 'backend', 'threads', 'onnx-runtime', 'class-names', 'label-offset', 'output', 'preprocess', 'colormap', 'opacity', 'max-pixels',
    'batch-size', 'channels', 'top-channels', 'workers', 'metrics', 'frame', 'window', 'quiet', ...PIXEL_OPTION_NAMES,
    ...CAM_FAMILY_OPTION_NAMES],
  layers: ['model', 'json', 'backend', 'threads', 'onnx-runtime', 'class-names', 'label-offset', 'output', 'preprocess', 'recommend', 'image', 'class', 'candidates', 'batch-size', 'workers', 'max-pixels', 'frame', 'window', 'quiet'],
  scan: ['model', 'data', 'labels', 'json', 'csv', 'score', 'batch-size', 'show', 'backend', 'threads', 'onnx-runtime', 'class-names', 'label-offset', 'output', 'preprocess', 'max-pixels', 'frame', 'window', 'quiet', 'workers'],
  labels: ['model', 'json', 'backend', 'threads', 'class-names', 'label-offset', 'output', 'quiet'],
};

/**
 * Parses the options of `command`, turning every way the command line itself can be wrong into a one-line
 * UsageError (parseArgs' own messages run over several lines and name its syntax, not the fix).
 */
function parseOptions(command: Command, args: string[]): Values {
  const values = parseCommandArgs(args, OPTIONS, '--image <file>');
  if (values.help) return values;
  for (const k of Object.keys(values)) {
    if (!ALLOWED[command].includes(k)) {
      const users = COMMANDS.filter((c) => ALLOWED[c].includes(k));
      throw new UsageError(`option --${k} does not apply to "${command}"` + (users.length ? ` (it is for ${users.join(', ')})` : ''));
    }
  }
  return values;
}

/** The options every command shares, checked before anything is read. */
interface CommonFlags {
  model: string;
  backend: BackendChoice;
  /** Threads for one forward pass (0: one per core, engine/backend.ts resolveThreads). */
  threads: number;
  /** ONNX Runtime for the forward-only work on ONNX models (formats/onnx/ortRuntime.ts). */
  onnxRuntime: OnnxRuntimeChoice;
  preprocess?: PreprocessPreset;
  overrides: MetadataOverrides;
  maxPixels: number;
  json?: string;
  /** DICOM frame and window (`--frame`, `--window`); undefined where neither is given. */
  dicom?: DicomSelection;
}

/** `--frame` and `--window`, checked as usage (their text); whether the image is DICOM and has them, it says. */
function dicomFlags(v: Values): DicomSelection | undefined {
  if (v.frame === undefined && v.window === undefined) return undefined;
  const frame = v.frame === undefined ? undefined : intOption(v, 'frame', 0, 0, 99_999);
  let window: DicomWindowChoice | undefined;
  if (v.window !== undefined) {
    window = parseWindowChoice(v.window as string);
    if (!window) throw new UsageError(`--window must be <center,width> with a width of at least 1 (e.g. 40,400), file, file:<n> or minmax, got "${v.window}"`);
  }
  return { ...(frame !== undefined ? { frame } : {}), ...(window ? { window } : {}) };
}

/** The DICOM selection applies to DICOM images only: given for another image, it is bad input, said so. */
function checkDicomUse(f: CommonFlags, image: DecodedImage, file: string): void {
  if (f.dicom && !image.dicom) {
    throw new CamLensError('BAD_ARGUMENT', `--frame and --window apply to DICOM images; ${path.basename(file)} is a ${image.format.toUpperCase()} image`);
  }
}

/** `dicom` of --json, and the channels note, for a DICOM image; nothing for others (the contract object is unchanged). */
function imageJson(image: DecodedImage, model: LoadedModel): Record<string, unknown> {
  if (!image.dicom) return {};
  const note = channelNote(image.pixels?.channels ?? 3, model.inputChannels);
  return { dicom: { ...dicomJson(image.dicom), ...(note ? { channels: note } : {}) } };
}

function commonFlags(v: Values): CommonFlags {
  const model = need(v, 'model');
  const backend = oneOf((v.backend as string | undefined) ?? 'auto', BACKEND_CHOICES, 'backend');
  const preprocess = v.preprocess === undefined ? undefined : oneOf(v.preprocess as string, PREPROCESS_PRESETS, 'preprocessing');
  const offset = v['label-offset'] as string | undefined;
  if (offset !== undefined && !/^\d+$/.test(offset)) throw new UsageError(`--label-offset must be a non-negative integer, got "${offset}"`);
  const maxPixels = intOption(v, 'max-pixels', 100_000_000, 1, Number.MAX_SAFE_INTEGER);
  // Any positive count is accepted (a script may pass its core count); the engine caps it and reports what it used.
  const t = v.threads as string | undefined;
  if (t !== undefined && (!/^\s*\+?\d+\s*$/.test(t) || !(Number(t) >= 1))) {
    throw new UsageError(`--threads must be a positive integer (the wasm backend uses at most ${MAX_WASM_THREADS}), got "${t}"`);
  }
  const threads = t === undefined ? 0 : Math.min(Number(t), Number.MAX_SAFE_INTEGER);
  // An output name or index; which outputs exist, only the model can say (bad input then, not bad usage).
  const output = v.output as string | undefined;
  if (output !== undefined && (output.trim() === '' || /[\r\n\0]/.test(output))) throw new UsageError(`--output needs an output name or index, got ${JSON.stringify(output)}`);
  const onnxRuntime = oneOf((v['onnx-runtime'] as string | undefined) ?? 'auto', ONNX_RUNTIME_CHOICES, 'ONNX runtime');
  return {
    model,
    backend,
    threads,
    onnxRuntime,
    preprocess,
    overrides: { labelsFile: v['class-names'] as string | undefined, preprocess, labelOffset: offset === undefined ? undefined : Number(offset), output: output?.trim() },
    maxPixels,
    json: v.json as string | undefined,
    dicom: dicomFlags(v),
  };
}

/** An output file option: a file name; "-" (stdout) is for --json only. */
function fileOption(v: Values, name: string): string | undefined {
  const s = v[name] as string | undefined;
  if (s === '-') throw new UsageError(`--${name} writes a file: give it a file name (only --json writes to stdout with -)`);
  return s;
}

/** The progress printer of a command (stderr): off with --quiet, and when the JSON goes to stdout (--json -). */
function progressFor(v: Values): CliProgress {
  return new CliProgress({ stream: process.stderr, enabled: v.quiet !== true && v.json !== '-' });
}

/**
 * The Score-CAM channel budget of --channels (n, 0 or all) or its older name --top-channels (n): a number, or
 * 'all'; undefined when neither is given (the engine's default).
 */
function channelsOption(v: Values, methodId: string): number | 'all' | undefined {
  for (const k of ['channels', 'top-channels']) {
    if (v[k] !== undefined && !CHANNEL_BUDGET_METHODS.includes(methodId)) throw new UsageError(`--${k} applies to --method ${CHANNEL_BUDGET_METHODS.join(' and ')} only`);
  }
  if (v.channels !== undefined && v['top-channels'] !== undefined) {
    throw new UsageError('--top-channels is the older name of --channels: give one of them');
  }
  if (v['top-channels'] !== undefined) return intOption(v, 'top-channels', 0, 1, 1 << 20);
  const c = v.channels as string | undefined;
  if (c === undefined) return undefined;
  if (c.trim().toLowerCase() === 'all') return 'all';
  if (!/^\s*\+?\d+\s*$/.test(c) || Number(c) > 1 << 20) throw new UsageError(`--channels must be all or an integer from 0 (all) to ${1 << 20}, got "${c}"`);
  return Number(c) === 0 ? 'all' : Number(c);
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
  checkOutputFolder(target);
  fs.writeFileSync(target, data);
}

/** Called before the work too, so that a typo in an output path does not cost a whole scan. */
function checkOutputFolder(target: string | undefined): void {
  if (target === undefined || target === '-') return;
  const dir = path.dirname(path.resolve(target));
  if (!fs.existsSync(dir)) throw new CamLensError('FILE_NOT_FOUND', `cannot write ${target}: folder ${dir} does not exist`);
}

async function setup(f: CommonFlags, outputs: (string | undefined)[] = []): Promise<{ backend: BackendInfo; model: LoadedModel }> {
  for (const o of [f.json, ...outputs]) checkOutputFolder(o);
  const backend = await initBackend(f.backend, { threads: f.threads });
  // Before any pool starts: Score-CAM's and the scan's workers take the setting of this thread.
  setOnnxRuntime(f.onnxRuntime);
  const model = await loadModel(f.model, { overrides: f.overrides });
  return { backend, model };
}

/**
 * Worker threads for the many forward passes of scorecam, --metrics and --recommend (none when --workers 0).
 * Without --workers, the cores the backend's threads leave: each worker is single-threaded, and threads and
 * workers beyond the cores slow both down (bench/threads.ts --scorecam), so by default they add up to the cores:
 * one thread per core (the default) means no workers, --threads 1 means cores - 1 workers.
 */
function makePool(workers: number | undefined, backend: BackendInfo, model: LoadedModel, overrides: MetadataOverrides): ScorePool | undefined {
  const n = workers ?? Math.max(0, availableCores() - backend.threads);
  return n > 0 ? new ScorePool({ modelPath: model.path, overrides, workers: n }) : undefined;
}

/** `details` of `cam --json`: what the map was made from (Score-CAM's channels), times rounded. */
function detailsJson(d: MapDetails): Record<string, unknown> {
  return { ...(d.channels ? { note: d.note, channels: { ...d.channels, ms: round(d.channels.ms), allMs: round(d.channels.allMs) } } : { note: d.note }), ...pixelDetailsJson(d) };
}

/**
 * The line said before a Score-CAM of more channels than the default budget: how many channels and about how
 * long, from one forward pass timed here (a masked pass costs about one, engine/cam/scorecam.ts
 * estimateScoreCamMs) shared over the pool's threads.
 */
async function scoreCamEstimate(session: ImageSession, layer: string | undefined, classChoice: string | undefined, options: Record<string, unknown>, pool: ScorePool | undefined): Promise<string> {
  const op = session.targetOp(layer);
  const plan = await planScoreCam(session.activation(op.name), options);
  const outputIndex = await session.resolveTarget(classChoice);
  const t = performance.now();
  await session.scoreBatch(session.input, outputIndex);
  const forwardMs = performance.now() - t;
  const threads = pool?.parallelism ?? 1;
  const ms = estimateScoreCamMs(plan.scored, forwardMs, threads);
  return `Score-CAM at ${op.name}: ${plan.note}, one forward pass each: about ${formatDuration(ms)} ` +
    `(a forward pass takes ${formatMs(forwardMs)} here${threads > 1 ? `, and ${threads} threads share the passes` : ''})`;
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

/**
 * For a model with several outputs: which one was explained and how to choose another (printed under the text
 * output); nothing for a model with one output.
 */
function outputLine(model: LoadedModel): string | undefined {
  if (model.outputs.length < 2) return undefined;
  const others = model.outputs.map((o, i) => `${o.name} (${i})`).join(', ');
  return `output "${model.output}" explained, of ${others}; choose another with --output <name|index>`;
}

/**
 * `--json`'s fields about the output: for a model with several outputs the one explained (`output`), for a
 * single-sigmoid one `binary: true`; nothing for the usual single softmax, so the contract object is unchanged.
 */
function outputJson(model: LoadedModel): Record<string, unknown> {
  return { ...(model.outputs.length > 1 ? { output: model.output } : {}), ...(model.binary ? { binary: true } : {}) };
}

function checkImageFile(image: string): string {
  if (!fs.existsSync(image)) throw new CamLensError('FILE_NOT_FOUND', `image not found: ${image}`);
  return image;
}

async function cmdPredict(v: Values): Promise<void> {
  const common = commonFlags(v);
  const top = intOption(v, 'top', 5, 1, 100000);
  const image = checkImageFile(need(v, 'image'));
  const t0 = performance.now();
  const { backend, model } = await setup(common);
  const t1 = performance.now();
  const opened = await openImage(model, image, { maxPixels: common.maxPixels, dicom: common.dicom });
  try {
    checkDicomUse(common, opened.image, image);
    const t2 = performance.now();
    const predictions = await opened.session.predictions(top);
    const t3 = performance.now();
    const out = {
      model: model.path,
      ...outputJson(model),
      image: path.resolve(image),
      ...imageJson(opened.image, model),
      backend: backend.name,
      threads: backend.threads,
      predictions: predictions.map((p) => ({ index: p.index, label: p.label, probability: round(p.probability) })),
      timingsMs: { load: round(t1 - t0), ...mapRound(opened.timingsMs), forward: round(t3 - t2), total: round(t3 - t0) },
    };
    if (v.json !== undefined) writeJson(v.json as string, out);
    if (v.json !== '-') {
      console.log(`${path.basename(image)} — ${model.name} on ${backend.name}`);
      if (opened.image.dicom) console.log(`  ${dicomLine(opened.image.dicom)}`);
      for (const p of predictions) console.log(`  ${(p.probability * 100).toFixed(2).padStart(6)}%  ${p.label} (${p.index})`);
      const line = outputLine(model);
      if (line) console.log(line);
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
  const common = commonFlags(v);
  const top = intOption(v, 'top', 5, 1, 100000);
  const methodId = oneOf(((v.method as string | undefined) ?? 'gradcam').toLowerCase(), METHOD_IDS, 'method');
  const image = need(v, 'image');
  const manyPasses = methodId === 'scorecam' || v.metrics === true;
  const batchSize = intOption(v, 'batch-size', SCORECAM_DEFAULT_BATCH, 1, 1024);
  const channels = channelsOption(v, methodId);
  const pixelOptions = pixelMethodOptions(methodId, v, (msg) => {
    throw new UsageError(msg);
  });
  const usage = (msg: string): never => {
    throw new UsageError(msg);
  };
  const { layer, layers } = layerChoice(methodId, v, usage);
  const smoothing = smoothingOptions(methodId, v, usage);
  const workers = v.workers === undefined ? undefined : intOption(v, 'workers', 0, 0, 256);
  for (const k of ['batch-size', 'workers']) {
    if (v[k] !== undefined && !manyPasses && !(k === 'batch-size' && (PIXEL_BATCHED.includes(methodId) || methodId === 'ablationcam'))) {
      throw new UsageError(`--${k} applies to --method ${k === 'batch-size' ? ['scorecam', 'ablationcam', ...PIXEL_BATCHED].join(', ') : 'scorecam'} and to --metrics only`);
    }
  }
  const png = fileOption(v, 'png');
  for (const k of ['colormap', 'opacity']) {
    if (v[k] !== undefined && png === undefined) throw new UsageError(`--${k} applies to --png only`);
  }
  const colormap = oneOf((v.colormap as string | undefined) ?? 'turbo', COLORMAPS, 'colormap');
  const opacity = v.opacity === undefined ? 0.5 : Number(v.opacity);
  if (!(opacity >= 0 && opacity <= 1) || (v.opacity !== undefined && (v.opacity as string).trim() === '')) {
    throw new UsageError(`--opacity must be a number from 0 to 1, got "${v.opacity}"`);
  }
  checkImageFile(image);
  const t0 = performance.now();
  const { backend, model } = await setup(common, [png]);
  const t1 = performance.now();
  const opened = await openImage(model, image, { maxPixels: common.maxPixels, dicom: common.dicom });
  const pool = manyPasses ? makePool(workers, backend, model, common.overrides) : undefined;
  const progress = progressFor(v);
  try {
    checkDicomUse(common, opened.image, image);
    const predictions = await opened.session.predictions(top);
    const methodOptions = CHANNEL_BUDGET_METHODS.includes(methodId) ? { batchSize, ...(channels !== undefined ? { channels } : {}) } : pixelOptions;
    const options = smoothing ? { ...methodOptions, ...smoothing } : methodOptions;
    // More channels than the default budget: say what it will cost before it starts.
    if (methodId === 'scorecam' && options && progress.enabled && (channels === 'all' || (typeof channels === 'number' && channels > SCORECAM_DEFAULT_CHANNELS))) {
      progress.note(await scoreCamEstimate(opened.session, layer, v.class as string | undefined, options, pool));
    }
    const r = await opened.session.explain({
      method: methodId,
      layer,
      layers,
      classChoice: v.class as string | undefined,
      options,
      pool,
      onProgress: progress.task(METHODS.find((m) => m.id === methodId)?.label ?? methodId, CHANNEL_BUDGET_METHODS.includes(methodId) && !layers && !smoothing?.augSmooth ? 'channels' : 'steps'),
    });
    progress.end();
    let metrics: FaithfulnessReport | undefined;
    let metricsMs: number | undefined;
    if (v.metrics) {
      const tm = performance.now();
      metrics = await faithfulness(opened.session, metricsMap(r.heatmap), r.target.index + model.metadata.labelOffset, { batchSize, pool, onProgress: progress.task('Faithfulness metrics', 'passes') });
      progress.end();
      metricsMs = performance.now() - tm;
    }
    let pngMs: number | undefined;
    if (png !== undefined) {
      const tp = performance.now();
      const overlay = await renderOverlayPng(opened.image, r.heatmap, { colormap: colormap as ColormapName, opacity });
      writeFileSafely(png, overlay);
      pngMs = performance.now() - tp;
    }
    const t2 = performance.now();
    const out = {
      model: model.path,
      ...outputJson(model),
      image: path.resolve(image),
      ...imageJson(opened.image, model),
      backend: backend.name,
      threads: backend.threads,
      method: r.method,
      layer: r.layer,
      ...(r.layers ? { layers: r.layers } : {}),
      ...smoothing,
      target: { index: r.target.index, label: r.target.label, probability: round(r.target.probability) },
      predictions: predictions.map((p) => ({ index: p.index, label: p.label, probability: round(p.probability) })),
      heatmap: {
        width: r.heatmap.width,
        height: r.heatmap.height,
        values: Array.from(r.heatmap.values, round),
        rawMin: round(r.heatmap.rawMin),
        rawMax: round(r.heatmap.rawMax),
        ...pixelHeatmapJson(r.heatmap),
      },
      ...(r.heatmap.details ? { details: detailsJson(r.heatmap.details) } : {}),
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
      const note = r.heatmap.details ? `, ${r.heatmap.details.note}` : '';
      console.log(`${m?.label ?? r.method} for "${r.target.label}" (${(r.target.probability * 100).toFixed(2)}%) at ${r.layers?.join(' + ') ?? (r.layer || 'the input')}${note}, ${r.heatmap.width}x${r.heatmap.height} map, ${backend.name}, ${r.timingsMs.total.toFixed(1)} ms`);
      if (opened.image.dicom) console.log(dicomLine(opened.image.dicom));
      if (metrics) console.log(metricsLine(metrics));
      if (png !== undefined) console.log(`overlay written to ${png}`);
      const line = outputLine(model);
      if (line) console.log(line);
    }
  } finally {
    progress.stop();
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
  const common = commonFlags(v);
  if (!v.recommend) {
    for (const k of ['image', 'class', 'candidates', 'batch-size', 'workers', 'max-pixels', 'frame', 'window']) {
      if (v[k] !== undefined) throw new UsageError(`--${k} applies to "layers --recommend" only`);
    }
  }
  const image = v.recommend ? need(v, 'image') : undefined;
  let lastN = DEFAULT_CANDIDATES;
  if (v.candidates === 'all') lastN = Infinity;
  else if (v.candidates !== undefined) lastN = intOption(v, 'candidates', DEFAULT_CANDIDATES, 1, 100000);
  const batchSize = intOption(v, 'batch-size', SCORECAM_DEFAULT_BATCH, 1, 1024);
  const workers = v.workers === undefined ? undefined : intOption(v, 'workers', 0, 0, 256);
  if (image) checkImageFile(image);
  const { backend, model } = await setup(common);
  let rec: Recommendation | undefined;
  try {
    if (image) {
      const opened = await openImage(model, image, { maxPixels: common.maxPixels, dicom: common.dicom });
      checkDicomUse(common, opened.image, image);
      const pool = makePool(workers, backend, model, common.overrides);
      const progress = progressFor(v);
      try {
        rec = await recommendLayer(opened.session, { classChoice: v.class as string | undefined, lastN, batchSize, pool, onProgress: progress.task('Layer recommendation', 'steps') });
        progress.end();
      } finally {
        progress.stop();
        await pool?.close();
        opened.session.dispose();
      }
    }
    const s = describeModel(model);
    if (v.json !== undefined) writeJson(v.json as string, rec && image ? { ...s, recommendation: recommendationJson(rec, image) } : s);
    if (v.json !== '-') {
      console.log(`${s.name}: ${s.layers.length} layers, ${s.totalParams} parameters, input ${s.input.height}x${s.input.width}x${s.input.channels} (${s.input.preprocess}), ${s.classes} classes${s.binary ? ' (one sigmoid unit: binary)' : ''}, backend ${s.backend}`);
      if (s.outputs.length > 1) {
        console.log(`outputs (choose with --output <name|index>; the layers below are those of "${s.output}"):`);
        s.outputs.forEach((o, i) => console.log(`  ${i}  ${o.name}  ${o.units ?? '?'} unit${o.units === 1 ? '' : 's'}${o.activation === 'none' ? '' : `, ${o.activation}`}${o.name === s.output ? '  <- explained' : ''}`));
      }
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
  const common = commonFlags(v);
  const data = need(v, 'data');
  const batchSize = intOption(v, 'batch-size', 16, 1, 1024);
  const show = intOption(v, 'show', 20, 0, 1_000_000);
  const kind = oneOf((v.score as string | undefined) ?? 'self_confidence', SCORE_KINDS, 'score');
  const csv = fileOption(v, 'csv');
  const workers = v.workers === undefined ? undefined : intOption(v, 'workers', 0, 0, 64);
  if (!fs.existsSync(data)) throw new CamLensError('FILE_NOT_FOUND', `dataset not found: ${data}`);
  const { backend, model } = await setup(common, [csv]);
  let pool: ScanPool | undefined;
  try {
    const labels = model.metadata.labels;
    const dataset = readDataset(data, labels, v.labels as string | undefined);
    // The batches spread over worker threads, one core each (same results, in the same order, as one thread):
    // by default one per core (at most 8), none on one core or for a dataset of a single batch.
    const batches = Math.ceil(dataset.samples.length / batchSize);
    const n = Math.min(workers ?? (availableCores() < 2 || backend.name === 'tensorflow' ? 0 : Math.min(availableCores(), 8)), batches);
    pool = n > 0 ? new ScanPool({ modelPath: model.path, overrides: common.overrides, workers: n }) : undefined;
    const quiet = v.json === '-';
    const progress = progressFor(v);
    const onScanProgress = progress.task('Scan', 'images');
    let scan;
    try {
      scan = await scanDataset(model, dataset, {
        pool,
        batchSize,
        maxPixels: common.maxPixels,
        // DICOM files of the dataset: this frame and window (other images ignore them).
        ...(common.dicom ? { dicom: common.dicom } : {}),
        onProgress: (p) => onScanProgress(p.done, p.total),
      });
      progress.end();
    } finally {
      progress.stop();
    }
    const report = buildReport(model.path, labels, dataset, scan, kind, readReviewed(dataset.root));
    const dicomUsed = common.dicom ? { dicom: { frame: common.dicom.frame ?? 0, window: common.dicom.window ? formatWindowChoice(common.dicom.window) : 'file' } }
      : model.metadata.dicomWindow ? { dicom: { frame: 0, window: formatWindowChoice(model.metadata.dicomWindow) } } : {};
    if (v.json !== undefined) writeJson(v.json as string, { ...report, ...outputJson(model), ...dicomUsed, backend: backend.name, threads: backend.threads, workers: pool?.size ?? 0, seconds: round(scan.seconds) });
    if (csv !== undefined) writeFileSafely(csv, reportToCsv(report));
    if (!quiet) {
      const c = report.counts;
      console.log(`${dataset.source}: ${c.scanned} of ${c.images} images scanned with ${model.name} on ${backend.name} in ${scan.seconds.toFixed(1)} s ` +
        `(${(c.scanned / Math.max(scan.seconds, 1e-6)).toFixed(1)} images/s); ${c.flagged} flagged as likely mislabeled`);
      if (c.failed) console.log(`  ${c.failed} unreadable: ${report.failures.slice(0, 3).map((f) => path.basename(f.path)).join(', ')}${c.failed > 3 ? ', …' : ''}`);
      if (report.unmatchedClasses.length) console.log(`  class folders/labels matching no model label: ${report.unmatchedClasses.map((u) => `${u.name} (${u.images})`).join(', ')}`);
      if (c.nonImageFiles) console.log(`  ${c.nonImageFiles} non-image files skipped`);
      if (c.reviewedHidden) console.log(`  ${c.reviewedHidden} samples hidden: marked "label is correct" in .cam-lens/reviewed.json`);
      const line = outputLine(model);
      if (line) console.log(`  ${line}`);
      const rows = report.samples.slice(0, show);
      if (rows.length) console.log(`most doubtful first (${kind}):`);
      for (const s of rows) {
        console.log(`  ${String(s.rank).padStart(4)}. ${s.flagged ? 'FLAGGED ' : '        '}${s.relPath}: given "${s.givenLabel}" (${(s.selfConfidence * 100).toFixed(1)}%), predicted "${s.predictedLabel}" (${((s.probabilities[s.predictedLabel] ?? 0) * 100).toFixed(1)}%)`);
      }
    }
    // The report is written either way; a scan that scored nothing must not pass in CI.
    if (report.counts.scanned === 0 && !scan.cancelled) {
      const first = report.failures[0];
      throw new CamLensError('NOT_AN_IMAGE', `none of the ${dataset.samples.length} images with a class could be read` +
        (first ? ` (${path.basename(first.path)}: ${first.error})` : ''));
    }
  } finally {
    await pool?.close();
    model.dispose();
  }
}

async function cmdLabels(v: Values): Promise<void> {
  const common = commonFlags(v);
  const { model } = await setup(common);
  try {
    const n = numClasses(model);
    const off = model.metadata.labelOffset;
    const labels = Array.from({ length: n }, (_, i) => labelOf(model, i + off));
    if (common.json !== undefined) {
      writeJson(common.json, {
        model: model.path, ...outputJson(model), outputs: model.outputs.map((o) => ({ name: o.name, units: o.units, activation: o.activation })),
        labelsFrom: model.metadata.labelsFile ?? null, labelOffset: off, classes: n, labels,
      });
    }
    if (common.json !== '-') {
      const named = model.metadata.labelsFile ? `, labels from ${model.metadata.labelsFile}`
        : model.binary ? ' (one sigmoid unit: the 0 side, then the 1 side)' : ', no labels (classes are named by index)';
      console.log(`${model.name}: ${n} classes` + named);
      const w = String(n - 1).length;
      labels.forEach((l, i) => console.log(`  ${String(i).padStart(w)}  ${l}`));
      const line = outputLine(model);
      if (line) console.log(line);
    }
  } finally {
    model.dispose();
  }
}

/** A shell word for `s`: as is where that is safe, else single-quoted. */
function shellWord(s: string): string {
  return /^[\w./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The `cam-lens labels` command line that lists the classes of the model these options load. */
function labelsCommand(v: Values): string {
  const parts = ['cam-lens labels --model', shellWord(String(v.model))];
  if (typeof v['class-names'] === 'string') parts.push('--class-names', shellWord(v['class-names']));
  if (typeof v['label-offset'] === 'string') parts.push('--label-offset', v['label-offset']);
  if (typeof v.output === 'string') parts.push('--output', shellWord(v.output));
  return parts.join(' ');
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  let values: Values | undefined;
  try {
    if (command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    // compare parses its own options (cliCompare.ts).
    if (command === 'compare') return await runCompare(rest);
    // strategies parses its own options too (cliStrategies.ts).
    if (command === 'strategies') return await runStrategies(rest);
    const known = [...COMMANDS, 'compare', 'strategies'];
    if (!command) throw new UsageError(`missing command: expected ${known.join(', ')}`);
    if (!(COMMANDS as readonly string[]).includes(command)) {
      const near = closestLabels(known, command, 1)[0];
      throw new UsageError(`unknown command "${command}": expected ${known.join(', ')}` + (near ? `; did you mean ${near.label}?` : ''));
    }
    const cmd = command as Command;
    values = parseOptions(cmd, rest);
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (cmd === 'predict') await cmdPredict(values);
    else if (cmd === 'cam') await cmdCam(values);
    else if (cmd === 'scan') await cmdScan(values);
    else if (cmd === 'labels') await cmdLabels(values);
    else await cmdLayers(values);
    return 0;
  } catch (e) {
    // One line, whatever the message holds (file names and parser output can carry newlines).
    if (e instanceof UsageError) {
      process.stderr.write(`cam-lens: ${oneLine(e.message, 1000)} (see cam-lens --help)\n`);
      return 2;
    }
    if (e instanceof CamLensError) {
      let tail = e.hint ? ` (${e.hint})` : '';
      // The engine's hint says "the list of classes"; the CLI's list of classes is a command.
      if (e.code === 'UNKNOWN_CLASS' && e.hint && values?.model) tail = `; \`${labelsCommand(values)}\` lists them all`;
      process.stderr.write(`cam-lens: ${oneLine(e.message + tail, 2000)}\n`);
      return 1;
    }
    const err = e as Error;
    process.stderr.write(`cam-lens: unexpected error: ${oneLine(err?.message ?? String(e), 1000)}\n`);
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
