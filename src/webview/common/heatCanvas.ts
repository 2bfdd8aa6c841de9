/**
 * The canvas that holds a coloured heatmap on top of an image, shared by the explain panel's overlay and the
 * triage panel's two maps (common/overlay.ts explains why the image itself is never drawn into it).
 *
 * The canvas's backing store follows its displayed size times the device pixel ratio (capped, see
 * overlayCanvasSize), so the map is sharp at any panel width and HiDPI scale. The map, which arrives at the
 * target layer's resolution (e.g. 7x7), is upsampled bilinearly to that size once and cached: a new colormap or
 * opacity only recolours, and only a resize or a new map upsamples again. Redraw requests are coalesced into one
 * per animation frame (a slider drag, a resize).
 */
import type { ColormapName } from '../../shared/colormaps';
import { upsampleBilinear } from '../../shared/heatmap';
import { overlayCanvasSize, paintOverlay, paintRgb, paintSigned, type HeatmapView } from './overlay';

export class HeatCanvas {
  private map: HeatmapView | undefined;
  private colormap: ColormapName = 'turbo';
  private opacity = 0.5;
  private frame = 0;
  private cache: { map: HeatmapView; width: number; height: number; values: Float32Array; rgb?: Float32Array } | undefined;

  constructor(readonly canvas: HTMLCanvasElement, private readonly maxPixels?: number) {}

  /** The map to paint (undefined clears the canvas); takes effect at the next draw. */
  setMap(map: HeatmapView | undefined): void {
    this.map = map;
  }

  setStyle(colormap: ColormapName, opacity: number): void {
    this.colormap = colormap;
    this.opacity = opacity;
  }

  /** Draws at the next animation frame, once however often it is asked. */
  schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  /** Paints the map at the canvas's current displayed size now; clears the canvas when there is no map. */
  draw(): void {
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    const rect = this.canvas.getBoundingClientRect();
    const { width, height } = overlayCanvasSize(rect.width, rect.height, window.devicePixelRatio, this.maxPixels);
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    const ctx = this.canvas.getContext('2d');
    if (!ctx) return;
    const map = this.map;
    if (!map) {
      ctx.clearRect(0, 0, width, height);
      return;
    }
    let cache = this.cache;
    if (!cache || cache.map !== map || cache.width !== width || cache.height !== height) {
      cache = { map, width, height, values: upsampleBilinear(map.values, map.width, map.height, width, height), rgb: upsampleRgb(map, width, height) };
      this.cache = cache;
    }
    const image = ctx.createImageData(width, height);
    // Pixel saliency has its own colouring: an RGB image as itself, a signed map with the diverging colormap;
    // the chosen colormap colours magnitudes (every CAM map).
    if (cache.rgb) paintRgb(cache.rgb, this.opacity, image.data);
    else if (map.signed) paintSigned(cache.values, this.opacity, image.data);
    else paintOverlay(cache.values, this.colormap, this.opacity, image.data);
    ctx.putImageData(image, 0, 0);
  }
}

/** A map's RGB image (width * height * 3) upsampled channel by channel to `width` x `height`; undefined without one. */
function upsampleRgb(map: HeatmapView, width: number, height: number): Float32Array | undefined {
  const rgb = map.rgb;
  if (!rgb || rgb.length !== map.width * map.height * 3) return undefined;
  const n = map.width * map.height;
  const out = new Float32Array(width * height * 3);
  const plane = new Float32Array(n);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) plane[i] = rgb[3 * i + c];
    const up = upsampleBilinear(plane, map.width, map.height, width, height);
    for (let i = 0; i < up.length; i++) out[3 * i + c] = up[i];
  }
  return out;
}
