/**
 * Heatmap rendering to PNG for export and for the CLI's `--png`: the same colours (shared/colormaps) and the same
 * upsampling (shared/heatmap) as the webview's live overlay, so an exported PNG looks like the panel.
 *
 * The overlay is the pytorch-grad-cam `show_cam_on_image` blend, uniform over the image:
 *     out = (1 - opacity) * image + opacity * colormap(heat)
 * with heat upsampled bilinearly (half-pixel centres) from the map's resolution to the image's own resolution.
 */
import sharp from 'sharp';
import { colormapIndex, colormapLut, isColormapName, type ColormapName } from '../../shared/colormaps';
import { upsampleBilinear } from '../../shared/heatmap';
import { CamLensError } from './errors';
import type { DecodedImage } from './image';

export interface HeatmapLike {
  width: number;
  height: number;
  /** Row-major, expected in [0,1]; clamped, NaN painted as 0. */
  values: Float32Array;
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
 * The image with the heatmap blended over it, as a PNG at the image's own resolution.
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

  const up = upsampleBilinear(heat.values, heat.width, heat.height, width, height);
  const lut = colormapLut(colormap);
  const out = new Uint8Array(width * height * 3);
  const keep = 1 - opacity;
  for (let i = 0, j = 0; i < up.length; i++, j += 3) {
    const k = 3 * colormapIndex(up[i]);
    out[j] = Math.round(keep * data[j] + opacity * lut[k]);
    out[j + 1] = Math.round(keep * data[j + 1] + opacity * lut[k + 1]);
    out[j + 2] = Math.round(keep * data[j + 2] + opacity * lut[k + 2]);
  }
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
