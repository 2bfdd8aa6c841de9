/**
 * Writes TensorFlow.js GraphModels by hand, in the JSON form the converter produces (GraphDef nodes with
 * base64 string attributes, one weight shard), so tests can build graphs whose every weight is known.
 */
import * as fs from 'fs';
import * as path from 'path';

export type Dim = number;
interface Attr { [key: string]: unknown }
export interface NodeDef { name: string; op: string; input?: string[]; attr?: Attr }

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const dims = (shape: Dim[]) => ({ dim: shape.map((d) => ({ size: String(d) })) });
const ints = (xs: number[]) => ({ list: { i: xs.map(String) } });

export class GraphDefBuilder {
  readonly nodes: NodeDef[] = [];
  private readonly weights: { name: string; shape: Dim[]; dtype: 'float32' | 'int32'; data: Float32Array | Int32Array }[] = [];

  placeholder(name: string, shape: Dim[]): string {
    this.nodes.push({ name, op: 'Placeholder', attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: dims(shape) } } });
    return name;
  }

  const(name: string, shape: Dim[], values: ArrayLike<number>, dtype: 'float32' | 'int32' = 'float32'): string {
    const tfType = dtype === 'float32' ? 'DT_FLOAT' : 'DT_INT32';
    this.nodes.push({ name, op: 'Const', attr: { dtype: { type: tfType }, value: { tensor: { dtype: tfType, tensorShape: dims(shape) } } } });
    const n = shape.reduce((a, b) => a * b, 1);
    if (values.length !== n) throw new Error(`${name}: ${values.length} values for shape [${shape}]`);
    this.weights.push({ name, shape, dtype, data: dtype === 'float32' ? Float32Array.from(values) : Int32Array.from(values) });
    return name;
  }

  op(name: string, op: string, input: string[], attr: Attr = {}): string {
    this.nodes.push({ name, op, input, attr: { T: { type: 'DT_FLOAT' }, ...attr } });
    return name;
  }

  conv(name: string, x: string, kernel: string, stride = 1, op: 'Conv2D' | 'DepthwiseConv2dNative' = 'Conv2D'): string {
    return this.op(name, op, [x, kernel], {
      strides: ints([1, stride, stride, 1]), padding: { s: b64('SAME') }, data_format: { s: b64('NHWC') }, dilations: ints([1, 1, 1, 1]),
    });
  }

  mean(name: string, x: string, axes: number[], keepDims: boolean): string {
    const a = this.const(`${name}/reduction_indices`, [axes.length], axes, 'int32');
    return this.op(name, 'Mean', [x, a], { keep_dims: { b: keepDims }, Tidx: { type: 'DT_INT32' } });
  }

  squeeze(name: string, x: string, axes: number[]): string {
    return this.op(name, 'Squeeze', [x], { squeeze_dims: ints(axes) });
  }

  matMul(name: string, x: string, w: string, transposeB = false): string {
    return this.op(name, 'MatMul', [x, w], { transpose_a: { b: false }, transpose_b: { b: transposeB } });
  }

  /** x[0:N, 0:H, 0:W, 0:C] written as a StridedSlice with full begin/end masks (an identity in value). */
  stridedSliceAll(name: string, x: string): string {
    const begin = this.const(`${name}/begin`, [4], [0, 0, 0, 0], 'int32');
    const end = this.const(`${name}/end`, [4], [0, 0, 0, 0], 'int32');
    const strides = this.const(`${name}/strides`, [4], [1, 1, 1, 1], 'int32');
    return this.op(name, 'StridedSlice', [x, begin, end, strides], {
      Index: { type: 'DT_INT32' }, begin_mask: { i: '15' }, end_mask: { i: '15' }, ellipsis_mask: { i: '0' }, new_axis_mask: { i: '0' }, shrink_axis_mask: { i: '0' },
    });
  }

  /** Writes model.json and one shard into `dir` (created); returns the model.json path. */
  write(dir: string, extra: Record<string, unknown> = {}): string {
    fs.mkdirSync(dir, { recursive: true });
    const bytes = this.weights.map((w) => Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength));
    fs.writeFileSync(path.join(dir, 'group1-shard1of1.bin'), Buffer.concat(bytes));
    const json = {
      format: 'graph-model',
      generatedBy: 'cam-lens tests',
      convertedBy: null,
      modelTopology: { node: this.nodes, library: {}, versions: {} },
      weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: this.weights.map((w) => ({ name: w.name, shape: w.shape, dtype: w.dtype })) }],
      ...extra,
    };
    const file = path.join(dir, 'model.json');
    fs.writeFileSync(file, JSON.stringify(json));
    return file;
  }
}
