/**
 * Image decoding and model-input resizing.
 *
 * Why sharp: it is the one Node image library with prebuilt native binaries for every platform VS Code runs on
 * (no compiler needed at install), it decodes PNG, JPEG, WebP, GIF, TIFF and AVIF/HEIF with the maintained
 * reference codecs (libspng, mozjpeg, libwebp, libtiff...), applies EXIF orientation and ICC profiles, guards
 * against decompression bombs (`limitInputPixels`), and resizes with proper antialiasing off the JS thread.
 * It cannot read BMP, which bmp.ts decodes.
 *
 * What every decoded image looks like (DecodedImage): 8-bit RGB, row-major, top row first, at the image's own
 * resolution after EXIF orientation (a phone photo shot in portrait is portrait, as in any viewer). So:
 * - grayscale is expanded to R = G = B (`originalChannels` still says 1, so a grayscale model can be fed luma);
 * - alpha is flattened onto WHITE. Transparent pixels in PNGs often hold arbitrary colour (frequently black)
 *   that no viewer shows; white is what the user sees in the explorer preview and in light-themed viewers, and
 *   what most "logo/product on transparent background" datasets were composited onto. Note that Keras'
 *   `load_img` (PIL `convert('RGB')`) instead drops alpha and keeps the hidden colour: for images whose
 *   transparent pixels are not white underneath, the model input differs from such a pipeline there;
 * - animated GIF/WebP and multi-page TIFF: the first frame/page only;
 * - colour-managed inputs (ICC profiles, CMYK JPEG) are converted to sRGB.
 *
 * Beyond 8 bits (`pixels`): what the model sees keeps the source's depth. A 16-bit PNG or TIFF is read at 16 bits
 * and scaled by the format's maximum (v * 255 / 65535, floats), and a DICOM file (dicom/dicom.ts: Part 10 or legacy,
 * any frame, compressed or not) goes from stored values through its Modality LUT and a VOI window to 0..255 floats
 * (MONOCHROME1 inverted); `data` then holds the same image rounded to bytes, for display. Grayscale sources keep one
 * channel in `pixels`: a 3-channel model gets it repeated, a 1-channel model gets it as is (pipeline.ts).
 *
 * Errors (CamLensError): FILE_NOT_FOUND for a missing or unreadable path; NOT_AN_IMAGE for anything that is not a
 * decodable image of a supported format (including truncated files), with the decoder's reason; IMAGE_TOO_LARGE
 * when the header declares more than `maxPixels` pixels, detected from the header before any pixel is decoded.
 */
import { promises as fsp } from 'fs';
import sharp from 'sharp';
import { decodeBmp, looksLikeBmp } from './bmp';
import { CamLensError } from './errors';
import { decodeDicom, looksLikeDicom } from './dicom/dicom';
import type { DicomImageInfo, DicomSelection, DicomWindowChoice } from '../../shared/dicom';

export interface DecodedImage {
  width: number;
  height: number;
  channels: 3;
  /** RGB, 8 bits per channel, row-major, top row first; width * height * 3 bytes. */
  data: Uint8Array;
  /** Channels of the source before conversion: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA or CMYK. */
  originalChannels: number;
  /** Source format: 'png', 'jpeg', 'webp', 'gif', 'tiff', 'heif', 'bmp' or 'dicom'. */
  format: string;
  /** Whether the source had an alpha channel (flattened onto white in `data`). */
  hadAlpha: boolean;
  /**
   * The model's pixels where the source is finer than `data`: 0..255 floats, row-major, `channels` per pixel (1
   * gray, 3 RGB). Set for 16-bit PNG/TIFF and for DICOM; absent, `data` is the model's pixels.
   */
  pixels?: { data: Float32Array; channels: 1 | 3 };
  /** Bits per sample of a PNG/TIFF source read beyond 8 (16); absent for 8-bit sources. DICOM's are in `dicom`. */
  bitDepth?: number;
  /** DICOM: how the stored values became the pixels (a whitelist of image attributes; never patient data). */
  dicom?: DicomImageInfo;
}

