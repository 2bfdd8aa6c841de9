/** The CAM methods by id, in picker order. */
import { CamLensError } from '../errors';
import { CAM_OPTIONS, type CamMethod, type MethodParam } from './base';
import { cam } from './cam';
import { gradcam } from './gradcam';
import { gradcamPlusPlus } from './gradcamPlusPlus';
import { xgradcam } from './xgradcam';
import { hirescam } from './hirescam';
import { layercam } from './layercam';
import { scorecam } from './scorecam';
import { eigencam } from './eigencam';
import { ablationcam } from './ablationcam';
import { eigengradcam } from './eigengradcam';
import { gradcamElementwise } from './gradcamElementwise';
import { guidedBackprop } from '../saliency/guidedBackprop';
import { guidedGradcam } from '../saliency/guidedGradcam';
import { gradient } from '../saliency/gradient';
import { smoothGrad } from '../saliency/smoothGrad';
import { integratedGradients } from '../saliency/integratedGradients';

export const METHODS: readonly CamMethod[] = [cam, gradcam, gradcamPlusPlus, xgradcam, hirescam, gradcamElementwise, layercam, scorecam, ablationcam, eigencam, eigengradcam,
  // Pixel-level saliency (group 'pixel'), at the model input's resolution.
  guidedBackprop, guidedGradcam, gradient, smoothGrad, integratedGradients];

export const METHOD_IDS: readonly string[] = METHODS.map((m) => m.id);

export function getMethod(id: string): CamMethod {
  const m = METHODS.find((x) => x.id === id.toLowerCase());
  if (!m) throw new CamLensError('UNKNOWN_METHOD', `unknown method "${id}": expected one of ${METHOD_IDS.join(', ')}`);
  return m;
}

/**
 * What the panel's Options area offers for a method: its own params, then for a 'cam' method CAM_OPTIONS
 * (eigenSmooth only where the method has weighted activations to smooth: not Eigen-CAM, Eigen-Grad-CAM).
 */
export function methodParams(m: CamMethod): MethodParam[] {
  const common = m.group === 'cam' ? CAM_OPTIONS.filter((p) => p.id !== 'eigenSmooth' || m.weightedActivations) : [];
  return [...(m.params ?? []), ...common];
}
