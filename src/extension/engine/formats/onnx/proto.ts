/**
 * A strict reader of the protobuf wire format for the subset of onnx.proto that a classifier needs: ModelProto,
 * GraphProto, NodeProto, AttributeProto, TensorProto (raw_data, the typed data fields, external data),
 * ValueInfoProto/TypeProto, OperatorSetIdProto and StringStringEntryProto.
 *
 * Why our own reader rather than protobufjs and the .proto schema: the subset is small (a few dozen fields),
 * weights can stay views into the file's bytes instead of being copied into JavaScript arrays field by field,
 * and every read is bounds-checked against the enclosing message, so a truncated or corrupt file gives one
 * specific error (the message, the field, the byte offset) instead of a RangeError or a half-read model.
 * It adds no dependency to a package shared with other front ends.
 *
 * Wire format (protobuf encoding spec): a message is a sequence of (tag, value); tag = field_number << 3 |
 * wire_type, as a varint. Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited (bytes, strings,
 * sub-messages, packed repeated scalars), 5 fixed 32-bit; 3 and 4 (groups) are not used by onnx.proto and
 * are refused. Unknown fields are skipped, so files from newer ONNX versions still read. Repeated scalar
 * fields are accepted both packed and unpacked, as the spec requires of parsers.
 *
 * Sub-graphs (If/Loop/Scan bodies in attributes) are not decoded: we only record that they exist, so that a
 * graph with control flow is refused by name rather than parsed recursively.
 */
import { CamLensError } from '../../errors';

export interface StringEntry {
  key: string;
  value: string;
}

export interface OperatorSetId {
  domain: string;
  version: number;
}

/** TensorProto.DataType values. */
export const DataType = {
  UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15, BFLOAT16: 16,
} as const;

export const DATA_TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(DataType).map(([k, v]) => [v, k.toLowerCase()]));

export interface TensorProto {
  name: string;
  dims: number[];
  dataType: number;
  /** View into the file's bytes (not a copy). */
  rawData?: Uint8Array;
  floatData: number[];
  int32Data: number[];
  int64Data: number[];
  doubleData: number[];
  uint64Data: number[];
  /** Count only: string tensors are not supported. */
  stringCount: number;
  externalData: StringEntry[];
  /** 0 DEFAULT, 1 EXTERNAL. */
  dataLocation: number;
  hasSegment: boolean;
}

/** AttributeProto.AttributeType values. */
export const AttrType = {
  UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, SPARSE_TENSOR: 11, TYPE_PROTO: 13,
  FLOATS: 6, INTS: 7, STRINGS: 8, TENSORS: 9, GRAPHS: 10, SPARSE_TENSORS: 12, TYPE_PROTOS: 14,
} as const;

export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  floats: number[];
  ints: number[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  /** Sub-graphs and sparse tensors are counted, not decoded. */
  graphCount: number;
  sparseCount: number;
  refAttrName?: string;
}

export interface NodeProto {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: AttributeProto[];
}

/** A tensor type: element type and dims (a number, a symbolic name, or null where unknown). */
export interface ValueInfo {
  name: string;
  elemType?: number;
  /** Undefined where the type has no shape (unknown rank). */
  shape?: (number | string | null)[];
  /** Set where the value is not a tensor (sequence, map, optional). */
  nonTensor?: boolean;
}

export interface GraphProto {
  name: string;
  nodes: NodeProto[];
  initializers: TensorProto[];
  sparseInitializerCount: number;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  valueInfo: ValueInfo[];
}

export interface ModelProto {
  irVersion: number;
  opsetImports: OperatorSetId[];
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  graph?: GraphProto;
  metadataProps: StringEntry[];
  functionCount: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/**
 * Bounds-checked cursor over one message's bytes. Offsets in messages are absolute (from the start of the
 * file), so the error says where the file went wrong.
 */
class Reader {
  pos: number;
  constructor(readonly buf: Uint8Array, start: number, readonly end: number, readonly what: string, readonly file: string) {
    this.pos = start;
  }

