/**
 * Heatmap rendering to PNG for export and for the CLI's `--png`: the same colours (shared/colormaps) and the same
 * upsampling (shared/heatmap) as the webview's live overlay, so an exported PNG looks like the panel.
 *
 * The overlay is the pytorch-grad-cam `show_cam_on_image` blend, uniform over the image:
 *     out = (1 - opacity) * image + opacity * colormap(heat)
 * with heat upsampled bilinearly (half-pixel centres) from the map's resolution to the image's own resolution.
 */
import sharp from 'sharp';
import { colormapIndex, colormapLut, divergingIndex, divergingLut, isColormapName, type ColormapName } from '../../shared/colormaps';
import { upsampleBilinear } from '../../shared/heatmap';
import { CamLensError } from './errors';
import type { DecodedImage } from './image';

export interface HeatmapLike {
  width: number;
  height: number;
  /** Row-major, expected in [0,1]; clamped, NaN painted as 0. */
  values: Float32Array;
  /** Values in [-1, 1] with a sign (pixel saliency): painted with the diverging colormap, 0 neutral, whatever `colormap`. */
  signed?: boolean;
  /** An RGB image (guided backpropagation), width * height * 3 values in [0, 1]: painted as its colours. */
  rgb?: Float32Array;
}

export interface OverlayOptions {
  colormap?: ColormapName;
  /** Weight of the heatmap colour, 0 (image only) .. 1 (heatmap only). Default 0.5. */
  opacity?: number;
  /** Shrink the result to fit this many pixels on its longer side (a thumbnail); default: the image's size. */
  maxSize?: number;
}

function checkHeat(heat: HeatmapLike): void {
  const { width, height, values } = heat;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new CamLensError('BAD_ARGUMENT', `Heatmap size must be positive integers, got ${width}x${height}`);
  }
  if (!values || values.length !== width * height) {
    throw new CamLensError(
      'BAD_ARGUMENT',
      `Heatmap has ${values?.length ?? 0} values but is declared ${width}x${height} (= ${width * height})`,
    );
  }
}

function checkColormap(name: unknown): ColormapName {
  if (!isColormapName(name)) {
    throw new CamLensError('BAD_ARGUMENT', `Unknown colormap ${JSON.stringify(name)}; expected one of turbo, jet, viridis, inferno, gray`);
  }
  return name;
}

function checkOutputSize(what: string, w: number, h: number): void {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new CamLensError('BAD_ARGUMENT', `${what} must be positive integers, got ${w}x${h}`);
  }
}

async function encodePng(rgb: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/**
 * The map's colours at `width` x `height` (RGB, 3 bytes a pixel), as the webview paints them: a magnitude map
 * with `colormap`, a signed one with the diverging colormap (shared/colormaps.ts), an RGB one (guided
 * backpropagation) as its own colours, each upsampled bilinearly (per channel for RGB).
 */
function heatColours(heat: HeatmapLike, colormap: ColormapName, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  const rgb = heat.rgb;
  if (rgb) {
    const n = heat.width * heat.height;
    if (rgb.length !== n * 3) throw new CamLensError('BAD_ARGUMENT', `Heatmap RGB image has ${rgb.length} values, expected ${heat.width}x${heat.height}x3 = ${n * 3}`);
    const plane = new Float32Array(n);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < n; i++) plane[i] = rgb[3 * i + c];
      const up = upsampleBilinear(plane, heat.width, heat.height, width, height);
      for (let i = 0; i < up.length; i++) {
        const v = up[i];
        out[3 * i + c] = v > 0 ? (v >= 1 ? 255 : Math.round(v * 255)) : 0;
      }
    }
    return out;
  }
  const up = upsampleBilinear(heat.values, heat.width, heat.height, width, height);
  const lut = heat.signed ? divergingLut() : colormapLut(colormap);
  const index = heat.signed ? divergingIndex : colormapIndex;
  for (let i = 0, j = 0; i < up.length; i++, j += 3) {
    const k = 3 * index(up[i]);
    out[j] = lut[k];
    out[j + 1] = lut[k + 1];
    out[j + 2] = lut[k + 2];
  }
  return out;
}

/**
 * The image with the heatmap blended over it, as a PNG at the image's own resolution. Pixel saliency keeps its
 * own colouring (`signed`: diverging; `rgb`: its colours), as in the panel.
 */
export async function renderOverlayPng(
  img: DecodedImage,
  heat: HeatmapLike,
  opts: OverlayOptions = {},
): Promise<Buffer> {
  checkHeat(heat);
  const colormap = checkColormap(opts.colormap ?? 'turbo');
  const opacity = opts.opacity ?? 0.5;
  if (!(opacity >= 0 && opacity <= 1)) {
    throw new CamLensError('BAD_ARGUMENT', `Overlay opacity must be between 0 and 1, got ${opacity}`);
  }
  const { width, height, data } = img;
  checkOutputSize('Image size', width, height);
  if (data.length !== width * height * 3) {
    throw new CamLensError(
      'BAD_ARGUMENT',
      `Image data holds ${data.length} bytes, expected ${width}x${height}x3 = ${width * height * 3}`,
    );
  }

  const colours = heatColours(heat, colormap, width, height);
  const out = new Uint8Array(width * height * 3);
  const keep = 1 - opacity;
  for (let j = 0; j < out.length; j++) out[j] = Math.round(keep * data[j] + opacity * colours[j]);
  const max = opts.maxSize;
  if (max !== undefined && Math.max(width, height) > max) {
    return sharp(out, { raw: { width, height, channels: 3 } }).resize({ width: max, height: max, fit: 'inside' }).png().toBuffer();
  }
  return encodePng(out, width, height);
}

/**
 * The heatmap alone, coloured, as an opaque PNG: at its own resolution (one pixel per map cell), or upsampled
 * bilinearly to width x height when given (for a thumbnail or a side-by-side view).
 */
export async function renderHeatmapPng(
  heat: HeatmapLike,
  colormap: ColormapName = 'turbo',
  width?: number,
  height?: number,
): Promise<Buffer> {
  checkHeat(heat);
  const name = checkColormap(colormap);
  const w = width ?? heat.width;
  const h = height ?? heat.height;
  checkOutputSize('Heatmap PNG size', w, h);
  const values = w === heat.width && h === heat.height ? heat.values : upsampleBilinear(heat.values, heat.width, heat.height, w, h);
  const lut = colormapLut(name);
  const out = new Uint8Array(w * h * 3);
  for (let i = 0, j = 0; i < values.length; i++, j += 3) {
    const k = 3 * colormapIndex(values[i]);
    out[j] = lut[k];
    out[j + 1] = lut[k + 1];
    out[j + 2] = lut[k + 2];
  }
  return encodePng(out, w, h);
}
