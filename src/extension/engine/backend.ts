/**
 * TensorFlow.js backend selection. `auto` prefers the native `@tensorflow/tfjs-node` (an optional
 * dependency whose install downloads libtensorflow, so it is often absent), then WebAssembly, then the
 * plain JavaScript `cpu` backend. A forced choice that cannot load fails with BACKEND_UNAVAILABLE.
 *
 * Threads (wasm). tfjs-backend-wasm ships a threaded SIMD build (Emscripten pthreads + XNNPACK's thread pool)
 * but never uses it in Node: its WASM_HAS_MULTITHREAD_SUPPORT flag answers false whenever IS_NODE, and forcing
 * the flag does not help, because its loader hands Emscripten a Blob URL for the pthread worker script (Node's
 * `new Worker` takes a file path or a file:/data: URL object, so it throws ERR_WORKER_PATH) and, as the script
 * the workers import, a Blob holding `factory.toString()` of a factory whose body refers to variables of the
 * package's own bundle (`require$$0`, `commonjsGlobal`) that do not exist in the worker. Emscripten's own Node
 * support is complete, though: given real files, its pthreads are `worker_threads` workers sharing the module's
 * memory. So for more than one thread the 'wasm' backend is registered here with a factory of our own (see
 * threadedWasmBackend): the package's own glue (wasm-out/tfjs-backend-wasm-threaded-simd.js) loaded with
 * `require`, the pthread worker script and that glue as real files (esbuild.js puts both next to the bundle;
 * from source the glue comes from node_modules and the script is written once to the temp folder), and the
 * package's BackendWasm class and kernels on top, as its own loader would do. One thread keeps the package's
 * own loader and the plain SIMD build, which starts no workers at all.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Worker } from 'worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { BackendWasm, getThreadsCount, setThreadsCount, setWasmPaths, version_wasm } from '@tensorflow/tfjs-backend-wasm';
import { CamLensError } from './errors';
import { registerWasmGradientKernels } from './wasmKernels';

export type BackendChoice = 'auto' | 'node' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'node', 'wasm', 'cpu'];

/**
 * Most threads the wasm backend can run one forward pass on. The threaded build starts exactly 8 pthread
 * workers with the module (Emscripten's PTHREAD_POOL_SIZE), and its C++ side caps XNNPACK's pool at 8 threads
 * (the calling thread and 7 pthreads). A pthread beyond the started ones would be a worker created on demand,
 * which Emscripten only tells to run once the calling thread's event loop sees it loaded, while that thread
 * blocks waiting for it to start: a deadlock.
 */
export const MAX_WASM_THREADS = 8;

export interface BackendInfo {
  /** The backend tf is running on: 'tensorflow' (tfjs-node), 'wasm' or 'cpu'. */
  name: string;
  /** What the user asked for. */
  requested: BackendChoice;
  /** wasm only: whether the SIMD build was loaded. */
  simd?: boolean;
  /**
   * Threads one forward pass runs on. wasm: the size of XNNPACK's thread pool (1: the single-threaded SIMD
   * build); cpu: 1; tensorflow: libtensorflow's own intra-op pool, one thread per available core (not set by us).
   */
  threads: number;
  /** Why a preferred backend was skipped under `auto`, or fewer threads than asked were used (for logs and the tooltip). */
  notes: string[];
}

export interface BackendOptions {
  /**
   * Threads for one forward pass on the wasm backend: 0 = as many as the machine has (`defaultThreads()`),
   * n > 0 = n, capped at MAX_WASM_THREADS. Omitted: the count of the backend already running, else 1. One
   * thread is the default because the Score-CAM pool's workers (scoreWorker.ts) each call initBackend without
   * it: a pool spreads passes over its own threads, and threads inside each of them would only compete.
   */
  threads?: number;
}

let current: BackendInfo | undefined;
/** The resolved thread count `current` was initialised for (what a later call is compared with). */
let currentThreadsAsked = 1;

/** The cores this process may use (Node's own answer, which honours CPU affinity). */
export function availableCores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** The thread count `threads: 0` ("auto", the camLens.threads default) stands for. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(MAX_WASM_THREADS, availableCores()));
}

