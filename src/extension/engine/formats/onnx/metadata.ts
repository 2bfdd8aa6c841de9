/**
 * Labels, input size and preprocessing of an ONNX model, first found wins, field by field:
 *
 * 1. `<model file name>.cam-lens.json` (with or without `.onnx`) or `cam-lens.json` beside the model (ours,
 *    as for model.json), or Teachable Machine's `metadata.json`;
 * 2. the model's own `metadata_props`: `cam-lens` (a JSON object in cam-lens.json's format, also its `output` and
 *    labels keyed by output name for a model with several outputs), labels under
 *    `labels`, `classes`, `class_names`, `classLabels` or `names` (a JSON list, a JSON object or Python dict
 *    `{0: 'cat', ...}` keyed by index, or one label a line / comma-separated), `preprocess` (one of our
 *    preset ids), Windows ML's `Image.NominalPixelRange` (NominalRange_0_255 → [0,255], Normalized_0_1 →
 *    [0,1], Normalized_1_1 → [-1,1]), and `inputSize` / `imgsz`;
 * 3. `labels.txt` / `classes.txt` beside the model, or else the one file named like `<name>-labels.txt` or
 *    `<name>_classes.txt` there (model zoos ship mnist-labels.txt, synset-style files);
 * 4. assumptions, marked as such: a model with 1000 outputs gets the ImageNet class names (1001: a
 *    background class first, labelOffset 1); a model with no preprocessing named gets a suggested preset:
 *    `[0,255]` where the graph rescales its input itself (a Mul by 1/255 or 1/127.5, a Div by 255 or 127.5,
 *    or an integer input), `imagenet` for a 3-channel channels-first input (PyTorch exports expect
 *    torchvision's normalisation), else `[0,1]`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CamLensError } from '../../errors';
import { applyOverrides, readLabelsFile, readMetadata, type MetadataOverrides, type ModelMetadata } from '../../metadata';
import { PREPROCESS_PRESETS, type PreprocessPreset } from '../../preprocess';
import { DataType } from './proto';
import type { OnnxIr } from './analyze';
import type { HostTensor } from './tensor';
import imagenetLabels from './imagenetLabels.json';

const LABEL_KEYS = ['labels', 'classes', 'class_names', 'classLabels', 'classlabels', 'names'];

function bad(key: string, msg: string): CamLensError {
  return new CamLensError('METADATA_INVALID', `the model's metadata_props "${key}" ${msg}`, 'fix the metadata with onnx (model.metadata_props), or put a labels.txt beside the model');
}

/** Labels from a metadata_props value in any of the forms listed in the file comment. */
export function parseLabelList(key: string, value: string): string[] {
  const text = value.trim();
  if (text === '') throw bad(key, 'is empty');
  const fromIndexMap = (entries: [string, unknown][]): string[] => {
    const out: string[] = [];
    for (const [k, v] of entries) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i > 1e6) throw bad(key, `has the key "${k}", not a class index`);
      out[i] = String(v);
    }
    for (let i = 0; i < out.length; i++) if (out[i] === undefined) throw bad(key, `has no label for class ${i}`);
    return out;
  };
  if (text.startsWith('[') || text.startsWith('{')) {
    let j: unknown;
    try {
      j = JSON.parse(text) as unknown;
    } catch {
      // A Python dict literal: {0: 'person', 1: "bicycle"}.
      const entries: [string, string][] = [];
      const re = /(\d+)\s*:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")/g;
      let m: RegExpExecArray | null;
      while (text.startsWith('{') && (m = re.exec(text))) entries.push([m[1], (m[2] ?? m[3]).replace(/\\(.)/g, '$1')]);
      if (entries.length) return fromIndexMap(entries);
      throw bad(key, 'is neither JSON nor a Python dict of labels');
    }
    if (Array.isArray(j)) return j.map((x) => String(x));
    if (j && typeof j === 'object') return fromIndexMap(Object.entries(j as Record<string, unknown>));
    throw bad(key, 'is JSON but not a list or an object of labels');
  }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length > 1) return lines;
  return text.split(',').map((l) => l.trim());
}

const PIXEL_RANGES: Record<string, PreprocessPreset> = {
  NominalRange_0_255: '[0,255]',
  Normalized_0_1: '[0,1]',
  Normalized_1_1: '[-1,1]',
};

function checkPreset(key: string, v: string): PreprocessPreset {
  if (!(PREPROCESS_PRESETS as readonly string[]).includes(v)) throw bad(key, `is "${v}"; expected one of ${PREPROCESS_PRESETS.join(', ')}`);
  return v as PreprocessPreset;
}

