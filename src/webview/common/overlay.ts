/**
 * Heatmap overlay geometry and colouring for the explain panel. Pure (no DOM), so it is tested in plain Node.
 *
 * The panel shows the image in an <img> and the heatmap in a canvas exactly on top of it. The canvas holds the
 * coloured map with a uniform alpha equal to the opacity, so the browser's source-over compositing yields
 *     shown = (1 - opacity) * image + opacity * colormap(heat),
 * the same blend as the exported PNG (engine/overlay.ts, pytorch-grad-cam's show_cam_on_image). The image itself
 * is never drawn into the canvas: a webview resource is cross-origin to the page, would taint the canvas, and
 * the pixel read-back the tests (and future features) rely on would throw.
 *
 * Upsampling and hit-testing use shared/heatmap.ts, so the value read under the pointer is the value painted there;
 * colours use shared/colormaps.ts, so the panel and the PNG export paint identical colours.
 */
import { colormapIndex, colormapLut, divergingIndex, divergingLut, type ColormapName } from '../../shared/colormaps';
import { heatAt } from '../../shared/heatmap';

/** The map as the host sends it (protocol HeatmapPayload). */
export interface HeatmapView {
  width: number;
  height: number;
  values: Float32Array;
  rawMin: number;
  rawMax: number;
  /** Values in [-1, 1] with a sign (pixel saliency): painted with the diverging colormap, 0 neutral. */
  signed?: boolean;
  /** An RGB image (guided backpropagation), width * height * 3 values in [0, 1]: painted as its own colours. */
  rgb?: Float32Array;
}

/**
 * Device-pixel size of the overlay canvas for a stage shown at `cssW` x `cssH` CSS pixels: the displayed size
 * times the device pixel ratio (sharp on HiDPI screens), scaled down uniformly when it would exceed `maxPixels`
 * (a 4K window at 2x must not allocate a 130 MB buffer for a 7x7 map). At least 1x1.
 */
export function overlayCanvasSize(cssW: number, cssH: number, dpr: number, maxPixels = 4_000_000): { width: number; height: number } {
  const ratio = dpr > 0 && Number.isFinite(dpr) ? dpr : 1;
  let w = Math.max(1, Math.round(cssW * ratio));
  let h = Math.max(1, Math.round(cssH * ratio));
  if (w * h > maxPixels) {
    const s = Math.sqrt(maxPixels / (w * h));
    w = Math.max(1, Math.floor(w * s));
    h = Math.max(1, Math.floor(h * s));
  }
  return { width: w, height: h };
}

/** Opacity in [0,1] as the 8-bit alpha of the overlay; out-of-range and NaN clamp (NaN to 0). */
export function opacityToAlpha(opacity: number): number {
  if (!(opacity > 0)) return 0;
  if (opacity >= 1) return 255;
  return Math.round(opacity * 255);
}

/**
 * Colours an (already upsampled) map into RGBA with uniform alpha `opacityToAlpha(opacity)`. Values are expected
 * in [0,1]; they are quantised like shared/colormaps (NaN paints the cold end). Writes into `out` when given
 * (an ImageData's data, at least 4 * values.length bytes) and returns it.
 */
export function paintOverlay(
  values: ArrayLike<number>,
  colormap: ColormapName,
  opacity: number,
  out?: Uint8ClampedArray,
): Uint8ClampedArray {
  const n = values.length;
  const rgba = out ?? new Uint8ClampedArray(4 * n);
  if (rgba.length < 4 * n) throw new RangeError(`paintOverlay: output holds ${rgba.length} bytes, ${n} values need ${4 * n}`);
  const lut = colormapLut(colormap);
  const alpha = opacityToAlpha(opacity);
  for (let i = 0, o = 0; i < n; i++, o += 4) {
    const j = 3 * colormapIndex(values[i]);
    rgba[o] = lut[j];
    rgba[o + 1] = lut[j + 1];
    rgba[o + 2] = lut[j + 2];
    rgba[o + 3] = alpha;
  }
  return rgba;
}

