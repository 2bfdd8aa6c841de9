/**
 * The operator table: ONNX op_type (default domain) → implementation. An operator missing here is refused
 * at load with its name and the nodes that use it.
 */
import { ELEMENTWISE_OPS } from './elementwise';
import { NN_OPS } from './nn';
import { SHAPE_OPS } from './shape';
import type { OpDef } from './types';

export const OPS: Readonly<Record<string, OpDef>> = { ...SHAPE_OPS, ...ELEMENTWISE_OPS, ...NN_OPS };

export function opDef(opType: string): OpDef | undefined {
  return Object.prototype.hasOwnProperty.call(OPS, opType) ? OPS[opType] : undefined;
}
