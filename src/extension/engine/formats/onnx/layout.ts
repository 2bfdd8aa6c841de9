/**
 * Physical layouts of runtime values (see ops/types.ts): `perm[i]` is the logical axis that physical axis i
 * holds. Helpers to move a tensor between layouts, cheaply where only axes of size 1 move (a reshape), and
 * the host-side equivalents for constants.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type HostTensor, sizeOf } from './tensor';

export const identityPerm = (rank: number): number[] => Array.from({ length: rank }, (_, i) => i);

/** The layout a value of this rank gets where nothing else decides: NHWC for rank 4, as is otherwise. */
export const defaultPerm = (rank: number): number[] => (rank === 4 ? [0, 2, 3, 1] : identityPerm(rank));

export const samePerm = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export const isIdentity = (p: readonly number[]): boolean => p.every((x, i) => x === i);

/** Physical shape of a logical shape under `perm`. */
export const physical = (logical: readonly number[], perm: readonly number[]): number[] => perm.map((a) => logical[a]);

/** Where logical axis `axis` sits physically. */
export const physAxis = (perm: readonly number[], axis: number): number => perm.indexOf(axis);

/** Normalises a possibly negative axis of a rank-r tensor. */
export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/**
 * Moves a physical tensor from layout `from` to layout `to` (both permutations of the same logical axes).
 * Where the axes longer than 1 keep their order, the data does not move and a reshape does it.
 */
export function relayout(t: tf.Tensor, from: readonly number[], to: readonly number[]): tf.Tensor {
  if (samePerm(from, to)) return t;
  const q = to.map((a) => from.indexOf(a));
  const shape = t.shape;
  let last = -1;
  let ordered = true;
  for (const i of q) {
    if (shape[i] === 1) continue;
    if (i < last) {
      ordered = false;
      break;
    }
    last = i;
  }
  if (ordered) return tf.reshape(t, q.map((i) => shape[i]));
  return tf.transpose(t, q);
}

export const toLogical = (t: tf.Tensor, perm: readonly number[]): tf.Tensor => relayout(t, perm, identityPerm(perm.length));
export const fromLogical = (t: tf.Tensor, perm: readonly number[]): tf.Tensor => relayout(t, identityPerm(perm.length), perm);

/** Row-major strides of a shape. */
export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Host transpose: output axis i is input axis perm[i]. */
export function hostTranspose(h: HostTensor, perm: readonly number[]): HostTensor {
  if (isIdentity(perm)) return h;
  const inShape = h.dims;
  const outShape = perm.map((a) => inShape[a]);
  const inStr = strides(inShape);
  const n = sizeOf(outShape);
  const data = new (h.data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(n);
  const rank = outShape.length;
  const idx = new Array<number>(rank).fill(0);
  const step = perm.map((a) => inStr[a]);
  let src = 0;
  for (let o = 0; o < n; o++) {
    data[o] = h.data[src];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += step[d];
      if (idx[d] < outShape[d]) break;
      src -= step[d] * outShape[d];
      idx[d] = 0;
    }
  }
  return { dataType: h.dataType, dims: outShape, data };
}

/**
 * A constant operand of an element-wise op whose output has rank `rank` and layout `perm`: its shape
 * right-aligned to the output's rank (numpy broadcasting), then laid out like the output, as a tf tensor.
 */
export function constOperand(h: HostTensor, rank: number, perm: readonly number[]): tf.Tensor {
  const dims = [...new Array<number>(Math.max(0, rank - h.dims.length)).fill(1), ...h.dims];
  const laid = hostTranspose({ ...h, dims }, perm);
  return tf.tensor(Float32Array.from(laid.data), laid.dims, 'float32');
}

/** A runtime operand of lower rank brought to `rank` and layout `perm` (right-aligned, as numpy broadcasts). */
export function runtimeOperand(t: tf.Tensor, tPerm: readonly number[], rank: number, perm: readonly number[]): tf.Tensor {
  if (tPerm.length === rank) return relayout(t, tPerm, perm);
  const logical = toLogical(t, tPerm);
  const ext = tf.reshape(logical, [...new Array<number>(rank - tPerm.length).fill(1), ...logical.shape]);
  return fromLogical(ext, perm);
}
