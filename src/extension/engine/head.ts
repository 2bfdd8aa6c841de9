/**
 * Finds the classifier head after a target layer for CAM (Zhou et al. 2016), on either model format:
 *
 * - 'dense': target → (shape-only) → global average pooling → (shape-only) → [Dense | 1x1 Conv2D | MatMul]
 *   (+ bias) → (softmax / shape-only) → model output. The class score is sum_k W[k, c] · GAP(A)_k + b_c, so the
 *   class map is sum_k W[k, c] · A_k.
 * - 'identity': target → global average pooling → (softmax / shape-only) → output. The target's channels are
 *   the classes themselves (a 1x1 convolution to C channels before the pooling, as in DarkNet): the class map
 *   is the target's channel c. That covers classifiers whose last convolution comes before the pooling.
 *
 * LayersModels are matched on Keras layers; GraphModels on TensorFlow ops (Mean over height and width, then
 * Conv2D/MatMul, possibly fused with BiasAdd by the converter, reading weight constants).
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from './errors';
import type { ExecGraph, GraphOp, LayerGraph, LayerOp } from './graph';
import { GraphModelGraph, IDENTITY_OPS, RESHAPE_OPS, attrStrings, type GraphNodeOp } from './graphModel';
import type { LinearHead } from './cam/base';
import { OnnxGraph } from './formats/onnx/onnxGraph';

const SHAPE_ONLY = new Set(['Dropout', 'SpatialDropout2D', 'GaussianDropout', 'GaussianNoise', 'AlphaDropout', 'Reshape', 'Flatten', 'ActivityRegularization']);

function notApplicable(why: string): CamLensError {
  return new CamLensError('METHOD_NOT_APPLICABLE', `CAM needs global average pooling then a linear classifier right after the target layer: ${why}`,
    'use gradcam, which works on any differentiable model');
}

/**
 * The head after `target` for the model's classes. For a binary classifier (one sigmoid unit z, classes
 * [-z, z]; outputs.ts) the one-column head W [K, 1] becomes [-W, W], and an 'identity' head (the target's one
 * channel is z's evidence) the dense head [[-1, 1]]: class 0's map is the negated evidence. New tensors, like
 * the head's own weights: the caller's tidy frees them.
 */
export function findClassHead(model: { graph: ExecGraph; binary: boolean }, target: GraphOp): LinearHead {
  const head = findLinearHead(model.graph, target);
  if (!model.binary) return head;
  if (head.kind === 'identity') return { kind: 'dense', weights: tf.tensor2d([[-1, 1]]) };
  const w = head.weights as tf.Tensor2D;
  if (w.shape[1] !== 1) throw notApplicable(`the classifier has ${w.shape[1]} columns for one sigmoid unit`);
  return { kind: 'dense', weights: tf.concat([tf.neg(w), w], 1) as tf.Tensor2D };
}

/** The head after `target` in `graph`; throws METHOD_NOT_APPLICABLE where there is none. */
export function findLinearHead(graph: ExecGraph, target: GraphOp): LinearHead {
  if (graph instanceof GraphModelGraph) return findGraphModelHead(graph, graph.op(target.name));
  if (graph instanceof OnnxGraph) return graph.linearHead(graph.op(target.name));
  return findLayersHead(graph as LayerGraph, target as LayerOp);
}

// ---------------------------------------------------------------------------------------------- LayersModel

function isLinearOrFinal(op: LayerOp): boolean {
  const act = op.layer.getConfig().activation;
  return act === undefined || act === 'linear' || op.softmax === 'linear-activation';
}