/** The thread count a request stands for: 0 = auto, else at least 1 and at most MAX_WASM_THREADS. */
export function resolveThreads(threads: number): number {
  if (!Number.isInteger(threads) || threads < 0) {
    throw new CamLensError('BAD_ARGUMENT', `threads must be a whole number >= 0 (0: one per core), got ${threads}`);
  }
  return threads === 0 ? defaultThreads() : Math.min(threads, MAX_WASM_THREADS);
}

/** The folder holding the tfjs-backend-wasm `.wasm` binaries: next to the bundle, else in node_modules. */
export function wasmDir(): string {
  const candidates = [__dirname, path.join(__dirname, '..', 'dist'), path.join(__dirname, '..', '..', '..', 'dist')];
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'tfjs-backend-wasm.wasm'))) return dir + path.sep;
  }
  const pkg = require.resolve('@tensorflow/tfjs-backend-wasm/package.json');
  return path.join(path.dirname(pkg), 'dist') + path.sep;
}

// ---------------------------------------------------------------------------------------------------------
// The threaded wasm build

/** Names of the threaded build's files, as Emscripten asks for them and as esbuild.js writes them into dist/. */
export const THREADED_GLUE = 'tfjs-backend-wasm-threaded-simd.js';
export const THREADED_WORKER = 'tfjs-backend-wasm-threaded-simd.worker.js';
const THREADED_WASM = 'tfjs-backend-wasm-threaded-simd.wasm';

/**
 * The pthread worker script as a file Node can run. The package keeps it as a string export
 * (wasm-out/…worker.js: `module.exports.wasmWorkerContents = \`…\``), whose template literal has already turned
 * the script's `\n` escapes into line breaks inside string literals; they are escaped back, as the package's
 * loader does before making its Blob. esbuild.js does the same when it writes dist/. The script is one line of
 * minified code, so no other line break exists to be altered.
 */
export function pthreadWorkerSource(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(`@tensorflow/tfjs-backend-wasm/wasm-out/${THREADED_WORKER}`) as { wasmWorkerContents: string };
  return mod.wasmWorkerContents.replace(/\n/g, '\\n');
}

/** A file holding `text` in the temp folder, named by its hash; written once (atomically: parallel test runs share it). */
function tempScript(text: string): string {
  const hash = crypto.createHash('sha256').update(text).digest('hex').slice(0, 16);
  const file = path.join(os.tmpdir(), `cam-lens-tfjs-wasm-${version_wasm}-${hash}.worker.js`);
  if (!fs.existsSync(file)) {
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  }
  return file;
}

/**
 * Where the threaded build's three files are: the glue (loaded here and imported by every pthread worker),
 * the pthread worker script and the .wasm binary. Next to the bundle (esbuild.js copies them, the VSIX ships
 * dist/*.js and dist/*.wasm), else, running from source, the package's glue and a temp copy of the script.
 */
export function threadedWasmFiles(): { glue: string; worker: string; wasm: string } {
  const wasm = path.join(wasmDir(), THREADED_WASM);
  const glue = path.join(__dirname, THREADED_GLUE);
  const worker = path.join(__dirname, THREADED_WORKER);
  if (fs.existsSync(glue) && fs.existsSync(worker)) return { glue, worker, wasm };
  return { glue: require.resolve(`@tensorflow/tfjs-backend-wasm/wasm-out/${THREADED_GLUE}`), worker: tempScript(pthreadWorkerSource()), wasm };
}

/** The parts of the Emscripten module used here (the glue's MODULARIZE factory resolves to it). */
interface ThreadedModule {
  cwrap(name: string, ret: string | null, args: string[]): (...a: number[]) => unknown;
  PThread: {
    runningWorkers: Worker[];
    unusedWorkers: Worker[];
    terminateAllThreads(): void;
    loadWasmModuleToWorker(worker: Worker, onFinished?: unknown): void;
    allocateUnusedWorker(): void;
  };
  tfjs?: unknown;
}