export interface DecodeOptions {
  /** Largest width x height decoded; larger images fail with IMAGE_TOO_LARGE. Default 100,000,000. */
  maxPixels?: number;
  /** Name used in error messages when the input is a Buffer (default "image data"). */
  name?: string;
  /**
   * DICOM: the frame and window to decode (default frame 0, the file's first window), and the model's window
   * (cam-lens.json `dicom.window`) used where the selection names none. Ignored for other formats.
   */
  dicom?: DicomSelection & { modelWindow?: DicomWindowChoice };
}

export const DEFAULT_MAX_PIXELS = 100_000_000;

/** Formats we accept from sharp. SVG and PDF are refused: they are documents, rendered at an arbitrary size. */
const SHARP_FORMATS = new Set(['png', 'jpeg', 'webp', 'gif', 'tiff', 'heif']);

/** First line of an error message, trimmed: libvips appends multi-line detail that is noise in a notification. */
function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split(/\r?\n/).find((l) => l.trim() !== '') ?? msg).trim();
}

function tooLarge(label: string, width: number, height: number, maxPixels: number): CamLensError {
  return new CamLensError(
    'IMAGE_TOO_LARGE',
    `"${label}" is ${width}x${height} = ${width * height} pixels, more than the limit of ${maxPixels}`,
    'Raise camLens.maxImagePixels if you trust this image.',
  );
}

async function readInput(input: string | Buffer, label: string): Promise<Buffer> {
  if (typeof input !== 'string') return input;
  try {
    return await fsp.readFile(input);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new CamLensError('FILE_NOT_FOUND', `Image file not found: "${label}"`);
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new CamLensError('FILE_NOT_FOUND', `Image file "${label}" cannot be read: permission denied`);
    }
    if (code === 'EISDIR') throw new CamLensError('NOT_AN_IMAGE', `"${label}" is a folder, not an image file`);
    if (code === 'ERR_FS_FILE_TOO_LARGE') {
      throw new CamLensError('IMAGE_TOO_LARGE', `"${label}" is too large to read into memory (over 2 GiB)`);
    }
    throw e;
  }
}

/**
 * Decodes an image file (path) or encoded image bytes (Buffer) to 8-bit RGB. See the file comment for the
 * conventions (EXIF orientation applied, alpha flattened onto white, gray expanded, first frame only).
 */
export async function decodeImage(input: string | Buffer, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(maxPixels >= 1) || !Number.isFinite(maxPixels)) {
    throw new CamLensError('BAD_ARGUMENT', `maxPixels must be a positive number, got ${maxPixels}`);
  }
  const label = typeof input === 'string' ? input : (opts.name ?? 'image data');
  const buf = await readInput(input, label);
  if (buf.length === 0) throw new CamLensError('NOT_AN_IMAGE', `"${label}" is empty (0 bytes)`);

  if (looksLikeDicom(buf, label)) return decodeDicomImage(buf, label, typeof input === 'string' ? input : undefined, maxPixels, opts);

  if (looksLikeBmp(buf)) {
    const bmp = decodeBmp(buf, label, maxPixels);
    if (bmp.alpha) flattenOntoWhite(bmp.rgb, bmp.alpha);
    return {
      width: bmp.width,
      height: bmp.height,
      channels: 3,
      data: bmp.rgb,
      originalChannels: bmp.originalChannels,
      format: 'bmp',
      hadAlpha: bmp.alpha !== null,
    };
  }

  // 1. Header only: format and declared size. `limitInputPixels: false` so that an oversized image is
  //    reported by us with its dimensions rather than by sharp's generic "exceeds pixel limit".
  let meta: sharp.Metadata;
  try {
    meta = await sharp(buf, { limitInputPixels: false, pages: 1 }).metadata();
  } catch (e) {
    throw new CamLensError('NOT_AN_IMAGE', `"${label}" is not a readable image: ${oneLine(e)}`);
  }
  const format: string = meta.format ?? 'unknown';
  if (!SHARP_FORMATS.has(format)) {
    throw new CamLensError(
      'NOT_AN_IMAGE',
      `"${label}" is ${format === 'unknown' ? 'of an unknown format' : `a ${format.toUpperCase()} file`}, which CAM Lens does not decode (supported: PNG, JPEG, WebP, GIF, TIFF, BMP, AVIF/HEIF)`,
    );
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0; // with pages: 1 this is the height of one frame/page
  if (width * height > maxPixels) throw tooLarge(label, width, height, maxPixels);

  // 2. Pixels. failOn 'truncated' refuses cut-off files but tolerates the harmless warnings many camera
  //    JPEGs trigger (extraneous bytes, odd markers) that every viewer ignores.
  try {
    if (meta.depth === 'ushort' && (format === 'png' || format === 'tiff')) return await decode16(buf, meta, format, maxPixels);
    const { data, info } = await sharp(buf, { limitInputPixels: maxPixels, pages: 1, page: 0, failOn: 'truncated' })
      .rotate() // EXIF orientation
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`unexpected decoder output: ${info.width}x${info.height}x${info.channels}, ${data.length} bytes`);
    }
    return {
      width: info.width,
      height: info.height,
      channels: 3,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      originalChannels: meta.channels ?? 3,
      format,
      hadAlpha: meta.hasAlpha ?? false,
    };
  } catch (e) {
    if (e instanceof CamLensError) throw e;
    const reason = oneLine(e);
    if (/pixel limit/i.test(reason)) throw tooLarge(label, width, height, maxPixels);
    throw new CamLensError('NOT_AN_IMAGE', `"${label}" could not be decoded as ${format.toUpperCase()}: ${reason}`);
  }
}