/** As paintOverlay, for a signed map (values in [-1, 1]): the diverging colormap, neutral exactly at 0. */
export function paintSigned(values: ArrayLike<number>, opacity: number, out?: Uint8ClampedArray): Uint8ClampedArray {
  const n = values.length;
  const rgba = out ?? new Uint8ClampedArray(4 * n);
  if (rgba.length < 4 * n) throw new RangeError(`paintSigned: output holds ${rgba.length} bytes, ${n} values need ${4 * n}`);
  const lut = divergingLut();
  const alpha = opacityToAlpha(opacity);
  for (let i = 0, o = 0; i < n; i++, o += 4) {
    const j = 3 * divergingIndex(values[i]);
    rgba[o] = lut[j];
    rgba[o + 1] = lut[j + 1];
    rgba[o + 2] = lut[j + 2];
    rgba[o + 3] = alpha;
  }
  return rgba;
}

/**
 * As paintOverlay, for an RGB map (guided backpropagation): `rgb` holds 3 values in [0, 1] per pixel, painted
 * as round(255 * v) (NaN as 0), with the uniform alpha of the opacity.
 */
export function paintRgb(rgb: ArrayLike<number>, opacity: number, out?: Uint8ClampedArray): Uint8ClampedArray {
  const n = Math.floor(rgb.length / 3);
  const rgba = out ?? new Uint8ClampedArray(4 * n);
  if (rgba.length < 4 * n) throw new RangeError(`paintRgb: output holds ${rgba.length} bytes, ${n} pixels need ${4 * n}`);
  const alpha = opacityToAlpha(opacity);
  const byte = (v: number) => (v > 0 ? (v >= 1 ? 255 : Math.round(v * 255)) : 0);
  for (let i = 0, j = 0, o = 0; i < n; i++, j += 3, o += 4) {
    rgba[o] = byte(rgb[j]);
    rgba[o + 1] = byte(rgb[j + 1]);
    rgba[o + 2] = byte(rgb[j + 2]);
    rgba[o + 3] = alpha;
  }
  return rgba;
}

/**
 * The image pixel under a point of the displayed image: (`offsetX`, `offsetY`) in CSS pixels from the displayed
 * image's top-left corner, which is `displayW` x `displayH` CSS pixels showing an `imageW` x `imageH` image.
 * Undefined outside the image (the pointer on the border, or a zero-sized display).
 */
export function imagePixelAt(
  offsetX: number,
  offsetY: number,
  displayW: number,
  displayH: number,
  imageW: number,
  imageH: number,
): { x: number; y: number } | undefined {
  if (!(displayW > 0 && displayH > 0 && imageW > 0 && imageH > 0)) return undefined;
  const fx = (offsetX / displayW) * imageW;
  const fy = (offsetY / displayH) * imageH;
  if (!(fx >= 0 && fy >= 0 && fx < imageW && fy < imageH)) return undefined;
  return { x: Math.min(imageW - 1, Math.floor(fx)), y: Math.min(imageH - 1, Math.floor(fy)) };
}

/**
 * The heat value (normalised, [0,1]) at image pixel (x, y): heatAt at the pixel's integer coordinates, which is
 * exactly the value the PNG export paints at that pixel (upsampleBilinear to the image's own size).
 */
export function heatAtPixel(map: HeatmapView, x: number, y: number, imageW: number, imageH: number): number {
  return heatAt(map.values, map.width, map.height, x, y, imageW, imageH);
}

/** Pre-normalisation value of a normalised heat value (the map was min-max normalised from [rawMin, rawMax]). */
export function rawHeat(map: HeatmapView, v: number): number {
  return map.rawMin + v * (map.rawMax - map.rawMin);
}

function formatRaw(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toPrecision(3);
}

/** Readout text: "x 12, y 34 · heat 0.82 (raw 3.10e-5)"; without a map just the position. */
export function formatReadout(x: number, y: number, map?: HeatmapView, heat?: number): string {
  const pos = `x ${x}, y ${y}`;
  if (!map || heat === undefined || !Number.isFinite(heat)) return pos;
  // A signed map's value is the attribution itself, scaled to [-1, 1]: its sign is the point.
  if (map.signed) return `${pos} · attribution ${heat >= 0 ? '+' : ''}${heat.toFixed(2)}`;
  return `${pos} · heat ${heat.toFixed(2)} (raw ${formatRaw(rawHeat(map, heat))})`;
}
