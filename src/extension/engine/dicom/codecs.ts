/**
 * One frame's encoded bytes to its stored sample values, per transfer syntax (transferSyntax.ts `codec`):
 *
 *   raw            native pixel data, little endian, 8/16/32 bits allocated, planar or interleaved
 *   jpeg           JPEG baseline and 8-bit extended: sharp (libvips with libjpeg-turbo, already how CAM Lens
 *                  decodes JPEG files; the same decoder family as pydicom's Pillow, so the same pixels)
 *   jpeg-lossless  JPEG Lossless, Process 14 (any selection value): jpeg-lossless-decoder-js (pure JS)
 *   jpeg-ls        JPEG-LS lossless and near-lossless: @cornerstonejs/codec-charls (CharLS in WebAssembly)
 *   jpeg2000       JPEG 2000: @cornerstonejs/codec-openjpeg (OpenJPEG in WebAssembly)
 *
 * The WebAssembly modules load once per thread, on first use. Their .wasm files sit next to the bundle in the
 * VSIX (esbuild.js copies them into dist/), or in node_modules when running from source.
 *
 * Output: Float32Array of stored values (exact for every integer of up to 24 bits), samples interleaved,
 * unsigned values masked to Bits Stored and signed ones sign-extended from it (bits above the high bit may hold
 * overlays, PS3.5 8.1.1). Colour comes out as RGB: YBR_FULL and YBR_FULL_422 native data are converted here
 * (PS3.3 C.7.6.3.1.2, the JPEG File Interchange Format's full-range matrix, rounded as pydicom rounds); a JPEG
 * decoder converts the YCbCr it was given itself, JPEG 2000's YBR_ICT/YBR_RCT are undone by OpenJPEG.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { Decoder as LosslessDecoder } from 'jpeg-lossless-decoder-js';
import charlsFactory from '@cornerstonejs/codec-charls/decodewasmjs';
import openjpegFactory from '@cornerstonejs/codec-openjpeg/decodewasmjs';
import { CamLensError } from '../errors';
import type { DicomHeader } from './parse';
import type { Codec } from './transferSyntax';

export interface DecodedFrame {
  /** Stored values (colour: R, G, B interleaved), width * height * channels. */
  values: Float32Array;
  channels: 1 | 3;
  /** How colour was turned into RGB, for the panel ("YBR_FULL_422 → RGB by the JPEG decoder"), where it was. */
  colourNote?: string;
}

/** The wasm binaries this module loads: next to the bundle (dist/), copied there by esbuild.js. */
export const CODEC_WASM_FILES = {
  charls: { pkg: '@cornerstonejs/codec-charls', file: 'charlswasm_decode.wasm', entry: 'decodewasm' },
  openjpeg: { pkg: '@cornerstonejs/codec-openjpeg', file: 'openjpegwasm_decode.wasm', entry: 'decodewasm' },
} as const;

function wasmBinary(which: keyof typeof CODEC_WASM_FILES): ArrayBuffer {
  const b = fs.readFileSync(wasmPath(which));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
}

function wasmPath(which: keyof typeof CODEC_WASM_FILES): string {
  const { pkg, file, entry } = CODEC_WASM_FILES[which];
  const beside = path.join(__dirname, file);
  if (fs.existsSync(beside)) return beside;
  return require.resolve(`${pkg}/${entry}`);
}

type CharLS = Awaited<ReturnType<typeof charlsFactory>>;
type OpenJPEG = Awaited<ReturnType<typeof openjpegFactory>>;
let charls: Promise<CharLS> | undefined;
let openjpeg: Promise<OpenJPEG> | undefined;

const quiet = { print: () => undefined, printErr: () => undefined };

function loadCharls(): Promise<CharLS> {
  charls ??= charlsFactory({ ...quiet, wasmBinary: wasmBinary('charls') }).catch((e: unknown) => {
    charls = undefined;
    throw new CamLensError('NOT_AN_IMAGE', `the JPEG-LS decoder (CharLS) could not be loaded: ${String((e as Error)?.message ?? e)}`);
  });
  return charls;
}

