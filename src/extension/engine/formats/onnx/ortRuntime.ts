/**
 * ONNX Runtime (`onnxruntime-node`, native CPU code) for the forward-only work on ONNX models: the logits of a
 * batch of images. Predictions, Score-CAM's masked batches and the mislabel scan need nothing else, and there
 * ONNX Runtime is 3-4x faster than our tfjs executor on one thread (MobileNetV2, EfficientNet-B0, ResNet-50 at
 * 224x224; docs/onnxruntime.md has the numbers). Everything that needs a layer's activation or a gradient keeps
 * the tfjs graph (onnxGraph.ts): ONNX Runtime returns graph outputs only, and it differentiates nothing.
 *
 * Optional in three ways, and tfjs is the fallback in each:
 *   - the package is an optional dependency, and each platform's VSIX carries only its own binary (none on
 *     darwin-x64 and alpine-x64, which the package does not build for): `require` may fail;
 *   - the setting (camLens.onnxRuntime, the CLI's --onnx-runtime) may turn it off: 'auto' | 'off';
 *   - a model may not suit it (a non-float input, the logits inside a file with external weights, a session
 *     that fails to build): the reason is kept (`nativeStatus`) and that model runs on tfjs.
 *
 * The logits: the engine's "logits" are the input of a final Softmax/LogSoftmax/Sigmoid (OnnxGraph.logitsId),
 * not always a graph output. Where they are not, the model's bytes are rewritten with that value appended to
 * the graph's outputs (`withExtraOutputs`, a splice of the protobuf's graph field) and the session is built
 * from the rewritten bytes.
 *
 * Threads: the session's intra-op pool has as many threads as the tfjs backend runs one pass on (the engine's
 * thread setting; 1 in the Score-CAM and scan pool workers, which spread the work over their own threads), and
 * they do not spin while they wait.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../../errors';
import { currentBackend } from '../../backend';
import type { LoadedOnnxModel } from './load';

type Ort = typeof import('onnxruntime-node');
type OrtSession = import('onnxruntime-node').InferenceSession;

export type OnnxRuntimeChoice = 'auto' | 'off';
export const ONNX_RUNTIME_CHOICES: readonly OnnxRuntimeChoice[] = ['auto', 'off'];

let setting: OnnxRuntimeChoice = 'auto';

/** 'auto': ONNX Runtime for forward-only work where it loads and suits the model; 'off': tfjs always. */
export function setOnnxRuntime(choice: OnnxRuntimeChoice): void {
  if (!ONNX_RUNTIME_CHOICES.includes(choice)) {
    throw new CamLensError('BAD_ARGUMENT', `unknown ONNX runtime "${String(choice)}": expected one of ${ONNX_RUNTIME_CHOICES.join(', ')}`);
  }
  setting = choice;
}

export function onnxRuntimeSetting(): OnnxRuntimeChoice {
  return setting;
}

// ---------------------------------------------------------------------------------------------------------
// Loading the native module

/** A plain require, at run time: the bundles keep onnxruntime-node external (its binary is picked per platform). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const requireOrt = (): Ort => require('onnxruntime-node') as Ort;
let loader: () => unknown = requireOrt;
let loaded: { ort?: Ort; reason?: string } | undefined;

/**
 * The onnxruntime-node module, loaded once per thread; `reason` says why not (not installed, no binary for this
 * platform, a binary that does not load).
 */
export function loadOrt(): { ort?: Ort; reason?: string } {
  if (loaded) return loaded;
  try {
    const ort = loader() as Ort;
    if (typeof ort?.InferenceSession?.create !== 'function' || typeof ort.Tensor !== 'function') throw new Error('the module has no InferenceSession');
    loaded = { ort };
  } catch (e) {
    const msg = ((e as Error)?.message ?? String(e)).split('\n')[0];
    loaded = { reason: `onnxruntime-node does not load on ${process.platform}-${process.arch} (${msg})` };
  }
  return loaded;
}

