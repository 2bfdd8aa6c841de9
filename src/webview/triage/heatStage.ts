/**
 * One heatmap of the selected sample: the image in an <img>, the coloured map on a canvas exactly on top, as in
 * the explain panel (common/overlay.ts explains why the image is never drawn into the canvas). The canvas follows
 * the displayed size times the device pixel ratio; the map is upsampled bilinearly to it.
 */
import type { ColormapName } from '../../shared/colormaps';
import type { TriageMap } from '../../shared/protocol';
import { upsampleBilinear } from '../../shared/heatmap';
import { overlayCanvasSize, paintOverlay } from '../common/overlay';
import { formatPercent } from '../common/format';

export type StageState = 'empty' | 'computing' | 'drawn' | 'error';

export class HeatStage {
  private map: TriageMap | undefined;
  private colormap: ColormapName = 'turbo';
  private opacity = 0.5;
  private frame = 0;

  constructor(
    private readonly stage: HTMLElement,
    private readonly img: HTMLImageElement,
    private readonly canvas: HTMLCanvasElement,
    private readonly caption: HTMLElement,
  ) {
    new ResizeObserver(() => this.schedule()).observe(stage);
    img.addEventListener('load', () => {
      if (img.naturalWidth > 0 && img.naturalHeight > 0) this.stage.style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`;
      this.stage.classList.remove('no-image');
      this.schedule();
    });
    img.addEventListener('error', () => {
      // A format the webview cannot show (TIFF): the map is drawn on its own.
      this.stage.classList.add('no-image');
    });
  }

  setStyle(colormap: ColormapName, opacity: number): void {
    this.colormap = colormap;
    this.opacity = opacity;
    this.draw();
  }

  /** Shows an image (the selected sample) without a map yet. */
  setImage(uri: string | undefined, alt: string): void {
    if (!uri) {
      this.img.removeAttribute('src');
      this.img.alt = '';
    } else if (this.img.getAttribute('src') !== uri) {
      this.stage.style.aspectRatio = '1 / 1';
      this.img.src = uri;
    }
    if (uri) this.img.alt = alt;
  }

  /** The map to draw (undefined clears), the state the canvas reports, and the caption text. */
  setMap(map: TriageMap | undefined, state: StageState, caption: string, path?: string): void {
    this.map = map;
    this.canvas.dataset.state = state;
    this.stage.dataset.state = state;
    if (map) {
      this.canvas.dataset.classIndex = String(map.target.index);
      this.caption.textContent = `${map.target.label} (${formatPercent(map.target.probability)})`;
    } else {
      delete this.canvas.dataset.classIndex;
      this.caption.textContent = caption;
    }
    if (path !== undefined) this.canvas.dataset.path = path;
    else delete this.canvas.dataset.path;
    this.draw();
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw(): void {
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    const rect = this.canvas.getBoundingClientRect();
    const { width, height } = overlayCanvasSize(rect.width, rect.height, window.devicePixelRatio, 1_000_000);
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
    const values = upsampleBilinear(map.heatmap.values, map.heatmap.width, map.heatmap.height, width, height);
    const image = ctx.createImageData(width, height);
    paintOverlay(values, this.colormap, this.opacity, image.data);
    ctx.putImageData(image, 0, 0);
  }
}
