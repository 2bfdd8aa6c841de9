/**
 * The explain panel's DICOM section: which frame and which VOI window turn the file's stored values into the
 * pixels the model sees, and the way there written out (stored values → Modality LUT → window → MONOCHROME1
 * inversion → the model's channels).
 *
 * Choices go to the host as `dicom/select` (the host decodes again and answers with a new `panel/didInit`, which
 * brings the new image, its predictions and then a new map):
 *   - the frame picker (multi-frame files);
 *   - the window picker: the default (the model's cam-lens.json window, else the file's first), each window of
 *     the file, min–max of the frame, or a custom one;
 *   - the centre/width fields (Apply, or Enter in a field);
 *   - a drag on the image, as in DICOM viewers: right widens the window, left narrows it, down raises the centre,
 *     up lowers it. While dragging, the image shown is re-windowed here from its 8-bit rendering (a preview: what
 *     lies outside the old window cannot come back until the host renders the new one on release).
 * The section is hidden for other images; the channels note below the preprocessing is shown for every image.
 */
import type { ImageDescription, ModelInfo } from '../../shared/protocol';
import {
  channelNote,
  describeWindow,
  formatWindowChoice,
  rescaleText,
  type DicomImageInfo,
  type DicomSelection,
  type DicomWindowChoice,
} from '../../shared/dicom';
import { byId, fillSelect, h, type SingleSelect } from '../common/dom';

const num = (x: number) => String(Number(x.toPrecision(6)));

/** The window picker's value for a selection. */
function windowValue(sel: DicomSelection | undefined): string {
  const w = sel?.window;
  if (!w) return 'default';
  if (w.kind === 'file') return `file:${w.index ?? 0}`;
  return w.kind;
}

function choiceText(w: DicomWindowChoice): string {
  if (w.kind === 'custom') return `centre ${num(w.center)}, width ${num(w.width)}`;
  if (w.kind === 'minmax') return 'min–max';
  return w.index ? `the file's window ${w.index + 1}` : 'the file\'s window';
}

export class DicomSection {
  private readonly section = byId('dicom');
  private readonly frameField = byId('dicom-frame-field');
  private readonly frame = byId<SingleSelect>('dicom-frame');
  private readonly window = byId<SingleSelect>('dicom-window');
  private readonly custom = byId('dicom-custom');
  private readonly center = byId<HTMLInputElement>('dicom-center');
  private readonly width = byId<HTMLInputElement>('dicom-width');
  private readonly apply = byId<HTMLElement & { disabled: boolean }>('dicom-apply');
  private readonly dragHint = byId('dicom-drag-hint');
  private readonly fed = byId('dicom-fed');
  private readonly modelNote = byId('dicom-model-note');
  private readonly path = byId('dicom-path');
  private readonly channelsNote = byId('channels-note');
  private info?: DicomImageInfo;
  private selection?: DicomSelection;
  private drag?: { x: number; y: number; center: number; width: number; scale: number; preview?: Preview };

