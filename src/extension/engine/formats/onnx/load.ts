/**
 * Opens an `.onnx` file as a LoadedModel: reads and checks the protobuf (proto.ts), decodes the weights
 * (inline or in external data files confined to the model's folder; tensor.ts), fixes the input size
 * (declared, else `inputSize` from the metadata, else 224), builds the executable graph (onnxGraph.ts) and
 * completes the metadata (metadata.ts).
 *
 * Input layout: ONNX classifiers from PyTorch take [N, C, H, W]; tf2onnx keeps TensorFlow's [N, H, W, C].
 * The channel axis is the one of size 1 or 3 (axis 1 first); where both are symbolic, [N, C, H, W] with 3
 * channels. Either way the engine feeds [1, H, W, C] images: for a channels-first model that tensor is the
 * input's physical NHWC layout, so no transposition is ever made at the input.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../../errors';
import type { LoadOptions, LoadedModelBase } from '../../model';
import type { ModelMetadata } from '../../metadata';
import { readModelProto, type ValueInfo } from './proto';
import { buildIr } from './analyze';
import { OnnxGraph } from './onnxGraph';
import { finishOnnxMetadata, readOnnxMetadata, suggestPreset } from './metadata';
import { sizeOf } from './tensor';
import { releaseNative } from './ortRuntime';
import { classesOf } from '../../outputs';

export interface LoadedOnnxModel extends LoadedModelBase {
  format: 'onnx';
  graph: OnnxGraph;
  /** There is no tfjs model behind an ONNX file: reading this throws (use `graph`). */
  readonly tfModel: never;
  onnx: {
    opset: number;
    producer: string;
    /** The layout of the model's declared input. */
    inputLayout: 'NCHW' | 'NHWC';
    /** Set where batches run image by image, with the reason. */
    batchesSplit?: string;
    /** Set where weights live in external data files next to the model. */
    externalData?: true;
  };
}

/** ONNX protobufs are limited to 2 GiB; larger weights live in external data files. */
const MAX_ONNX_BYTES = 2 ** 31;

interface InputGeometry {
  layout: 'NCHW' | 'NHWC';
  channels: 1 | 3;
  height: number;
  width: number;
}

function inputGeometry(file: string, input: ValueInfo, meta: ModelMetadata): InputGeometry {
  const base = path.basename(file);
  const shape = input.shape ?? [null, null, null, null];
  const show = `[${shape.map((d) => d ?? '?').join(', ')}]`;
  if (shape.length !== 4) {
    throw new CamLensError('UNSUPPORTED_MODEL', `${base}: the input "${input.name}" has shape ${show}; an image classifier takes [batch, channels, height, width]`);
  }
  const num = (d: number | string | null): number | undefined => (typeof d === 'number' && d > 0 ? d : undefined);
  const c1 = num(shape[1]);
  const c3 = num(shape[3]);
  let layout: InputGeometry['layout'];
  let channels: number;
  if (c1 === 1 || c1 === 3) [layout, channels] = ['NCHW', c1];
  else if (c3 === 1 || c3 === 3) [layout, channels] = ['NHWC', c3];
  else if (c1 === undefined && c3 === undefined) [layout, channels] = ['NCHW', meta.channels ?? 3];
  else {
    const n = c1 ?? c3;
    throw new CamLensError('UNSUPPORTED_MODEL', `${base}: the input "${input.name}" has shape ${show}: ${n} channels; CAM Lens feeds 1 (grayscale) or 3 (RGB)`);
  }
  const [hAxis, wAxis] = layout === 'NCHW' ? [2, 3] : [1, 2];
  const [mh, mw] = meta.inputSize ?? [224, 224];
  return { layout, channels: channels as 1 | 3, height: num(shape[hAxis]) ?? mh, width: num(shape[wAxis]) ?? mw };
}

/** Labels must cover exactly the outputs after the leading non-class ones (as for the other formats). */
function checkLabels(metadata: ModelMetadata, numOutputs: number): void {
  const n = metadata.labels.length;
  const off = metadata.labelOffset;
  if (off >= numOutputs) throw new CamLensError('METADATA_INVALID', `labelOffset ${off} leaves no classes: the model has ${numOutputs} outputs`);
  if (n > 0 && n + off !== numOutputs) {
    const from = metadata.labelsFile ?? (metadata.source === 'metadata_props' ? "the model's metadata_props" : 'the labels given');
    throw new CamLensError('METADATA_INVALID', `the model has ${numOutputs} outputs but ${from} lists ${n} labels` + (off ? ` with labelOffset ${off}` : ''),
      n + 1 === numOutputs && off === 0 ? 'the model has one output more than labels: set "labelOffset": 1 in cam-lens.json' : 'use the labels that belong to this model');
  }
}

