/**
 * What kind of model file is this? Users hand CAM Lens whatever their training produced: a Keras .h5 or
 * .keras, a SavedModel's .pb, an ONNX or TFLite file, a PyTorch checkpoint. Reading them as JSON gives
 * "Unexpected token … is not valid JSON" followed by binary garbage; naming the format instead tells the user
 * what to do. The format readers (tfjs today; others as they come) dispatch on `id`.
 *
 * Sniffed from the first bytes where the format has a signature, else from the extension:
 * - HDF5 (Keras 2 `.h5`): `\x89HDF\r\n\x1a\n` at offset 0;
 * - TFLite: FlatBuffer file identifier `TFL3` at offset 4;
 * - zip (`PK\x03\x04`): Keras 3 `.keras` (entries config.json, model.weights.h5, metadata.json) or a PyTorch
 *   checkpoint (entries `<name>/data.pkl`, `<name>/data/0`), decided by the first entry's name, else the
 *   extension; any other zip (a zipped Teachable Machine download) is `zip`;
 * - Python pickle (`\x80` then protocol 2..5): a legacy PyTorch checkpoint;
 * - protobuf has no signature: `.onnx` is ONNX, `.pb` a TensorFlow SavedModel or frozen graph;
 * - JSON: the first non-blank character is `{` or `[` (a UTF-8 byte-order mark is skipped).
 */
import * as fs from 'fs';
import * as path from 'path';

export type ModelFileFormatId = 'json' | 'onnx' | 'keras-h5' | 'keras-v3' | 'tf-protobuf' | 'tflite' | 'pytorch' | 'zip' | 'unknown';

export interface ModelFileFormat {
  id: ModelFileFormatId;
  /** For messages: "an ONNX model". */
  name: string;
  /** How to get a model CAM Lens reads from it, where it is not one already. */
  convert?: string;
}

// The formats CAM Lens opens (json, onnx, keras-*) need no `convert`; the others say how to get one it opens.
const FORMATS: Record<ModelFileFormatId, ModelFileFormat> = {
  json: { id: 'json', name: 'a JSON file' },
  onnx: { id: 'onnx', name: 'an ONNX model' },
  'keras-h5': { id: 'keras-h5', name: 'a Keras HDF5 model' },
  'keras-v3': { id: 'keras-v3', name: 'a Keras 3 model (.keras zip)' },
  'tf-protobuf': {
    id: 'tf-protobuf', name: 'a TensorFlow protobuf graph (SavedModel or frozen graph)',
    convert: 'export the SavedModel folder to ONNX (python -m tf2onnx.convert --saved-model <folder> --output model.onnx), or save the Keras model as .keras, and open that',
  },
  tflite: {
    id: 'tflite', name: 'a TensorFlow Lite model',
    convert: 'open the Keras file (.keras, .h5) or the ONNX export of the model it was converted from',
  },
  pytorch: {
    id: 'pytorch', name: 'a PyTorch checkpoint (a pickle, which CAM Lens never unpickles)',
    convert: 'export the model to ONNX: torch.onnx.export(model, torch.randn(1, 3, 224, 224), "model.onnx"), and open model.onnx',
  },
  zip: {
    id: 'zip', name: 'a zip archive',
    convert: 'unzip it and choose the model.json inside (Teachable Machine downloads are zipped)',
  },
  unknown: { id: 'unknown', name: 'a file of unknown format' },
};

const BY_EXTENSION: Record<string, ModelFileFormatId> = {
  '.json': 'json',
  '.onnx': 'onnx',
  '.h5': 'keras-h5',
  '.hdf5': 'keras-h5',
  '.keras': 'keras-v3',
  '.pb': 'tf-protobuf',
  '.tflite': 'tflite',
  '.pt': 'pytorch',
  '.pth': 'pytorch',
  '.ckpt': 'pytorch',
  '.zip': 'zip',
};

/** Extensions of model files in any format we recognise, for folder listings. */
export const MODEL_FILE_EXTENSIONS: readonly string[] = Object.keys(BY_EXTENSION);

const HDF5_MAGIC = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

