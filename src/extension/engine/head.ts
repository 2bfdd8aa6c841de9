/**
 * Finds the classifier head after a target layer for CAM: target → (shape-only layers) → global average
 * pooling → (shape-only layers) → [Dense | 1x1 Conv2D] → (softmax / shape-only layers) → model output,
 * or target → global average pooling → (softmax / shape-only) → output, where the target's channels are
 * the classes themselves.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from './errors';
import type { GraphOp, LayerGraph } from './graph';
import type { LinearHead } from './cam/base';

const SHAPE_ONLY = new Set(['Dropout', 'SpatialDropout2D', 'GaussianDropout', 'GaussianNoise', 'AlphaDropout', 'Reshape', 'Flatten', 'ActivityRegularization']);

function notApplicable(why: string): CamLensError {
  return new CamLensError('METHOD_NOT_APPLICABLE', `CAM needs global average pooling then a linear classifier right after the target layer: ${why}`,
    'use gradcam, which works on any differentiable model');
}

function isLinearOrFinal(op: GraphOp): boolean {
  const act = op.layer.getConfig().activation;
  return act === undefined || act === 'linear' || op.softmax === 'linear-activation';
}

/** Follows the single consumer of `id`, or fails. */
function next(graph: LayerGraph, id: string): GraphOp {
  const cons = graph.consumersOf(id);
  if (cons.length !== 1) throw notApplicable(cons.length === 0 ? 'the layer feeds nothing' : `the layer output branches into ${cons.length} layers`);
  return cons[0];
}

/** True when `id` reaches the model output through shape-only layers and the final softmax only. */
function reachesOutput(graph: LayerGraph, id: string): boolean {
  let cur = id;
  for (let guard = 0; guard < 64; guard++) {
    if (graph.outputIds.includes(cur)) return true;
    const cons = graph.consumersOf(cur);
    if (cons.length !== 1) return false;
    const op = cons[0];
    if (!(SHAPE_ONLY.has(op.className) || op.softmax === 'identity')) return false;
    cur = op.outputs[0];
  }
  return false;
}

export function findLinearHead(graph: LayerGraph, target: GraphOp): LinearHead {
  let id = target.outputs[0];
  let op = next(graph, id);
  while (SHAPE_ONLY.has(op.className) && op.className !== 'Flatten' && op.className !== 'Reshape') {
    id = op.outputs[0];
    op = next(graph, id);
  }
  if (op.className !== 'GlobalAveragePooling2D') {
    throw notApplicable(`"${target.name}" is followed by ${op.className} "${op.name}", not GlobalAveragePooling2D`);
  }
  id = op.outputs[0];
  if (reachesOutput(graph, id)) return { kind: 'identity' };
  op = next(graph, id);
  while (SHAPE_ONLY.has(op.className)) {
    id = op.outputs[0];
    op = next(graph, id);
  }
  if ((op.className === 'Dense' || op.className === 'Conv2D') && isLinearOrFinal(op) && reachesOutput(graph, op.outputs[0])) {
    const weights = op.layer as unknown as { kernel?: { read(): tf.Tensor } };
    if (!weights.kernel) throw notApplicable(`${op.className} "${op.name}" has no kernel`);
    const kernel = weights.kernel.read();
    if (op.className === 'Conv2D' && (kernel.shape[0] !== 1 || kernel.shape[1] !== 1)) {
      throw notApplicable(`the classifier convolution "${op.name}" is ${kernel.shape[0]}x${kernel.shape[1]}, not 1x1`);
    }
    const k = kernel.shape[kernel.shape.length - 2];
    const c = kernel.shape[kernel.shape.length - 1];
    return { kind: 'dense', weights: tf.reshape(kernel, [k, c]) as tf.Tensor2D };
  }
  throw notApplicable(`the pooled features go to ${op.className} "${op.name}", not straight to a linear classifier`);
}