function parseSize(key: string, v: unknown): [number, number] {
  const s = typeof v === 'string' ? (() => { try { return JSON.parse(v) as unknown; } catch { return v; } })() : v;
  if (typeof s === 'number' && Number.isInteger(s) && s > 0) return [s, s];
  if (Array.isArray(s) && s.length === 2 && s.every((d) => Number.isInteger(d) && d > 0)) return [s[0], s[1]];
  throw bad(key, `must be [height, width] or one number, got ${JSON.stringify(v)}`);
}

interface PropsMetadata {
  labels?: string[];
  /** Labels per output name (`"labels": { "<output>": [...] }` in the `cam-lens` entry). */
  labelsByOutput?: Record<string, string[]>;
  output?: string | number;
  labelsKey?: string;
  preprocess?: PreprocessPreset;
  inputSize?: [number, number];
  labelOffset?: number;
  name?: string;
}

/** What the model's metadata_props say (keys compared case-insensitively). */
export function readMetadataProps(props: Map<string, string>): PropsMetadata {
  const lower = new Map([...props].map(([k, v]) => [k.toLowerCase(), [k, v] as [string, string]]));
  const get = (k: string) => lower.get(k.toLowerCase());
  const out: PropsMetadata = {};
  const ours = get('cam-lens');
  if (ours) {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(ours[1]) as Record<string, unknown>;
    } catch {
      throw bad(ours[0], 'is not valid JSON');
    }
    if (!j || typeof j !== 'object' || Array.isArray(j)) throw bad(ours[0], 'is not a JSON object');
    const byOutput = j.labels && typeof j.labels === 'object' && !Array.isArray(j.labels) && Object.keys(j.labels).some((k) => !/^\d+$/.test(k));
    if (byOutput) {
      const entries = Object.entries(j.labels as Record<string, unknown>);
      if (!entries.every(([, v]) => Array.isArray(v) && v.every((l) => typeof l === 'string'))) throw bad(ours[0], 'has "labels" keyed by output name whose values are not all lists of strings');
      out.labelsByOutput = Object.fromEntries(entries) as Record<string, string[]>;
      out.labelsKey = ours[0];
    } else if (j.labels !== undefined) {
      out.labels = parseLabelList(ours[0], JSON.stringify(j.labels));
      out.labelsKey = ours[0];
    }
    if (j.output !== undefined) {
      if (!(typeof j.output === 'string' && j.output !== '') && !(Number.isInteger(j.output) && (j.output as number) >= 0)) throw bad(ours[0], `has output ${JSON.stringify(j.output)}, not an output name or index`);
      out.output = j.output as string | number;
    }
    if (j.preprocess !== undefined) out.preprocess = checkPreset(ours[0], String(j.preprocess));
    if (j.inputSize !== undefined) out.inputSize = parseSize(ours[0], j.inputSize);
    if (j.labelOffset !== undefined) {
      if (!Number.isInteger(j.labelOffset) || (j.labelOffset as number) < 0) throw bad(ours[0], `has labelOffset ${JSON.stringify(j.labelOffset)}`);
      out.labelOffset = j.labelOffset as number;
    }
    if (typeof j.name === 'string') out.name = j.name;
  }
  for (const k of LABEL_KEYS) {
    const e = get(k);
    if (e && !out.labels && !out.labelsByOutput) {
      out.labels = parseLabelList(e[0], e[1]);
      out.labelsKey = e[0];
    }
  }
  const pre = get('preprocess');
  if (pre && !out.preprocess) out.preprocess = checkPreset(pre[0], pre[1].trim());
  const range = get('Image.NominalPixelRange');
  if (range && !out.preprocess) {
    const p = PIXEL_RANGES[range[1].trim()];
    if (p) out.preprocess = p;
  }
  const size = get('inputSize') ?? get('imgsz');
  if (size && !out.inputSize) out.inputSize = parseSize(size[0], size[1]);
  return out;
}

/**
 * The metadata before the graph is built (the input size may come from it): files beside the model, then
 * metadata_props filling what the files leave open. Overrides are applied by `finishOnnxMetadata`.
 */
