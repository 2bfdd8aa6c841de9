/**
 * From a decoded ModelProto to what the executor needs:
 *
 * 1. `buildIr`: checks the graph (one image input, an opset we know, no control flow), lists its outputs and
 *    chooses the one explained (outputs.ts), gives every node a unique name (exporters leave names empty or
 *    repeat them), keeps only the nodes that output depends on, in dependency order, and refuses in one
 *    message every operator we do not implement.
 * 2. `analyze(ir, inputShape)`: with the input size known, runs through the nodes once: a node whose inputs
 *    are constants (or whose result depends only on shapes, like Shape) is computed on the host, so the
 *    Shape/Gather/Unsqueeze/Concat/Reshape arithmetic of dynamic exports becomes constants; every other
 *    node is a runtime node whose output shapes are inferred. Pure host work, no tensors.
 *
 * The analysis is run at batch 1 and 2 (and 3 to check): constants that change with the batch (a Reshape
 * to [N, -1] computed from Shape) are recomputed per batch size at run time by linear extrapolation, and a
 * model whose graph bakes batch 1 in (a Reshape to [1, -1] written as a literal) runs batch by batch.
 */
import * as path from 'path';
import { CamLensError } from '../../errors';
import type { ModelProto, NodeProto, TensorProto, ValueInfo } from './proto';
import { decodeTensor, type HostTensor, type TensorSource } from './tensor';
import { opDef } from './ops/registry';
import { Attrs, invalid, type InputInfo, type NodeDef, type OpCtx } from './ops/types';
import { pickOutput, type ModelOutput, type OutputActivation } from '../../outputs';

/** Lowest default-domain opset we read (the ONNX model zoo's mnist-8 is opset 8). */
export const MIN_OPSET = 7;

export interface OnnxIr {
  file: string;
  dir: string;
  source: TensorSource;
  opset: number;
  /** Live nodes, inputs before consumers. */
  nodes: NodeDef[];
  initializers: Map<string, HostTensor>;
  input: ValueInfo;
  /** The output explained: `outputs[outputIndex]`'s value. */
  output: ValueInfo;
  /** Every graph output, as declared (units from the declared shape, activation from the nodes before it). */
  outputs: ModelOutput[];
  outputIndex: number;
  producer: string;
  metadataProps: Map<string, string>;
}

function fail(file: string, msg: string, hint?: string): CamLensError {
  return new CamLensError('UNSUPPORTED_MODEL', `${path.basename(file)}: ${msg}`, hint);
}

const CONTROL_FLOW = new Set(['If', 'Loop', 'Scan']);

/** Ops a classifier's output may pass after its final activation (as onnxGraph.ts' PASS). */
const PASS_OPS = new Set(['Identity', 'Dropout', 'Flatten', 'Reshape', 'Squeeze', 'Unsqueeze', 'Cast']);

/** The activation a graph output ends in: Softmax/LogSoftmax or Sigmoid, through shape-only nodes. */
function activationOf(name: string, producer: Map<string, NodeDef>): OutputActivation {
  let n = producer.get(name);
  for (let guard = 0; n && guard < 64 && PASS_OPS.has(n.opType); guard++) n = producer.get(n.inputs[0]);
  if (n?.opType === 'Softmax' || n?.opType === 'LogSoftmax') return 'softmax';
  if (n?.opType === 'Sigmoid') return 'sigmoid';
  return 'none';
}