/** The wasm import object, and what WebAssembly.instantiate gives (this zone's lib has no WebAssembly types). */
type WasmImports = Record<string, Record<string, unknown>>;
interface WasmApi {
  instantiate(bytes: Uint8Array, imports: WasmImports): Promise<{ instance: unknown; module: unknown }>;
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface FactoryConfig {
  locateFile(file: string, prefix: string): string;
  mainScriptUrlOrBlob: string;
  instantiateWasm(imports: WasmImports, receive: (instance: unknown, module: unknown) => void): object;
  print(text: string): void;
  printErr(text: string): void;
}

/** The last reason the threaded factory failed (tfjs swallows a factory's error and only answers false). */
let threadedFailure: string | undefined;

/**
 * Creates a 'wasm' backend on the threaded SIMD build with `threads` threads.
 *
 * - Emscripten's glue, in Node, creates its pthread workers with `new Worker(locateFile(<worker script>))` and
 *   has each one import `mainScriptUrlOrBlob` (a path: it `eval`s the file). Both are given as absolute paths.
 *   It would start 8; `startOnly` makes it start the `threads - 1` the pool uses.
 * - XNNPACK's pool size is decided in C++ as min(asked, 8, logical cores / 2): tfjs halves the core count on the
 *   guess that half the logical cores are hyper-threads, which on a 2-vCPU machine leaves one thread. The core
 *   count is a wasm import (`emscripten_num_logical_cores`), so `instantiateWasm`, Emscripten's hook for
 *   instantiating the module yourself, hands it twice the count we chose: the pool gets exactly `threads`.
 * - The glue sets a global `Worker` (Node's) for itself and adds process listeners that rethrow uncaught errors
 *   (which turns an uncaught error of the CLI into exit code 7); both are put back as they were.
 * - Workers: Emscripten refs a pthread's worker while it runs, and XNNPACK's pool threads run forever (they wait
 *   for work), so the process would never exit; they are unref'd (they end with the thread that owns them, or
 *   when the backend is disposed). The started workers beyond the pool's are ended: nothing starts threads later.
 * - Messages of the module (print/printErr) are kept (the last 5) for an error message, never printed.
 */
async function threadedWasmBackend(threads: number): Promise<tf.KernelBackend> {
  threadedFailure = undefined;
  const messages: string[] = [];
  const keep = (t: string) => {
    messages.push(t);
    if (messages.length > 5) messages.shift();
  };
  let instantiateFailed: (e: unknown) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (instantiateFailed = reject));
  let config: FactoryConfig & Partial<ThreadedModule> | undefined;
  let started = false;
  let restorePool: (() => void) | undefined;
  try {
    const files = threadedWasmFiles();
    // Read synchronously (0.4 MB): everything up to the glue's start of its pthread workers and of the module's
    // compilation then runs inside the initBackend call, so an engine worker that starts its backend before it has
    // loaded its other modules (workerBoot.ts) has those threads booting while it loads them.
    const binary = fs.readFileSync(files.wasm);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const factory = require(files.glue) as (config: FactoryConfig) => Promise<ThreadedModule>;
    config = {
      locateFile: (file, prefix) => {
        if (!file.endsWith('.worker.js')) return file.endsWith('.wasm') ? files.wasm : prefix + file;
        // Asked while the glue starts its first pthread worker (PThread is on the module by then).
        if (config?.PThread) restorePool ??= startOnly(config.PThread, threads - 1);
        return files.worker;
      },
      mainScriptUrlOrBlob: files.glue,
      instantiateWasm(imports, receive) {
        const env = { ...imports.env, emscripten_num_logical_cores: () => 2 * threads };
        wasmApi.instantiate(binary, { ...imports, env }).then((r) => receive(r.instance, r.module), instantiateFailed);
        return {};
      },
      print: keep,
      printErr: keep,
    };
    const globalWorker = Object.getOwnPropertyDescriptor(globalThis, 'Worker');
    const uncaught = process.listeners('uncaughtException');
    const unhandled = process.listeners('unhandledRejection');
    let ready: Promise<ThreadedModule>;
    try {
      ready = factory(config);
      catchWorkerErrors(config as FactoryConfig & Partial<ThreadedModule>, (e) => instantiateFailed(e), () => started);
    } finally {
      // The workers were created inside the call, synchronously; nothing later needs the global.
      if (globalWorker) Object.defineProperty(globalThis, 'Worker', globalWorker);
      else delete (globalThis as { Worker?: unknown }).Worker;
      for (const l of process.listeners('uncaughtException')) if (!uncaught.includes(l)) process.removeListener('uncaughtException', l);
      for (const l of process.listeners('unhandledRejection')) if (!unhandled.includes(l)) process.removeListener('unhandledRejection', l);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the wasm threads did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
      timer.unref();
    });
    const module = await Promise.race([ready, failed, timeout]).finally(() => {
      clearTimeout(timer);
      restorePool?.();
    });
    module.tfjs = {
      init: module.cwrap('init', null, []),
      initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
      getThreadsCount: module.cwrap('get_threads_count', 'number', []),
      registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
      disposeData: module.cwrap('dispose_data', null, ['number']),
      dispose: module.cwrap('dispose', null, []),
    };
    // BackendWasm's constructor creates XNNPACK's pool with this count (and starts its threads).
    setThreadsCount(threads);
    const backend = new BackendWasm(module as unknown as ConstructorParameters<typeof BackendWasm>[0]);
    for (const w of module.PThread.runningWorkers) w.unref();
    for (const w of module.PThread.unusedWorkers) void w.terminate();
    module.PThread.unusedWorkers.length = 0;
    started = true;
    return backend;
  } catch (e) {
    // Emscripten's module is the config object itself: end whatever workers it started.
    try {
      config?.PThread?.terminateAllThreads();
    } catch {
      // Nothing was started.
    }
    const detail = messages.length ? ` (${messages.slice(-3).join('; ')})` : '';
    threadedFailure = `${(e as Error)?.message ?? String(e)}${detail}`;
    throw e;
  }
}

