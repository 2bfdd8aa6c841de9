/**
 * Model metadata: class labels, input size, preprocessing. Looked up next to model.json, first found wins:
 * `cam-lens.json` (ours), Teachable Machine `metadata.json`, `labels.txt`, `classes.txt`. Callers may
 * override each field (CLI `--labels`/`--preprocess`, the panel's preset picker).
 *
 * cam-lens.json:
 * ```json
 * { "name": "…", "labels": ["cat", …], "inputSize": [height, width], "channels": 3,
 *   "preprocess": "[0,1]" | "[-1,1]" | "[0,255]" | "caffe" | "imagenet",
 *   "labelOffset": 0, "output": "gender" | 1, "dicom": { "window": [center, width] | "file" | "minmax" } }
 * ```
 * `dicom.window` fixes the VOI window DICOM images are shown to this model with, as it was trained (a CT model
 * trained on a lung window sees a lung window); a window chosen in the panel or with `--window` still wins.
 * `labelOffset` is the number of leading model outputs that are not classes (1 for TF-Hub models with a
 * "background" output): label i belongs to output i + labelOffset.
 *
 * A model with several outputs (heads): `output` names the one explained by default (a name or an index; see
 * outputs.ts), and `labels` may be an object keyed by output name, `{ "gender": ["female", "male"], "race":
 * [...] }`, each list for its own output. A single-sigmoid (binary) output takes one name (the 1 side) or two
 * (the 0 side, then the 1 side), as Keras' binary labels.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CamLensError } from './errors';
import { PREPROCESS_PRESETS, type PreprocessPreset } from './preprocess';
import { oneLine } from './modelFormat';
import { isDicomWindowChoice, type DicomWindowChoice } from '../../shared/dicom';

export type MetadataSource = 'cam-lens.json' | 'metadata.json' | 'labels.txt' | 'classes.txt' | 'override' | 'none'
  /** Read from an ONNX model's own metadata_props; 'imagenet': the ImageNet class names assumed from 1000 (1001) outputs. */
  | 'metadata_props' | 'imagenet';

export interface ModelMetadata {
  name?: string;
  labels: string[];
  inputSize?: [number, number];
  channels?: 1 | 3;
  preprocess: PreprocessPreset;
  /** True where no metadata named the preset and the default was assumed. */
  preprocessAssumed: boolean;
  /** Why an assumed preset was chosen, shown beside it: "inside the model" where the model rescales its input itself. */
  preprocessNote?: string;
  labelOffset: number;
  source: MetadataSource;
  /** Absolute path of the file the labels came from (the metadata file, or a labels file override); none where no file gave labels. */
  labelsFile?: string;
  /** True where no metadata named the classes and the labels were assumed (ImageNet's names for 1000 outputs). */
  labelsAssumed?: boolean;
  /** The output to explain where the model has several (a name or an index), unless the caller chooses. */
  output?: string | number;
  /** Labels per output name (cam-lens.json's `"labels": { "<output>": [...] }`); `labels` is set from it once the output is chosen. */
  labelsByOutput?: Record<string, string[]>;
  /** The VOI window DICOM images get for this model (cam-lens.json `"dicom": { "window": ... }`). */
  dicomWindow?: DicomWindowChoice;
}

/** Values that win over the metadata files: CLI flags (`--labels`, `--preprocess`, `--label-offset`), pickers, tests. */
export interface MetadataOverrides {
  labels?: string[];
  labelsFile?: string;
  preprocess?: PreprocessPreset;
  /** Leading model outputs that are not classes (1 for TF-Hub's "background"). */
  labelOffset?: number;
  /** The output to explain, by name or index (CLI `--output`, the panels' output picker). */
  output?: string | number;
}

export const DEFAULT_PREPROCESS: PreprocessPreset = '[0,1]';

function bad(file: string, msg: string): CamLensError {
  return new CamLensError('METADATA_INVALID', `${path.basename(file)}: ${msg}`, `fix or remove ${file}`);
}

function checkPreset(file: string, p: unknown): PreprocessPreset {
  if (typeof p !== 'string' || !(PREPROCESS_PRESETS as readonly string[]).includes(p)) {
    throw bad(file, `"preprocess" is ${JSON.stringify(p)}; expected one of ${PREPROCESS_PRESETS.join(', ')}`);
  }
  return p as PreprocessPreset;
}

