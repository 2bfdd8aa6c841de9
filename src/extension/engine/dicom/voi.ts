/**
 * Grayscale DICOM values to 0..255 pixels: the Modality LUT, then a VOI window (PS3.3 C.11.1 and C.11.2).
 *
 * Modality LUT (linear form):   r = v * RescaleSlope + RescaleIntercept        (e.g. CT: stored value → HU)
 * VOI window (centre c, width w), onto y in [0, 255]:
 *   LINEAR        (C.11.2.1.2.1)  r <= c - 0.5 - (w - 1)/2      → 0
 *                                 r >  c - 0.5 + (w - 1)/2      → 255
 *                                 else ((r - (c - 0.5)) / (w - 1) + 0.5) * 255
 *   LINEAR_EXACT  (C.11.2.1.3.2)  as LINEAR with c and w unchanged (w > 0): r <= c - w/2 → 0, r > c + w/2 → 255
 *   SIGMOID       (C.11.2.1.3.1)  255 / (1 + exp(-4 (r - c) / w))
 * MONOCHROME1 (minimum is white): y → 255 - y, for display and for the model.
 *
 * These are pydicom's `apply_modality_lut` and `apply_windowing` with the output range mapped onto 0..255, so the
 * test compares the two value by value. The two windows that are not the file's are written as LINEAR_EXACT over
 * a range [lo, hi] (c = (lo + hi)/2, w = hi - lo): min–max of the frame, and the stored bits' full range for an
 * 8-bit file without a window (its values shown as stored, as any 8-bit image).
 */
import { CamLensError } from '../errors';
import type { AppliedWindow, DicomWindowChoice, VoiFunction } from '../../../shared/dicom';
import type { DicomHeader } from './parse';

export function valueRange(values: Float32Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return values.length ? [lo, hi] : [0, 0];
}

/** r = v * slope + intercept, in a new array (the stored values stay cached for the next window). */
export function applyRescale(values: Float32Array, rescale: { slope: number; intercept: number } | undefined): Float32Array {
  if (!rescale || (rescale.slope === 1 && rescale.intercept === 0)) return values;
  const out = new Float32Array(values.length);
  const { slope, intercept } = rescale;
  for (let i = 0; i < values.length; i++) out[i] = values[i] * slope + intercept;
  return out;
}

/** The stored bits' full range, after the rescale: what pydicom maps a window's output onto. */
export function storedBitRange(h: DicomHeader): [number, number] {
  let lo = h.signed ? -(2 ** (h.bitsStored - 1)) : 0;
  let hi = h.signed ? 2 ** (h.bitsStored - 1) - 1 : 2 ** h.bitsStored - 1;
  if (h.rescale) {
    const a = lo * h.rescale.slope + h.rescale.intercept;
    const b = hi * h.rescale.slope + h.rescale.intercept;
    [lo, hi] = a <= b ? [a, b] : [b, a];
  }
  return [lo, hi];
}

function rangeWindow(kind: 'minmax' | 'range', [lo, hi]: [number, number], source: AppliedWindow['source']): AppliedWindow {
  // A constant frame: a window of width 1 around it shows it mid-gray instead of dividing by zero.
  const width = hi > lo ? hi - lo : 1;
  return { kind, center: hi > lo ? (lo + hi) / 2 : lo, width, function: 'LINEAR_EXACT', source };
}

/**
 * The window a choice means for this file and frame (`values`: the frame's rescaled value range). A file window
 * that does not exist, or a width the function cannot take, is BAD_ARGUMENT naming what there is.
 */
export function resolveWindow(h: DicomHeader, choice: DicomWindowChoice, range: [number, number], source: AppliedWindow['source'], label: string): AppliedWindow {
  switch (choice.kind) {
    case 'custom':
      if (!(choice.width >= 1) || !Number.isFinite(choice.center)) {
        throw new CamLensError('BAD_ARGUMENT', `A window needs a finite centre and a width of at least 1, got centre ${choice.center}, width ${choice.width}`);
      }
      return { kind: 'custom', center: choice.center, width: choice.width, function: 'LINEAR', source };
    case 'minmax':
      return rangeWindow('minmax', range, source);
    case 'file': {
      const index = choice.index ?? 0;
      if (h.windows.length === 0) {
        if (choice.index !== undefined && choice.index > 0) {
          throw new CamLensError('BAD_ARGUMENT', `"${label}" has no window of its own, so it has no window ${index + 1}`, 'Use a window of your own (centre,width) or minmax.');
        }
        // No window in the file: 8-bit values are display values already; deeper data is stretched min–max.
        return h.bitsStored <= 8 ? rangeWindow('range', storedBitRange(h), source) : rangeWindow('minmax', range, source);
      }
      if (index >= h.windows.length) {
        throw new CamLensError('BAD_ARGUMENT', `"${label}" has ${h.windows.length} window${h.windows.length === 1 ? '' : 's'}; there is no window ${index + 1}`);
      }
      const w = h.windows[index];
      const fn: VoiFunction = h.voiFunction;
      // A width the file's function cannot take (LINEAR needs >= 1, the others > 0) is taken as the smallest it can.
      const width = fn === 'LINEAR' ? Math.max(w.width, 1) : w.width > 0 ? w.width : 1;
      return { kind: 'file', center: w.center, width, function: fn, index, ...(w.name ? { name: w.name } : {}), source };
    }
    default: {
      const never: never = choice;
      throw new CamLensError('BAD_ARGUMENT', `Unknown window ${JSON.stringify(never)}`);
    }
  }
}

/** Rescaled values to 0..255 through the window (and inverted for MONOCHROME1), in a new array. */
export function applyWindow(values: Float32Array, w: AppliedWindow, invert: boolean): Float32Array {
  const out = new Float32Array(values.length);
  const n = values.length;
  if (w.function === 'SIGMOID') {
    for (let i = 0; i < n; i++) out[i] = 255 / (1 + Math.exp((-4 * (values[i] - w.center)) / w.width));
  } else {
    const c = w.function === 'LINEAR' ? w.center - 0.5 : w.center;
    const width = w.function === 'LINEAR' ? w.width - 1 : w.width;
    const below = c - width / 2;
    const above = c + width / 2;
    for (let i = 0; i < n; i++) {
      const r = values[i];
      out[i] = r <= below ? 0 : r > above ? 255 : ((r - c) / width + 0.5) * 255;
    }
  }
  if (invert) for (let i = 0; i < n; i++) out[i] = 255 - out[i];
  return out;
}
