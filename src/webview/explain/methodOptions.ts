/**
 * The explain panel's method family and options (issue #15 item 6). Pure (no DOM): which kind a method is,
 * whether it reads a layer, and the option values a request carries, checked against what the method declares.
 *
 * Where values live (ExplainViewState, persisted):
 *  - `methodOptions[method][param]`: a method's own parameters (SmoothGrad's noise, Integrated Gradients' steps);
 *  - `camOptions[param]`: the options every CAM method takes (MethodParam.common: augSmooth, eigenSmooth), one
 *    value for all of them, so switching from Grad-CAM to Grad-CAM++ keeps the smoothing the user chose.
 * Only values that differ from the default are stored and sent: the engine's defaults (and the host's settings,
 * such as camLens.scoreCam.channels) apply to everything the user did not touch.
 */
import type { ExplainViewState, MethodInfo, MethodParam, OptionValue } from '../../shared/protocol';

export type MethodGroup = 'cam' | 'pixel';

export const GROUP_LABELS: Record<MethodGroup, string> = { cam: 'Class activation maps', pixel: 'Pixel saliency' };

export function methodGroup(m: MethodInfo | undefined): MethodGroup {
  return m?.group === 'pixel' ? 'pixel' : 'cam';
}

/** The method reads a target layer (absent usesLayer: yes). */
export function usesLayer(m: MethodInfo | undefined): boolean {
  return m?.usesLayer !== false;
}

/** Several layers can be averaged: CAM methods only (a pixel map lives at the input, not at a layer). */
export function allowsSeveralLayers(m: MethodInfo | undefined): boolean {
  return methodGroup(m) === 'cam' && usesLayer(m);
}

/**
 * `value` made valid for `param`, or undefined where it cannot be: a number clamped to [min, max] (and NaN
 * refused), a choice among the choices, a boolean as such.
 */
export function coerceOption(param: MethodParam, value: unknown): OptionValue | undefined {
  switch (param.kind) {
    case 'number': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) return undefined;
      let v = n;
      if (param.min !== undefined) v = Math.max(param.min, v);
      if (param.max !== undefined) v = Math.min(param.max, v);
      return v;
    }
    case 'choice':
      return typeof value === 'string' && (param.choices ?? []).some((c) => c.value === value) ? value : undefined;
    case 'boolean':
      return typeof value === 'boolean' ? value : undefined;
    default:
      return undefined;
  }
}

/** The stored value of `param` for `method` (valid for it), else its default. */
export function optionValue(state: ExplainViewState, method: string, param: MethodParam): OptionValue {
  const stored = param.common ? state.camOptions?.[param.id] : state.methodOptions?.[method]?.[param.id];
  return stored === undefined ? param.default : coerceOption(param, stored) ?? param.default;
}

/**
 * Stores `value` for `param` of `method` (the default is stored as nothing); returns the new state. The value is
 * coerced first; one that cannot be is refused (state unchanged).
 */
export function setOption(state: ExplainViewState, method: string, param: MethodParam, value: unknown): ExplainViewState {
  const v = coerceOption(param, value);
  if (v === undefined) return state;
  const isDefault = v === param.default;
  if (param.common) {
    const camOptions = { ...state.camOptions };
    if (isDefault) delete camOptions[param.id];
    else camOptions[param.id] = v;
    const { camOptions: _drop, ...rest } = state;
    void _drop;
    return Object.keys(camOptions).length ? { ...rest, camOptions } : rest;
  }
  const mine = { ...state.methodOptions?.[method] };
  if (isDefault) delete mine[param.id];
  else mine[param.id] = v;
  const methodOptions = { ...state.methodOptions };
  if (Object.keys(mine).length) methodOptions[method] = mine;
  else delete methodOptions[method];
  const { methodOptions: _drop, ...rest } = state;
  void _drop;
  return Object.keys(methodOptions).length ? { ...rest, methodOptions } : rest;
}

/** Every option of `m` back to its default: its own values, and for a CAM method the common ones. */
export function resetOptions(state: ExplainViewState, m: MethodInfo): ExplainViewState {
  let out = state;
  for (const p of m.params ?? []) {
    if (p.common && methodGroup(m) !== 'cam') continue;
    out = setOption(out, m.id, p, p.default);
  }
  return out;
}

/** The options `cam/compute` carries for `method`: the values that differ from their defaults, by parameter id. */
export function requestOptions(state: ExplainViewState, m: MethodInfo | undefined): Record<string, OptionValue> | undefined {
  if (!m?.params?.length) return undefined;
  const out: Record<string, OptionValue> = {};
  for (const p of m.params) {
    if (p.common && methodGroup(m) !== 'cam') continue;
    const v = optionValue(state, m.id, p);
    if (v !== p.default) out[p.id] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

/** How a value reads in the Options summary: "50", "on", "blurred". */
export function formatOption(param: MethodParam, v: OptionValue): string {
  if (param.kind === 'boolean') return v ? 'on' : 'off';
  if (param.kind === 'choice') return param.choices?.find((c) => c.value === v)?.label ?? String(v);
  return typeof v === 'number' ? String(Number(v.toPrecision(6))) : String(v);
}

/** The Options summary: "defaults", or what differs: "samples 50, noise 0.2". */
export function optionsSummary(state: ExplainViewState, m: MethodInfo | undefined): string {
  const changed = (m?.params ?? [])
    .map((p) => ({ p, v: optionValue(state, m?.id ?? '', p) }))
    .filter(({ p, v }) => v !== p.default)
    .map(({ p, v }) => `${p.label.toLowerCase()} ${formatOption(p, v)}`);
  return changed.length ? changed.join(', ') : 'defaults';
}

/** The target layers a request names: two or more when several are averaged, else the one layer. */
export function requestLayers(state: ExplainViewState, m: MethodInfo | undefined): { layer?: string; layers?: string[] } {
  if (!usesLayer(m)) return {};
  const several = state.layers && state.layers.length >= 2 && allowsSeveralLayers(m) ? state.layers : undefined;
  return several ? { layer: several[0], layers: [...several] } : { layer: state.layer };
}
