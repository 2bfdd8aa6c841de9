/**
 * The explain panel's persisted UI state (protocol ExplainViewState, version 1). Pure (no DOM).
 *
 * Two copies exist: the webview's own (`acquireVsCodeApi().getState()`, survives the panel being hidden and shown
 * again, since retainContextWhenHidden is off) and the host's (sent in `panel/didInit`; the host keeps the last
 * `state/didChange` for its panel serializer, so it survives a window reload). On `panel/didInit` they are merged
 * by `reconcileViewState`, then checked against what the model actually offers, because a state saved yesterday
 * may name a layer or class the current model does not have.
 */
import { COLORMAPS } from '../../shared/colormaps';
import type { CamMethodId, ExplainViewState, MethodInfo, ModelInfo } from '../../shared/protocol';
import { isExplainViewState } from '../../shared/protocol';

/** Method used when the saved one is unavailable for this model: Grad-CAM works on nearly every CNN. */
const FALLBACK_METHOD: CamMethodId = 'gradcam';

/** Same model file and same output: class indices and layers name things inside one output's classifier. */
function sameModel(a: ExplainViewState, b: ExplainViewState): boolean {
  return (a.modelPath ?? '') === (b.modelPath ?? '') && (a.output ?? '') === (b.output ?? '');
}

/**
 * The method to use: `wanted` when the model can run it, else Grad-CAM, else the first available gradient
 * method, else the first available one, in the order the host lists them (the engine registry's).
 */
export function pickMethod(wanted: CamMethodId, methods: readonly MethodInfo[]): CamMethodId {
  const ok = (id: CamMethodId) => methods.some((m) => m.id === id && m.available);
  if (ok(wanted)) return wanted;
  if (ok(FALLBACK_METHOD)) return FALLBACK_METHOD;
  const next = methods.find((m) => m.available && m.needsGradients) ?? methods.find((m) => m.available);
  if (next) return next.id;
  // Nothing available (no spatial layer): keep the choice; the host's error explains why nothing can run.
  return wanted;
}

/**
 * The state to start from after `panel/didInit`.
 *  - The host's state is authoritative for which image and which model (it may have just changed the model).
 *  - The webview's saved state, when it is about the same image, is newer for everything the user chose here:
 *    display settings and method always; class, layer and preprocessing only if the model is the same too,
 *    because those name things inside one particular model.
 *  - The result is clamped to the model: a layer it lacks becomes the recommended one, a class index beyond its
 *    labels is dropped (= explain the top-1 class), an unavailable method is replaced.
 */
export function reconcileViewState(
  host: ExplainViewState,
  saved: unknown,
  model: ModelInfo,
  methods: readonly MethodInfo[],
): ExplainViewState {
  let s: ExplainViewState = { ...host };
  if (isExplainViewState(saved) && saved.imagePath === host.imagePath) {
    // Method options are about the method, not the model: they are kept across models, like the display.
    s = { ...s, method: saved.method, opacity: saved.opacity, colormap: saved.colormap, overlay: saved.overlay, methodOptions: saved.methodOptions, camOptions: saved.camOptions };
    if (sameModel(saved, host)) s = { ...s, classIndex: saved.classIndex, layer: saved.layer, layers: saved.layers, preprocess: saved.preprocess };
  }
  return clampToModel(s, model, methods);
}

/** Makes `s` valid for `model` (see reconcileViewState). */
export function clampToModel(s: ExplainViewState, model: ModelInfo, methods: readonly MethodInfo[]): ExplainViewState {
  const out: ExplainViewState = { ...s, method: pickMethod(s.method, methods) };
  if (out.layer === undefined || !model.spatialLayers.includes(out.layer)) {
    out.layer = model.recommendedLayer ?? model.spatialLayers[model.spatialLayers.length - 1];
  }
  // Several layers averaged: only layers the model has, in its order, and at least two of them.
  const several = out.layers ? model.spatialLayers.filter((l) => out.layers?.includes(l)) : [];
  if (several.length >= 2) {
    // The single layer is the first of them, as a request names it (and as "Several" off leaves it).
    out.layers = several;
    out.layer = several[0];
  } else {
    delete out.layers;
  }
  for (const k of ['methodOptions', 'camOptions'] as const) if (out[k] === undefined) delete out[k];
  if (out.classIndex !== undefined && model.labels.length > 0 && out.classIndex >= model.labels.length) out.classIndex = undefined;
  if (!(COLORMAPS as readonly string[]).includes(out.colormap)) out.colormap = 'turbo';
  if (!(out.opacity >= 0 && out.opacity <= 1)) out.opacity = 0.5;
  return out;
}

/** The preprocessing preset in effect: the user's choice, else the model's. */
export function effectivePreprocess(s: ExplainViewState, model: ModelInfo): ModelInfo['preprocess'] {
  return s.preprocess ?? model.preprocess;
}