function checkLabels(file: string, labels: unknown): string[] {
  if (Array.isArray(labels) && labels.every((l) => typeof l === 'string')) return labels as string[];
  // {"0": "tench", "1": "goldfish"} as Keras' imagenet_class_index-like maps use.
  if (labels && typeof labels === 'object' && !Array.isArray(labels)) {
    const entries = Object.entries(labels as Record<string, unknown>);
    const out: string[] = [];
    for (const [k, v] of entries) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0) throw bad(file, `label key "${k}" is not a class index`);
      out[i] = Array.isArray(v) ? String(v[v.length - 1]) : String(v);
    }
    for (let i = 0; i < out.length; i++) if (out[i] === undefined) throw bad(file, `no label for class index ${i}`);
    return out;
  }
  throw bad(file, '"labels" must be an array of strings');
}

/**
 * cam-lens.json's `labels`: a list (or index map, as checkLabels), or an object keyed by output name whose values
 * are lists, for a model with several outputs. An object whose keys are all class indices is an index map.
 */
function checkLabelsField(file: string, labels: unknown): { labels: string[]; byOutput?: Record<string, string[]> } {
  if (labels && typeof labels === 'object' && !Array.isArray(labels)) {
    const entries = Object.entries(labels as Record<string, unknown>);
    if (entries.length > 0 && entries.some(([k]) => !/^\d+$/.test(k))) {
      const byOutput: Record<string, string[]> = {};
      for (const [k, v] of entries) {
        if (!Array.isArray(v) || !v.every((l) => typeof l === 'string')) {
          throw bad(file, `"labels" for output "${k}" must be an array of strings (labels keyed by output name)`);
        }
        byOutput[k] = v as string[];
      }
      return { labels: [], byOutput };
    }
  }
  return { labels: checkLabels(file, labels) };
}

function checkOutput(file: string, o: unknown): string | number {
  if (typeof o === 'string' && o.trim() !== '') return o;
  if (typeof o === 'number' && Number.isInteger(o) && o >= 0) return o;
  throw bad(file, `"output" must be an output name or index, got ${JSON.stringify(o)}`);
}

/** cam-lens.json's `dicom`: `{ "window": [center, width] | "file" | "minmax" }`. */
function checkDicom(file: string, d: unknown): DicomWindowChoice | undefined {
  if (!d || typeof d !== 'object' || Array.isArray(d)) throw bad(file, `"dicom" must be an object such as { "window": [40, 400] }, got ${JSON.stringify(d)}`);
  const w = (d as Record<string, unknown>).window;
  if (w === undefined) return undefined;
  if (Array.isArray(w) && w.length === 2 && w.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    const choice: DicomWindowChoice = { kind: 'custom', center: w[0] as number, width: w[1] as number };
    if (!isDicomWindowChoice(choice)) throw bad(file, `"dicom.window" [center, width] needs a width of at least 1, got ${JSON.stringify(w)}`);
    return choice;
  }
  if (w === 'file') return { kind: 'file' };
  if (w === 'minmax') return { kind: 'minmax' };
  throw bad(file, `"dicom.window" must be [center, width], "file" or "minmax", got ${JSON.stringify(w)}`);
}

function checkSize(file: string, s: unknown): [number, number] {
  if (typeof s === 'number' && Number.isInteger(s) && s > 0) return [s, s];
  if (Array.isArray(s) && s.length === 2 && s.every((d) => Number.isInteger(d) && d > 0)) return [s[0], s[1]];
  throw bad(file, `"inputSize" must be [height, width] or a single number, got ${JSON.stringify(s)}`);
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CamLensError('FILE_NOT_FOUND', `cannot read labels file ${file} (${(e as Error).message})`);
  }
}

/** Reads a labels file: a JSON array/object, or text with one label a line. */
export function readLabelsFile(file: string): string[] {
  const text = readText(file);
  if (/\.json$/i.test(file)) {
    let j: unknown;
    try {
      j = JSON.parse(text);
    } catch (e) {
      throw bad(file, `not valid JSON (${oneLine((e as Error).message, 120)})`);
    }
    if (j && typeof j === 'object' && !Array.isArray(j) && 'labels' in (j as object)) return checkLabels(file, (j as { labels: unknown }).labels);
    return checkLabels(file, j);
  }
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw bad(file, 'the file has no labels');
  return lines;
}