  fail(detail: string): never {
    throw new CamLensError('MODEL_INVALID', `${this.file} is not a readable ONNX model: ${detail} (in ${this.what}, byte ${this.pos} of ${this.buf.length})`,
      'the file is truncated or corrupt: export or download it again');
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint as a JavaScript number (exact below 2^53; int64 two's complement read as negative). */
  varint(): number {
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('a number runs past the end of its message');
      const b = this.buf[this.pos++];
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      shift += 7;
      if ((b & 0x80) === 0) {
        // hi holds bits 32..63: as signed 32 bits it gives int64 two's complement.
        return (hi | 0) * 4294967296 + (lo >>> 0);
      }
    }
    return this.fail('a number is longer than 10 bytes');
  }

  fixed32(): number {
    if (this.pos + 4 > this.end) this.fail('a 32-bit value runs past the end of its message');
    const b = this.buf;
    const v = (b[this.pos] | (b[this.pos + 1] << 8) | (b[this.pos + 2] << 16) | (b[this.pos + 3] << 24)) >>> 0;
    this.pos += 4;
    return v;
  }

  float32(): number {
    if (this.pos + 4 > this.end) this.fail('a float runs past the end of its message');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  float64(): number {
    if (this.pos + 8 > this.end) this.fail('a double runs past the end of its message');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  /** The extent of a length-delimited value: [start, end). */
  span(): [number, number] {
    const n = this.varint();
    if (n < 0 || this.pos + n > this.end) this.fail(`a field of ${n} bytes runs past the end of its message (${this.end - this.pos} bytes left)`);
    const s = this.pos;
    this.pos += n;
    return [s, s + n];
  }

  bytes(): Uint8Array {
    const [s, e] = this.span();
    return this.buf.subarray(s, e);
  }

  string(): string {
    return utf8.decode(this.bytes());
  }

  sub(what: string): Reader {
    const [s, e] = this.span();
    return new Reader(this.buf, s, e, what, this.file);
  }

  /** Reads a tag; returns [field, wireType]. */
  tag(): [number, number] {
    const t = this.varint();
    const field = Math.floor(t / 8);
    const wire = t & 7;
    if (field === 0) this.fail('a field number 0');
    return [field, wire];
  }

  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint();
        return;
      case 1:
        if (this.pos + 8 > this.end) this.fail('a 64-bit value runs past the end of its message');
        this.pos += 8;
        return;
      case 2:
        this.span();
        return;
      case 5:
        if (this.pos + 4 > this.end) this.fail('a 32-bit value runs past the end of its message');
        this.pos += 4;
        return;
      default:
        this.fail(`wire type ${wire}, which ONNX files do not use`);
    }
  }

  expect(wire: number, want: number, field: string): void {
    if (wire !== want) this.fail(`field ${field} has wire type ${wire}, expected ${want}`);
  }

  /** Repeated varints, packed (wire type 2) or one at a time (0). */
  varints(wire: number, out: number[], field: string): void {
    if (wire === 0) out.push(this.varint());
    else if (wire === 2) {
      const [s, e] = this.span();
      const r = new Reader(this.buf, s, e, `${this.what}.${field}`, this.file);
      while (!r.done) out.push(r.varint());
    } else this.fail(`field ${field} has wire type ${wire}`);
  }

  floats(wire: number, out: number[], field: string): void {
    if (wire === 5) out.push(this.float32());
    else if (wire === 2) {
      const [s, e] = this.span();
      if ((e - s) % 4 !== 0) this.fail(`packed floats ${field} of ${e - s} bytes, not a multiple of 4`);
      const dv = new DataView(this.buf.buffer, this.buf.byteOffset + s, e - s);
      for (let o = 0; o < e - s; o += 4) out.push(dv.getFloat32(o, true));
    } else this.fail(`field ${field} has wire type ${wire}`);
  }

  doubles(wire: number, out: number[], field: string): void {
    if (wire === 1) out.push(this.float64());
    else if (wire === 2) {
      const [s, e] = this.span();
      if ((e - s) % 8 !== 0) this.fail(`packed doubles ${field} of ${e - s} bytes, not a multiple of 8`);
      const dv = new DataView(this.buf.buffer, this.buf.byteOffset + s, e - s);
      for (let o = 0; o < e - s; o += 8) out.push(dv.getFloat64(o, true));
    } else this.fail(`field ${field} has wire type ${wire}`);
  }
}

function readEntry(r: Reader): StringEntry {
  const e: StringEntry = { key: '', value: '' };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) { r.expect(w, 2, 'key'); e.key = r.string(); } else if (f === 2) { r.expect(w, 2, 'value'); e.value = r.string(); } else r.skip(w);
  }
  return e;
}