/**
 * Makes the glue start `count` pthread workers (at least 1) instead of its fixed 8 (PTHREAD_POOL_SIZE): XNNPACK's
 * pool of n threads runs on the calling thread and n - 1 pthreads, and the workers beyond those were ended
 * unused right after the start. Each is a Node worker thread that boots and evaluates the glue, which on 2
 * cores made the start take seconds (2.1-2.6 s at load 5; bench/coldStart.ts). Called from `locateFile` while
 * the glue's loop allocates its first worker: later rounds of that loop find `allocateUnusedWorker` doing nothing.
 * Returns the undo, called once the module is ready (a worker created on demand later goes the glue's own way).
 */
function startOnly(pthread: ThreadedModule['PThread'], count: number): () => void {
  const own = pthread.allocateUnusedWorker;
  let made = 1; // the one being allocated now
  pthread.allocateUnusedWorker = () => {
    if (made >= Math.max(1, count)) return;
    made++;
    own.call(pthread);
  };
  return () => {
    pthread.allocateUnusedWorker = own;
  };
}

/** How long the pthread workers may take to load before the threaded build is given up (they take milliseconds). */
const START_TIMEOUT_MS = 30_000;

/**
 * Emscripten answers a pthread worker's error by throwing it in the calling thread's event loop, which kills the
 * process (the CLI) or the engine worker; and an error that arrives before it listens (it starts listening only
 * once the module is compiled) is an unhandled 'error' event, just as fatal. While the backend starts, both go to
 * `fail` instead (the start fails and one thread is used); once started, an error still ends the thread that
 * owns the pool (a pool thread gone would leave every later pass waiting for it).
 */
function catchWorkerErrors(module: Partial<ThreadedModule>, fail: (e: Error) => void, started: () => boolean): void {
  const pthread = module.PThread;
  if (!pthread) return;
  const onError = (e: Error) => {
    if (started()) throw e;
    fail(new Error(`a wasm thread failed to start: ${e?.message ?? String(e)}`));
  };
  for (const w of pthread.unusedWorkers) w.on('error', onError);
  const load = pthread.loadWasmModuleToWorker;
  pthread.loadWasmModuleToWorker = (worker, onFinished) => {
    load(worker, onFinished);
    // Replaces Emscripten's own handler (its 'error' listener calls whatever `onerror` holds).
    (worker as Worker & { onerror?: unknown }).onerror = onError;
  };
}

/** The 'wasm' factory the package registered on import (its own loader: one thread, no workers). */
let packageWasmFactory: (() => tf.KernelBackend | Promise<tf.KernelBackend>) | undefined;
/** Priority the package registers 'wasm' with (below tfjs-node's, above cpu's). */
const WASM_PRIORITY = 2;
/** Threads the registered 'wasm' factory makes (1: the package's own). */
let registeredWasmThreads = 1;

/**
 * Registers the 'wasm' factory for `threads` threads, replacing the registered one (and disposing the backend
 * it made, which frees its memory and ends its threads) when the count differs.
 */