function loadOpenjpeg(): Promise<OpenJPEG> {
  openjpeg ??= openjpegFactory({ ...quiet, wasmBinary: wasmBinary('openjpeg') }).catch((e: unknown) => {
    openjpeg = undefined;
    throw new CamLensError('NOT_AN_IMAGE', `the JPEG 2000 decoder (OpenJPEG) could not be loaded: ${String((e as Error)?.message ?? e)}`);
  });
  return openjpeg;
}

function corrupt(label: string, frame: number, codecName: string, why: string): CamLensError {
  return new CamLensError('NOT_AN_IMAGE', `"${label}" is a damaged DICOM file: frame ${frame} cannot be decoded as ${codecName} (${why})`);
}

/** A codec's thrown value, as words: Emscripten throws numbers (C++ exception pointers) for decoder errors. */
function why(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0].slice(0, 160);
  if (typeof e === 'string') return e.slice(0, 160);
  return 'the decoder rejected the data';
}

/** Stored values from sample words: unsigned masked to `bits`, signed sign-extended from `bits`. */
function storedValues(words: ArrayLike<number>, bits: number, signed: boolean, out: Float32Array): void {
  const n = Math.min(words.length, out.length);
  if (bits >= 32) {
    for (let i = 0; i < n; i++) out[i] = signed ? words[i] | 0 : words[i] >>> 0;
    return;
  }
  const range = 2 ** bits;
  const sign = 2 ** (bits - 1);
  for (let i = 0; i < n; i++) {
    const v = (words[i] >>> 0) % range; // the low `bits` bits, also of 32-bit words
    out[i] = signed && v >= sign ? v - range : v;
  }
}

type Words = Uint8Array | Uint16Array | Uint32Array;

function wordsOf(bytes: Uint8Array, bitsAllocated: number): Words {
  // A copy aligned for the typed array (a view into the file may start at an odd offset).
  const aligned = bytes.byteOffset % (bitsAllocated / 8) === 0 ? bytes : bytes.slice();
  const count = Math.floor(aligned.byteLength / (bitsAllocated / 8));
  if (bitsAllocated === 8) return aligned;
  if (bitsAllocated === 16) return new Uint16Array(aligned.buffer, aligned.byteOffset, count);
  return new Uint32Array(aligned.buffer, aligned.byteOffset, count);
}

/** PS3.3 C.7.6.3.1.2 (and T.871): YCbCr full range to RGB, rounded to the nearest integer and clipped. */
function ybrFullToRgb(v: Float32Array, max: number): void {
  const half = (max + 1) / 2;
  for (let i = 0; i < v.length; i += 3) {
    const y = v[i];
    const cb = v[i + 1] - half;
    const cr = v[i + 2] - half;
    const r = Math.floor(y + 1.402 * cr + 0.5);
    const g = Math.floor(y - ((0.114 * 1.772) / 0.587) * cb - ((0.299 * 1.402) / 0.587) * cr + 0.5);
    const b = Math.floor(y + 1.772 * cb + 0.5);
    v[i] = Math.min(max, Math.max(0, r));
    v[i + 1] = Math.min(max, Math.max(0, g));
    v[i + 2] = Math.min(max, Math.max(0, b));
  }
}

