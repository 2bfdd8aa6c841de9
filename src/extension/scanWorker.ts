/**
 * Entry of a scan worker thread (see engine/scan/scanPool.ts for the protocol): loads its own copy of the model
 * named in workerData on one wasm thread, then scores batches of images on request, one after the other. The
 * images of a batch that waits behind the running one are decoded meanwhile (sharp decodes on libuv's threads), as
 * the in-thread scan decodes a batch ahead. No tensor outlives a batch.
 */
import { parentPort, workerData } from 'worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './engine/backend';
import { loadModel, type LoadedModel } from './engine/model';
import { toErrorInfo } from './engine/errors';
import { setOnnxRuntime } from './engine/formats/onnx/ortRuntime';
import { prepareBatch, predictBatch } from './engine/scan/scan';
import type { ScanBatchRequest, ScanFromWorker, ScanToWorker, ScanWorkerData } from './engine/scan/scanPool';

async function score(model: LoadedModel, req: ScanBatchRequest, prepared: ReturnType<typeof prepareBatch>): Promise<ScanFromWorker> {
  const items = await prepared;
  const ok = items.filter((p) => p.data);
  const errors = items.map((p) => p.error ?? null);
  if (ok.length === 0) return { type: 'scored', id: req.id, probs: new Float32Array(0), cols: 0, errors };
  const rows = await predictBatch(model, ok.map((p) => p.data as Float32Array));
  const cols = rows[0].length;
  const probs = new Float32Array(rows.length * cols);
  rows.forEach((r, i) => probs.set(r, i * cols));
  return { type: 'scored', id: req.id, probs, cols, errors };
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) return;
  const data = workerData as ScanWorkerData;
  let model: LoadedModel;
  try {
    // One thread each: the pool spreads the batches over the cores.
    await initBackend(data.backend, { threads: 1 });
    setOnnxRuntime(data.onnxRuntime ?? 'auto');
    model = await loadModel(data.modelPath, { overrides: data.overrides });
  } catch (e) {
    port.postMessage({ type: 'failed', message: toErrorInfo(e).message } satisfies ScanFromWorker);
    return;
  }
  let chain = Promise.resolve();
  port.on('message', (m: ScanToWorker) => {
    // Decoding starts on arrival; the forward passes run in order.
    const prepared = m.type === 'batch'
      ? prepareBatch(model, m.paths.map((p) => ({ path: p })), { preprocess: m.preprocess, maxPixels: m.maxPixels, dicom: m.dicom })
      : undefined;
    chain = chain.then(async () => {
      if (m.type === 'close') {
        model.dispose();
        port.close();
        process.exit(0);
      }
      if (m.type === 'memory') {
        port.postMessage({ type: 'memory', id: m.id, numTensors: tf.memory().numTensors } satisfies ScanFromWorker);
        return;
      }
      try {
        const reply = await score(model, m, prepared as ReturnType<typeof prepareBatch>);
        port.postMessage(reply, reply.type === 'scored' ? [reply.probs.buffer as ArrayBuffer] : []);
      } catch (e) {
        port.postMessage({ type: 'error', id: m.id, message: toErrorInfo(e).message } satisfies ScanFromWorker);
      }
    });
  });
  port.postMessage({ type: 'ready' } satisfies ScanFromWorker);
}

void main();