function readHead(file: string, n: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = fs.readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

/** The format of the bytes `head` (the start of a file named `fileName`). */
export function sniffModelBytes(head: Uint8Array, fileName: string): ModelFileFormat {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const ext = path.extname(fileName).toLowerCase();
  const byExt = BY_EXTENSION[ext];
  if (b.length >= 8 && b.subarray(0, 8).equals(HDF5_MAGIC)) return FORMATS['keras-h5'];
  if (b.length >= 8 && b.toString('latin1', 4, 8) === 'TFL3') return FORMATS.tflite;
  if (b.length >= 4 && b.toString('latin1', 0, 4) === 'PK\u0003\u0004') {
    // The first local file header: name length at 26, name at 30.
    const nameLen = b.length >= 30 ? b.readUInt16LE(26) : 0;
    const first = b.toString('latin1', 30, Math.min(b.length, 30 + nameLen));
    if (/(^|\/)data\.pkl$|(^|\/)data\/\d+$|(^|\/)version$/.test(first)) return FORMATS.pytorch;
    if (/^(metadata\.json|config\.json|model\.weights\.h5)$/.test(first)) return FORMATS['keras-v3'];
    return byExt === 'pytorch' || byExt === 'keras-v3' ? FORMATS[byExt] : FORMATS.zip;
  }
  if (b.length >= 2 && b[0] === 0x80 && b[1] >= 2 && b[1] <= 5) return FORMATS.pytorch;
  // ONNX has no signature: its extension is the user's word that the file is one (a damaged one, if it reads as
  // text), so the ONNX reader says what is wrong with it rather than the model.json reader.
  if (byExt === 'onnx') return FORMATS.onnx;
  let i = b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x09 || b[i] === 0x0a || b[i] === 0x0d)) i++;
  if (i < b.length && (b[i] === 0x7b || b[i] === 0x5b)) return FORMATS.json;
  // Protobuf and the rest: only the extension tells (a signature-less .h5 or .tflite is still named by it).
  return byExt && byExt !== 'json' ? FORMATS[byExt] : FORMATS.unknown;
}

/** The format of a model file, from its first bytes and its extension. Throws where it cannot be read. */
export function sniffModelFile(file: string): ModelFileFormat {
  return sniffModelBytes(readHead(file, 64), file);
}

/** True where the bytes are not text: a NUL, or not valid UTF-8. */
export function looksBinary(head: Uint8Array): boolean {
  if (head.includes(0)) return true;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(0, Math.max(0, head.length - 4)));
    return false;
  } catch {
    return true;
  }
}

/** The first bytes in hex, for naming a binary file nobody recognises. */
export function hexHead(head: Uint8Array, n = 8): string {
  return Array.from(head.subarray(0, n), (x) => x.toString(16).padStart(2, '0')).join(' ');
}

/**
 * A message fit for one line: control characters (which JSON.parse quotes raw from the file) escaped, runs
 * of whitespace collapsed, cut at `max` characters.
 */
export function oneLine(s: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufffd]/g, (c) => (c === '\n' || c === '\r' || c === '\t' ? ' ' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))
    .replace(/ {2,}/g, ' ').trim();
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}

export interface FoundModelFile {
  /** Relative to the folder searched, with "/" separators. */
  relPath: string;
  format: ModelFileFormat;
}

/** Whether a JSON file looks like a TensorFlow.js model.json (its start names "modelTopology"). */
function isTfjsJson(file: string): boolean {
  try {
    return readHead(file, 64 * 1024).toString('utf8').includes('"modelTopology"');
  } catch {
    return false;
  }
}

/**
 * Model files in `dir` and in its direct subfolders: TensorFlow.js model.json files (format `json`) and files
 * of the other formats we recognise. For naming them where a folder was given instead of a file.
 */
export function findModelFiles(dir: string, limit = 10): FoundModelFile[] {
  const out: FoundModelFile[] = [];
  const visit = (sub: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(path.join(dir, sub), { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const folders: string[] = [];
    for (const e of entries.slice(0, 2000)) {
      if (out.length >= limit) return;
      if (e.name.startsWith('.')) continue;
      const rel = sub ? `${sub}/${e.name}` : e.name;
      const abs = path.join(dir, rel);
      let isFile = e.isFile();
      let isDir = e.isDirectory();
      if (e.isSymbolicLink()) {
        try {
          const st = fs.statSync(abs);
          isFile = st.isFile();
          isDir = st.isDirectory();
        } catch {
          continue;
        }
      }
      if (isDir) folders.push(rel);
      if (!isFile || !MODEL_FILE_EXTENSIONS.includes(path.extname(e.name).toLowerCase())) continue;
      let format: ModelFileFormat;
      try {
        format = sniffModelFile(abs);
      } catch {
        continue;
      }
      if (format.id === 'json' ? isTfjsJson(abs) : format.id !== 'unknown') out.push({ relPath: rel, format });
    }
    if (depth === 0) for (const f of folders) visit(f, 1);
  };
  visit('', 0);
  return out;
}
