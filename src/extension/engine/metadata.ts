/**
 * Model metadata: class labels, input size, preprocessing. Looked up next to model.json, first found wins:
 * `cam-lens.json` (ours), Teachable Machine `metadata.json`, `labels.txt`, `classes.txt`. Callers may
 * override each field (CLI `--labels`/`--preprocess`, the panel's preset picker).
 *
 * cam-lens.json:
 * ```json
 * { "name": "…", "labels": ["cat", …], "inputSize": [height, width], "channels": 3,
 *   "preprocess": "[0,1]" | "[-1,1]" | "[0,255]" | "caffe" | "imagenet",
 *   "labelOffset": 0 }
 * ```
 * `labelOffset` is the number of leading model outputs that are not classes (1 for TF-Hub models with a
 * "background" output): label i belongs to output i + labelOffset.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CamLensError } from './errors';
import { PREPROCESS_PRESETS, type PreprocessPreset } from './preprocess';

export type MetadataSource = 'cam-lens.json' | 'metadata.json' | 'labels.txt' | 'classes.txt' | 'override' | 'none';

export interface ModelMetadata {
  name?: string;
  labels: string[];
  inputSize?: [number, number];
  channels?: 1 | 3;
  preprocess: PreprocessPreset;
  /** True where no metadata named the preset and the default was assumed. */
  preprocessAssumed: boolean;
  labelOffset: number;
  source: MetadataSource;
}

/** Values that win over the metadata files: CLI flags (`--labels`, `--preprocess`, `--label-offset`), pickers, tests. */
export interface MetadataOverrides {
  labels?: string[];
  labelsFile?: string;
  preprocess?: PreprocessPreset;
  /** Leading model outputs that are not classes (1 for TF-Hub's "background"). */
  labelOffset?: number;
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
      throw bad(file, `not valid JSON (${(e as Error).message})`);
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
    throw bad(file, `not valid JSON (${(e as Error).message})`);
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw bad(file, 'expected a JSON object');
  return j as Record<string, unknown>;
}

/** Finds and validates the metadata next to `modelDir`, then applies overrides. */
export function readMetadata(modelDir: string, overrides: MetadataOverrides = {}): ModelMetadata {
  let meta: ModelMetadata = { labels: [], preprocess: DEFAULT_PREPROCESS, preprocessAssumed: true, labelOffset: 0, source: 'none' };
  const ours = path.join(modelDir, 'cam-lens.json');
  const tm = path.join(modelDir, 'metadata.json');
  if (fs.existsSync(ours)) {
    const j = parseJsonFile(ours);
    meta = {
      name: typeof j.name === 'string' ? j.name : undefined,
      labels: j.labels === undefined ? [] : checkLabels(ours, j.labels),
      inputSize: j.inputSize === undefined ? undefined : checkSize(ours, j.inputSize),
      channels: j.channels === undefined ? undefined : j.channels === 1 || j.channels === 3 ? j.channels : (() => { throw bad(ours, `"channels" must be 1 or 3, got ${JSON.stringify(j.channels)}`); })(),
      preprocess: j.preprocess === undefined ? DEFAULT_PREPROCESS : checkPreset(ours, j.preprocess),
      preprocessAssumed: j.preprocess === undefined,
      labelOffset: j.labelOffset === undefined ? 0 : Number.isInteger(j.labelOffset) && (j.labelOffset as number) >= 0 ? (j.labelOffset as number) : (() => { throw bad(ours, `"labelOffset" must be a non-negative integer, got ${JSON.stringify(j.labelOffset)}`); })(),
      source: 'cam-lens.json',
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
    };
  } else {
    for (const name of ['labels.txt', 'classes.txt'] as const) {
      const f = path.join(modelDir, name);
      if (fs.existsSync(f)) {
        meta = { ...meta, labels: readLabelsFile(f), source: name };
        break;
      }
    }
  }
  if (overrides.labelsFile) meta.labels = readLabelsFile(overrides.labelsFile);
  if (overrides.labels) meta.labels = overrides.labels;
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
