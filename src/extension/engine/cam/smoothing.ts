/**
 * The options every class activation map takes (CAM_OPTIONS in base.ts), as pytorch-grad-cam's:
 *
 * - `eigenSmooth`: the map is the first principal component of the method's weighted activations
 *   (CamMethod.weightedActivations: w_k A^k, or an element-wise product such as dY/dA ∘ A) instead of their sum
 *   over the channels: L = Xc v_1, with X the weighted activations as an (h*w) x K matrix, Xc its channels
 *   centred, v_1 its first right singular vector, oriented to correlate positively with sum_k X_k
 *   (pytorch-grad-cam's get_2d_projection, whose sign is arbitrary; eigencam.ts has the computation). The
 *   component keeps what most channels agree on and drops the rest, hence smoother maps. For a rank-one X
 *   (X = u v^T with the columns of u centred) the map is u up to a positive factor.
 * - `augSmooth`: test-time augmentation, applied by the session around the method (cam/combine.ts).
 *
 * `runCamMethod` is `runMethod` (base.ts) with the eigenSmooth option applied.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../errors';
import { finalizeMap, runMethod, validateContext, type CamContext, type CamMethod, type MapResult } from './base';
import { firstComponentMap } from './eigencam';

export interface CamOptionFlags {
  augSmooth: boolean;
  eigenSmooth: boolean;
}

function flag(options: Record<string, unknown> | undefined, name: string): boolean {
  const v = options?.[name];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new CamLensError('BAD_ARGUMENT', `option ${name} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** The augSmooth and eigenSmooth options of a request, checked against the method. */
export function camOptionFlags(method: CamMethod, options: Record<string, unknown> | undefined): CamOptionFlags {
  const f = { augSmooth: flag(options, 'augSmooth'), eigenSmooth: flag(options, 'eigenSmooth') };
  for (const name of ['augSmooth', 'eigenSmooth'] as const) {
    if (f[name] && method.group !== 'cam') {
      throw new CamLensError('METHOD_NOT_APPLICABLE', `option ${name} applies to class activation maps, not to ${method.label} (pixel saliency)`,
        `turn ${name} off, or use a CAM method`);
    }
  }
  if (f.eigenSmooth && !method.weightedActivations) {
    throw new CamLensError('METHOD_NOT_APPLICABLE',
      `option eigenSmooth does not apply to ${method.label}: its map is not a sum of weighted activations` +
      (/eigen/i.test(method.id) ? ' (it already is their first principal component)' : ''),
      'turn eigenSmooth off, or use a method such as gradcam');
  }
  return f;
}

/** `runMethod` with the eigenSmooth option: the map from the first principal component of the weighted activations. */
export async function runCamMethod(method: CamMethod, ctx: CamContext): Promise<MapResult> {
  if (!camOptionFlags(method, ctx.options).eigenSmooth) return runMethod(method, ctx);
  validateContext(method, ctx);
  const weighted = method.isAsync
    ? await (method.weightedActivations?.(ctx) as Promise<tf.Tensor4D>)
    : tf.tidy(() => method.weightedActivations?.(ctx) as tf.Tensor4D);
  let raw: tf.Tensor2D | undefined;
  try {
    if (weighted.shape.join() !== ctx.activation.shape.join()) {
      throw new CamLensError('BAD_ARGUMENT', `${method.id} returned weighted activations [${weighted.shape.join(', ')}] for an activation [${ctx.activation.shape.join(', ')}]`);
    }
    raw = await firstComponentMap(weighted, true);
    const map = await finalizeMap(raw);
    const note = 'eigen-smoothed (first principal component of the weighted activations)';
    const details = ctx.details ? { ...ctx.details, note: `${ctx.details.note}; ${note}` } : { note };
    return { ...map, details };
  } finally {
    weighted.dispose();
    raw?.dispose();
  }
}
