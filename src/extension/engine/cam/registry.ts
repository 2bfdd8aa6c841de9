/** The CAM methods by id, in picker order. */
import { CamLensError } from '../errors';
import type { CamMethod } from './base';
import { cam } from './cam';
import { gradcam } from './gradcam';
import { gradcamPlusPlus } from './gradcamPlusPlus';
import { xgradcam } from './xgradcam';
import { hirescam } from './hirescam';
import { layercam } from './layercam';
import { scorecam } from './scorecam';
import { eigencam } from './eigencam';

export const METHODS: readonly CamMethod[] = [cam, gradcam, gradcamPlusPlus, xgradcam, hirescam, layercam, scorecam, eigencam];

export const METHOD_IDS: readonly string[] = METHODS.map((m) => m.id);

export function getMethod(id: string): CamMethod {
  const m = METHODS.find((x) => x.id === id.toLowerCase());
  if (!m) throw new CamLensError('UNKNOWN_METHOD', `unknown method "${id}": expected one of ${METHOD_IDS.join(', ')}`);
  return m;
}
