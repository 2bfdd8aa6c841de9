/**
 * Score-CAM speed on the reference MobileNet v1 0.25 (../shared/reference; its last spatial layer,
 * conv_pw_13_relu, has 256 channels) on the wasm backend: the time of a full explanation on a fresh image
 * (forward pass + every masked pass + map) against the batch size and the thread pool, as a ratio to one
 * batch-1 forward pass, plus the 32-channel "Faster Score-CAM".
 *
 * Targets (issue 4): each masked pass at most half a batch-1 forward pass; the full Score-CAM under 130
 * forward-pass equivalents, the 32-channel variant under 20.
 *
 * The pool is started and warmed before timing (the extension keeps one per model); its cold start is
 * reported on its own. Forward passes and Score-CAM runs alternate, so that drift in machine load hits both
 * alike; the ratios use the fastest run of each (the median run is listed too, over the same fastest forward pass).
 * Run: `node --expose-gc --import tsx bench/scorecam.ts [reps]` (default 5 reps; the 32-channel rows 3x as many).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/extension/engine/backend';
import { loadModel } from '../src/extension/engine/model';
import { ImageSession } from '../src/extension/engine/session';
import { decodeImage } from '../src/extension/engine/image';
import { prepareInput } from '../src/extension/engine/pipeline';
import { ScorePool } from '../src/extension/engine/scorePool';
import { SCORECAM_DEFAULT_BATCH, channelStats, selectChannels } from '../src/extension/engine/cam/scorecam';

const SHARED = path.resolve(__dirname, '..', '..', 'shared', 'reference');
const MODEL = path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json');
const IMAGE = path.join(SHARED, 'images', 'pgc_both_cat_dog.png');
const LAYER = 'conv_pw_13_relu';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function cell(c: string | number, w: number): string {
  return (typeof c === 'number' ? c.toFixed(c >= 100 ? 0 : 2) : c).padStart(w);
}

async function main(): Promise<void> {
  if (!fs.existsSync(MODEL)) {
    console.log(`skipped: ${MODEL} is absent (the benchmark needs ../shared/reference next to the clone)`);
    return;
  }
  const reps = Math.max(1, Number(process.argv[2] ?? 5));
  const info = await initBackend('wasm');
  const labels = JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes.json'), 'utf8')) as string[];
  const overrides = { labels, preprocess: '[-1,1]' as const };
  const model = await loadModel(MODEL, { overrides });
  const input = await prepareInput(model, await decodeImage(IMAGE));
  const fresh = () => new ImageSession(model, tf.clone(input));

  // How many channels are really scored (constant channels cost nothing).
  const probe = fresh();
  const a = probe.activation(LAYER);
  const stats = channelStats(await a.data(), a.shape[1] * a.shape[2], a.shape[3]);
  const scored = selectChannels(stats, { rankChannelsBy: 'std' }).length;
  probe.dispose();

  /** Wall ms and CPU ms (all threads of the process: getrusage) of f. */
  const timed = async (f: () => Promise<void>): Promise<[number, number]> => {
    const c = process.cpuUsage();
    const t = performance.now();
    await f();
    const wall = performance.now() - t;
    const cpu = process.cpuUsage(c);
    return [wall, (cpu.user + cpu.system) / 1000];
  };
  const forwardOnce = async () => {
    const s = fresh();
    const r = await timed(() => s.logits().then(() => undefined));
    s.dispose();
    return r;
  };
  for (let i = 0; i < 5; i++) await forwardOnce();

  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const t0 = performance.now();
  const pool = new ScorePool({ modelPath: MODEL, overrides, workers: Math.max(1, cores - 1) });
  const ready = await pool.whenReady();
  const coldMs = performance.now() - t0;
  if (ready === 0) console.log(`note: no worker started (${pool.failures().join('; ') || 'no worker entry found'}): pool rows run in this thread only`);

  const run = async (options: Record<string, unknown>, usePool: boolean) => {
    const s = fresh();
    const r = await timed(async () => {
      await s.explain({ method: 'scorecam', layer: LAYER, classChoice: 'boxer', options, pool: usePool ? pool : undefined });
    });
    s.dispose();
    return r;
  };
  const paired = async (options: Record<string, unknown>, usePool: boolean, n = reps) => {
    await run(options, usePool); // warm-up: kernels for this batch shape
    const fw: [number, number][] = [];
    const me: [number, number][] = [];
    for (let i = 0; i < n; i++) {
      fw.push(await forwardOnce());
      me.push(await run(options, usePool));
    }
    const min = (xs: number[]) => Math.min(...xs);
    return {
      fw: min(fw.map((x) => x[0])),
      ms: min(me.map((x) => x[0])),
      medianMs: median(me.map((x) => x[0])),
      fwCpu: median(fw.map((x) => x[1])),
      cpu: median(me.map((x) => x[1])),
    };
  };

  console.log(`Score-CAM on MobileNet v1 0.25 at ${LAYER} (256 channels, ${scored} non-constant), backend ${info.name} (simd ${info.simd}, threads ${info.threads}),`);
  console.log(`${cores} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; ${reps} runs, fastest run. Pool: ${ready} worker thread(s) + this thread, cold start ${coldMs.toFixed(0)} ms.`);
  // pass/fwd: wall time of one masked pass (the run minus its forward pass, per scored channel) over a forward
  // pass. cpu pass/fwd: the same in CPU time of all threads, which machine load distorts less; on an idle machine
  // the wall figure with t threads approaches cpu/t.
  // Wall-clock figures use the fastest of the runs (noise from other processes only ever adds time); x fwd med
  // is the median run over the same forward pass.
  const w = [8, 7, 5, 7, 7, 7, 8, 9, 9];
  const header = ['channels', 'threads', 'batch', 'ms', 'fwd ms', 'x fwd', 'pass/fwd', 'x fwd med', 'cpu pass'];
  console.log(header.map((h, i) => cell(h, w[i])).join('  ') + '  target');
  const rows: Array<[string, number | undefined, number, boolean]> = [];
  for (const batch of [1, 8, 16, 32]) for (const usePool of [false, true]) rows.push(['all', undefined, batch, usePool]);
  for (const usePool of [false, true]) rows.push(['top 32', 32, SCORECAM_DEFAULT_BATCH, usePool]);
  // The forward pass every ratio divides by: the fastest one seen in the whole run (the rows' own forward passes
  // included). A forward pass measured right after a pool run was at times 50% slower than the others, which
  // would flatter that row's ratios; the fastest overall can only make the ratios larger.
  let fwBest = Infinity;
  for (let i = 0; i < 20; i++) fwBest = Math.min(fwBest, (await forwardOnce())[0]);
  const measured: Array<{ label: string; top?: number; batch: number; usePool: boolean } & Awaited<ReturnType<typeof paired>>> = [];
  for (const [label, top, batch, usePool] of rows) {
    // The 32-channel runs take a tenth of the time of a full one: three times the runs, for a steadier minimum.
    const r = await paired({ batchSize: batch, topChannels: top }, usePool, top ? reps * 3 : reps);
    fwBest = Math.min(fwBest, r.fw);
    measured.push({ label, top, batch, usePool, ...r });
  }
  // Cost of one masked pass: everything but the forward pass that gives the activations, per masked input.
  const passOf = (m: (typeof measured)[number]) => (m.ms - fwBest) / (m.top ?? scored) / fwBest;
  for (const m of measured) {
    const { label, top, batch, usePool, ms, medianMs, fwCpu, cpu } = m;
    const fw = fwBest;
    const n = top ?? scored;
    const ratio = ms / fw;
    const perPass = passOf(m);
    const cpuPass = (cpu - fwCpu) / n / fwCpu;
    const limit = top ? 20 : 130;
    const ok = ratio < limit && perPass <= 0.5;
    // The targets are for what a user gets: the pool at the default batch size; the other rows show why.
    const judged = usePool && batch === SCORECAM_DEFAULT_BATCH;
    const verdict = judged ? `  ${ok ? 'ok' : 'MISS'} <${limit}x, pass ≤0.5` : '';
    const threads = usePool ? `${ready + 1}` : '1';
    // The median run over the same forward pass: a median forward pass is inflated by the pool runs next to it.
    const medianRatio = medianMs / fw;
    console.log([label, threads, batch === SCORECAM_DEFAULT_BATCH ? `${batch}*` : String(batch), ms, fw, ratio, perPass, medianRatio, cpuPass].map((c, i) => cell(c, w[i])).join('  ') + verdict);
  }
  // What the pool can reach at best: a masked pass costs what it costs in one thread, shared over every thread.
  const single = measured.find((m) => !m.top && !m.usePool && m.batch === SCORECAM_DEFAULT_BATCH);
  const pooled = measured.find((m) => !m.top && m.usePool && m.batch === SCORECAM_DEFAULT_BATCH);
  if (single && pooled && ready > 0) {
    const one = passOf(single);
    const ceiling = one / (ready + 1);
    const got = passOf(pooled);
    console.log(`ceiling of ${ready + 1} threads at batch ${SCORECAM_DEFAULT_BATCH}: a masked pass costs ${one.toFixed(2)} of a forward pass in one thread, so at best ${ceiling.toFixed(3)} with ${ready + 1}; the pool reached ${got.toFixed(3)} (${((ceiling / got) * 100).toFixed(0)}% of the ceiling).`);
  }
  await pool.close();
  console.log(`* the default batch size (with ${ready + 1} threads, batchPlan may cut smaller batches so that every thread gets two).`);
  console.log(`tensors after: ${tf.memory().numTensors} (model weights and the input)`);
  input.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
