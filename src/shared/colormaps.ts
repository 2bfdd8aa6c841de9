/**
 * Colormaps for heatmaps, shared by the host (PNG export, CLI `--png`) and the webview (live overlay), so both
 * paint a map with exactly the same colours. Pure: imports nothing.
 *
 * Each map is a 256-entry RGB lookup table (LUT). Value v in [0,1] picks entry round(v * 255), which is how
 * matplotlib's ListedColormap(N=256) and OpenCV's applyColorMap quantise, so an exported overlay matches what a
 * user sees in a notebook to within one 8-bit level.
 *
 * How the tables were made: `jet` and `gray` are defined by formulas (below). `turbo`, `viridis` and `inferno`
 * are published as 256-entry tables; we sampled those at the anchor positions listed here, chosen greedily so that
 * linear interpolation between consecutive anchors stays within one 8-bit level of the published table at every
 * one of the 256 entries (checked offline when the anchors were chosen). Interpolation is in sRGB, as the
 * published tables are themselves sampled in sRGB.
 */

export type ColormapName = 'turbo' | 'jet' | 'viridis' | 'inferno' | 'gray';

/** Every colormap, in the order the UI lists them; `turbo` (the default setting) first. */
export const COLORMAPS: readonly ColormapName[] = ['turbo', 'jet', 'viridis', 'inferno', 'gray'];

export function isColormapName(x: unknown): x is ColormapName {
  return typeof x === 'string' && (COLORMAPS as readonly string[]).includes(x);
}

/**
 * Anchor colours as [LUT index 0..255, 0xRRGGBB]. The first anchor is at 0 and the last at 255; entries in between
 * are linearly interpolated per channel.
 */
type Anchors = ReadonlyArray<readonly [number, number]>;

// Turbo (Mikhailov 2019): dark blue -> blue -> cyan -> green -> yellow -> orange -> red -> dark red.
const TURBO: Anchors = [
  [0, 0x30123b], [7, 0x38276d], [14, 0x3f3b97], [19, 0x4249b1], [26, 0x455ccf], [32, 0x466be3], [37, 0x4778f0],
  [42, 0x4685fa], [46, 0x448ffe], [52, 0x3d9efe], [58, 0x33adf7], [66, 0x25c0e7], [74, 0x1ad2d2], [80, 0x18ddc2],
  [85, 0x1ae4b6], [90, 0x22ebaa], [98, 0x38f491], [110, 0x65fd69], [117, 0x80ff53], [124, 0x99fe42],
  [131, 0xacfb38], [138, 0xbef434], [148, 0xd7e535], [158, 0xebd339], [167, 0xf7c13a], [175, 0xfdae35],
  [185, 0xfe932a], [196, 0xf8721c], [206, 0xed5510], [215, 0xe14109], [226, 0xcc2b04], [238, 0xaf1801],
  [248, 0x920b01], [255, 0x7a0403],
];

// Viridis (van der Walt and Smith 2015): dark purple -> blue -> teal -> green -> yellow. Lightness increases
// monotonically, so it reads correctly in grayscale and for colour-blind users.
const VIRIDIS: Anchors = [
  [0, 0x440154], [15, 0x481769], [30, 0x472a7a], [46, 0x433e85], [64, 0x3b528b], [92, 0x2e6f8e], [120, 0x23898e],
  [137, 0x1f998a], [147, 0x1fa287], [159, 0x27ad81], [170, 0x35b779], [182, 0x4ac16d], [193, 0x60ca60],
  [208, 0x84d44b], [227, 0xb5de2b], [237, 0xd0e11c], [243, 0xdfe318], [248, 0xece51b], [253, 0xf8e621],
  [255, 0xfde725],
];

// Inferno (van der Walt and Smith 2015): black -> purple -> red -> orange -> pale yellow; monotonic lightness.
const INFERNO: Anchors = [
  [0, 0x000004], [3, 0x010108], [12, 0x07051b], [22, 0x120a32], [31, 0x1f0c48], [40, 0x2f0a5b], [50, 0x400a67],
  [61, 0x520e6d], [77, 0x6c186e], [91, 0x82206c], [111, 0xa22b62], [130, 0xbf3952], [146, 0xd44842],
  [163, 0xe75e2e], [178, 0xf3761b], [193, 0xfa9008], [199, 0xfb9b06], [204, 0xfca50a], [213, 0xfbb61a],
  [225, 0xf8cd37], [233, 0xf4dd4f], [241, 0xf1ec6d], [249, 0xf4f88e], [255, 0xfcffa4],
];

function lutFromAnchors(anchors: Anchors): Uint8ClampedArray {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let s = 0; s + 1 < anchors.length; s++) {
    const [i0, c0] = anchors[s];
    const [i1, c1] = anchors[s + 1];
    for (let i = i0; i <= i1; i++) {
      const t = (i - i0) / (i1 - i0);
      for (let k = 0; k < 3; k++) {
        const shift = 16 - 8 * k;
        const a = (c0 >> shift) & 0xff;
        const b = (c1 >> shift) & 0xff;
        lut[3 * i + k] = Math.round(a + (b - a) * t);
      }
    }
  }
  return lut;
}

/**
 * MATLAB's classic `jet`: each channel is a trapezoid of slope 4 centred a quarter apart,
 *   r = clamp(1.5 - |4v - 3|), g = clamp(1.5 - |4v - 2|), b = clamp(1.5 - |4v - 1|),
 * giving dark blue (0,0,0.5) -> blue -> cyan -> yellow -> red -> dark red (0.5,0,0).
 */
