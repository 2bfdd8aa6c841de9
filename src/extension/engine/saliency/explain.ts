/**
 * ImageSession.explain for the pixel-level methods (group 'pixel'): the class (the top-1 one by default, from the
 * session's cached forward pass), for Guided Grad-CAM the Grad-CAM map at the target layer (the session's cached
 * activation and gradient there), then the method at the model input's resolution. The result has the same shape
 * as a CAM method's; `layer` is the target layer for Guided Grad-CAM and '' for the methods that read none.
 */
import { runMethod } from '../cam/base';
import { gradcam } from '../cam/gradcam';
import type { ExplainRequest, ExplainResult, ImageSession } from '../session';
import type { PixelContext, PixelMethod } from './pixelMethod';

/** `hadForward`: the session knew the logits before this call. */
export async function explainPixels(session: ImageSession, method: PixelMethod, req: ExplainRequest, hadForward: boolean): Promise<ExplainResult> {
  const t0 = performance.now();
  const op = method.usesLayer === false ? undefined : session.targetOp(req.layer);
  const outputIndex = await session.resolveTarget(req.classChoice);
  const t1 = performance.now();
  let camMap: PixelContext['camMap'];
  if (op) {
    const activation = session.activation(op.name);
    const gradients = session.gradient(op.name, outputIndex);
    camMap = () => runMethod(gradcam, { activation, gradients, classIndex: outputIndex });
  }
  const t2 = performance.now();
  const heatmap = await method.explainPixels({
    model: session.model,
    input: session.input,
    classIndex: outputIndex,
    scoreBatch: (inputs) => session.scoreBatch(inputs, outputIndex),
    camMap,
    options: req.options,
    signal: req.signal,
    onProgress: req.onProgress,
  });
  const t3 = performance.now();
  return {
    method: method.id,
    layer: op?.name ?? '',
    target: await session.predictionFor(outputIndex),
    heatmap,
    timingsMs: { forward: t1 - t0, gradients: t2 - t1, method: t3 - t2, total: t3 - t0 },
    cached: { forward: hadForward, gradients: false },
  };
}