export function readOnnxMetadata(file: string, props: Map<string, string>): ModelMetadata {
  const meta = readMetadata(path.dirname(file), {}, { modelFile: file });
  if (meta.source === 'none') {
    // Model zoos ship labels as `<name>-labels.txt` or `<name>_classes.txt`: one such file beside the model.
    const dir = path.dirname(file);
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir).filter((n) => /[-_.](labels|classes)\.txt$/i.test(n));
    } catch {
      names = [];
    }
    if (names.length === 1) {
      const f = path.join(dir, names[0]);
      meta.labels = readLabelsFile(f);
      meta.source = /classes\.txt$/i.test(f) ? 'classes.txt' : 'labels.txt';
      meta.labelsFile = path.resolve(f);
    }
  }
  const fromOurFile = meta.source === 'cam-lens.json' || meta.source === 'metadata.json';
  const p = readMetadataProps(props);
  const fileLabels = meta.labels.length > 0 || meta.labelsByOutput !== undefined;
  if (p.labels && (!fromOurFile || !fileLabels)) {
    meta.labels = p.labels;
    meta.labelsByOutput = undefined;
    meta.source = 'metadata_props';
    meta.labelsFile = undefined;
  } else if (p.labelsByOutput && (!fromOurFile || !fileLabels)) {
    meta.labels = [];
    meta.labelsByOutput = p.labelsByOutput;
    meta.source = 'metadata_props';
    meta.labelsFile = undefined;
  }
  if (p.output !== undefined && meta.output === undefined) meta.output = p.output;
  if (p.preprocess && meta.preprocessAssumed) {
    meta.preprocess = p.preprocess;
    meta.preprocessAssumed = false;
  }
  if (p.inputSize && !meta.inputSize) meta.inputSize = p.inputSize;
  if (p.labelOffset !== undefined && !fromOurFile) meta.labelOffset = p.labelOffset;
  if (p.name && !meta.name) meta.name = p.name;
  return meta;
}

export interface PresetSuggestion {
  preset: PreprocessPreset;
  note?: string;
}

const near = (a: number, b: number) => Math.abs(a - b) <= 1e-3 * Math.abs(b);

/**
 * The preset to assume where nothing names one (see the file comment). `constOf` gives the graph's constant
 * values (initializers and folded ones).
 */
export function suggestPreset(ir: OnnxIr, layout: 'NCHW' | 'NHWC', channels: 1 | 3, constOf: (id: string) => HostTensor | undefined): PresetSuggestion {
  const intInput = ir.input.elemType !== undefined && ir.input.elemType !== DataType.FLOAT && ir.input.elemType !== DataType.FLOAT16 && ir.input.elemType !== DataType.DOUBLE;
  if (intInput) return { preset: '[0,255]', note: 'the model takes integer pixels' };
  // Follow the input through moves (Transpose, Cast, Identity, Reshape) to its first arithmetic op.
  let cur = ir.input.name;
  for (let guard = 0; guard < 8; guard++) {
    const users = ir.nodes.filter((n) => n.inputs.includes(cur));
    if (users.length !== 1) break;
    const n = users[0];
    if (['Transpose', 'Cast', 'Identity', 'Reshape'].includes(n.opType)) {
      cur = n.outputs[0];
      continue;
    }
    const other = n.inputs.find((x) => x !== cur);
    const c = other !== undefined ? constOf(other) : undefined;
    const scalar = c && c.data.length >= 1 && c.data.every((v) => v === c.data[0]) ? c.data[0] : undefined;
    if (scalar !== undefined && n.inputs[0] === cur) {
      if (n.opType === 'Mul' && (near(scalar, 1 / 255) || near(scalar, 1 / 127.5))) return { preset: '[0,255]', note: 'inside the model' };
      if (n.opType === 'Div' && (near(scalar, 255) || near(scalar, 127.5))) return { preset: '[0,255]', note: 'inside the model' };
    }
    break;
  }
  if (layout === 'NCHW' && channels === 3) return { preset: 'imagenet', note: 'channels-first export' };
  return { preset: '[0,1]' };
}

/**
 * Completes the metadata once the output count is known: ImageNet names for 1000/1001 outputs without labels,
 * the suggested preset where none was named, then the caller's overrides.
 */
export function finishOnnxMetadata(meta: ModelMetadata, numOutputs: number, suggestion: PresetSuggestion, overrides: MetadataOverrides = {}): ModelMetadata {
  const labelsGiven = meta.labels.length > 0 || overrides.labels !== undefined || overrides.labelsFile !== undefined;
  if (!labelsGiven && (numOutputs === 1000 || numOutputs === 1001)) {
    meta.labels = (imagenetLabels as string[]).slice();
    meta.source = 'imagenet';
    meta.labelsAssumed = true;
    meta.labelsFile = undefined;
    if (numOutputs === 1001 && meta.labelOffset === 0 && overrides.labelOffset === undefined) meta.labelOffset = 1;
  }
  if (meta.preprocessAssumed) {
    meta.preprocess = suggestion.preset;
    if (suggestion.note) meta.preprocessNote = suggestion.note;
  }
  return applyOverrides(meta, overrides);
}
