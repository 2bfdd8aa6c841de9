/**
 * An average map over an average image, as one picture. Both are data the host sent (no webview resource), so
 * unlike the explain panel's overlay (common/overlay.ts) the image may be painted into the canvas itself and the
 * blend done here, with the same formula as the overlay and the PNG export:
 *     shown = (1 - opacity) * image + opacity * colormap(heat).
 * The map is min-max normalised on its own (each card shows where its cluster looks, not how strongly compared
 * with other clusters: the hints give those numbers), both are upsampled bilinearly to the canvas.
 */
import { colormapIndex, colormapLut, type ColormapName } from '../../shared/colormaps';
import { minMaxNormalize, upsampleBilinear } from '../../shared/heatmap';
import type { StrategyMapGrid, StrategyRgbImage } from '../../shared/strategies';
import { overlayCanvasSize } from '../common/overlay';

/** RGBA bytes of the map over the image at `width` x `height`, fully opaque. Pure. */
export function composeMapOverImage(
  map: StrategyMapGrid,
  image: StrategyRgbImage | undefined,
  width: number,
  height: number,
  colormap: ColormapName,
  opacity: number,
): Uint8ClampedArray {
  const heat = upsampleBilinear(minMaxNormalize(map.values), map.width, map.height, width, height);
  const n = width * height;
  const planes: Float32Array[] = [];
  if (image) {
    const plane = new Float32Array(image.width * image.height);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < plane.length; i++) plane[i] = image.data[3 * i + c];
      planes.push(upsampleBilinear(plane, image.width, image.height, width, height));
    }
  }
  // Without an image the colours stand alone.
  const a = image ? Math.max(0, Math.min(1, opacity)) : 1;
  const lut = colormapLut(colormap);
  const out = new Uint8ClampedArray(4 * n);
  for (let i = 0, o = 0; i < n; i++, o += 4) {
    const j = 3 * colormapIndex(heat[i]);
    for (let c = 0; c < 3; c++) out[o + c] = (image ? (1 - a) * planes[c][i] : 0) + a * lut[j + c];
    out[o + 3] = 255;
  }
  return out;
}

/** Paints the composite into `canvas` at its displayed size times the device pixel ratio (at least 32 px a side). */
export function drawMapOverImage(
  canvas: HTMLCanvasElement,
  map: StrategyMapGrid,
  image: StrategyRgbImage | undefined,
  colormap: ColormapName,
  opacity: number,
): void {
  const rect = canvas.getBoundingClientRect();
  const cssW = rect.width > 0 ? rect.width : 128;
  const cssH = rect.height > 0 ? rect.height : (cssW * map.height) / map.width;
  const { width, height } = overlayCanvasSize(Math.max(32, cssW), Math.max(32, cssH), window.devicePixelRatio, 250_000);
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const data = composeMapOverImage(map, image, width, height, colormap, opacity);
  const img = ctx.createImageData(width, height);
  img.data.set(data);
  ctx.putImageData(img, 0, 0);
  canvas.dataset.state = 'drawn';
}