function registerWasm(threads: number): void {
  const engine = tf.engine();
  packageWasmFactory ??= engine.registryFactory.wasm?.factory;
  if (!packageWasmFactory) throw new CamLensError('BACKEND_UNAVAILABLE', 'the wasm backend is not registered');
  if (threads === registeredWasmThreads && engine.registryFactory.wasm) return;
  if (engine.registryFactory.wasm) tf.removeBackend('wasm');
  tf.registerBackend('wasm', threads > 1 ? () => threadedWasmBackend(threads) : packageWasmFactory, WASM_PRIORITY);
  registeredWasmThreads = threads;
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
async function trySetWasm(threads: number, notes: string[]): Promise<string | undefined> {
  try {
    if (!wasmPathsSet) {
      setWasmPaths(wasmDir());
      wasmPathsSet = true;
    }
    registerWasm(threads);
    let ok = await tf.setBackend('wasm');
    if (!ok && threads > 1) {
      // The threaded build could not start here: one thread on the plain build, saying why.
      notes.push(`wasm threads unavailable, using one (${threadedFailure ?? 'the threaded build failed to initialise'})`);
      registerWasm(1);
      ok = await tf.setBackend('wasm');
    }
    if (!ok) return 'the wasm backend failed to initialise';
    registerWasmGradientKernels();
    return undefined;
  } catch (e) {
    return `the wasm backend failed to initialise (${(e as Error).message})`;
  }
}

/**
 * Selects and initialises a backend. Idempotent for the same choice and thread count; switching backends or
 * thread counts later is allowed (tensors made on the old backend must not be used afterwards, so callers
 * reload models: a new wasm thread count is a new wasm backend).
 */
export async function initBackend(choice: BackendChoice = 'auto', opts: BackendOptions = {}): Promise<BackendInfo> {
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new CamLensError('BAD_ARGUMENT', `unknown backend "${choice}": expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  const threads = opts.threads === undefined ? (current ? currentThreadsAsked : 1) : resolveThreads(opts.threads);
  if (current && current.requested === choice && currentThreadsAsked === threads && tf.getBackend() === current.name) return current;
  const notes: string[] = [];
  if (opts.threads !== undefined && opts.threads > MAX_WASM_THREADS) notes.push(`${opts.threads} threads asked, the wasm build runs at most ${MAX_WASM_THREADS}`);
  // The engine never prints: PROD silences tfjs' console hints ("install tfjs-node…").
  tf.env().set('PROD', true);

  if (choice === 'node' || choice === 'auto') {
    const why = tryLoadNode();
    if (!why && (await tf.setBackend('tensorflow'))) {
      if (threads > 1 || opts.threads !== undefined) notes.push('tfjs-node runs on its own thread pools (the thread setting applies to wasm)');
      return settle({ name: 'tensorflow', requested: choice, threads: availableCores(), notes }, threads);
    }
    if (choice === 'node') {
      throw new CamLensError('BACKEND_UNAVAILABLE', why ?? 'the tensorflow backend failed to initialise',
        'install @tensorflow/tfjs-node, or use --backend wasm');
    }
    notes.push(why ?? 'tfjs-node failed to initialise');
  }
  if (choice === 'wasm' || choice === 'auto') {
    const why = await trySetWasm(threads, notes);
    if (!why) {
      const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
      const used = getThreadsCount();
      if (used !== threads && !notes.some((n) => n.startsWith('wasm threads unavailable'))) notes.push(`${threads} wasm threads asked, ${used} started`);
      return settle({ name: 'wasm', requested: choice, simd, threads: used, notes }, threads);
    }
    if (choice === 'wasm') throw new CamLensError('BACKEND_UNAVAILABLE', why, 'use --backend cpu');
    notes.push(why);
  }
  if (!(await tf.setBackend('cpu'))) throw new CamLensError('BACKEND_UNAVAILABLE', 'the cpu backend failed to initialise');
  if (threads > 1) notes.push('the cpu backend runs on one thread');
  return settle({ name: 'cpu', requested: choice, threads: 1, notes }, threads);
}

function settle(info: BackendInfo, threadsAsked: number): BackendInfo {
  current = info;
  currentThreadsAsked = threadsAsked;
  return info;
}

export function currentBackend(): BackendInfo | undefined {
  return current && tf.getBackend() === current.name ? current : undefined;
}
