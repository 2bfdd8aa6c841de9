/**
 * Constant tensors on the host: ONNX initializers and `Constant` nodes decoded from their TensorProto (inline
 * raw_data, the typed repeated fields, or external data files next to the model), and the values that shape
 * arithmetic folds to.
 *
 * Storage: floating-point types (float, float16, bfloat16, double) as a Float32Array; integer and boolean types
 * as a Float64Array of integers (exact up to 2^53; int64 extremes such as INT64_MAX, which exporters write
 * for "to the end" in Slice, become the nearest double, which every use clamps anyway).
 *
 * External data (`data_location: EXTERNAL`, entries `location`, `offset`, `length`): the location must name a
 * file inside the model's folder (the same confinement as tfjs weight shards, paths.ts); the byte range must
 * lie inside that file and hold exactly the tensor's bytes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CamLensError } from '../../errors';
import { confinedPath } from '../../paths';
import { DATA_TYPE_NAMES, DataType, type TensorProto } from './proto';

export interface HostTensor {
  /** ONNX element type (DataType). */
  dataType: number;
  dims: number[];
  data: Float32Array | Float64Array;
}

export const isFloatType = (t: number): boolean =>
  t === DataType.FLOAT || t === DataType.FLOAT16 || t === DataType.DOUBLE || t === DataType.BFLOAT16;

/** Bytes per element of a type, where raw_data can hold it. */
const ELEMENT_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4, [DataType.UINT8]: 1, [DataType.INT8]: 1, [DataType.UINT16]: 2, [DataType.INT16]: 2,
  [DataType.INT32]: 4, [DataType.INT64]: 8, [DataType.BOOL]: 1, [DataType.FLOAT16]: 2, [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4, [DataType.UINT64]: 8, [DataType.BFLOAT16]: 2,
};

/** Largest tensor we allocate (elements): 2^30 floats = 4 GiB; a larger count means a corrupt shape. */
const MAX_ELEMENTS = 2 ** 30;

export const typeName = (t: number): string => DATA_TYPE_NAMES[t] ?? `type ${t}`;

export function sizeOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function hostTensor(dataType: number, dims: number[], values: ArrayLike<number>): HostTensor {
  const data = isFloatType(dataType) ? Float32Array.from(values) : Float64Array.from(values);
  return { dataType, dims, data };
}

export const scalarInt = (v: number): HostTensor => ({ dataType: DataType.INT64, dims: [], data: Float64Array.of(v) });

/** IEEE half precision bits to a float. */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function bfloat16ToFloat(h: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, (h & 0xffff) << 16);
  return dv.getFloat32(0);
}

/** Decodes little-endian bytes of `count` elements of `dataType`. */
function fromBytes(bytes: Uint8Array, dataType: number, count: number): Float32Array | Float64Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dataType) {
    case DataType.FLOAT: {
      if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + count * 4) as ArrayBuffer);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    }
    case DataType.DOUBLE: {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    }
    case DataType.FLOAT16: {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      return out;
    }
    case DataType.BFLOAT16: {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = bfloat16ToFloat(dv.getUint16(i * 2, true));
      return out;
    }
    default: {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) {
        switch (dataType) {
          case DataType.UINT8: case DataType.BOOL: out[i] = dv.getUint8(i); break;
          case DataType.INT8: out[i] = dv.getInt8(i); break;
          case DataType.UINT16: out[i] = dv.getUint16(i * 2, true); break;
          case DataType.INT16: out[i] = dv.getInt16(i * 2, true); break;
          case DataType.INT32: out[i] = dv.getInt32(i * 4, true); break;
          case DataType.UINT32: out[i] = dv.getUint32(i * 4, true); break;
          case DataType.INT64: out[i] = Number(dv.getBigInt64(i * 8, true)); break;
          case DataType.UINT64: out[i] = Number(dv.getBigUint64(i * 8, true)); break;
        }
      }
      return out;
    }
  }
}

export interface TensorSource {
  /** The model file (for messages) and its folder (where external data must live). */
  file: string;
  dir: string;
  /** Open external files by resolved path: read once, shared by the tensors that live in them. */
  externalCache?: Map<string, Buffer>;
}

function bad(src: TensorSource, what: string, msg: string): CamLensError {
  return new CamLensError('MODEL_INVALID', `${path.basename(src.file)}: ${what} ${msg}`, 'the model file or its external data is corrupt or does not belong together: export it again');
}

