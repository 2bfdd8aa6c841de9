/**
 * The one forward pass that only needs the logits of a batch (predictions, Score-CAM's masked batches, the
 * mislabel scan): on ONNX Runtime for ONNX models where it serves them (formats/onnx/ortRuntime.ts), else on
 * the model's tfjs graph. Work that needs a layer's values or gradients runs the graph itself (session.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LoadedModel } from './model';
import { nativeLogits } from './formats/onnx/ortRuntime';

/**
 * The graph's logits value for `inputs` [n, H, W, C] (preprocessed), as `graph.run(..., { logits: true })`
 * returns it, read into an array (`classLogitValues` turns it into class logits). `inputs` stays the caller's.
 */
export async function forwardLogits(model: LoadedModel, inputs: tf.Tensor4D): Promise<Float32Array> {
  if (model.format === 'onnx') {
    const native = await nativeLogits(model);
    if (native) return native.run(inputs);
  }
  const g = model.graph;
  const out = g.outputIds[0];
  const res = g.run(new Map([[g.inputIds[0], inputs]]), [out], { logits: true });
  const t = res.get(out) as tf.Tensor;
  try {
    return (await t.data()) as Float32Array;
  } finally {
    if (t !== inputs) t.dispose();
  }
}