/** tf.grad from the earliest spatial node to the summed logits on a zero input (one pass each way). */
function probeGradients(graph: OnnxGraph): { ok: true } | { ok: false; reason: string } {
  const spatial = graph.spatialOps();
  if (spatial.length === 0) return { ok: false, reason: 'the model has no spatial node to take gradients at' };
  const first = spatial[0].outputs[0];
  try {
    tf.tidy(() => {
      const x = tf.zeros(graph.sampleInputShape);
      const a = graph.run(new Map([[graph.inputIds[0], x]]), [first]).get(first) as tf.Tensor;
      const f = (v: tf.Tensor): tf.Scalar => {
        const out = graph.run(new Map([[first, v]]), [graph.outputIds[0]], { logits: true, keepIntermediates: true });
        return tf.sum(out.get(graph.outputIds[0]) as tf.Tensor) as tf.Scalar;
      };
      tf.grad(f)(a);
    });
    return { ok: true };
  } catch (e) {
    const msg = ((e as Error)?.message ?? String(e)).split('\n')[0];
    return { ok: false, reason: `gradients do not flow through this ONNX model on the ${tf.getBackend()} backend (${msg})` };
  }
}

export async function loadOnnxModel(modelPath: string, opts: LoadOptions = {}): Promise<LoadedOnnxModel> {
  const file = path.resolve(modelPath);
  const base = path.basename(file);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new CamLensError('FILE_NOT_FOUND', `model file not found: ${file}`);
  }
  if (!st.isFile()) throw new CamLensError('MODEL_INVALID', `${file} is not a file`);
  if (st.size >= MAX_ONNX_BYTES) throw new CamLensError('MODEL_INVALID', `${base} is ${st.size} bytes, more than an ONNX protobuf can hold (2 GiB): the file is corrupt`);
  const bytes = fs.readFileSync(file);
  const proto = readModelProto(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), base);
  const dir = path.dirname(file);
  // The metadata first: it may name the output to explain (cam-lens.json's "output").
  const meta = readOnnxMetadata(file, new Map(proto.metadataProps.map((e) => [e.key, e.value])));
  const externalCache = new Map<string, Buffer>();
  const ir = buildIr(proto, file, { file, dir, externalCache }, opts.output ?? opts.overrides?.output ?? meta.output);
  const geo = inputGeometry(file, ir.input, meta);
  const inputShape = geo.layout === 'NCHW' ? [1, geo.channels, geo.height, geo.width] : [1, geo.height, geo.width, geo.channels];
  const inputPerm = geo.layout === 'NCHW' ? [0, 2, 3, 1] : [0, 1, 2, 3];
  const graph = new OnnxGraph(ir, { inputShape, inputPerm });
  try {
    const out = graph.logicalShape(ir.output.name);
    if (out.length < 2 || sizeOf(out.slice(1)) !== out.slice(1).reduce((a, d) => Math.max(a, d), 0)) {
      throw new CamLensError('UNSUPPORTED_MODEL', `${base}: the output "${ir.output.name}" has shape [${out.join(', ')}]; an image classifier outputs [batch, classes]`);
    }
    const units = sizeOf(out.slice(1));
    const suggestion = suggestPreset(ir, geo.layout, geo.channels, (id) => graph.constValue(id));
    const metadata = finishOnnxMetadata(meta, units, suggestion, opts.overrides);
    const outputs = ir.outputs.map((o, i) => (i === ir.outputIndex ? { ...o, units } : { ...o }));
    const { numOutputs, binary } = classesOf(metadata, outputs, ir.outputIndex, units);
    checkLabels(metadata, numOutputs);
    let weightBytes = 0;
    for (const t of ir.initializers.values()) weightBytes += t.data.length * 4;
    let probe: ReturnType<typeof probeGradients> | undefined;
    const model = {
      format: 'onnx',
      path: file,
      name: metadata.name ?? base.replace(/\.onnx$/i, ''),
      metadata,
      inputHeight: geo.height,
      inputWidth: geo.width,
      inputChannels: geo.channels,
      numOutputs,
      binary,
      outputs,
      output: ir.output.name,
      graph,
      backend: tf.getBackend(),
      weightBytes,
      onnx: {
        opset: ir.opset, producer: ir.producer, inputLayout: geo.layout,
        ...(graph.splitReason ? { batchesSplit: graph.splitReason } : {}),
        ...(externalCache.size > 0 ? { externalData: true as const } : {}),
      },
      dispose() {
        // ONNX Runtime's session, where forward-only work made one (ortRuntime.ts).
        releaseNative(model);
        graph.dispose();
      },
    } as Omit<LoadedOnnxModel, 'tfModel' | 'supportsGradients' | 'gradientNote'> as LoadedOnnxModel;
    // Probed on first read, like GraphModels: loading, predicting and the gradient-free methods never pay.
    const probed = () => (probe ??= probeGradients(graph));
    Object.defineProperties(model, {
      supportsGradients: { get: () => probed().ok, enumerable: false },
      gradientNote: { get: () => { const p = probed(); return p.ok ? undefined : p.reason; }, enumerable: false },
      tfModel: {
        get: () => {
          throw new CamLensError('BAD_ARGUMENT', `${file} is an ONNX model: it has no tfjs model (use graph)`);
        },
        enumerable: false,
      },
    });
    return model;
  } catch (e) {
    graph.dispose();
    throw e;
  }
}