/** Tests: replace how the module is loaded (a function that throws simulates a missing binary); no argument restores it. */
export function setOrtLoaderForTests(fn?: () => unknown): void {
  loader = fn ?? requireOrt;
  loaded = undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Adding graph outputs to a model's bytes

function readVarint(b: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) throw new Error('truncated varint');
    const byte = b[pos++];
    v += (byte & 0x7f) * mul;
    if (byte < 0x80) return [v, pos];
    mul *= 128;
  }
  throw new Error('varint longer than 10 bytes');
}

function varint(v: number): number[] {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A length-delimited field: tag (field << 3 | 2), length, bytes. */
function lengthDelimited(field: number, body: Uint8Array): Uint8Array {
  const head = [...varint((field << 3) | 2), ...varint(body.length)];
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

/**
 * The model's bytes with `names` appended to its graph's outputs (GraphProto field 12, ValueInfoProto with the
 * name alone: ONNX Runtime infers the type). Protobuf parsers accept the fields of a message in any order and
 * append repeated fields, so appending to the graph field's body and rewriting its length (ModelProto field 7)
 * is the whole edit; every other byte is copied as it is.
 */
export function withExtraOutputs(model: Uint8Array, names: string[]): Uint8Array {
  let pos = 0;
  while (pos < model.length) {
    const start = pos;
    const [tag, p1] = readVarint(model, pos);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    pos = p1;
    if (wire === 0) pos = readVarint(model, pos)[1];
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const [len, p2] = readVarint(model, pos);
      if (field === 7) {
        const body = model.subarray(p2, p2 + len);
        const enc = new TextEncoder();
        const extra = names.map((n) => lengthDelimited(12, lengthDelimited(1, enc.encode(n))));
        const grown = new Uint8Array(body.length + extra.reduce((s, e) => s + e.length, 0));
        grown.set(body, 0);
        let o = body.length;
        for (const e of extra) {
          grown.set(e, o);
          o += e.length;
        }
        const graph = lengthDelimited(7, grown);
        const tail = model.subarray(p2 + len);
        const out = new Uint8Array(start + graph.length + tail.length);
        out.set(model.subarray(0, start), 0);
        out.set(graph, start);
        out.set(tail, start + graph.length);
        return out;
      }
      pos = p2 + len;
    } else throw new Error(`wire type ${wire} at byte ${start}`);
  }
  throw new Error('the model has no graph');
}

// ---------------------------------------------------------------------------------------------------------
// One model's session

/** The logits of a batch of preprocessed images on ONNX Runtime. */
export class OrtLogits {
  private constructor(
    private readonly ort: Ort,
    private readonly session: OrtSession,
    private readonly inputName: string,
    private readonly fetch: string,
    private readonly nchw: boolean,
    /** The model takes batch 1 only (declared, or fixed inside the graph): a batch runs image by image. */
    private readonly perImage: boolean,
    readonly threads: number,
  ) {}

  static async create(model: LoadedOnnxModel, threads: number): Promise<OrtLogits> {
    const { ort, reason } = loadOrt();
    if (!ort) throw new Error(reason);
    const g = model.graph;
    const fetch = g.logitsId;
    const outputs = g.ir.outputs.map((o) => o.name);
    const externalWeights = model.onnx.externalData === true;
    let source: string | Uint8Array = model.path;
    if (!outputs.includes(fetch)) {
      // The file's own path resolves external weights; rewritten bytes could not.
      if (externalWeights) throw new Error(`the logits ("${fetch}") are not a graph output, and the weights are in external files`);
      const bytes = fs.readFileSync(model.path);
      source = withExtraOutputs(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), [fetch]);
    }
    const session = await ort.InferenceSession.create(source as string, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      // No busy-waiting between ops: on cores other work keeps busy (the editor, a training job), spinning
      // threads made two threads 1.6-3.8x slower than with it off (MobileNetV2 31.5 against 18.4 ms, EfficientNet-B0
      // 74 against 20, ResNet-50 203 against 127 on 2 cores at load 5-7; docs/onnxruntime.md).
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    try {
      const meta = session.inputMetadata.find((m) => m.name === g.inputIds[0]);
      if (!meta) throw new Error(`ONNX Runtime does not see the input "${g.inputIds[0]}"`);
      if (meta.isTensor && meta.type !== 'float32') throw new Error(`the input is ${meta.type}, not float32`);
      const batchDim = meta.isTensor ? meta.shape[0] : undefined;
      return new OrtLogits(ort, session, meta.name, fetch, model.onnx.inputLayout === 'NCHW', batchDim === 1 || g.splitBatches, threads);
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  /**
   * The logits value (the graph's logits id, in the model's output order) for `inputs` [n, H, W, C]; the
   * caller keeps `inputs`. NCHW models get the batch transposed once, here; the tensors made are disposed.
   */
  async run(inputs: tf.Tensor4D): Promise<Float32Array> {
    const [n, h, w, c] = inputs.shape;
    const t = this.nchw ? tf.transpose(inputs, [0, 3, 1, 2]) : undefined;
    let data: Float32Array;
    try {
      data = (t ? await t.data() : await inputs.data()) as Float32Array;
    } finally {
      t?.dispose();
    }
    const dims = (k: number) => (this.nchw ? [k, c, h, w] : [k, h, w, c]);
    if (!this.perImage || n === 1) return this.runOnce(data, dims(n));
    const per = h * w * c;
    const parts: Float32Array[] = [];
    for (let i = 0; i < n; i++) parts.push(await this.runOnce(data.subarray(i * per, (i + 1) * per), dims(1)));
    const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  private async runOnce(data: Float32Array, dims: number[]): Promise<Float32Array> {
    const feeds = { [this.inputName]: new this.ort.Tensor('float32', data, dims) };
    const res = await this.session.run(feeds, [this.fetch]);
    const v = res[this.fetch];
    try {
      if (v.type !== 'float32') throw new Error(`the logits are ${v.type}, not float32`);
      // A copy: the result's buffer belongs to ONNX Runtime's tensor.
      return Float32Array.from(v.data as Float32Array);
    } finally {
      v.dispose();
    }
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Per model: created on first use, released with the model

interface NativeState {
  runner: Promise<OrtLogits | undefined>;
  reason?: string;
}

const states = new WeakMap<LoadedOnnxModel, NativeState>();

/**
 * The model's ONNX Runtime session, made on the first forward-only request (loading, the gradient methods and
 * every model that never predicts a batch never pay for it); undefined where the setting is 'off', the module
 * does not load, or the model does not suit it (`nativeStatus` says why). Never throws: tfjs takes over.
 */
export function nativeLogits(model: LoadedOnnxModel): Promise<OrtLogits | undefined> {
  if (setting === 'off') return Promise.resolve(undefined);
  let s = states.get(model);
  if (!s) {
    const state: NativeState = { runner: Promise.resolve(undefined) };
    const { reason } = loadOrt();
    if (reason) state.reason = reason;
    else {
      state.runner = OrtLogits.create(model, Math.max(1, currentBackend()?.threads ?? 1)).catch((e: unknown) => {
        state.reason = `ONNX Runtime cannot run ${model.name} (${((e as Error)?.message ?? String(e)).split('\n')[0]})`;
        return undefined;
      });
    }
    states.set(model, state);
    s = state;
  }
  return s.runner;
}

/** Whether forward-only work on this model runs on ONNX Runtime: 'pending' before its first forward-only request. */
export async function nativeStatus(model: LoadedOnnxModel): Promise<{ runtime: 'onnxruntime' | 'tfjs' | 'pending'; reason?: string }> {
  if (setting === 'off') return { runtime: 'tfjs', reason: 'the ONNX runtime setting is off' };
  const s = states.get(model);
  if (!s) return { runtime: 'pending' };
  const r = await s.runner;
  return r ? { runtime: 'onnxruntime' } : { runtime: 'tfjs', reason: s.reason };
}

/** Frees the model's session (model.dispose calls it). */
export function releaseNative(model: LoadedOnnxModel): void {
  const s = states.get(model);
  if (!s) return;
  states.delete(model);
  void s.runner.then((r) => r?.release()).catch(() => undefined);
}