/** Follows the single consumer of `id`, or fails. */
function next<T extends GraphOp>(graph: { consumersOf(id: string): T[] }, id: string): T {
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

function findLayersHead(graph: LayerGraph, target: LayerOp): LinearHead {
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

// ---------------------------------------------------------------------------------------------- GraphModel

const BIAS_OPS = new Set(['BiasAdd', 'Add', 'AddV2']);

/** True when `id` reaches the logits (or the output) through identities, reshapes and a final softmax. */
function reachesLogits(graph: GraphModelGraph, id: string): boolean {
  let cur = id;
  for (let guard = 0; guard < 64; guard++) {
    if (cur === graph.logitsId || graph.outputIds.includes(cur)) return true;
    const cons = graph.consumersOf(cur);
    if (cons.length !== 1) return false;
    const op = cons[0];
    if (!(IDENTITY_OPS.has(op.className) || RESHAPE_OPS.has(op.className))) return false;
    cur = op.outputs[0];
  }
  return false;
}

/** Skips identities and reshapes after `id`; returns the next real op and the value it consumes. */
function nextReal(graph: GraphModelGraph, id: string): [GraphNodeOp, string] {
  let cur = id;
  let op = next(graph, cur);
  while (IDENTITY_OPS.has(op.className) || RESHAPE_OPS.has(op.className)) {
    cur = op.outputs[0];
    op = next(graph, cur);
  }
  return [op, cur];
}

/** The weight constant among a node's arguments at `index`, or a clear failure. */
function weightArg(graph: GraphModelGraph, op: GraphNodeOp, index: number): tf.Tensor {
  const id = op.args[index];
  const t = id !== undefined && graph.isConst(id) ? graph.constTensor(id) : undefined;
  if (!t) throw notApplicable(`the classifier ${op.className} "${op.name}" does not read constant weights`);
  return t;
}

function findGraphModelHead(graph: GraphModelGraph, target: GraphNodeOp): LinearHead {
  let id = target.outputs[0];
  let op = next(graph, id);
  while (IDENTITY_OPS.has(op.className)) {
    id = op.outputs[0];
    op = next(graph, id);
  }
  if (!graph.isGlobalPool(op, 'avg')) {
    throw notApplicable(`"${target.name}" is followed by ${op.className} "${op.name}", not a global average pooling (Mean over height and width)`);
  }
  id = op.outputs[0];
  if (reachesLogits(graph, id)) return { kind: 'identity' };
  const [lin] = nextReal(graph, id);
  const fusedOps = attrStrings(lin.attr.fused_ops);
  if (fusedOps.some((f) => f !== 'BiasAdd')) {
    throw notApplicable(`the classifier ${lin.className} "${lin.name}" is fused with ${fusedOps.join(', ')}, which is not linear`);
  }
  let weights: tf.Tensor2D;
  if (lin.className === 'Conv2D' || lin.className === '_FusedConv2D') {
    const kernel = weightArg(graph, lin, 1);
    if (kernel.rank !== 4 || kernel.shape[0] !== 1 || kernel.shape[1] !== 1) {
      throw notApplicable(`the classifier convolution "${lin.name}" has a [${kernel.shape.join(', ')}] kernel, not 1x1`);
    }
    weights = tf.reshape(kernel, [kernel.shape[2] as number, kernel.shape[3] as number]) as tf.Tensor2D;
  } else if (lin.className === 'MatMul' || lin.className === '_FusedMatMul') {
    if (lin.attr.transpose_a?.b) throw notApplicable(`the classifier MatMul "${lin.name}" transposes the pooled features`);
    const w = weightArg(graph, lin, 1);
    if (w.rank !== 2) throw notApplicable(`the classifier MatMul "${lin.name}" has [${w.shape.join(', ')}] weights`);
    weights = (lin.attr.transpose_b?.b ? tf.transpose(w) : tf.reshape(w, [w.shape[0], w.shape[1] as number])) as tf.Tensor2D;
  } else {
    throw notApplicable(`the pooled features go to ${lin.className} "${lin.name}", not straight to a linear classifier`);
  }
  // An unfused bias (BiasAdd/Add of a constant) may follow; it does not change the map.
  let after = lin.outputs[0];
  const cons = graph.consumersOf(after);
  if (cons.length === 1 && BIAS_OPS.has(cons[0].className) && cons[0].args.some((a) => graph.isConst(a)) && cons[0].inputs.length === 1) {
    after = cons[0].outputs[0];
  }
  if (!reachesLogits(graph, after)) {
    weights.dispose();
    throw notApplicable(`the classifier ${lin.className} "${lin.name}" is followed by more than a bias and a softmax`);
  }
  return { kind: 'dense', weights };
}
