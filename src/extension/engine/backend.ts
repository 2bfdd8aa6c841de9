/**
 * TensorFlow.js backend selection. `auto` prefers the native `@tensorflow/tfjs-node` (an optional
 * dependency whose install downloads libtensorflow, so it is often absent), then WebAssembly, then the
 * plain JavaScript `cpu` backend. A forced choice that cannot load fails with BACKEND_UNAVAILABLE.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { CamLensError } from './errors';
import { registerWasmGradientKernels } from './wasmKernels';

export type BackendChoice = 'auto' | 'node' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'node', 'wasm', 'cpu'];

export interface BackendInfo {
  /** The backend tf is running on: 'tensorflow' (tfjs-node), 'wasm' or 'cpu'. */
  name: string;
  /** What the user asked for. */
  requested: BackendChoice;
  /** wasm only: whether the SIMD build was loaded / threads are used. */
  simd?: boolean;
  threads?: boolean;
  /** Why a preferred backend was skipped under `auto` (for logs and the status bar tooltip). */
  notes: string[];
}

let current: BackendInfo | undefined;

/** The folder holding the tfjs-backend-wasm `.wasm` binaries: next to the bundle, else in node_modules. */
export function wasmDir(): string {
  const candidates = [__dirname, path.join(__dirname, '..', 'dist'), path.join(__dirname, '..', '..', '..', 'dist')];
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'tfjs-backend-wasm.wasm'))) return dir + path.sep;
  }
  const pkg = require.resolve('@tensorflow/tfjs-backend-wasm/package.json');
  return path.join(path.dirname(pkg), 'dist') + path.sep;
}

function tryLoadNode(): string | undefined {
  try {
    // Loaded lazily: absent in most installs. It registers the 'tensorflow' backend on import.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@tensorflow/tfjs-node');
    return tf.findBackend('tensorflow') ? undefined : 'tfjs-node loaded but registered no backend';
  } catch (e) {
    return `@tensorflow/tfjs-node is not available (${(e as Error).message.split('\n')[0]})`;
  }
}

let wasmPathsSet = false;
async function trySetWasm(): Promise<string | undefined> {
  try {
    if (!wasmPathsSet) {
      setWasmPaths(wasmDir());
      wasmPathsSet = true;
    }
    const ok = await tf.setBackend('wasm');
    if (!ok) return 'the wasm backend failed to initialise';
    registerWasmGradientKernels();
    return undefined;
  } catch (e) {
    return `the wasm backend failed to initialise (${(e as Error).message})`;
  }
}

/**
 * Selects and initialises a backend. Idempotent for the same choice; switching backends later is allowed
 * (tensors made on the old backend must not be used afterwards, so callers reload models).
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new CamLensError('BAD_ARGUMENT', `unknown backend "${choice}": expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  if (current && current.requested === choice && tf.getBackend() === current.name) return current;
  const notes: string[] = [];
  // The engine never prints: PROD silences tfjs' console hints ("install tfjs-node…").
  tf.env().set('PROD', true);

  if (choice === 'node' || choice === 'auto') {
    const why = tryLoadNode();
    if (!why && (await tf.setBackend('tensorflow'))) {
      current = { name: 'tensorflow', requested: choice, notes };
      return current;
    }
    if (choice === 'node') {
      throw new CamLensError('BACKEND_UNAVAILABLE', why ?? 'the tensorflow backend failed to initialise',
        'install @tensorflow/tfjs-node, or use --backend wasm');
    }
    notes.push(why ?? 'tfjs-node failed to initialise');
  }
  if (choice === 'wasm' || choice === 'auto') {
    const why = await trySetWasm();
    if (!why) {
      const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
      const threads = Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
      current = { name: 'wasm', requested: choice, simd, threads, notes };
      return current;
    }
    if (choice === 'wasm') throw new CamLensError('BACKEND_UNAVAILABLE', why, 'use --backend cpu');
    notes.push(why);
  }
  if (!(await tf.setBackend('cpu'))) throw new CamLensError('BACKEND_UNAVAILABLE', 'the cpu backend failed to initialise');
  current = { name: 'cpu', requested: choice, notes };
  return current;
}

export function currentBackend(): BackendInfo | undefined {
  return current && tf.getBackend() === current.name ? current : undefined;
}
