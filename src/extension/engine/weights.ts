/**
 * A model.json's weights read from its shard files straight into tensors, weight by weight (#13 item 6).
 *
 * TensorFlow.js expects every weight byte in one buffer (`ModelArtifacts.weightData`) and decodes it with
 * `tf.io.decodeWeights`, which copies each weight out of that buffer (`ArrayBuffer.slice`) before the backend
 * copies it once more into its own memory (the wasm heap): the weights existed three times in the process while a
 * model loaded, and once the two JS copies were garbage, glibc kept the freed pages of the per-weight copies
 * while V8 collected the large buffer whenever it chose. Measured in the engine worker on an Inception-v3-size model
 * (91 MiB of float32 weights): +300 MiB of RSS once loaded (3.3x), +214 MiB (2.35x) when the big buffer was
 * collected, and without either copy, as here, about the wasm heap's growth alone.
 *
 * Here a weight is read from the files (across a shard boundary where it spans one) into a scratch buffer and
 * made a tensor from a view of it: wasm and tfjs-node copy the view into their own memory, so one scratch buffer,
 * as large as the largest weight, serves every weight; the cpu backend keeps the array it is given, so there each
 * weight gets its own (it is the tensor's storage, not a copy). Quantized and float16 weights, bool and complex64
 * go through tfjs' own decoder, weight by weight.
 *
 * tfjs-layers and tfjs-converter call `tf.io.decodeWeights(weightData, specs)` themselves while they build a
 * model, with no way to hand them tensors instead. `withShardedWeights` gives the load an empty ArrayBuffer of its
 * own as `weightData` and, for the length of the load, a `tf.io.decodeWeights` that answers a call with that very
 * buffer by reading the shards (and any other call as tfjs does).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from './errors';
import type { WeightShards } from './loader';

type DecodeWeights = (data: tf.io.WeightData, specs: tf.io.WeightsManifestEntry[]) => tf.NamedTensorMap;

/** Bytes of one weight in the shards, as tfjs lays them out. */
function storedBytes(spec: tf.io.WeightsManifestEntry): number {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const q = spec.quantization?.dtype;
  if (q) return q === 'uint8' ? n : 2 * n;
  if (spec.dtype === 'bool') return n;
  if (spec.dtype === 'complex64') return 8 * n;
  return 4 * n;
}

/** Reads the shards' bytes in order, as one stream. */
class ShardReader {
  private index = 0;
  private offset = 0;
  private fd?: number;

  constructor(private readonly src: WeightShards) {}

  /** Fills `into` with the next bytes. */
  read(into: Uint8Array): void {
    let done = 0;
    while (done < into.length) {
      const shard = this.src.shards[this.index];
      if (!shard) throw this.changed('ended early');
      if (this.offset === shard.bytes) {
        this.next();
        continue;
      }
      this.fd ??= fs.openSync(shard.file, 'r');
      const n = fs.readSync(this.fd, into, done, Math.min(into.length - done, shard.bytes - this.offset), this.offset);
      if (n === 0) throw this.changed(`${path.basename(shard.file)} is shorter than when it was checked`);
      done += n;
      this.offset += n;
    }
  }

  private next(): void {
    this.close();
    this.index++;
    this.offset = 0;
  }

  private changed(what: string): CamLensError {
    return new CamLensError('SHARD_SIZE_MISMATCH', `the weight shards changed while they were read: ${what}`, 'load the model again once the files are written');
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The tensors of `specs` read from the shards (see the file comment); on failure none is left behind. */
export function readWeightTensors(src: WeightShards, specs: tf.io.WeightsManifestEntry[], decode: DecodeWeights = tf.io.decodeWeights): tf.NamedTensorMap {
  const out: tf.NamedTensorMap = {};
  const reader = new ShardReader(src);
  const copies = tf.getBackend() === 'wasm' || tf.getBackend() === 'tensorflow';
  const plain = (s: tf.io.WeightsManifestEntry) => !s.quantization && (s.dtype === 'float32' || s.dtype === 'int32');
  let scratch: ArrayBuffer | undefined;
  try {
    for (const spec of specs) {
      const bytes = storedBytes(spec);
      if (plain(spec)) {
        if (copies) scratch ??= new ArrayBuffer(Math.max(...specs.filter(plain).map(storedBytes)));
        const buf = copies ? (scratch as ArrayBuffer) : new ArrayBuffer(bytes);
        reader.read(new Uint8Array(buf, 0, bytes));
        const view = spec.dtype === 'float32' ? new Float32Array(buf, 0, bytes / 4) : new Int32Array(buf, 0, bytes / 4);
        out[spec.name] = tf.tensor(view, spec.shape, spec.dtype);
      } else {
        const buf = new ArrayBuffer(bytes);
        reader.read(new Uint8Array(buf));
        Object.assign(out, decode(buf, [spec]));
      }
    }
    return out;
  } catch (e) {
    tf.dispose(Object.values(out));
    throw e;
  } finally {
    reader.close();
  }
}

/** Loads under way, by the empty buffer each one hands tfjs as its `weightData`. */
const sources = new Map<ArrayBuffer, WeightShards>();
let tfjsDecode: DecodeWeights | undefined;

/**
 * Runs `load` (one model load through tfjs-layers or tfjs-converter), giving it the `weightData` to put in its
 * artifacts: tfjs' decoder, replaced meanwhile, reads the weights for it from `src`. Loads that overlap (a scan's and
 * a map's) share the replacement; the last to finish restores tfjs' own.
 */
export async function withShardedWeights<T>(src: WeightShards, load: (weightData: ArrayBuffer) => Promise<T>): Promise<T> {
  const io = tf.io as unknown as { decodeWeights: DecodeWeights };
  if (sources.size === 0) {
    const own = io.decodeWeights;
    tfjsDecode = own;
    io.decodeWeights = (data, specs) => {
      const from = data instanceof ArrayBuffer ? sources.get(data) : undefined;
      return from ? readWeightTensors(from, specs, own) : own(data, specs);
    };
  }
  const marker = new ArrayBuffer(0);
  sources.set(marker, src);
  try {
    return await load(marker);
  } finally {
    sources.delete(marker);
    if (sources.size === 0 && tfjsDecode) io.decodeWeights = tfjsDecode;
  }
}
