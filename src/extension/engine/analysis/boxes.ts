/**
 * Object boxes for the "heat outside the object" hint, read from three formats (our own small parsers):
 *
 * - boxes.json, as samples/boxes.json: { "<path>": { box: { x0, y0, x1, y1 } , ... } }, pixel coordinates,
 *   inclusive on both ends; `boxes: [...]` (several objects) is accepted too. Paths are matched to images by
 *   their trailing path segments (so "samples/star/star_00.png" matches star/star_00.png of the samples folder).
 * - COCO-style JSON: { images: [{ id, file_name, width, height }], annotations: [{ image_id, bbox: [x, y, w, h] }] },
 *   bbox in pixels from the top-left corner (x, y) with width and height, the convention of the COCO format.
 * - Pascal VOC XML: one <annotation> per image with <filename>, <size><width><height>, and per <object> a
 *   <bndbox> with <xmin> <ymin> <xmax> <ymax>, 1-based inclusive pixel coordinates; a single .xml file or a
 *   folder of them.
 *
 * Boxes are returned as fractions of the image ([x0, x1) x [y0, y1) in [0, 1]), so that they apply to a map on
 * any grid. Where a format gives no image size (boxes.json), the size is filled in from the decoded image.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CamLensError } from '../errors';
import type { FractionBox } from './hints';

/** A box in pixels, inclusive on both ends; (width, height) of its image where the format says. */
export interface PixelBoxes {
  boxes: { x0: number; y0: number; x1: number; y1: number }[];
  width?: number;
  height?: number;
}

export interface BoxSet {
  source: string;
  format: 'boxes.json' | 'coco' | 'voc';
  /** By normalised path (POSIX, lower case). */
  entries: Map<string, PixelBoxes>;
}

