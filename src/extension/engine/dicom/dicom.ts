/**
 * A DICOM file to model pixels: read (parse.ts), one frame decoded (codecs.ts), then for grayscale the Modality
 * LUT and a VOI window (voi.ts), for colour a scale to 0..255. What image.ts turns into a DecodedImage.
 *
 * The frame's stored values are kept for the last file read (one entry, keyed by the caller: path, size and
 * modification time), so that a new window or the same frame for another model costs the window, not the decode.
 */
import { CamLensError } from '../errors';
import type { AppliedWindow, DicomImageInfo, DicomSelection, DicomWindowChoice } from '../../../shared/dicom';
import { readDicom, type DicomHeader } from './parse';
import { decodeFrame, type DecodedFrame } from './codecs';
import { applyRescale, applyWindow, resolveWindow, valueRange } from './voi';

export { looksLikeDicom } from './parse';

export interface DicomDecodeOptions extends DicomSelection {
  /** The window when the selection has none (the model's cam-lens.json `dicom.window`), reported as the model's. */
  modelWindow?: DicomWindowChoice;
  /** Largest rows x columns decoded (IMAGE_TOO_LARGE above it, before any pixel is decoded). */
  maxPixels: number;
  /** Identifies the file's current contents (path, size, mtime) for the frame cache; none: no caching. */
  cacheKey?: string;
}

export interface DicomPixels {
  width: number;
  height: number;
  channels: 1 | 3;
  /** 0..255 floats, `channels` per pixel, row-major: what the preprocessing presets take. */
  pixels: Float32Array;
  info: DicomImageInfo;
}

interface CachedFrame {
  key: string;
  header: DicomHeader;
  syntaxName: string;
  frame: DecodedFrame;
  stored: [number, number];
}

let lastFrame: CachedFrame | undefined;

async function frameOf(buf: Uint8Array, label: string, frameIndex: number, maxPixels: number, cacheKey?: string): Promise<CachedFrame> {
  const key = cacheKey === undefined ? undefined : `${cacheKey}\u0000${frameIndex}`;
  if (key !== undefined && lastFrame?.key === key) return lastFrame;
  const file = readDicom(buf, label);
  const h = file.header;
  if (h.rows * h.columns > maxPixels) {
    throw new CamLensError('IMAGE_TOO_LARGE', `"${label}" is ${h.columns}x${h.rows} = ${h.rows * h.columns} pixels, more than the limit of ${maxPixels}`,
      'Raise camLens.maxImagePixels if you trust this image.');
  }
  if (!Number.isInteger(frameIndex) || frameIndex < 0 || frameIndex >= h.frames) {
    throw new CamLensError('BAD_ARGUMENT', `"${label}" has ${h.frames} frame${h.frames === 1 ? '' : 's'} (0${h.frames > 1 ? `-${h.frames - 1}` : ''}); there is no frame ${frameIndex}`);
  }
  const frame = await decodeFrame(file.syntax.codec ?? 'raw', file.frame(frameIndex), h, label, frameIndex);
  const entry: CachedFrame = { key: key ?? '', header: h, syntaxName: file.syntax.name, frame, stored: valueRange(frame.values) };
  if (key !== undefined) lastFrame = entry;
  return entry;
}

/** Forgets the cached frame (tests; a worker that frees memory). */
export function clearDicomCache(): void {
  lastFrame = undefined;
}

/**
 * Decodes frame `opts.frame` (default 0) of a DICOM file to 0..255 pixels, windowed by `opts.window`, else
 * `opts.modelWindow`, else the file's first window (else its stored range for 8-bit data, min–max for deeper).
 */
export async function decodeDicom(buf: Uint8Array, label: string, opts: DicomDecodeOptions): Promise<DicomPixels> {
  const frameIndex = opts.frame ?? 0;
  const { header: h, syntaxName, frame, stored } = await frameOf(buf, label, frameIndex, opts.maxPixels, opts.cacheKey);
  const notes: string[] = [];
  if (h.legacy) notes.push('a legacy file without preamble or file meta information, read as implicit/explicit VR little endian');
  if (h.modalityLutSequence) notes.push('the file has a Modality LUT Sequence, which is not applied (only RescaleSlope/Intercept are)');
  if (h.voiLutSequence) notes.push('the file has a VOI LUT Sequence, which is not offered (only its windows are)');

  const info: DicomImageInfo = {
    transferSyntax: syntaxName,
    transferSyntaxUid: h.transferSyntaxUid,
    ...(h.modality ? { modality: h.modality } : {}),
    photometric: h.photometric,
    rows: h.rows,
    columns: h.columns,
    samplesPerPixel: frame.channels,
    bitsAllocated: h.bitsAllocated,
    bitsStored: h.bitsStored,
    signed: h.signed,
    frames: h.frames,
    frame: frameIndex,
    storedRange: stored,
    rescale: h.rescale ? { ...h.rescale } : null,
    valueRange: stored,
    windows: h.windows.map((w) => ({ ...w })),
    voiFunction: h.voiFunction,
    window: null,
    ...(opts.modelWindow ? { modelWindow: opts.modelWindow } : {}),
    inverted: false,
    ...(frame.colourNote ? { colourNote: frame.colourNote } : {}),
    notes,
  };

  if (frame.channels === 3) {
    // Colour is not windowed: samples of `bitsStored` bits scaled onto 0..255 (8-bit: unchanged).
    const max = 2 ** Math.min(h.bitsStored, 16) - 1;
    const pixels = max === 255 ? frame.values.slice() : frame.values.map((v) => (v / max) * 255);
    return { width: h.columns, height: h.rows, channels: 3, pixels, info };
  }

  const rescaled = applyRescale(frame.values, h.rescale);
  const range = rescaled === frame.values ? stored : valueRange(rescaled);
  info.valueRange = range;
  const source: AppliedWindow['source'] = opts.window ? 'user' : opts.modelWindow ? 'model' : 'default';
  const window = resolveWindow(h, opts.window ?? opts.modelWindow ?? { kind: 'file' }, range, source, label);
  info.window = window;
  info.inverted = h.photometric === 'MONOCHROME1';
  const pixels = applyWindow(rescaled, window, info.inverted);
  return { width: h.columns, height: h.rows, channels: 1, pixels, info };
}
