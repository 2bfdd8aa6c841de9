/**
 * One heatmap of the selected sample: the image in an <img>, the coloured map on a canvas exactly on top, as in
 * the explain panel (common/overlay.ts explains why the image is never drawn into the canvas). The canvas follows
 * the displayed size times the device pixel ratio; the map is upsampled bilinearly to it.
 */
import type { ColormapName } from '../../shared/colormaps';
import type { TriageMap } from '../../shared/protocol';
import { HeatCanvas } from '../common/heatCanvas';
import { formatPercent } from '../../shared/format';

export type StageState = 'empty' | 'computing' | 'drawn' | 'error';

export class HeatStage {
  private readonly heat: HeatCanvas;

  constructor(
    private readonly stage: HTMLElement,
    private readonly img: HTMLImageElement,
    private readonly canvas: HTMLCanvasElement,
    private readonly caption: HTMLElement,
  ) {
    // Two of these share the panel: a smaller cap than the explain panel's single overlay.
    this.heat = new HeatCanvas(canvas, 1_000_000);
    new ResizeObserver(() => this.heat.schedule()).observe(stage);
    img.addEventListener('load', () => {
      if (img.naturalWidth > 0 && img.naturalHeight > 0) this.stage.style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`;
      this.stage.classList.remove('no-image');
      this.heat.schedule();
    });
    img.addEventListener('error', () => {
      // A format the webview cannot show (TIFF): the map is drawn on its own.
      this.stage.classList.add('no-image');
    });
  }

  setStyle(colormap: ColormapName, opacity: number): void {
    this.heat.setStyle(colormap, opacity);
    this.heat.draw();
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
    this.heat.setMap(map?.heatmap);
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
    this.heat.draw();
  }
}