/**
 * A 16-bit PNG or TIFF at full depth: `pixels` = v * 255 / 65535 (floats), alpha flattened onto white here (sharp's
 * own flatten takes white as 255 * 256 at 16 bits), gray kept as one channel; `data` is the same rounded to bytes.
 */
async function decode16(buf: Buffer, meta: sharp.Metadata, format: string, maxPixels: number): Promise<DecodedImage> {
  const gray = (meta.channels ?? 3) <= 2;
  const { data, info } = await sharp(buf, { limitInputPixels: maxPixels, pages: 1, page: 0, failOn: 'truncated' })
    .rotate() // EXIF orientation
    .toColourspace(gray ? 'grey16' : 'rgb16')
    .raw({ depth: 'ushort' })
    .toBuffer({ resolveWithObject: true });
  const colour = gray ? 1 : 3;
  const stride = info.channels;
  const alpha = stride === colour + 1;
  const n = info.width * info.height;
  if (stride < colour || data.length !== n * stride * 2) {
    throw new Error(`unexpected decoder output: ${info.width}x${info.height}x${info.channels}, ${data.length} bytes at 16 bits`);
  }
  const words = data.byteOffset % 2 === 0 ? new Uint16Array(data.buffer, data.byteOffset, n * stride) : new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
  const pixels = new Float32Array(n * colour);
  const scale = 255 / 65535;
  for (let i = 0; i < n; i++) {
    const a = alpha ? words[i * stride + colour] / 65535 : 1;
    for (let c = 0; c < colour; c++) pixels[i * colour + c] = a * words[i * stride + c] * scale + (1 - a) * 255;
  }
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) rgb[3 * i + c] = Math.round(pixels[i * colour + (gray ? 0 : c)]);
  }
  return {
    width: info.width,
    height: info.height,
    channels: 3,
    data: rgb,
    pixels: { data: pixels, channels: colour },
    originalChannels: meta.channels ?? colour,
    format,
    hadAlpha: meta.hasAlpha ?? false,
    bitDepth: 16,
  };
}