function externalBytes(t: TensorProto, what: string, src: TensorSource, needed: number): Uint8Array {
  const entries = new Map(t.externalData.map((e) => [e.key, e.value]));
  const location = entries.get('location');
  if (location === undefined) throw bad(src, what, 'is stored externally but names no file (no "location" entry)');
  const file = confinedPath(src.dir, location, { what: `external data file of ${what}`, folderName: 'the model folder' });
  const num = (key: string): number | undefined => {
    const v = entries.get(key);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw bad(src, what, `has external data ${key} "${v}", not a byte count`);
    return Number(v);
  };
  const offset = num('offset') ?? 0;
  const length = num('length') ?? needed;
  if (length !== needed) throw bad(src, what, `has external data of ${length} bytes, but its shape [${t.dims.join(', ')}] of ${typeName(t.dataType)} needs ${needed}`);
  const cache = src.externalCache ?? new Map<string, Buffer>();
  let buf = cache.get(file);
  if (!buf) {
    if (!fs.existsSync(file)) {
      throw new CamLensError('SHARD_MISSING', `${path.basename(src.file)}: the external data file "${location}" of ${what} is missing from ${src.dir}`,
        'copy the data file(s) the exporter wrote next to the .onnx file');
    }
    try {
      buf = fs.readFileSync(file);
    } catch (e) {
      throw new CamLensError('FILE_NOT_FOUND', `cannot read the external data file ${file} (${(e as Error).message})`);
    }
    cache.set(file, buf);
  }
  if (offset + length > buf.length) {
    throw new CamLensError('SHARD_SIZE_MISMATCH', `${path.basename(src.file)}: ${what} reads bytes ${offset}..${offset + length} of "${location}", which has ${buf.length} bytes`,
      'the external data file is truncated or belongs to another model');
  }
  return buf.subarray(offset, offset + length);
}

/** Decodes an initializer (or a Constant's tensor) to a HostTensor, checking that its data fits its shape. */
export function decodeTensor(t: TensorProto, what: string, src: TensorSource): HostTensor {
  for (const d of t.dims) {
    if (!Number.isInteger(d) || d < 0) throw bad(src, what, `has an invalid shape [${t.dims.join(', ')}]`);
  }
  const count = sizeOf(t.dims);
  if (count > MAX_ELEMENTS) throw bad(src, what, `has shape [${t.dims.join(', ')}] (${count} elements), more than CAM Lens loads`);
  if (t.hasSegment) throw new CamLensError('UNSUPPORTED_MODEL', `${path.basename(src.file)}: ${what} is stored in segments, which CAM Lens does not read`);
  const type = t.dataType;
  if (type === DataType.STRING || type === DataType.COMPLEX64 || type === DataType.COMPLEX128 || ELEMENT_BYTES[type] === undefined) {
    throw new CamLensError('UNSUPPORTED_MODEL', `${path.basename(src.file)}: ${what} holds ${typeName(type)} values, which CAM Lens does not compute with`);
  }
  const width = ELEMENT_BYTES[type];
  const dims = t.dims.slice();
  if (t.dataLocation === 1) {
    return { dataType: type, dims, data: fromBytes(externalBytes(t, what, src, count * width), type, count) };
  }
  if (t.rawData !== undefined) {
    if (t.rawData.length !== count * width) {
      throw bad(src, what, `has ${t.rawData.length} bytes of data, but its shape [${dims.join(', ')}] of ${typeName(type)} needs ${count * width}`);
    }
    return { dataType: type, dims, data: fromBytes(t.rawData, type, count) };
  }
  let values: number[];
  let field: string;
  switch (type) {
    case DataType.FLOAT: values = t.floatData; field = 'float_data'; break;
    case DataType.DOUBLE: values = t.doubleData; field = 'double_data'; break;
    case DataType.INT64: values = t.int64Data; field = 'int64_data'; break;
    case DataType.UINT32: case DataType.UINT64: values = t.uint64Data; field = 'uint64_data'; break;
    default: values = t.int32Data; field = 'int32_data';
  }
  if (values.length !== count) {
    throw bad(src, what, `has ${values.length} values in ${field}, but its shape [${dims.join(', ')}] needs ${count}`);
  }
  if (type === DataType.FLOAT16) return { dataType: type, dims, data: Float32Array.from(values, halfToFloat) };
  if (type === DataType.BFLOAT16) return { dataType: type, dims, data: Float32Array.from(values, bfloat16ToFloat) };
  return hostTensor(type, dims, values);
}
