/**
 * The `cam` command's options of the pixel-level saliency methods (engine/saliency), checked as usage before any
 * file is read (cli.ts' rule): each belongs to its methods, a number within the range the method's MethodParam
 * declares (an integer where it steps by 1), a choice among its values.
 *
 *   --samples <n>               smoothgrad: noisy copies averaged (default 25)
 *   --noise <0..1>              smoothgrad: noise sigma as a fraction of the input's range (default 0.15)
 *   --steps <8..512>            integratedgradients: steps of the path integral (default 64)
 *   --baseline black|blurred    integratedgradients: where the path starts (default black)
 *   --render rgb|magnitude      guidedbackprop, guidedgradcam: colours or the magnitude (default rgb)
 *   --batch-size <n>            smoothgrad, integratedgradients: inputs per forward-and-backward pass
 *                               (cli.ts owns the flag; its other users are scorecam and --metrics)
 */
import { getMethod } from './engine/cam/registry';
import type { MapDetails, MethodParam } from './engine/cam/base';
import type { Values } from './cliArgs';

/** parseArgs definitions of the flags (cli.ts OPTIONS). */
export const PIXEL_OPTIONS = {
  samples: { type: 'string' },
  noise: { type: 'string' },
  steps: { type: 'string' },
  baseline: { type: 'string' },
  render: { type: 'string' },
} as const;

export const PIXEL_OPTION_NAMES = Object.keys(PIXEL_OPTIONS) as (keyof typeof PIXEL_OPTIONS)[];

/** The methods each flag applies to; the flag's name is the method's param id. */
const USERS: Record<keyof typeof PIXEL_OPTIONS, string[]> = {
  samples: ['smoothgrad'],
  noise: ['smoothgrad'],
  steps: ['integratedgradients'],
  baseline: ['integratedgradients'],
  render: ['guidedbackprop', 'guidedgradcam'],
};

/** Methods whose --batch-size sets their own batches (inputs per forward-and-backward pass). */
export const PIXEL_BATCHED = ['smoothgrad', 'integratedgradients'];

/** The usage lines of `--help`. */
export const PIXEL_USAGE = `pixel saliency options (cam --method guidedbackprop | guidedgradcam | gradient | smoothgrad | integratedgradients):
  --samples <n>                  smoothgrad: noisy copies averaged, 1..1000 (default 25)
  --noise <0..1>                 smoothgrad: noise sigma as a fraction of the input's range (default 0.15)
  --steps <n>                    integratedgradients: steps from the baseline, 8..512 (default 64)
  --baseline black|blurred       integratedgradients: a black image or the image blurred (default black)
  --render rgb|magnitude         guidedbackprop, guidedgradcam: colours or the magnitude (default rgb)
  --batch-size <n>               smoothgrad, integratedgradients: inputs per forward-and-backward pass
                                 (default: as many as fit in about 384 MB, at most 32)
  The map is at the model input's size; --png paints a signed map (gradient, smoothgrad, integratedgradients)
  with a diverging colormap (blue negative, red positive) and an RGB one as its colours (--opacity 1: alone).`;

function param(methodId: string, id: string): MethodParam | undefined {
  return getMethod(methodId).params?.find((p) => p.id === id);
}

/** A number flag against its MethodParam's range; `fail` throws the usage error. */
function numberValue(flag: string, raw: string, p: MethodParam, fail: (msg: string) => never): number {
  const integer = p.step === 1;
  const range = `${p.min ?? '-inf'} to ${p.max ?? 'inf'}`;
  const what = `--${flag} must be ${integer ? 'an integer' : 'a number'} from ${range}, got "${raw}"`;
  const ok = integer ? /^\s*\+?\d+\s*$/.test(raw) : /^\s*\+?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(raw);
  const n = Number(raw);
  if (!ok || !Number.isFinite(n) || (p.min !== undefined && n < p.min) || (p.max !== undefined && n > p.max)) fail(what);
  return n;
}

/**
 * The engine options of --samples, --noise, --steps, --baseline, --render (and --batch-size for the batched
 * pixel methods) for `methodId`; undefined where none is given. A flag of another method is a usage error.
 */
export function pixelMethodOptions(methodId: string, v: Values, fail: (msg: string) => never): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const flag of PIXEL_OPTION_NAMES) {
    const raw = v[flag];
    if (raw === undefined) continue;
    if (!USERS[flag].includes(methodId)) fail(`--${flag} applies to --method ${USERS[flag].join(' and ')} only`);
    const p = param(methodId, flag);
    if (!p) fail(`--${flag} is not an option of ${methodId}`);
    const s = String(raw);
    if (p.kind === 'number') {
      out[flag] = numberValue(flag, s, p, fail);
    } else {
      const choices = (p.choices ?? []).map((c) => c.value);
      const value = s.trim().toLowerCase();
      if (!choices.includes(value)) fail(`--${flag} must be ${choices.join(' or ')}, got "${s}"`);
      out[flag] = value;
    }
  }
  const batch = v['batch-size'];
  if (batch !== undefined && PIXEL_BATCHED.includes(methodId)) {
    const p = param(methodId, 'batchSize');
    if (p) out.batchSize = numberValue('batch-size', String(batch), { ...p, min: 1 }, fail);
  }
  return Object.keys(out).length ? out : undefined;
}

const round6 = (x: number): number => (Number.isFinite(x) ? Number(x.toPrecision(6)) : 0);

/** `details` fields of a pixel map for `cam --json` (samples, noise, steps, baseline, render, batches, completeness). */
export function pixelDetailsJson(d: MapDetails): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['samples', 'noise', 'steps', 'baseline', 'render', 'batchSize', 'passes'] as const) if (d[k] !== undefined) out[k] = d[k];
  const c = d.completeness;
  if (c) {
    out.completeness = {
      attributionSum: round6(c.attributionSum), inputScore: round6(c.inputScore), baselineScore: round6(c.baselineScore), gap: round6(c.gap),
      ...(c.relativeGap !== undefined ? { relativeGap: round6(c.relativeGap) } : {}),
    };
  }
  return out;
}

/** `heatmap` fields of a pixel map for `cam --json`: the sign flag and the RGB image (rounded like `values`). */
export function pixelHeatmapJson(h: { signed?: boolean; rgb?: Float32Array }): Record<string, unknown> {
  return { ...(h.signed ? { signed: true } : {}), ...(h.rgb ? { rgb: Array.from(h.rgb, round6) } : {}) };
}

/**
 * The map `--metrics` scores: a signed pixel map by its magnitude |value| (deletion and insertion rank pixels by
 * how much they matter, either way; Average Drop masks the input with it, in [0, 1]); any other map as it is.
 */
export function metricsMap<T extends { values: Float32Array; signed?: boolean }>(h: T): T {
  return h.signed ? { ...h, values: h.values.map(Math.abs) } : h;
}
