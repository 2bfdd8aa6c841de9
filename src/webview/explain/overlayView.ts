/**
 * The image with its heatmap overlay: an <img> underlay, a canvas on top holding the coloured map (see
 * common/heatCanvas.ts: sized to the displayed size, upsampled once per size, recoloured cheaply), the pointer
 * and keyboard readout.
 */
import type { ColormapName } from '../../shared/colormaps';
import { formatReadout, heatAtPixel, imagePixelAt, type HeatmapView } from '../common/overlay';
import { HeatCanvas } from '../common/heatCanvas';

export interface OverlayStyle {
  colormap: ColormapName;
  opacity: number;
  visible: boolean;
}

const READOUT_HINT = 'Point at the image, or focus it and use the arrow keys, to read the heat value.';

export class OverlayView {
  private map: HeatmapView | undefined;
  private imageSize: [number, number] = [1, 1];
  private style: OverlayStyle = { colormap: 'turbo', opacity: 0.5, visible: true };
  private readonly heat: HeatCanvas;
  /** Keyboard probe position in image pixels. */
  private probe: { x: number; y: number } | undefined;

  constructor(
    private readonly stage: HTMLElement,
    private readonly canvas: HTMLCanvasElement,
    private readonly img: HTMLImageElement,
    private readonly probeEl: HTMLElement,
    private readonly readout: HTMLElement,
    private readonly imageNote: HTMLElement,
  ) {
    this.heat = new HeatCanvas(canvas);
    new ResizeObserver(() => this.heat.schedule()).observe(stage);
    stage.addEventListener('pointermove', (e) => this.onPointer(e));
    stage.addEventListener('pointerleave', () => this.showReadout(this.probe));
    stage.addEventListener('keydown', (e) => this.onKey(e));
    stage.addEventListener('focus', () => {
      if (!this.probe) this.probe = { x: Math.floor(this.imageSize[0] / 2), y: Math.floor(this.imageSize[1] / 2) };
      this.showProbe();
    });
    stage.addEventListener('blur', () => {
      this.probe = undefined;
      this.probeEl.hidden = true;
    });
    img.addEventListener('error', () => {
      // Chromium cannot show every format CAM Lens reads (TIFF, for one): the map still means something.
      this.imageNote.textContent = 'This image format cannot be shown in the panel; the heatmap is drawn on its own.';
      this.imageNote.hidden = false;
    });
    img.addEventListener('load', () => {
      this.imageNote.hidden = true;
    });
    this.readout.textContent = READOUT_HINT;
    // No image yet (or none at all, when the panel fails to open it): nothing to point at.
    this.readout.hidden = true;
  }

  /** Shows `uri` as an image of `width` x `height` pixels; the stage takes its aspect ratio at once. */
  setImage(uri: string, width: number, height: number, alt: string): void {
    this.imageSize = [Math.max(1, width), Math.max(1, height)];
    const [w, h] = this.imageSize;
    // Small images (a 64x64 sample) are shown at least 480 px wide; big ones fit the column and 70% of the height.
    this.stage.style.aspectRatio = `${w} / ${h}`;
    this.stage.style.width = `min(100%, ${Math.max(w, 480)}px, calc(70vh * ${(w / h).toFixed(6)}))`;
    this.stage.classList.toggle('upscaled', w < 160);
    this.img.alt = alt;
    if (this.img.getAttribute('src') !== uri) this.img.src = uri;
    this.probe = undefined;
    this.probeEl.hidden = true;
    this.readout.hidden = false;
  }

  get imagePixels(): [number, number] {
    return this.imageSize;
  }

  /** Sets (or clears) the map and draws it now. */
  setMap(map: HeatmapView | undefined): void {
    this.map = map;
    this.heat.setMap(map);
    this.heat.draw();
    this.showReadout(this.probe);
  }

  setStyle(style: OverlayStyle, now = true): void {
    this.style = style;
    this.heat.setStyle(style.colormap, style.opacity);
    this.canvas.classList.toggle('overlay-off', !style.visible);
    if (now) this.heat.draw();
    else this.heat.schedule();
  }

  private onPointer(e: PointerEvent): void {
    const rect = this.canvas.getBoundingClientRect();
    const [w, h] = this.imageSize;
    this.showReadout(imagePixelAt(e.clientX - rect.left, e.clientY - rect.top, rect.width, rect.height, w, h));
  }

  private onKey(e: KeyboardEvent): void {
    const step = e.shiftKey ? 10 : 1;
    const [w, h] = this.imageSize;
    const p = this.probe ?? { x: Math.floor(w / 2), y: Math.floor(h / 2) };
    switch (e.key) {
      case 'ArrowLeft': p.x -= step; break;
      case 'ArrowRight': p.x += step; break;
      case 'ArrowUp': p.y -= step; break;
      case 'ArrowDown': p.y += step; break;
      case 'Home': p.x = 0; p.y = 0; break;
      case 'End': p.x = w - 1; p.y = h - 1; break;
      default: return;
    }
    e.preventDefault();
    this.probe = { x: Math.min(w - 1, Math.max(0, p.x)), y: Math.min(h - 1, Math.max(0, p.y)) };
    this.showProbe();
  }

  private showProbe(): void {
    const p = this.probe;
    if (!p) return;
    const [w, h] = this.imageSize;
    this.probeEl.style.left = `${((p.x + 0.5) / w) * 100}%`;
    this.probeEl.style.top = `${((p.y + 0.5) / h) * 100}%`;
    this.probeEl.hidden = false;
    this.showReadout(p);
  }

  private showReadout(p: { x: number; y: number } | undefined): void {
    const r = this.readout;
    if (!p) {
      r.textContent = READOUT_HINT;
      delete r.dataset.x;
      delete r.dataset.y;
      delete r.dataset.heat;
      return;
    }
    const [w, h] = this.imageSize;
    const heat = this.map ? heatAtPixel(this.map, p.x, p.y, w, h) : undefined;
    r.textContent = formatReadout(p.x, p.y, this.map, heat);
    r.dataset.x = String(p.x);
    r.dataset.y = String(p.y);
    if (heat !== undefined && Number.isFinite(heat)) r.dataset.heat = heat.toFixed(4);
    else delete r.dataset.heat;
  }
}