/** `output`: the output to explain where the graph has several, by name or index (outputs.ts pickOutput). */
export function buildIr(model: ModelProto, file: string, source: TensorSource, output?: string | number): OnnxIr {
  const base = path.basename(file);
  const g = model.graph;
  if (!g) throw new CamLensError('MODEL_INVALID', `${base} is not an ONNX model: it has no graph`, 'choose the .onnx file the exporter wrote');
  const imports = model.opsetImports.length ? model.opsetImports : [{ domain: '', version: 1 }];
  const main = imports.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  if (!main) throw fail(file, 'the model imports no default-domain opset');
  if (main.version < MIN_OPSET) throw fail(file, `opset ${main.version} is older than CAM Lens reads (${MIN_OPSET} and newer)`, 'export the model again with a newer opset (torch.onnx.export(..., opset_version=13))');
  if (g.sparseInitializerCount > 0) throw fail(file, 'sparse initializers are not supported');

  // Initializers (decoded once; external data confined to the model folder).
  const initializers = new Map<string, HostTensor>();
  g.initializers.forEach((t: TensorProto, i) => {
    const name = t.name;
    if (!name) throw new CamLensError('MODEL_INVALID', `${base}: initializer ${i} has no name`);
    initializers.set(name, decodeTensor(t, `initializer "${name}"`, source));
  });

  // Graph inputs that are not initializers (IR < 4 lists weights as inputs too).
  const inputs = g.inputs.filter((v) => !initializers.has(v.name));
  if (inputs.length !== 1 || g.outputs.length < 1) {
    throw fail(file, `the graph has ${inputs.length} input${inputs.length === 1 ? '' : 's'} (${inputs.map((v) => v.name).join(', ')}) and ${g.outputs.length} output${g.outputs.length === 1 ? '' : 's'} (${g.outputs.map((v) => v.name).join(', ')}); CAM Lens explains image classifiers with one input`);
  }
  const [input] = inputs;

  // Unique node names.
  const used = new Set<string>();
  const all: NodeDef[] = g.nodes.map((n: NodeProto, index) => {
    let name = n.name || `${n.opType || 'node'}_${index}`;
    for (let k = 1; used.has(name); k++) name = `${n.name || `${n.opType}_${index}`}#${k}`;
    used.add(name);
    return { index, name, opType: n.opType, domain: n.domain, inputs: n.inputs.slice(), outputs: n.outputs.slice(), attrs: new Map(n.attributes.map((a) => [a.name, a])), proto: n };
  });

  // Producers, then the live nodes by a depth-first walk from the output (iterative; cycles refused).
  const producer = new Map<string, NodeDef>();
  for (const n of all) {
    for (const o of n.outputs) {
      if (o === '') continue;
      if (producer.has(o) || initializers.has(o) || o === input.name) throw new CamLensError('MODEL_INVALID', `${base}: the value "${o}" is produced twice (by node "${n.name}")`);
      producer.set(o, n);
    }
  }
  const outputs = g.outputs.map((v): ModelOutput => {
    const shape = v.shape;
    const last = shape?.[shape.length - 1];
    return {
      name: v.name,
      units: typeof last === 'number' && last > 0 ? last : null,
      activation: activationOf(v.name, producer),
      // [batch, classes], or [batch, classes, 1, 1] from a classifier convolution; unknown rank may be either.
      classifierShaped: !v.nonTensor && (shape === undefined || shape.length === 2 || (shape.length === 4 && shape[2] === 1 && shape[3] === 1)),
    };
  });
  const outputIndex = pickOutput(outputs, output, base);
  const chosen = g.outputs[outputIndex];
  if (input.nonTensor || chosen.nonTensor) throw fail(file, 'the input or output is not a tensor (a sequence or a map)');
  const order: NodeDef[] = [];
  const state = new Map<NodeDef, 1 | 2>();
  const rootNode = producer.get(chosen.name);
  if (!rootNode) {
    if (chosen.name === input.name || initializers.has(chosen.name)) throw fail(file, `the output "${chosen.name}" is not computed by any node`);
    throw new CamLensError('MODEL_INVALID', `${base}: no node produces the graph output "${chosen.name}"`);
  }
  const stack: [NodeDef, boolean][] = [[rootNode, false]];
  while (stack.length) {
    const [n, done] = stack.pop() as [NodeDef, boolean];
    if (done) {
      state.set(n, 2);
      order.push(n);
      continue;
    }
    if (state.has(n)) continue;
    state.set(n, 1);
    stack.push([n, true]);
    for (let i = n.inputs.length - 1; i >= 0; i--) {
      const v = n.inputs[i];
      if (v === '' || v === input.name || initializers.has(v)) continue;
      const p = producer.get(v);
      if (!p) throw new CamLensError('MODEL_INVALID', `${base}: node "${n.name}" (${n.opType}) reads "${v}", which no node, input or initializer provides`);
      const s = state.get(p);
      if (s === 1) throw new CamLensError('MODEL_INVALID', `${base}: the graph has a cycle through node "${p.name}"`);
      if (s === undefined) stack.push([p, false]);
    }
  }

  // Every operator we do not run, in one message.
  const missing = new Map<string, string[]>();
  for (const n of order) {
    let key: string | undefined;
    if (n.domain !== '' && n.domain !== 'ai.onnx') key = `${n.opType} (domain ${n.domain})`;
    else if (CONTROL_FLOW.has(n.opType)) key = `${n.opType} (control flow)`;
    else if (!opDef(n.opType)) key = n.opType;
    if (key) missing.set(key, [...(missing.get(key) ?? []), n.name]);
  }
  if (missing.size) {
    const list = [...missing].map(([op, nodes]) => `${op} (node${nodes.length > 1 ? 's' : ''} "${nodes.slice(0, 3).join('", "')}"${nodes.length > 3 ? `, +${nodes.length - 3} more` : ''})`);
    throw fail(file, `the model uses ${missing.size === 1 ? 'an operator' : 'operators'} CAM Lens does not run: ${list.join('; ')}`,
      'CAM Lens runs the operators of image classifiers exported from PyTorch and tf2onnx; see the README for the list');
  }
  return {
    file, dir: source.dir, source, opset: main.version, nodes: order, initializers, input, output: chosen, outputs, outputIndex,
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    metadataProps: new Map(model.metadataProps.map((e) => [e.key, e.value])),
  };
}