function parseJsonFile(file: string): Record<string, unknown> {
  let j: unknown;
  try {
    j = JSON.parse(readText(file));
  } catch (e) {
    if (e instanceof CamLensError) throw e;
    throw bad(file, `not valid JSON (${oneLine((e as Error).message, 120)})`);
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw bad(file, 'expected a JSON object');
  return j as Record<string, unknown>;
}

/**
 * Finds and validates the metadata next to `modelDir`, then applies overrides. With `modelFile` (a model file
 * that is not the only one in its folder, such as a Keras .h5), `<file name>.cam-lens.json` and
 * `<file name without extension>.cam-lens.json` beside it come before `cam-lens.json`.
 */
export function readMetadata(modelDir: string, overrides: MetadataOverrides = {}, opts: { modelFile?: string } = {}): ModelMetadata {
  let meta: ModelMetadata = { labels: [], preprocess: DEFAULT_PREPROCESS, preprocessAssumed: true, labelOffset: 0, source: 'none' };
  const own = opts.modelFile ? [`${path.basename(opts.modelFile)}.cam-lens.json`, `${path.parse(opts.modelFile).name}.cam-lens.json`] : [];
  const ours = [...own, 'cam-lens.json'].map((f) => path.join(modelDir, f)).find((f) => fs.existsSync(f)) ?? path.join(modelDir, 'cam-lens.json');
  const tm = path.join(modelDir, 'metadata.json');
  if (fs.existsSync(ours)) {
    const j = parseJsonFile(ours);
    const labels: ReturnType<typeof checkLabelsField> = j.labels === undefined ? { labels: [] } : checkLabelsField(ours, j.labels);
    meta = {
      name: typeof j.name === 'string' ? j.name : undefined,
      labels: labels.labels,
      ...(labels.byOutput ? { labelsByOutput: labels.byOutput } : {}),
      ...(j.output !== undefined ? { output: checkOutput(ours, j.output) } : {}),
      ...(j.dicom !== undefined && checkDicom(ours, j.dicom) ? { dicomWindow: checkDicom(ours, j.dicom) } : {}),
      inputSize: j.inputSize === undefined ? undefined : checkSize(ours, j.inputSize),
      channels: j.channels === undefined ? undefined : j.channels === 1 || j.channels === 3 ? j.channels : (() => { throw bad(ours, `"channels" must be 1 or 3, got ${JSON.stringify(j.channels)}`); })(),
      preprocess: j.preprocess === undefined ? DEFAULT_PREPROCESS : checkPreset(ours, j.preprocess),
      preprocessAssumed: j.preprocess === undefined,
      labelOffset: j.labelOffset === undefined ? 0 : Number.isInteger(j.labelOffset) && (j.labelOffset as number) >= 0 ? (j.labelOffset as number) : (() => { throw bad(ours, `"labelOffset" must be a non-negative integer, got ${JSON.stringify(j.labelOffset)}`); })(),
      source: 'cam-lens.json',
      labelsFile: j.labels === undefined ? undefined : path.resolve(ours),
    };
  } else if (fs.existsSync(tm)) {
    const j = parseJsonFile(tm);
    // Teachable Machine image models take RGB scaled to [-1, 1].
    meta = {
      name: typeof j.modelName === 'string' ? j.modelName : undefined,
      labels: j.labels === undefined ? [] : checkLabels(tm, j.labels),
      inputSize: j.imageSize === undefined ? undefined : checkSize(tm, j.imageSize),
      preprocess: '[-1,1]',
      preprocessAssumed: false,
      labelOffset: 0,
      source: 'metadata.json',
      labelsFile: j.labels === undefined ? undefined : path.resolve(tm),
    };
  } else {
    for (const name of ['labels.txt', 'classes.txt'] as const) {
      const f = path.join(modelDir, name);
      if (fs.existsSync(f)) {
        meta = { ...meta, labels: readLabelsFile(f), source: name, labelsFile: path.resolve(f) };
        break;
      }
    }
  }
  return applyOverrides(meta, overrides);
}

/** Applies the caller's overrides (CLI flags, pickers) to metadata read from files. */
export function applyOverrides(meta: ModelMetadata, overrides: MetadataOverrides = {}): ModelMetadata {
  if (overrides.labelsFile) {
    meta.labels = readLabelsFile(overrides.labelsFile);
    meta.labelsFile = path.resolve(overrides.labelsFile);
    meta.labelsByOutput = undefined;
  }
  if (overrides.labels) {
    meta.labels = overrides.labels;
    meta.labelsFile = undefined;
    meta.labelsByOutput = undefined;
  }
  if (overrides.output !== undefined) meta.output = overrides.output;
  if (overrides.preprocess) {
    meta.preprocess = checkPreset('--preprocess', overrides.preprocess);
    meta.preprocessAssumed = false;
  }
  if (overrides.labelOffset !== undefined) {
    const off = overrides.labelOffset;
    if (!Number.isInteger(off) || off < 0) {
      throw new CamLensError('METADATA_INVALID', `labelOffset must be a non-negative integer, got ${JSON.stringify(off)}`,
        'use 1 for TF-Hub models whose output 0 is "background", else 0');
    }
    meta.labelOffset = off;
  }
  return meta;
}

/** Lower case, separators (space, `_`, `-`, `.`) as one space: "Elder_Berry" and "elder berry" compare equal. */
function looseLabel(s: string): string {
  return s.toLowerCase().replace(/[\s_\-.]+/g, ' ').trim();
}

/** Edit distance with adjacent transpositions ("optimal string alignment"): "bananna" is 1 from "banana". */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  let prev2 = new Array<number>(n + 1).fill(0);
  let prev = Array.from({ length: n + 1 }, (_, j) => j);
  for (let i = 1; i <= m; i++) {
    const cur = new Array<number>(n + 1);
    cur[0] = i;
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2] + 1);
      cur[j] = d;
    }
    prev2 = prev;
    prev = cur;
  }
  return prev[n];
}

