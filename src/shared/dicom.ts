/**
 * DICOM display choices and what the engine reports about a DICOM image: shared by the engine (which applies
 * them), the CLI (`--frame`, `--window`), the worker protocol and the explain panel (frame and window pickers, the
 * line saying which window fed the model). Pure data and guards; no imports.
 *
 * From stored values to model pixels (grayscale): stored value v → Modality LUT r = v * slope + intercept →
 * VOI window onto 0..255 → inverted (255 - y) for MONOCHROME1 → the preprocessing preset, exactly as for an 8-bit
 * image (the presets expect the 0..255 scale). Colour images skip the LUTs: RGB scaled by 255 / (2^bits - 1).
 *
 * Privacy: DicomImageInfo is a whitelist of image attributes; it can never carry a patient-identifying value.
 */

/** Which VOI window turns the (rescaled) values into display and model pixels. */
export type DicomWindowChoice =
  /** The file's own window `index` (0-based, default 0); a file without one: see AppliedWindow `range`/`minmax`. */
  | { kind: 'file'; index?: number }
  /** A window the user set (centre/width fields, a drag on the image, `--window c,w`), applied LINEAR. */
  | { kind: 'custom'; center: number; width: number }
  /** The frame's own minimum to maximum after rescale. */
  | { kind: 'minmax' };

/** The DICOM part of an image request: part of the image-session cache key. */
export interface DicomSelection {
  /** 0-based frame of a multi-frame file (default 0). */
  frame?: number;
  /** Default: the model's `dicom.window` (cam-lens.json), else the file's first window. */
  window?: DicomWindowChoice;
}

export type VoiFunction = 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';

/** The window that was applied, in numbers, and who chose it. */
export interface AppliedWindow {
  /**
   * file: the file's window `index`; custom: the user's; minmax: the frame's value range; range: the stored
   * bits' full range (an 8-bit file without a window: its values are shown as stored).
   */
  kind: 'file' | 'custom' | 'minmax' | 'range';
  center: number;
  width: number;
  function: VoiFunction;
  index?: number;
  /** The file's explanation of window `index` ("LUNG"). */
  name?: string;
  /** Who chose it: the user (panel, CLI), the model's cam-lens.json, or the default. */
  source: 'user' | 'model' | 'default';
}

export interface DicomImageInfo {
  transferSyntax: string;
  transferSyntaxUid: string;
  modality?: string;
  photometric: string;
  rows: number;
  columns: number;
  samplesPerPixel: 1 | 3;
  bitsAllocated: number;
  bitsStored: number;
  signed: boolean;
  frames: number;
  frame: number;
  /** This frame's stored values, min and max (colour: over all samples). */
  storedRange: [number, number];
  /** Modality LUT (RescaleSlope, RescaleIntercept, RescaleType); null where the file has none (identity). */
  rescale: { slope: number; intercept: number; type?: string } | null;
  /** After the Modality LUT. */
  valueRange: [number, number];
  /** The file's windows, in file order. */
  windows: { center: number; width: number; name?: string }[];
  /** The file's VOI LUT Function, used with its own windows. */
  voiFunction: VoiFunction;
  /** The window applied (null for colour images, which are not windowed). */
  window: AppliedWindow | null;
  /** The model's cam-lens.json fixes the window (`dicom.window`): what it says, for the panel. */
  modelWindow?: DicomWindowChoice;
  /** MONOCHROME1: inverted so that higher values are brighter, for display and for the model. */
  inverted: boolean;
  /** How colour became RGB, where it did ("YBR_FULL_422 converted to RGB by the JPEG decoder"). */
  colourNote?: string;
  /** Anything else on the way that a user should know (a lookup table present but not applied, a legacy file). */
  notes: string[];
}

const isFiniteNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

export function isDicomWindowChoice(x: unknown): x is DicomWindowChoice {
  if (typeof x !== 'object' || x === null) return false;
  const m = x as Record<string, unknown>;
  switch (m.kind) {
    case 'file':
      return m.index === undefined || (Number.isInteger(m.index) && (m.index as number) >= 0 && (m.index as number) < 1000);
    case 'custom':
      return isFiniteNum(m.center) && isFiniteNum(m.width) && m.width >= 1 && Math.abs(m.center) < 1e12 && m.width < 1e12;
    case 'minmax':
      return true;
    default:
      return false;
  }
}

export function isDicomSelection(x: unknown): x is DicomSelection {
  if (typeof x !== 'object' || x === null) return false;
  const m = x as Record<string, unknown>;
  return (m.frame === undefined || (Number.isInteger(m.frame) && (m.frame as number) >= 0 && (m.frame as number) < 100_000)) &&
    (m.window === undefined || isDicomWindowChoice(m.window));
}

/**
 * `--window` and cam-lens.json's `dicom.window` in text: "40,400" (centre, width), "file", "file:2" (the file's
 * third window, 1-based as users count) or "minmax". Undefined when it is none of these.
 */