export interface Analysis {
  batch: number;
  /** Constant values: initializers and everything folded. */
  consts: Map<string, HostTensor>;
  /** Logical shapes of runtime values (the input included). */
  shapes: Map<string, number[]>;
  /** Nodes that run per image, in order. */
  runtime: NodeDef[];
}

/** The per-node context shared by analysis and compilation. */
export function opContext(ir: OnnxIr, node: NodeDef, consts: Map<string, HostTensor>, shapes: Map<string, number[]>, batch: number): OpCtx {
  const inputs: InputInfo[] = node.inputs.map((name) => {
    if (name === '') return { name, present: false, shape: [] };
    const value = consts.get(name);
    if (value) return { name, present: true, value, shape: value.dims };
    const shape = shapes.get(name);
    if (!shape) throw invalid(node, `reads "${name}", which is not computed before it`);
    return { name, present: true, shape };
  });
  return {
    node,
    opset: ir.opset,
    attrs: new Attrs(node),
    inputs,
    batch,
    constant(i, what) {
      const inp = inputs[i];
      if (!inp?.present) throw invalid(node, `has no ${what} input`);
      if (!inp.value) throw new CamLensError('UNSUPPORTED_MODEL', `operator ${node.opType} (node "${node.name}"): its ${what} ("${inp.name}") is computed from the image at run time; CAM Lens needs it constant once the input size is known`);
      return inp.value;
    },
    decode: (t, what) => decodeTensor(t, what, ir.source),
  };
}

/** Wraps unexpected failures (bugs, inconsistent graphs) as a CamLensError naming the node. */
function guard<T>(node: NodeDef, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CamLensError) throw e;
    throw invalid(node, `cannot be evaluated (${(e as Error)?.message ?? String(e)})`);
  }
}

export function analyze(ir: OnnxIr, inputShape: number[]): Analysis {
  const consts = new Map(ir.initializers);
  const shapes = new Map<string, number[]>([[ir.input.name, inputShape]]);
  const runtime: NodeDef[] = [];
  for (const node of ir.nodes) {
    const def = opDef(node.opType);
    if (!def) throw invalid(node, 'has no implementation');
    const ctx = opContext(ir, node, consts, shapes, inputShape[0]);
    const folded = def.fold ? guard(node, () => (def.fold as NonNullable<typeof def.fold>)(ctx)) : undefined;
    if (folded) {
      node.outputs.forEach((o, i) => {
        if (o === '') return;
        if (!folded[i]) throw invalid(node, `output ${i} ("${o}") cannot be computed`);
        consts.set(o, folded[i]);
      });
      continue;
    }
    const outShapes = guard(node, () => def.infer(ctx));
    node.outputs.forEach((o, i) => {
      if (o === '') return;
      const s = outShapes[i];
      if (!s) throw invalid(node, `output ${i} ("${o}") has no shape`);
      if (s.some((d) => !(Number.isInteger(d) && d >= 0))) throw invalid(node, `output "${o}" would have shape [${s.join(', ')}]`);
      shapes.set(o, s);
    });
    runtime.push(node);
  }
  if (consts.has(ir.output.name)) throw fail(ir.file, `the output "${ir.output.name}" does not depend on the image`);
  return { batch: inputShape[0], consts, shapes, runtime };
}
