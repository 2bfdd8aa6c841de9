/**
 * Labelled datasets for "Find Likely Mislabeled Samples":
 * - a folder in `<root>/<class name>/<image>` layout (nested folders below a class folder count as that class);
 * - a CSV label file (`path,label`, header optional) or a JSON label file (`[{path, label}]` or
 *   `{ "<path>": "<label>" }`), paths relative to the label file.
 *
 * Class names are matched to the model's labels exactly, then ignoring case and separators (`-`, `_`, space,
 * `.`), then by an ImageNet-style synonym ("tabby" for "tabby, tabby cat"). Unmatched names are reported,
 * never silently dropped; non-image files and images of unmatched classes are counted.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CamLensError } from '../errors';
import { confinedPath } from '../paths';
import { oneLine } from '../modelFormat';

/** Image files by name; DICOM files without an extension count too, by the "DICM" marker at byte 128 (isImage). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.bmp', '.tif', '.tiff', '.dcm', '.dicom'];

export interface DatasetSample {
  /** Absolute path. */
  path: string;
  /** Path relative to the dataset root (folder) or to the label file's folder. */
  relPath: string;
  /** The label as written (folder name or label-file value). */
  givenName: string;
  /** Class index in the model's labels (label index, offset not applied). */
  givenIndex: number;
}

export interface Dataset {
  kind: 'folder' | 'csv' | 'json';
  /** The folder or label file. */
  source: string;
  root: string;
  samples: DatasetSample[];
  counts: {
    images: number;
    nonImageFiles: number;
    unmatchedImages: number;
    missingFiles: number;
  };
  /** Class names in the data that match no model label, with how many images they hold. */
  unmatchedClasses: { name: string; images: number }[];
  /** Per model class index, how many samples are given that label. */
  perClass: number[];
}

const norm = (s: string) => s.toLowerCase().replace(/[\s_\-.]+/g, '');

/** Maps a dataset class name to a model label index, or -1. */
export function makeClassMatcher(labels: string[]): (name: string) => number {
  const exact = new Map<string, number>();
  const loose = new Map<string, number>();
  const alias = new Map<string, number>();
  labels.forEach((l, i) => {
    if (!exact.has(l)) exact.set(l, i);
    if (!loose.has(norm(l))) loose.set(norm(l), i);
    for (const a of l.split(',')) if (!alias.has(norm(a))) alias.set(norm(a), i);
  });
  return (name: string) => exact.get(name) ?? loose.get(norm(name)) ?? alias.get(norm(name)) ?? -1;
}

function isImage(file: string): boolean {
  const ext = path.extname(file).toLowerCase();
  return IMAGE_EXTENSIONS.includes(ext) || (ext === '' && hasDicmMarker(file));
}

/** A DICOM Part 10 file whatever its name (scanners write files such as IM000001): "DICM" at byte 128. */
export function hasDicmMarker(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(4);
    return fs.readSync(fd, b, 0, 4, 128) === 4 && b.toString('latin1') === 'DICM';
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The pseudo class of images directly in a dataset folder, outside any class folder. */
const ROOT_FOLDER = '(root folder)';

/** The first few labels, quoted, for messages. */
function examples(labels: string[]): string {
  return labels.slice(0, 3).map((l) => `"${l}"`).join(', ') + (labels.length > 3 ? `, … ${labels.length} in all` : '');
}

/** "kiwi (2), fig (1)", at most five names. */
function listCounts(m: Map<string, number>): string {
  const e = [...m];
  return e.slice(0, 5).map(([name, n]) => `${name} (${n})`).join(', ') + (e.length > 5 ? `, … ${e.length} in all` : '');
}

function walk(dir: string, out: string[], depth = 0): void {
  if (depth > 32) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue; // .cam-lens/, .DS_Store, .git
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out, depth + 1);
    else if (e.isFile()) out.push(p);
  }
}