export function parseWindowChoice(s: string): DicomWindowChoice | undefined {
  const t = s.trim().toLowerCase();
  if (t === 'file') return { kind: 'file' };
  if (t === 'minmax' || t === 'min-max') return { kind: 'minmax' };
  const f = /^file:(\d{1,3})$/.exec(t);
  if (f) return Number(f[1]) >= 1 ? { kind: 'file', index: Number(f[1]) - 1 } : undefined;
  const m = /^(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*,\s*(\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/.exec(t);
  if (!m) return undefined;
  const choice = { kind: 'custom' as const, center: Number(m[1]), width: Number(m[2]) };
  return isDicomWindowChoice(choice) ? choice : undefined;
}

/** The choice that gives an applied window again (to render the image the model saw, as it saw it). */
export function appliedAsChoice(w: AppliedWindow): DicomWindowChoice {
  if (w.kind === 'custom') return { kind: 'custom', center: w.center, width: w.width };
  if (w.kind === 'minmax') return { kind: 'minmax' };
  return w.kind === 'file' ? { kind: 'file', index: w.index ?? 0 } : { kind: 'file' };
}

/** A choice as `--window` takes it back. */
export function formatWindowChoice(w: DicomWindowChoice): string {
  if (w.kind === 'custom') return `${w.center},${w.width}`;
  if (w.kind === 'file') return w.index ? `file:${w.index + 1}` : 'file';
  return 'minmax';
}

/** A stable cache key of a selection (the image session's). */
export function dicomSelectionKey(sel: DicomSelection | undefined): string {
  if (!sel) return '';
  return `${sel.frame ?? 0}|${sel.window ? formatWindowChoice(sel.window) : ''}`;
}

const num = (x: number) => String(Number(x.toPrecision(6)));

/** "file window 2 of 2 "LUNG": centre -600, width 1500 (LINEAR)": the line saying which window fed the model. */
export function describeWindow(w: AppliedWindow, fileWindows = 0): string {
  const cw = `centre ${num(w.center)}, width ${num(w.width)}`;
  const by = w.source === 'model' ? ', fixed by the model\'s cam-lens.json' : w.source === 'user' ? ', chosen here' : '';
  switch (w.kind) {
    case 'file':
      return `file window ${(w.index ?? 0) + 1} of ${Math.max(fileWindows, 1)}${w.name ? ` "${w.name}"` : ''}: ${cw} (${w.function}${by})`;
    case 'custom':
      return `custom window: ${cw} (LINEAR${by})`;
    case 'minmax':
      return `min–max of the frame: ${num(w.center - w.width / 2)} to ${num(w.center + w.width / 2)}${by ? ` (${by.slice(2)})` : ''}`;
    case 'range':
      return `the stored range ${num(w.center - w.width / 2)} to ${num(w.center + w.width / 2)} (the file has no window)`;
    default:
      return cw;
  }
}

/**
 * How an image's channels meet the model's, in words, where they differ: a grayscale image is repeated into a
 * 3-channel model's channels, a colour image reaches a 1-channel model as luma (the weights of ITU-R BT.601, as
 * PIL's convert('L') and tf.image.rgb_to_grayscale). Undefined where they match.
 */
export function channelNote(imageChannels: number, modelChannels: number): string | undefined {
  const gray = imageChannels <= 2;
  if (gray && modelChannels === 3) return 'grayscale image: its value repeated into the model\'s 3 channels';
  if (!gray && modelChannels === 1) return 'colour image: turned into the model\'s 1 channel as luma 0.299 R + 0.587 G + 0.114 B';
  return undefined;
}

/** The DICOM part of `cam-lens … --json` and of the panel's JSON export: which frame and window fed the model. */
export function dicomJson(info: DicomImageInfo): Record<string, unknown> {
  return {
    frame: info.frame,
    frames: info.frames,
    transferSyntax: info.transferSyntax,
    photometric: info.photometric,
    bitsStored: info.bitsStored,
    ...(info.modality ? { modality: info.modality } : {}),
    rescale: info.rescale,
    window: info.window,
    fileWindows: info.windows,
    inverted: info.inverted,
    ...(info.colourNote ? { colour: info.colourNote } : {}),
    ...(info.notes.length ? { notes: info.notes } : {}),
  };
}

/** "value x 1 - 1024 (HU)": the Modality LUT as the panel and the CLI write it. */
export function rescaleText(r: { slope: number; intercept: number; type?: string }): string {
  const sign = r.intercept < 0 ? '-' : '+';
  return `value x ${num(r.slope)} ${sign} ${num(Math.abs(r.intercept))}${r.type ? ` (${r.type})` : ''}`;
}

/** One line for the CLI's text output and logs: "frame 1 of 30; rescale …; window …". No patient data. */
export function dicomLine(info: DicomImageInfo): string {
  const parts = [`DICOM ${info.photometric}${info.modality ? ` ${info.modality}` : ''}, ${info.transferSyntax}`];
  if (info.frames > 1) parts.push(`frame ${info.frame} of 0-${info.frames - 1}`);
  if (info.rescale) parts.push(`rescale ${rescaleText(info.rescale)}`);
  if (info.window) parts.push(`window: ${describeWindow(info.window, info.windows.length)}`);
  if (info.inverted) parts.push('MONOCHROME1 inverted');
  if (info.colourNote) parts.push(info.colourNote);
  return parts.join('; ');
}