/** A DICOM file (dicom/dicom.ts) as a DecodedImage: `pixels` for the model, `data` the same rounded for display. */
async function decodeDicomImage(buf: Buffer, label: string, file: string | undefined, maxPixels: number, opts: DecodeOptions): Promise<DecodedImage> {
  // The frame cache is keyed by the file's identity and state, so a changed file is decoded afresh.
  let cacheKey: string | undefined;
  if (file !== undefined) {
    const st = await fsp.stat(file).catch(() => undefined);
    if (st) cacheKey = `${file}\u0000${st.size}\u0000${st.mtimeMs}`;
  }
  let d: Awaited<ReturnType<typeof decodeDicom>>;
  try {
    d = await decodeDicom(new Uint8Array(buf.buffer, buf.byteOffset, buf.length), label, { ...opts.dicom, maxPixels, cacheKey });
  } catch (e) {
    if (e instanceof CamLensError) throw e;
    // A fault inside the parser or a codec on a hostile file: its first line only (no values of the file in it).
    throw new CamLensError('NOT_AN_IMAGE', `"${label}" could not be decoded as DICOM: ${oneLine(e).slice(0, 160)}`);
  }
  const n = d.width * d.height;
  const rgb = new Uint8Array(n * 3);
  if (d.channels === 1) {
    for (let i = 0; i < n; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = Math.round(d.pixels[i]);
  } else {
    for (let i = 0; i < 3 * n; i++) rgb[i] = Math.round(d.pixels[i]);
  }
  return {
    width: d.width,
    height: d.height,
    channels: 3,
    data: rgb,
    pixels: { data: d.pixels, channels: d.channels },
    originalChannels: d.channels,
    format: 'dicom',
    hadAlpha: false,
    dicom: d.info,
  };
}

/** In place: rgb = alpha * rgb + (1 - alpha) * white, in 8-bit sRGB values like sharp's flatten. */
function flattenOntoWhite(rgb: Uint8Array, alpha: Uint8Array): void {
  for (let i = 0; i < alpha.length; i++) {
    const a = alpha[i];
    if (a === 255) continue;
    const w = 255 * (255 - a);
    for (let c = 3 * i; c < 3 * i + 3; c++) rgb[c] = Math.round((rgb[c] * a + w) / 255);
  }
}

/**
 * Resizes a decoded image to the model's input size, returning HWC bytes (RGB, or luma when channels is 1).
 *
 * The aspect ratio is NOT kept: the image is stretched to width x height, as `tf.image.resizeBilinear`,
 * Keras `load_img(target_size=...)` and `image_dataset_from_directory` do by default, so the model sees what
 * it saw in training. Interpolation is sharp's linear (triangle) kernel; when shrinking, the kernel widens with
 * the scale factor, i.e. it averages (antialiases) like PIL's BILINEAR instead of point-sampling 4 pixels, which
 * keeps large photos from aliasing into noise at 224x224.
 *
 * channels 1: ITU-R BT.601 luma, Y = 0.299 R + 0.587 G + 0.114 B (the weights of PIL `convert('L')` and
 * tf.image.rgb_to_grayscale), computed after resizing.
 *
 * Asynchronous because sharp is: the work runs on libuv's thread pool, not on the calling thread.
 */
export async function resizeForModel(
  img: DecodedImage,
  width: number,
  height: number,
  channels: 1 | 3,
): Promise<Uint8Array> {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width * height > 1 << 26) {
    throw new CamLensError('BAD_ARGUMENT', `Model input size must be positive integers, got ${width}x${height}`);
  }
  if (channels !== 1 && channels !== 3) {
    throw new CamLensError('BAD_ARGUMENT', `Model input channels must be 1 or 3, got ${String(channels)}`);
  }
  if (img.data.length !== img.width * img.height * 3) {
    throw new CamLensError(
      'BAD_ARGUMENT',
      `Image data holds ${img.data.length} bytes, expected ${img.width}x${img.height}x3 = ${img.width * img.height * 3}`,
    );
  }
  let rgb: Uint8Array;
  if (img.width === width && img.height === height) {
    rgb = img.data;
  } else {
    const out = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
      .resize(width, height, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer();
    rgb = new Uint8Array(out.buffer, out.byteOffset, out.length);
  }
  if (channels === 3) return rgb === img.data ? rgb.slice() : rgb;
  const luma = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < luma.length; i++, j += 3) {
    luma[i] = Math.round(0.299 * rgb[j] + 0.587 * rgb[j + 1] + 0.114 * rgb[j + 2]);
  }
  return luma;
}