function emptyCounts(): Dataset['counts'] {
  return { images: 0, nonImageFiles: 0, unmatchedImages: 0, missingFiles: 0 };
}

function finish(ds: Omit<Dataset, 'perClass'>, numClasses: number): Dataset {
  const perClass = new Array<number>(numClasses).fill(0);
  for (const s of ds.samples) perClass[s.givenIndex]++;
  ds.samples.sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0));
  return { ...ds, perClass };
}

export function readFolderDataset(root: string, labels: string[]): Dataset {
  const abs = path.resolve(root);
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) {
    throw new CamLensError('FILE_NOT_FOUND', `dataset folder not found: ${root}`);
  }
  const match = makeClassMatcher(labels);
  const counts = emptyCounts();
  const unmatched = new Map<string, number>();
  const samples: DatasetSample[] = [];
  for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(abs, e.name);
    if (e.isFile()) {
      // Files directly in the root have no class folder.
      if (isImage(p)) {
        counts.images++;
        counts.unmatchedImages++;
        unmatched.set(ROOT_FOLDER, (unmatched.get(ROOT_FOLDER) ?? 0) + 1);
      } else counts.nonImageFiles++;
      continue;
    }
    if (!e.isDirectory()) continue;
    const files: string[] = [];
    walk(p, files);
    const idx = match(e.name);
    for (const f of files) {
      if (!isImage(f)) {
        counts.nonImageFiles++;
        continue;
      }
      counts.images++;
      if (idx < 0) {
        counts.unmatchedImages++;
        unmatched.set(e.name, (unmatched.get(e.name) ?? 0) + 1);
        continue;
      }
      samples.push({ path: f, relPath: path.relative(abs, f).split(path.sep).join('/'), givenName: e.name, givenIndex: idx });
    }
  }
  const layout = `expected <folder>/<class name>/<image> with class names among the model's labels (${examples(labels)}), or a CSV/JSON label file`;
  if (counts.images === 0) throw new CamLensError('BAD_ARGUMENT', `no images found under ${root}`, layout);
  if (samples.length === 0) {
    // Scanning nothing would "succeed" with 0 of N images scanned: a silent pass in CI.
    const inRoot = unmatched.get(ROOT_FOLDER) ?? 0;
    unmatched.delete(ROOT_FOLDER);
    const where = [
      inRoot ? `${inRoot} directly in it, outside any class folder` : '',
      unmatched.size ? `${counts.images - inRoot} in folders named after no model label: ${listCounts(unmatched)}` : '',
    ].filter(Boolean).join('; ');
    throw new CamLensError('BAD_ARGUMENT', `no image under ${root} has a class: of its ${counts.images} images, ${where}`, layout);
  }
  return finish({ kind: 'folder', source: abs, root: abs, samples, counts, unmatchedClasses: [...unmatched].map(([name, images]) => ({ name, images })) }, labels.length);
}

/** Parses one CSV line with quotes ("a,b" and "" escapes). */
function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') q = false;
      else cur += c;
    } else if (c === '"') q = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}