function readOpset(r: Reader): OperatorSetId {
  const o: OperatorSetId = { domain: '', version: 0 };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) { r.expect(w, 2, 'domain'); o.domain = r.string(); } else if (f === 2) { r.expect(w, 0, 'version'); o.version = r.varint(); } else r.skip(w);
  }
  return o;
}

function readTensor(r: Reader): TensorProto {
  const t: TensorProto = {
    name: '', dims: [], dataType: 0, floatData: [], int32Data: [], int64Data: [], doubleData: [], uint64Data: [],
    stringCount: 0, externalData: [], dataLocation: 0, hasSegment: false,
  };
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1: r.varints(w, t.dims, 'dims'); break;
      case 2: r.expect(w, 0, 'data_type'); t.dataType = r.varint(); break;
      case 3: r.expect(w, 2, 'segment'); r.skip(w); t.hasSegment = true; break;
      case 4: r.floats(w, t.floatData, 'float_data'); break;
      case 5: r.varints(w, t.int32Data, 'int32_data'); break;
      case 6: r.expect(w, 2, 'string_data'); r.skip(w); t.stringCount++; break;
      case 7: r.varints(w, t.int64Data, 'int64_data'); break;
      case 8: r.expect(w, 2, 'name'); t.name = r.string(); break;
      case 9: r.expect(w, 2, 'raw_data'); t.rawData = r.bytes(); break;
      case 10: r.doubles(w, t.doubleData, 'double_data'); break;
      case 11: r.varints(w, t.uint64Data, 'uint64_data'); break;
      case 13: r.expect(w, 2, 'external_data'); t.externalData.push(readEntry(r.sub('TensorProto.external_data'))); break;
      case 14: r.expect(w, 0, 'data_location'); t.dataLocation = r.varint(); break;
      default: r.skip(w);
    }
  }
  return t;
}

function readAttribute(r: Reader): AttributeProto {
  const a: AttributeProto = { name: '', type: 0, floats: [], ints: [], strings: [], tensors: [], graphCount: 0, sparseCount: 0 };
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1: r.expect(w, 2, 'name'); a.name = r.string(); break;
      case 2: r.expect(w, 5, 'f'); a.f = r.float32(); break;
      case 3: r.expect(w, 0, 'i'); a.i = r.varint(); break;
      case 4: r.expect(w, 2, 's'); a.s = r.bytes(); break;
      case 5: r.expect(w, 2, 't'); a.t = readTensor(r.sub(`attribute ${a.name || '?'}`)); break;
      case 6: r.expect(w, 2, 'g'); r.skip(w); a.graphCount++; break;
      case 7: r.floats(w, a.floats, 'floats'); break;
      case 8: r.varints(w, a.ints, 'ints'); break;
      case 9: r.expect(w, 2, 'strings'); a.strings.push(r.bytes()); break;
      case 10: r.expect(w, 2, 'tensors'); a.tensors.push(readTensor(r.sub(`attribute ${a.name || '?'}`))); break;
      case 11: r.expect(w, 2, 'graphs'); r.skip(w); a.graphCount++; break;
      case 20: r.expect(w, 0, 'type'); a.type = r.varint(); break;
      case 21: r.expect(w, 2, 'ref_attr_name'); a.refAttrName = r.string(); break;
      case 22: case 23: r.expect(w, 2, 'sparse_tensor'); r.skip(w); a.sparseCount++; break;
      default: r.skip(w);
    }
  }
  return a;
}

function readNode(r: Reader): NodeProto {
  const n: NodeProto = { name: '', opType: '', domain: '', inputs: [], outputs: [], attributes: [] };
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1: r.expect(w, 2, 'input'); n.inputs.push(r.string()); break;
      case 2: r.expect(w, 2, 'output'); n.outputs.push(r.string()); break;
      case 3: r.expect(w, 2, 'name'); n.name = r.string(); break;
      case 4: r.expect(w, 2, 'op_type'); n.opType = r.string(); break;
      case 5: r.expect(w, 2, 'attribute'); n.attributes.push(readAttribute(r.sub(`node ${n.name || n.opType || '?'} attribute`))); break;
      case 7: r.expect(w, 2, 'domain'); n.domain = r.string(); break;
      default: r.skip(w);
    }
  }
  return n;
}

/** TensorShapeProto.Dimension: dim_value (1) or dim_param (2). */
function readDim(r: Reader): number | string | null {
  let d: number | string | null = null;
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) { r.expect(w, 0, 'dim_value'); d = r.varint(); } else if (f === 2) { r.expect(w, 2, 'dim_param'); d = r.string(); } else r.skip(w);
  }
  return d;
}