function decodeRaw(bytes: Uint8Array, h: DicomHeader): DecodedFrame {
  const n = h.rows * h.columns;
  const words = wordsOf(bytes, h.bitsAllocated);
  if (h.samplesPerPixel === 1) {
    const values = new Float32Array(n);
    storedValues(words, h.bitsStored, h.signed, values);
    return { values, channels: 1 };
  }
  const values = new Float32Array(n * 3);
  if (h.photometric === 'YBR_FULL_422') {
    // Y0 Y1 Cb Cr for each pair of pixels along a row: the chroma pair is shared (repeated) by both.
    const pairs = new Float32Array(n * 2);
    storedValues(words, h.bitsStored, false, pairs);
    for (let p = 0, o = 0; p + 3 < pairs.length; p += 4, o += 6) {
      values[o] = pairs[p];
      values[o + 3] = pairs[p + 1];
      values[o + 1] = values[o + 4] = pairs[p + 2];
      values[o + 2] = values[o + 5] = pairs[p + 3];
    }
    ybrFullToRgb(values, 2 ** h.bitsStored - 1);
    return { values, channels: 3, colourNote: 'YBR_FULL_422 converted to RGB' };
  }
  if (h.planarConfiguration === 1) {
    const plane = new Float32Array(n);
    for (let c = 0; c < 3; c++) {
      storedValues(words.subarray(c * n, (c + 1) * n), h.bitsStored, false, plane);
      for (let i = 0; i < n; i++) values[3 * i + c] = plane[i];
    }
  } else {
    storedValues(words, h.bitsStored, false, values);
  }
  if (h.photometric === 'YBR_FULL') {
    ybrFullToRgb(values, 2 ** h.bitsStored - 1);
    return { values, channels: 3, colourNote: 'YBR_FULL converted to RGB' };
  }
  return { values, channels: 3 };
}

function checkSize(label: string, frame: number, codecName: string, h: DicomHeader, w: number, ht: number, comps: number): void {
  if (w !== h.columns || ht !== h.rows || comps !== h.samplesPerPixel) {
    throw corrupt(label, frame, codecName, `the stream is ${w}x${ht} with ${comps} component${comps === 1 ? '' : 's'}, the header says ${h.columns}x${h.rows} with ${h.samplesPerPixel}`);
  }
}

async function decodeJpeg(bytes: Uint8Array, h: DicomHeader, label: string, frame: number): Promise<DecodedFrame> {
  const name = 'JPEG';
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    if (meta.format !== 'jpeg') throw new Error('not a JPEG stream');
    // libjpeg-turbo decodes 8-bit streams only: a 12-bit "extended" stream fails here with its own reason.
    // sharp's raw output is sRGB unless told otherwise: a one-component stream stays one channel.
    out = await sharp(bytes, { limitInputPixels: h.rows * h.columns + 1, failOn: 'truncated' })
      .toColourspace(meta.channels === 1 ? 'b-w' : 'srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    const reason = why(e);
    if (/precision|12.?bit|unsupported JPEG process/i.test(reason)) {
      throw new CamLensError('NOT_AN_IMAGE', `"${label}" holds 12-bit JPEG (extended) frames, which CAM Lens does not decode; convert the file (gdcmconv --raw)`);
    }
    throw corrupt(label, frame, name, reason);
  }
  const { width, height, channels } = out.info;
  const comps = channels >= 3 ? 3 : 1;
  checkSize(label, frame, name, h, width, height, comps);
  const values = new Float32Array(width * height * comps);
  if (channels === comps) for (let i = 0; i < values.length; i++) values[i] = out.data[i];
  else for (let i = 0, j = 0; i < values.length; i += comps, j += channels) for (let c = 0; c < comps; c++) values[i + c] = out.data[j + c];
  return {
    values,
    channels: comps,
    ...(comps === 3 && h.photometric.startsWith('YBR') ? { colourNote: `${h.photometric} converted to RGB by the JPEG decoder` } : {}),
  };
}

function decodeJpegLossless(bytes: Uint8Array, h: DicomHeader, label: string, frame: number): DecodedFrame {
  const name = 'JPEG Lossless';
  let words: Uint8Array | Uint16Array;
  try {
    words = new LosslessDecoder().decode(bytes.buffer, bytes.byteOffset, bytes.byteLength, h.bitsAllocated > 8 ? 2 : 1);
  } catch (e) {
    throw corrupt(label, frame, name, why(e));
  }
  const expected = h.rows * h.columns * h.samplesPerPixel;
  if (!words || words.length !== expected) throw corrupt(label, frame, name, `it gave ${words?.length ?? 0} samples, ${expected} expected`);
  const values = new Float32Array(expected);
  storedValues(words, h.bitsStored, h.signed && h.samplesPerPixel === 1, values);
  if (h.samplesPerPixel === 3 && h.photometric === 'YBR_FULL') {
    ybrFullToRgb(values, 2 ** h.bitsStored - 1);
    return { values, channels: 3, colourNote: 'YBR_FULL converted to RGB' };
  }
  return { values, channels: h.samplesPerPixel as 1 | 3 };
}