export function readLabelFileDataset(file: string, labels: string[]): Dataset {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new CamLensError('FILE_NOT_FOUND', `label file not found: ${file}`);
  // The real folder: confinedPath resolves against it, and relPath must be relative to the same folder.
  const root = fs.realpathSync(path.dirname(abs));
  const text = fs.readFileSync(abs, 'utf8');
  let rows: Array<[string, string]>;
  let kind: 'csv' | 'json';
  if (/\.json$/i.test(abs)) {
    kind = 'json';
    let j: unknown;
    try {
      j = JSON.parse(text);
    } catch (e) {
      throw new CamLensError('BAD_ARGUMENT', `${path.basename(abs)} is not valid JSON (${oneLine((e as Error).message, 120)})`);
    }
    if (Array.isArray(j)) {
      rows = j.map((r, i) => {
        if (!r || typeof r !== 'object' || typeof (r as { path?: unknown }).path !== 'string' || typeof (r as { label?: unknown }).label !== 'string') {
          throw new CamLensError('BAD_ARGUMENT', `${path.basename(abs)}[${i}] needs string "path" and "label"`);
        }
        return [(r as { path: string }).path, (r as { label: string }).label];
      });
    } else if (j && typeof j === 'object') {
      rows = Object.entries(j as Record<string, unknown>).map(([p, l]) => {
        if (typeof l !== 'string') throw new CamLensError('BAD_ARGUMENT', `${path.basename(abs)}: the label of "${p}" is not a string`);
        return [p, l];
      });
    } else throw new CamLensError('BAD_ARGUMENT', `${path.basename(abs)} must hold an array of {path, label} or an object path → label`);
  } else {
    kind = 'csv';
    const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
    rows = [];
    lines.forEach((l, i) => {
      const cells = parseCsvLine(l);
      if (i === 0 && cells[0].toLowerCase() === 'path') return; // header
      if (cells.length < 2 || cells[0] === '') throw new CamLensError('BAD_ARGUMENT', `${path.basename(abs)} line ${i + 1}: expected "path,label", got "${l.slice(0, 80)}"`);
      rows.push([cells[0], cells[1]]);
    });
  }
  const match = makeClassMatcher(labels);
  const counts = emptyCounts();
  const unmatched = new Map<string, number>();
  const samples: DatasetSample[] = [];
  const name = path.basename(abs);
  for (const [rel, label] of rows) {
    // Before anything else, so that a path out of the folder is refused even where it names no image.
    const p = confinedPath(root, rel, { what: `${name} row`, folderName: "the label file's folder", escapeCode: 'BAD_ARGUMENT', invalidCode: 'BAD_ARGUMENT' });
    if (!isImage(p)) {
      counts.nonImageFiles++;
      continue;
    }
    counts.images++;
    if (!fs.existsSync(p)) {
      counts.missingFiles++;
      continue;
    }
    const idx = match(label);
    if (idx < 0) {
      counts.unmatchedImages++;
      unmatched.set(label, (unmatched.get(label) ?? 0) + 1);
      continue;
    }
    samples.push({ path: p, relPath: path.relative(root, p).split(path.sep).join('/'), givenName: label, givenIndex: idx });
  }
  if (samples.length === 0) {
    const why = counts.images === 0
      ? `none of its ${rows.length} rows names an image file (${IMAGE_EXTENSIONS.join(', ')})`
      : `of the ${counts.images} images it names, ` + [
        counts.missingFiles ? `${counts.missingFiles} ${counts.missingFiles === 1 ? 'does' : 'do'} not exist` : '',
        counts.unmatchedImages ? `${counts.unmatchedImages} ${counts.unmatchedImages === 1 ? 'has a label' : 'have labels'} matching no model label: ${listCounts(unmatched)}` : '',
      ].filter(Boolean).join('; ');
    throw new CamLensError('BAD_ARGUMENT', `${name} gives no sample to scan: ${why}`,
      `paths are relative to ${root}; labels are among the model's (${examples(labels)})`);
  }
  return finish({ kind, source: abs, root, samples, counts, unmatchedClasses: [...unmatched].map(([name, images]) => ({ name, images })) }, labels.length);
}

/** A folder, or a CSV/JSON label file; `labelsFile` (CLI --labels) overrides the folder layout. */
export function readDataset(data: string, labels: string[], labelsFile?: string): Dataset {
  if (labels.length === 0) {
    throw new CamLensError('METADATA_INVALID', 'the model has no class labels, so dataset labels cannot be matched to it', 'add "labels" to cam-lens.json or a labels.txt next to model.json (in the CLI: --class-names <file>)');
  }
  if (labelsFile) return readLabelFileDataset(labelsFile, labels);
  if (fs.existsSync(data) && fs.statSync(data).isFile()) return readLabelFileDataset(data, labels);
  return readFolderDataset(data, labels);
}
