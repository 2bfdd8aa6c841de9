/**
 * Entry of a Score-CAM worker thread (see engine/scorePool.ts for the protocol): loads its own copy of the
 * model named in workerData, then scores batches of inputs on request. The one thing kept between requests is
 * the last Score-CAM input (one tensor); every other tensor of a request is disposed before the reply, so
 * `memory` answers the same count after any number of Score-CAM runs.
 */
import { parentPort, workerData } from 'worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './engine/backend';
import { loadModel, type LoadedModel } from './engine/model';
import { classScores } from './engine/session';
import { maskedInputs } from './engine/cam/scorecam';
import { CamLensError, toErrorInfo } from './engine/errors';
import { setOnnxRuntime } from './engine/formats/onnx/ortRuntime';
import { CLAIM_SLOTS, CLAIMED_BY_WORKER, type ScoreRequest, type ScoreWorkerData } from './engine/scorePool';

type ToWorker = { type: 'score'; id: number; request: ScoreRequest } | { type: 'memory'; id: number } | { type: 'close' };

/** The last Score-CAM input this worker was sent (see ScoreRequest): the other batches of that run reuse it. */
let kept: { key: number; input: tf.Tensor4D } | undefined;

/** Keeps the input a Score-CAM request carries; called for every request, also one that was taken back. */
function keepInput(req: ScoreRequest): void {
  if (req.kind !== 'masks' || !req.input) return;
  kept?.input.dispose();
  kept = { key: req.inputKey, input: tf.tensor4d(req.input, req.inputShape) };
}

async function score(model: LoadedModel, req: ScoreRequest): Promise<{ probabilities: Float32Array; logits: Float32Array }> {
  const batch = tf.tidy(() => {
    if (req.kind === 'inputs') return tf.tensor4d(req.data, req.shape);
    if (kept?.key !== req.inputKey) throw new CamLensError('BAD_ARGUMENT', `Score-CAM batch of run ${req.inputKey} came without its input`);
    return maskedInputs(kept.input, req.maps, req.mapShape);
  });
  try {
    return await classScores(model, batch, req.outputIndex);
  } finally {
    batch.dispose();
  }
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) return;
  const data = workerData as ScoreWorkerData;
  const claims = new Int32Array(data.claims);
  let model: LoadedModel;
  try {
    await initBackend(data.backend);
    setOnnxRuntime(data.onnxRuntime ?? 'auto');
    model = await loadModel(data.modelPath, { overrides: data.overrides, foldBatchNorm: data.foldBatchNorm });
  } catch (e) {
    port.postMessage({ type: 'failed', message: toErrorInfo(e).message });
    return;
  }
  // Requests are handled one at a time, in order.
  let chain = Promise.resolve();
  port.on('message', (m: ToWorker) => {
    chain = chain.then(async () => {
      if (m.type === 'close') {
        kept?.input.dispose();
        model.dispose();
        port.close();
        process.exit(0);
      }
      if (m.type === 'memory') {
        port.postMessage({ type: 'memory', id: m.id, numTensors: tf.memory().numTensors });
        return;
      }
      // Claim the batch before starting it; the pool may have taken it back while it waited in the queue.
      const claimed = Atomics.compareExchange(claims, m.id % CLAIM_SLOTS, 0, CLAIMED_BY_WORKER) === 0;
      try {
        keepInput(m.request);
        if (!claimed) {
          port.postMessage({ type: 'skipped', id: m.id });
          return;
        }
        const r = await score(model, m.request);
        port.postMessage({ type: 'scored', id: m.id, probabilities: r.probabilities, logits: r.logits }, [r.probabilities.buffer as ArrayBuffer, r.logits.buffer as ArrayBuffer]);
      } catch (e) {
        const info = toErrorInfo(e);
        port.postMessage({ type: 'error', id: m.id, code: info.code, message: info.message });
      }
    });
  });
  port.postMessage({ type: 'ready' });
}

void main();
