/**
 * The little HDF5 the Keras reader needs, over jsfive (a pure-JavaScript, read-only HDF5 reader): groups by
 * path, string attributes (variable-length, or fixed-length with NUL padding as h5py writes `bytes`), string
 * list attributes, and numeric datasets as Float32Array. jsfive throws strings as well as Errors on damaged
 * files; every call is wrapped so that the caller only ever sees a CamLensError naming the file.
 */
import * as path from 'path';
import * as jsfive from 'jsfive';
import { CamLensError } from '../../errors';

export type H5Node = jsfive.Group | jsfive.Dataset;

function message(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

export class H5File {
  private readonly root: jsfive.Group;

  constructor(bytes: Uint8Array, readonly fileName: string) {
    const buf = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? bytes.buffer as ArrayBuffer
      : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    checkLength(bytes, fileName);
    this.root = this.guard('its superblock', () => new jsfive.File(buf, path.basename(fileName)));
  }

  /** Runs a jsfive call; any failure becomes MODEL_INVALID naming the file and what was being read. */
  guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof CamLensError) throw e;
      throw new CamLensError('MODEL_INVALID', `${path.basename(this.fileName)} is not a readable HDF5 file: reading ${what} failed (${message(e).slice(0, 160)})`,
        'the file is truncated or damaged; save the model again');
    }
  }

  /** The group or dataset at `p` ('' is the root), or undefined where absent. */
  get(p: string): H5Node | undefined {
    if (p === '' || p === '/') return this.root;
    const parts = p.split('/').filter(Boolean);
    let cur: jsfive.Group = this.root;
    for (let i = 0; i < parts.length; i++) {
      const keys = this.guard(`the members of /${parts.slice(0, i).join('/')}`, () => cur.keys);
      if (!keys.includes(parts[i])) return undefined;
      const next = this.guard(`/${parts.slice(0, i + 1).join('/')}`, () => cur.get(parts[i]));
      if (i === parts.length - 1) return next;
      if (!isGroup(next)) return undefined;
      cur = next;
    }
    return cur;
  }

  group(p: string): jsfive.Group | undefined {
    const n = this.get(p);
    return n && isGroup(n) ? n : undefined;
  }

  keys(g: jsfive.Group): string[] {
    return this.guard(`the members of ${g.name}`, () => [...g.keys]);
  }

  attrs(n: H5Node): Record<string, unknown> {
    return this.guard(`the attributes of ${n.name}`, () => n.attrs ?? {});
  }

  /** A string attribute (NUL padding stripped), or undefined. */
  stringAttr(n: H5Node, key: string): string | undefined {
    const v = this.attrs(n)[key];
    if (typeof v === 'string') return stripNul(v);
    if (v instanceof Uint8Array) return stripNul(new TextDecoder().decode(v));
    if (Array.isArray(v) && v.length === 1 && typeof v[0] === 'string') return stripNul(v[0]);
    return undefined;
  }

  /**
   * A list-of-strings attribute as Keras writes it: one array, or chunks `key0`, `key1`… when the list is
   * longer than an HDF5 object header holds. An empty list (stored as a float64 []) is [].
   */
  stringListAttr(n: H5Node, key: string): string[] | undefined {
    const attrs = this.attrs(n);
    const one = (v: unknown): string[] => {
      if (Array.isArray(v)) return v.map((x) => (typeof x === 'string' ? stripNul(x) : x instanceof Uint8Array ? stripNul(new TextDecoder().decode(x)) : String(x)));
      if (typeof v === 'string') return [stripNul(v)];
      if (v && typeof (v as ArrayLike<number>).length === 'number') return [];
      return [];
    };
    if (key in attrs) return one(attrs[key]);
    if (`${key}0` in attrs) {
      const out: string[] = [];
      for (let i = 0; `${key}${i}` in attrs; i++) out.push(...one(attrs[`${key}${i}`]));
      return out;
    }
    return undefined;
  }

  /** A numeric dataset as float32 with its shape. Integer datasets (a count) are converted too. */
  dataset(d: jsfive.Dataset, what: string): { shape: number[]; values: Float32Array; dtype: string } {
    const shape = this.guard(`the shape of ${what}`, () => [...d.shape]);
    const dtype = this.guard(`the type of ${what}`, () => d.dtype);
    if (typeof dtype !== 'string' || !/^[<>|=]?[fiu]\d$/.test(dtype)) {
      throw new CamLensError('MODEL_INVALID', `${path.basename(this.fileName)}: ${what} has HDF5 type ${JSON.stringify(dtype)}, not a number type`);
    }
    const n = shape.reduce((a, b) => a * b, 1);
    const raw = this.guard(`the values of ${what}`, () => d.value);
    if (!raw || raw.length !== n) {
      throw new CamLensError('MODEL_INVALID', `${path.basename(this.fileName)}: ${what} holds ${raw?.length ?? 0} values, its shape [${shape.join(', ')}] needs ${n}`,
        'the file is truncated or damaged; save the model again');
    }
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const v = raw[i];
      if (v === undefined) {
        throw new CamLensError('MODEL_INVALID', `${path.basename(this.fileName)}: ${what} has no stored values (an unwritten HDF5 dataset)`);
      }
      values[i] = Number(v);
    }
    return { shape, values, dtype };
  }
}

export function isGroup(n: H5Node): n is jsfive.Group {
  return n instanceof jsfive.Group || Array.isArray((n as unknown as { keys?: unknown }).keys);
}

export function isDataset(n: H5Node | undefined): n is jsfive.Dataset {
  return n !== undefined && !isGroup(n);
}

const SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * A truncated file is the commonest damage (a download or a copy cut short): the superblock at offset 0 names
 * the end-of-file address, so a shorter file is refused here, before jsfive reads past its end. The address
 * sits at byte 40 (superblock version 0), 44 (version 1) or 28 (versions 2 and 3), with 8-byte offsets.
 */
function checkLength(bytes: Uint8Array, fileName: string): void {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new CamLensError('MODEL_INVALID', `${path.basename(fileName)} is not a readable HDF5 file: it does not start with the HDF5 signature`,
      'the file is damaged, or not a Keras .h5 file');
  }
  const version = bytes[8];
  const at = version === 0 ? 40 : version === 1 ? 44 : version === 2 || version === 3 ? 28 : -1;
  const offsetSize = version <= 1 ? bytes[13] : bytes[9];
  if (at < 0 || offsetSize !== 8 || bytes.length < at + 8) return;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const eof = Number(view.getBigUint64(at, true));
  if (eof > bytes.length) {
    throw new CamLensError('MODEL_INVALID', `${path.basename(fileName)} is truncated: it has ${bytes.length} bytes, its HDF5 superblock says ${eof}`,
      'copy or download the file again');
  }
}

function stripNul(s: string): string {
  const i = s.indexOf('\u0000');
  return i < 0 ? s : s.slice(0, i);
}