function readTensorType(r: Reader, v: ValueInfo): void {
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) { r.expect(w, 0, 'elem_type'); v.elemType = r.varint(); } else if (f === 2) {
      r.expect(w, 2, 'shape');
      const s = r.sub('TensorShapeProto');
      const dims: (number | string | null)[] = [];
      while (!s.done) {
        const [g, x] = s.tag();
        if (g === 1) { s.expect(x, 2, 'dim'); dims.push(readDim(s.sub('Dimension'))); } else s.skip(x);
      }
      v.shape = dims;
    } else r.skip(w);
  }
}

function readValueInfo(r: Reader): ValueInfo {
  const v: ValueInfo = { name: '' };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1) { r.expect(w, 2, 'name'); v.name = r.string(); } else if (f === 2) {
      r.expect(w, 2, 'type');
      const t = r.sub('TypeProto');
      while (!t.done) {
        const [g, x] = t.tag();
        if (g === 1) { t.expect(x, 2, 'tensor_type'); readTensorType(t.sub('TypeProto.Tensor'), v); } else if (g === 4 || g === 5 || g === 9 || g === 8) {
          // sequence_type, map_type, optional_type, sparse_tensor_type
          t.skip(x);
          v.nonTensor = true;
        } else t.skip(x);
      }
    } else r.skip(w);
  }
  return v;
}

function readGraph(r: Reader): GraphProto {
  const g: GraphProto = { name: '', nodes: [], initializers: [], sparseInitializerCount: 0, inputs: [], outputs: [], valueInfo: [] };
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1: r.expect(w, 2, 'node'); g.nodes.push(readNode(r.sub(`node ${g.nodes.length}`))); break;
      case 2: r.expect(w, 2, 'name'); g.name = r.string(); break;
      case 5: r.expect(w, 2, 'initializer'); g.initializers.push(readTensor(r.sub(`initializer ${g.initializers.length}`))); break;
      case 11: r.expect(w, 2, 'input'); g.inputs.push(readValueInfo(r.sub('graph input'))); break;
      case 12: r.expect(w, 2, 'output'); g.outputs.push(readValueInfo(r.sub('graph output'))); break;
      case 13: r.expect(w, 2, 'value_info'); g.valueInfo.push(readValueInfo(r.sub('value_info'))); break;
      case 15: r.expect(w, 2, 'sparse_initializer'); r.skip(w); g.sparseInitializerCount++; break;
      default: r.skip(w);
    }
  }
  return g;
}

/**
 * Decodes an ONNX ModelProto. `file` names the file in messages. The returned tensors' raw data are views
 * into `buf`, which must stay unchanged while they are used.
 */
export function readModelProto(buf: Uint8Array, file: string): ModelProto {
  const r = new Reader(buf, 0, buf.length, 'ModelProto', file);
  const m: ModelProto = {
    irVersion: 0, opsetImports: [], producerName: '', producerVersion: '', domain: '', modelVersion: 0, docString: '',
    metadataProps: [], functionCount: 0,
  };
  if (buf.length === 0) r.fail('the file is empty');
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1: r.expect(w, 0, 'ir_version'); m.irVersion = r.varint(); break;
      case 2: r.expect(w, 2, 'producer_name'); m.producerName = r.string(); break;
      case 3: r.expect(w, 2, 'producer_version'); m.producerVersion = r.string(); break;
      case 4: r.expect(w, 2, 'domain'); m.domain = r.string(); break;
      case 5: r.expect(w, 0, 'model_version'); m.modelVersion = r.varint(); break;
      case 6: r.expect(w, 2, 'doc_string'); m.docString = r.string(); break;
      case 7: r.expect(w, 2, 'graph'); m.graph = readGraph(r.sub('GraphProto')); break;
      case 8: r.expect(w, 2, 'opset_import'); m.opsetImports.push(readOpset(r.sub('opset_import'))); break;
      case 14: r.expect(w, 2, 'metadata_props'); m.metadataProps.push(readEntry(r.sub('metadata_props'))); break;
      case 25: r.expect(w, 2, 'functions'); r.skip(w); m.functionCount++; break;
      default: r.skip(w);
    }
  }
  return m;
}

/** An attribute's string value, decoded as UTF-8. */
export function attrText(a: AttributeProto | undefined): string | undefined {
  return a?.s ? utf8.decode(a.s) : undefined;
}