  constructor(
    private readonly stage: HTMLElement,
    private readonly image: HTMLImageElement,
    /** Sends a selection to the host (`dicom/select`); the section shows it as pending until the host answers. */
    private readonly send: (selection: DicomSelection) => void,
  ) {
    this.frame.addEventListener('change', () => {
      const f = Number(this.frame.value);
      if (!this.info || !Number.isInteger(f) || f === this.info.frame) return;
      this.choose({ ...this.selection, frame: f });
    });
    this.window.addEventListener('change', () => this.onWindowPicked());
    this.apply.addEventListener('click', () => this.applyFields());
    for (const input of [this.center, this.width]) {
      input.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') this.applyFields();
      });
    }
    stage.addEventListener('pointerdown', (e) => this.onDragStart(e));
    stage.addEventListener('pointermove', (e) => this.onDragMove(e));
    stage.addEventListener('pointerup', (e) => this.onDragEnd(e));
    stage.addEventListener('pointercancel', () => this.cancelDrag());
  }

  /** After `panel/didInit`: the section for a DICOM image (hidden for others), and the channels note for every image. */
  show(image: ImageDescription | undefined, model: ModelInfo, selection: DicomSelection | undefined): void {
    this.cancelDrag();
    const note = image ? channelNote(image.channels, model.inputSize[2]) : undefined;
    const depth = image?.bitDepth === 16 ? '16-bit image: read at full depth, value × 255 / 65535 into the preprocessing.' : undefined;
    const lines = [note ? `${note[0].toUpperCase()}${note.slice(1)}.` : undefined, depth].filter(Boolean);
    this.channelsNote.hidden = lines.length === 0;
    this.channelsNote.textContent = lines.join(' ');
    this.info = image?.dicom;
    this.selection = selection;
    this.section.hidden = !this.info;
    document.body.dataset.dicom = this.info ? 'true' : 'false';
    if (!this.info) return;
    const d = this.info;
    this.frameField.hidden = d.frames < 2;
    if (d.frames > 1) {
      fillSelect(this.frame, Array.from({ length: d.frames }, (_, i) => ({ value: String(i), label: `${i} of 0–${d.frames - 1}` })), String(d.frame));
    }
    const gray = d.window !== null;
    this.window.disabled = !gray;
    this.custom.hidden = !gray;
    this.dragHint.hidden = !gray;
    if (gray) {
      const def = d.modelWindow ? `the model's window (cam-lens.json: ${choiceText(d.modelWindow)})` : d.windows.length ? 'the file\'s first window' : 'no window in the file';
      fillSelect(this.window, [
        { value: 'default', label: `Default: ${def}` },
        ...d.windows.map((w, i) => ({ value: `file:${i}`, label: `File window ${i + 1}${w.name ? ` "${w.name}"` : ''}: ${num(w.center)} / ${num(w.width)}` })),
        { value: 'minmax', label: 'Min–max of the frame' },
        { value: 'custom', label: 'Custom: centre and width below' },
      ], windowValue(selection));
      this.center.value = num(d.window!.center);
      this.width.value = num(d.window!.width);
    }
    this.renderLines();
    delete this.section.dataset.pending;
  }

  /** The host refused a selection: the controls go back to what is shown. */
  restore(): void {
    delete this.section.dataset.pending;
    if (!this.info) return;
    if (this.info.frames > 1) this.frame.value = String(this.info.frame);
    this.window.value = windowValue(this.selection);
    if (this.info.window) {
      this.center.value = num(this.info.window.center);
      this.width.value = num(this.info.window.width);
    }
  }

  private renderLines(): void {
    const d = this.info;
    if (!d) return;
    const w = d.window;
    this.fed.textContent = w
      ? `The model sees${d.frames > 1 ? ` frame ${d.frame}` : ''} through ${describeWindow(w, d.windows.length)}.`
      : `The model sees${d.frames > 1 ? ` frame ${d.frame}` : ''} in colour, not windowed.`;
    const differs = d.modelWindow && w && w.source !== 'model';
    this.modelNote.hidden = !differs;
    this.modelNote.textContent = differs && d.modelWindow
      ? `The model's cam-lens.json says it was trained with ${choiceText(d.modelWindow)} (--window ${formatWindowChoice(d.modelWindow)}); this window differs.`
      : '';
    const steps: string[] = [];
    steps.push(`Stored values ${num(d.storedRange[0])} to ${num(d.storedRange[1])}: ${d.bitsStored} bits${d.signed ? ', signed' : ''}, ${d.photometric}${d.modality ? `, ${d.modality}` : ''}, ${d.transferSyntax}${d.frames > 1 ? `, frame ${d.frame} of 0–${d.frames - 1}` : ''}.`);
    if (w) {
      steps.push(d.rescale
        ? `Modality LUT: ${rescaleText(d.rescale)}, giving ${num(d.valueRange[0])} to ${num(d.valueRange[1])}.`
        : 'No rescale in the file: the values are used as stored.');
      steps.push(`VOI window onto 0–255: ${describeWindow(w, d.windows.length)}.`);
      if (d.inverted) steps.push('MONOCHROME1: inverted (255 − value), so that high values are bright, for the display and for the model.');
    } else {
      steps.push(`Colour: ${d.colourNote ?? d.photometric}; not windowed${d.bitsStored > 8 ? `, scaled by 255 / ${2 ** d.bitsStored - 1}` : ''}.`);
    }
    if (!this.channelsNote.hidden) steps.push(this.channelsNote.textContent ?? '');
    steps.push('Then the preprocessing preset above, as for any 8-bit image.');
    for (const n of d.notes) steps.push(`Note: ${n}.`);
    this.path.replaceChildren(...steps.map((t) => h('li', {}, t)));
  }

  private choose(selection: DicomSelection): void {
    this.section.dataset.pending = 'true';
    this.send(selection);
  }

  private onWindowPicked(): void {
    const v = this.window.value;
    if (!this.info || v === windowValue(this.selection)) return;
    if (v === 'custom') {
      this.center.focus();
      return;
    }
    const window: DicomWindowChoice | undefined = v === 'default' ? undefined : v === 'minmax' ? { kind: 'minmax' } : { kind: 'file', index: Number(v.slice(5)) };
    const { frame } = this.selection ?? {};
    this.choose({ ...(frame !== undefined ? { frame } : {}), ...(window ? { window } : {}) });
  }

  private applyFields(): void {
    const center = Number(this.center.value);
    const width = Number(this.width.value);
    if (!this.info?.window || this.center.value.trim() === '' || !Number.isFinite(center) || !(width >= 1)) {
      this.fed.textContent = 'A window needs a centre and a width of at least 1.';
      return;
    }
    this.sendCustom(center, width);
  }

  private sendCustom(center: number, width: number): void {
    const { frame } = this.selection ?? {};
    this.window.value = 'custom';
    this.choose({ ...(frame !== undefined ? { frame } : {}), window: { kind: 'custom', center, width } });
  }

  // -------------------------------------------------------------------------------------------------------
  // Dragging on the image

  private onDragStart(e: PointerEvent): void {
    const w = this.info?.window;
    if (!w || e.button !== 0 || !this.image.complete) return;
    const rect = this.stage.getBoundingClientRect();
    // One stage width of drag spans the frame's whole value range.
    const span = Math.max(this.info!.valueRange[1] - this.info!.valueRange[0], 1);
    this.drag = { x: e.clientX, y: e.clientY, center: w.center, width: w.width, scale: span / Math.max(rect.width, 1) };
    this.stage.setPointerCapture?.(e.pointerId);
    this.stage.dataset.windowing = 'true';
    e.preventDefault();
  }

  private dragged(e: PointerEvent): { center: number; width: number } | undefined {
    const d = this.drag;
    if (!d) return undefined;
    const width = Math.max(1, d.width + (e.clientX - d.x) * d.scale);
    const center = d.center + (e.clientY - d.y) * d.scale;
    return { center, width };
  }

  private onDragMove(e: PointerEvent): void {
    const next = this.dragged(e);
    if (!next || !this.drag || !this.info?.window) return;
    if (Math.abs(e.clientX - this.drag.x) + Math.abs(e.clientY - this.drag.y) < 3) return;
    this.center.value = num(next.center);
    this.width.value = num(next.width);
    this.window.value = 'custom';
    this.drag.preview ??= Preview.start(this.stage, this.image);
    this.drag.preview?.draw(this.info.window, next, this.info.inverted);
    this.fed.textContent = `Release to window with centre ${num(next.center)}, width ${num(next.width)}.`;
  }

  private onDragEnd(e: PointerEvent): void {
    const next = this.dragged(e);
    const moved = this.drag && Math.abs(e.clientX - this.drag.x) + Math.abs(e.clientY - this.drag.y) >= 3;
    this.cancelDrag(!moved);
    if (next && moved) this.sendCustom(Number(next.center.toPrecision(6)), Number(next.width.toPrecision(6)));
  }

  private cancelDrag(removePreview = true): void {
    if (this.drag?.preview && removePreview) this.drag.preview.remove();
    this.drag = undefined;
    delete this.stage.dataset.windowing;
  }
}