function jetLut(): Uint8ClampedArray {
  const lut = new Uint8ClampedArray(256 * 3);
  const ch = (v: number, centre: number) => Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - centre)));
  for (let i = 0; i < 256; i++) {
    const v = i / 255;
    lut[3 * i] = Math.round(255 * ch(v, 3));
    lut[3 * i + 1] = Math.round(255 * ch(v, 2));
    lut[3 * i + 2] = Math.round(255 * ch(v, 1));
  }
  return lut;
}

function grayLut(): Uint8ClampedArray {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) lut[3 * i] = lut[3 * i + 1] = lut[3 * i + 2] = i;
  return lut;
}

const cache = new Map<ColormapName, Uint8ClampedArray>();

/**
 * The 256-entry RGB table of a colormap (768 bytes, entry i at [3i, 3i+1, 3i+2]). Built once and cached: the
 * returned array is shared, so treat it as read-only.
 */
export function colormapLut(name: ColormapName): Uint8ClampedArray {
  let lut = cache.get(name);
  if (lut) return lut;
  switch (name) {
    case 'turbo': lut = lutFromAnchors(TURBO); break;
    case 'viridis': lut = lutFromAnchors(VIRIDIS); break;
    case 'inferno': lut = lutFromAnchors(INFERNO); break;
    case 'jet': lut = jetLut(); break;
    case 'gray': lut = grayLut(); break;
    default: {
      // Names arrive from settings and webview state; a typo must say what would have been accepted.
      const bad: never = name;
      throw new RangeError(`Unknown colormap "${String(bad)}"; expected one of: ${COLORMAPS.join(', ')}`);
    }
  }
  cache.set(name, lut);
  return lut;
}

/**
 * LUT index of a value: clamped to [0,1], then round(v * 255). NaN maps to 0 (the "cold" end), so a corrupt
 * value never paints as the hottest colour; +Infinity clamps to 255 and -Infinity to 0.
 */
export function colormapIndex(v: number): number {
  if (!(v > 0)) return 0; // also catches NaN
  if (v >= 1) return 255;
  return Math.round(v * 255);
}

/**
 * Colours `values` (expected in [0,1]) into RGBA pixels, alpha 255. Writes into `out` when given (it must hold
 * at least 4 * values.length bytes, e.g. an ImageData's data) and returns it; otherwise allocates.
 */
export function applyColormap(
  values: ArrayLike<number>,
  name: ColormapName,
  out?: Uint8ClampedArray,
): Uint8ClampedArray {
  const n = values.length;
  const rgba = out ?? new Uint8ClampedArray(4 * n);
  if (rgba.length < 4 * n) {
    throw new RangeError(`applyColormap: output holds ${rgba.length} bytes but ${n} values need ${4 * n}`);
  }
  const lut = colormapLut(name);
  for (let i = 0, o = 0; i < n; i++, o += 4) {
    const j = 3 * colormapIndex(values[i]);
    rgba[o] = lut[j];
    rgba[o + 1] = lut[j + 1];
    rgba[o + 2] = lut[j + 2];
    rgba[o + 3] = 255;
  }
  return rgba;
}

// ---------------------------------------------------------------------------------------------------------
// Signed maps (pixel saliency with a sign: gradients, Integrated Gradients)

/**
 * The diverging colormap of signed maps, values in [-1, 1]: blue for negative attribution, a near-white neutral
 * at 0, red for positive (ColorBrewer's RdBu end and middle colours, interpolated in sRGB). Not in COLORMAPS:
 * the user's colormap colours magnitudes; a sign needs a map whose middle means "nothing", whatever was chosen.
 */
const DIVERGING: Anchors = [
  [0, 0x0571b0], [64, 0x92c5de], [127, 0xf7f7f7], [128, 0xf7f7f7], [191, 0xf4a582], [255, 0xca0020],
];

let divergingTable: Uint8ClampedArray | undefined;

/** The diverging table (256 RGB entries; 127 and 128 are the neutral colour). Shared: treat as read-only. */
export function divergingLut(): Uint8ClampedArray {
  divergingTable ??= lutFromAnchors(DIVERGING);
  return divergingTable;
}

/**
 * Table index of a signed value: exactly the neutral entry at 0 (127), the negative half 0..127 for [-1, 0] and
 * the positive half 128..255 for (0, 1]; clamped outside [-1, 1]; NaN is neutral (no attribution).
 */
export function divergingIndex(v: number): number {
  if (Number.isNaN(v) || v === 0) return 127;
  if (v <= -1) return 0;
  if (v >= 1) return 255;
  return v < 0 ? Math.round(127 + 127 * v) : Math.round(128 + 127 * v);
}

/** Colours signed `values` (in [-1, 1]) into RGBA pixels, alpha 255, like applyColormap. */
export function applyDiverging(values: ArrayLike<number>, out?: Uint8ClampedArray): Uint8ClampedArray {
  const n = values.length;
  const rgba = out ?? new Uint8ClampedArray(4 * n);
  if (rgba.length < 4 * n) throw new RangeError(`applyDiverging: output holds ${rgba.length} bytes but ${n} values need ${4 * n}`);
  const lut = divergingLut();
  for (let i = 0, o = 0; i < n; i++, o += 4) {
    const j = 3 * divergingIndex(values[i]);
    rgba[o] = lut[j];
    rgba[o + 1] = lut[j + 1];
    rgba[o + 2] = lut[j + 2];
    rgba[o + 3] = 255;
  }
  return rgba;
}