const normKey = (p: string) => p.replace(/\\/g, '/').replace(/^\.\//, '').toLowerCase();

function num(v: unknown, what: string, file: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new CamLensError('BAD_ARGUMENT', `${file}: ${what} is not a number (${JSON.stringify(v)})`);
  return v;
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CamLensError('BAD_ARGUMENT', `${file}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

function parseBoxesJson(obj: Record<string, unknown>, file: string): BoxSet {
  const entries = new Map<string, PixelBoxes>();
  for (const [key, value] of Object.entries(obj)) {
    if (!value || typeof value !== 'object') continue;
    const v = value as { box?: unknown; boxes?: unknown };
    const list = Array.isArray(v.boxes) ? v.boxes : v.box ? [v.box] : [];
    const boxes = list.map((b: unknown, i: number) => {
      const o = b as Record<string, unknown>;
      return { x0: num(o.x0, `"${key}" box ${i} x0`, file), y0: num(o.y0, `"${key}" box ${i} y0`, file), x1: num(o.x1, `"${key}" box ${i} x1`, file), y1: num(o.y1, `"${key}" box ${i} y1`, file) };
    });
    if (boxes.length) entries.set(normKey(key), { boxes });
  }
  return { source: file, format: 'boxes.json', entries };
}

function parseCoco(obj: { images: unknown[]; annotations: unknown[] }, file: string): BoxSet {
  const byId = new Map<unknown, { name: string; width?: number; height?: number }>();
  for (const im of obj.images) {
    const o = im as Record<string, unknown>;
    if (typeof o.file_name !== 'string') continue;
    byId.set(o.id, { name: o.file_name, width: typeof o.width === 'number' ? o.width : undefined, height: typeof o.height === 'number' ? o.height : undefined });
  }
  const entries = new Map<string, PixelBoxes>();
  obj.annotations.forEach((a, i) => {
    const o = a as Record<string, unknown>;
    const im = byId.get(o.image_id);
    if (!im || !Array.isArray(o.bbox) || o.bbox.length !== 4) return;
    const [x, y, w, h] = o.bbox.map((v, j) => num(v, `annotation ${i} bbox[${j}]`, file));
    const key = normKey(im.name);
    const e = entries.get(key) ?? { boxes: [], width: im.width, height: im.height };
    // COCO's [x, y, w, h] covers pixels x .. x + w (continuous); as inclusive pixels: x .. x + w - 1.
    e.boxes.push({ x0: x, y0: y, x1: x + w - 1, y1: y + h - 1 });
    entries.set(key, e);
  });
  return { source: file, format: 'coco', entries };
}

function tag(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}(?:\\s[^>]*)?>([\\s\\S]*?)</${name}>`, 'i').exec(xml);
  return m ? m[1].trim() : undefined;
}

function tags(xml: string, name: string): string[] {
  const re = new RegExp(`<${name}(?:\\s[^>]*)?>([\\s\\S]*?)</${name}>`, 'gi');
  const out: string[] = [];
  for (let m = re.exec(xml); m; m = re.exec(xml)) out.push(m[1]);
  return out;
}

/** One VOC annotation file's image name and boxes (VOC: 1-based inclusive pixels, made 0-based here). */
export function parseVocXml(xml: string, file: string): { name: string; boxes: PixelBoxes } | undefined {
  const ann = tag(xml, 'annotation');
  if (ann === undefined) return undefined;
  const name = tag(ann, 'filename');
  if (!name) throw new CamLensError('BAD_ARGUMENT', `${file}: a Pascal VOC annotation without <filename>`);
  const size = tag(ann, 'size');
  const width = size ? Number(tag(size, 'width')) : NaN;
  const height = size ? Number(tag(size, 'height')) : NaN;
  const boxes = tags(ann, 'object').map((o, i) => {
    const b = tag(o, 'bndbox');
    if (!b) throw new CamLensError('BAD_ARGUMENT', `${file}: object ${i} has no <bndbox>`);
    const v = ['xmin', 'ymin', 'xmax', 'ymax'].map((k) => {
      const x = Number(tag(b, k));
      if (!Number.isFinite(x)) throw new CamLensError('BAD_ARGUMENT', `${file}: object ${i} has no numeric <${k}>`);
      return x - 1;
    });
    return { x0: v[0], y0: v[1], x1: v[2], y1: v[3] };
  });
  return { name, boxes: { boxes, ...(Number.isFinite(width) && width > 0 ? { width } : {}), ...(Number.isFinite(height) && height > 0 ? { height } : {}) } };
}

/** Reads boxes from a boxes.json, a COCO JSON, a VOC .xml file or a folder of VOC .xml files. */
export function readBoxes(source: string): BoxSet {
  const abs = path.resolve(source);
  if (!fs.existsSync(abs)) throw new CamLensError('FILE_NOT_FOUND', `boxes not found: ${source}`);
  if (fs.statSync(abs).isDirectory()) {
    const entries = new Map<string, PixelBoxes>();
    for (const f of fs.readdirSync(abs).filter((f) => f.toLowerCase().endsWith('.xml')).sort()) {
      const r = parseVocXml(fs.readFileSync(path.join(abs, f), 'utf8'), path.join(abs, f));
      if (r) entries.set(normKey(r.name), r.boxes);
    }
    if (!entries.size) throw new CamLensError('BAD_ARGUMENT', `${source}: no Pascal VOC annotation (.xml) in this folder`);
    return { source: abs, format: 'voc', entries };
  }
  if (abs.toLowerCase().endsWith('.xml')) {
    const r = parseVocXml(fs.readFileSync(abs, 'utf8'), abs);
    if (!r) throw new CamLensError('BAD_ARGUMENT', `${source}: not a Pascal VOC annotation (no <annotation>)`);
    return { source: abs, format: 'voc', entries: new Map([[normKey(r.name), r.boxes]]) };
  }
  const obj = readJson(abs);
  if (obj && typeof obj === 'object' && Array.isArray((obj as { images?: unknown }).images) && Array.isArray((obj as { annotations?: unknown }).annotations)) {
    return parseCoco(obj as { images: unknown[]; annotations: unknown[] }, abs);
  }
  if (obj && typeof obj === 'object' && !Array.isArray(obj)) return parseBoxesJson(obj as Record<string, unknown>, abs);
  throw new CamLensError('BAD_ARGUMENT', `${source}: neither a boxes.json object nor COCO-style JSON (images and annotations)`);
}

/**
 * The boxes of an image, as fractions of it: the entry whose path ends with the image's path relative to the
 * dataset (whole segments), else the one with the same file name when exactly one has it.
 */
export function boxesFor(set: BoxSet, relPath: string, width: number, height: number): FractionBox[] | undefined {
  const rel = normKey(relPath);
  let hit = set.entries.get(rel);
  if (!hit) {
    for (const [k, v] of set.entries) {
      if (k.endsWith('/' + rel)) {
        hit = v;
        break;
      }
    }
  }
  if (!hit) {
    const base = rel.split('/').pop() as string;
    const same = [...set.entries].filter(([k]) => k === base || k.endsWith('/' + base));
    if (same.length === 1) hit = same[0][1];
  }
  if (!hit) return undefined;
  const W = hit.width ?? width;
  const H = hit.height ?? height;
  return hit.boxes.map((b) => ({
    x0: Math.max(0, b.x0 / W),
    y0: Math.max(0, b.y0 / H),
    x1: Math.min(1, (b.x1 + 1) / W),
    y1: Math.min(1, (b.y1 + 1) / H),
  }));
}
