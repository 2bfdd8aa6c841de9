/**
 * The engine worker's first step (worker.ts imports it before the engine's heavier modules): it starts the backend
 * the host asked for (WorkerOptions.backend, threads) at once, so that the wasm module compiles and its pthread
 * workers boot in their own threads while this one goes on loading tfjs-layers, the converter, sharp and the
 * engine (0.5-0.9 s of module loading on 2 cores, about as long as the backend's start). worker.ts's first
 * request awaits it like any other start (ensureBackend).
 */
import { parentPort, workerData } from 'worker_threads';
import { initBackend, type BackendInfo } from './engine/backend';
import type { WorkerOptions } from './workerProtocol';

function start(): Promise<BackendInfo> | undefined {
  if (!parentPort) return undefined; // imported outside a worker (a test): nothing to start
  const options = (workerData ?? {}) as WorkerOptions;
  const starting = initBackend(options.backend ?? 'auto', { threads: options.threads ?? 0 });
  // A failure is reported by the request that awaits the start (which then tries again), not as an unhandled rejection.
  starting.catch(() => undefined);
  return starting;
}

/** The backend start under way since the worker's modules began loading (undefined outside a worker). */
export const earlyBackend = start();