/** CharLS and OpenJPEG: copy the stream into the wasm heap, decode, read the frame info and the samples. */
async function decodeWasm(codec: 'jpeg-ls' | 'jpeg2000', bytes: Uint8Array, h: DicomHeader, label: string, frame: number): Promise<DecodedFrame> {
  const name = codec === 'jpeg-ls' ? 'JPEG-LS' : 'JPEG 2000';
  const mod = codec === 'jpeg-ls' ? await loadCharls() : await loadOpenjpeg();
  const decoder = 'JpegLSDecoder' in mod ? new mod.JpegLSDecoder() : new mod.J2KDecoder();
  try {
    let info: CornerstoneCodecFrameInfo;
    let decoded: Uint8Array;
    let planar = false;
    try {
      decoder.getEncodedBuffer(bytes.length).set(bytes);
      decoder.decode();
      info = decoder.getFrameInfo();
      decoded = decoder.getDecodedBuffer();
      // CharLS returns the samples as coded: interleave mode 0 (none) is one plane per component.
      if ('getInterleaveMode' in decoder) planar = info.componentCount > 1 && decoder.getInterleaveMode() === 0;
    } catch (e) {
      throw corrupt(label, frame, name, why(e));
    }
    checkSize(label, frame, name, h, info.width, info.height, info.componentCount);
    const n = info.width * info.height;
    const comps = info.componentCount;
    const bytesPer = info.bitsPerSample > 8 ? 2 : 1;
    if (decoded.length < n * comps * bytesPer) throw corrupt(label, frame, name, `it gave ${decoded.length} bytes, ${n * comps * bytesPer} expected`);
    const copy = decoded.slice(0, n * comps * bytesPer); // out of the wasm heap, which the next decode reuses
    const words = bytesPer === 2 ? new Uint16Array(copy.buffer, 0, n * comps) : copy;
    const values = new Float32Array(n * comps);
    const signed = comps === 1 && h.signed;
    const bits = Math.min(h.bitsStored, bytesPer * 8);
    if (planar) {
      const plane = new Float32Array(n);
      for (let c = 0; c < comps; c++) {
        storedValues(words.subarray(c * n, (c + 1) * n), bits, false, plane);
        for (let i = 0; i < n; i++) values[comps * i + c] = plane[i];
      }
    } else {
      storedValues(words, bits, signed, values);
    }
    if (comps === 3 && h.photometric === 'YBR_FULL') {
      ybrFullToRgb(values, 2 ** bits - 1);
      return { values, channels: 3, colourNote: 'YBR_FULL converted to RGB' };
    }
    const note = comps === 3 && (h.photometric === 'YBR_ICT' || h.photometric === 'YBR_RCT') ? { colourNote: `${h.photometric} converted to RGB by the JPEG 2000 decoder` } : {};
    return { values, channels: comps as 1 | 3, ...note };
  } finally {
    decoder.delete();
  }
}

/** Decodes one frame's bytes (parse.ts DicomFile.frame) with the codec of its transfer syntax. */
export async function decodeFrame(codec: Codec, bytes: Uint8Array, h: DicomHeader, label: string, frame: number): Promise<DecodedFrame> {
  switch (codec) {
    case 'raw':
      return decodeRaw(bytes, h);
    case 'jpeg':
      return decodeJpeg(bytes, h, label, frame);
    case 'jpeg-lossless':
      return decodeJpegLossless(bytes, h, label, frame);
    case 'jpeg-ls':
    case 'jpeg2000':
      return decodeWasm(codec, bytes, h, label, frame);
    default: {
      const never: never = codec;
      throw new CamLensError('NOT_AN_IMAGE', `"${label}": no decoder for ${String(never)}`);
    }
  }
}