/**
 * The image re-windowed in the page while dragging: its 8-bit rendering under window w0 mapped to window w1.
 * Where y0 = W0(x) (0..255), the value is x = (y0/255 - 0.5)(w0 - 1) + c0 - 0.5 (LINEAR; near enough for the
 * others), and y1 = W1(x); MONOCHROME1 inverts before and after. Stays until the host's new rendering arrives.
 */
class Preview {
  private constructor(private readonly canvas: HTMLCanvasElement, private readonly source: ImageData) {}

  static start(stage: HTMLElement, image: HTMLImageElement): Preview | undefined {
    const canvas = document.createElement('canvas');
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    canvas.className = 'window-preview';
    canvas.setAttribute('aria-hidden', 'true');
    const ctx = canvas.getContext('2d');
    if (!ctx || canvas.width === 0) return undefined;
    ctx.drawImage(image, 0, 0);
    const source = ctx.getImageData(0, 0, canvas.width, canvas.height);
    image.after(canvas);
    const p = new Preview(canvas, source);
    // The host's new rendering replaces the image: the preview goes with the old one.
    image.addEventListener('load', () => p.remove(), { once: true });
    return p;
  }

  draw(w0: { center: number; width: number }, w1: { center: number; width: number }, inverted: boolean): void {
    const ctx = this.canvas.getContext('2d');
    if (!ctx) return;
    const lut = new Uint8ClampedArray(256);
    const c0 = w0.center - 0.5;
    const k0 = Math.max(w0.width - 1, 1e-6);
    const c1 = w1.center - 0.5;
    const k1 = Math.max(w1.width - 1, 1e-6);
    for (let v = 0; v < 256; v++) {
      const y0 = inverted ? 255 - v : v;
      const x = (y0 / 255 - 0.5) * k0 + c0;
      const y1 = Math.min(255, Math.max(0, ((x - c1) / k1 + 0.5) * 255));
      lut[v] = inverted ? 255 - y1 : y1;
    }
    const src = this.source.data;
    const out = new ImageData(this.source.width, this.source.height);
    for (let i = 0; i < src.length; i += 4) {
      out.data[i] = lut[src[i]];
      out.data[i + 1] = lut[src[i + 1]];
      out.data[i + 2] = lut[src[i + 2]];
      out.data[i + 3] = 255;
    }
    ctx.putImageData(out, 0, 0);
  }

  remove(): void {
    this.canvas.remove();
  }
}