export interface LabelSuggestion {
  /** Class index (the label list's, offset not applied): what a class choice by index takes. */
  index: number;
  label: string;
}

/**
 * The labels closest to a class name that matched none, for "did you mean". Compared loosely (case and
 * separators ignored) with the whole label and with each of its comma-separated ImageNet synonyms ("tabby,
 * tabby cat"), the names resolveClass accepts. In this order, at most `max`, ties in label order:
 *   0. a typo: one edit per five characters of the name (none below five), separators ignored;
 *   1. labels containing the name (of 3 characters or more), as a word first, then nearest in length;
 *   2. labels within a few edits: a third of the name's length, at least 2; fewest first;
 *   3. labels the name contains ("grad-cam" holds "cam"), longest first.
 * None where nothing is close.
 */
export function closestLabels(labels: readonly string[], name: string, max = 5): LabelSuggestion[] {
  const q = looseLabel(name);
  if (q === '') return [];
  const qc = q.replace(/ /g, '');
  const typo = Math.floor(qc.length / 5);
  const maxEdits = Math.max(2, Math.floor(q.length / 3));
  const scored: { index: number; label: string; tier: number; score: number }[] = [];
  labels.forEach((label, index) => {
    let best: { tier: number; score: number } | undefined;
    for (const c of [label, ...(label.includes(',') ? label.split(',') : [])].map(looseLabel)) {
      if (c === '') continue;
      const cc = c.replace(/ /g, '');
      const near = (a: string, b: string, k: number) => Math.abs(a.length - b.length) <= k && editDistance(a, b) <= k;
      const d = (x: string, y: string) => editDistance(x, y);
      let s: { tier: number; score: number } | undefined;
      if (near(qc, cc, typo)) s = { tier: 0, score: d(qc, cc) };
      else if (q.length >= 3 && c.includes(q)) s = { tier: 1, score: (` ${c} `.includes(` ${q} `) ? 0 : 1000) + c.length - q.length };
      else if (near(q, c, maxEdits)) s = { tier: 2, score: d(q, c) };
      else if (c.length >= 3 && q.includes(c)) s = { tier: 3, score: q.length - c.length };
      if (s && (!best || s.tier < best.tier || (s.tier === best.tier && s.score < best.score))) best = s;
    }
    if (best) scored.push({ index, label, ...best });
  });
  scored.sort((a, b) => a.tier - b.tier || a.score - b.score || a.index - b.index);
  return scored.slice(0, max).map(({ index, label }) => ({ index, label }));
}
