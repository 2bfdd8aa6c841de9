/**
 * A small, defensive BMP (Windows bitmap) decoder. sharp/libvips cannot read BMP, and BMP is one of the formats
 * the explorer menu offers, so we decode it ourselves.
 *
 * Supported: file header "BM"; DIB headers BITMAPCOREHEADER (12 bytes, OS/2 1.x), BITMAPINFOHEADER (40),
 * the V2/V3 variants (52/56), OS/2 2.x (64, read as BITMAPINFOHEADER), BITMAPV4HEADER (108) and
 * BITMAPV5HEADER (124); 1/2/4/8-bit palettes; 16/24/32-bit direct colour with BI_RGB, BI_BITFIELDS and
 * BI_ALPHABITFIELDS masks; bottom-up (positive height) and top-down (negative height) row order; RLE8 and RLE4.
 * Not supported (refused with NOT_AN_IMAGE): embedded JPEG/PNG (BI_JPEG, BI_PNG), CMYK variants, OS/2 Huffman.
 * Colour profiles (V4/V5 colour space fields) are ignored: pixels are taken as sRGB.
 *
 * Decisions where the format is ambiguous, following what browsers do:
 * - 32-bit BI_RGB officially has an unused fourth byte, yet some writers store alpha there; and some images with
 *   an alpha mask have all-zero alpha because the writer never filled it. So the alpha channel is used only when
 *   at least one pixel has non-zero alpha; an all-zero alpha channel means opaque.
 * - Palette indices beyond the palette decode as black.
 * - RLE pixels that the stream skips (by delta or end-of-line escapes) take palette entry 0.
 *
 * Safety: the header's width x height is checked against `maxPixels` before anything is allocated, and the
 * pixel data's size is checked against the file before decoding, so a tiny hostile file cannot make us allocate
 * or loop over a huge bitmap. RLE decoding does a bounded amount of work per input byte.
 */
import { CamLensError } from './errors';

export interface BmpImage {
  width: number;
  height: number;
  /** RGB, row-major, top row first. */
  rgb: Uint8Array;
  /** Straight (non-premultiplied) alpha, one byte per pixel; null when the image is opaque. */
  alpha: Uint8Array | null;
  /** 1 for an all-gray palette, 3 for colour, 4 when a used alpha channel is present. */
  originalChannels: number;
}

const BI_RGB = 0;
const BI_RLE8 = 1;
const BI_RLE4 = 2;
const BI_BITFIELDS = 3;
const BI_JPEG = 4;
const BI_PNG = 5;
const BI_ALPHABITFIELDS = 6;

/** True when the buffer starts like a Windows bitmap ("BM" signature). */
export function looksLikeBmp(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x42 && buf[1] === 0x4d;
}

function notBmp(label: string, why: string): CamLensError {
  return new CamLensError('NOT_AN_IMAGE', `"${label}" is not a readable BMP image: ${why}`);
}

/** One colour channel described by a bit mask: where it sits and how to scale it to 0..255. */
interface Channel {
  mask: number;
  shift: number;
  scale: number;
}

function channelOf(mask: number): Channel {
  mask >>>= 0;
  if (mask === 0) return { mask: 0, shift: 0, scale: 0 };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const max = mask >>> shift; // the field's largest value (gaps in a non-contiguous mask are simply included)
  return { mask, shift, scale: 255 / max };
}

function readChannel(v: number, c: Channel): number {
  return Math.round((((v & c.mask) >>> 0) >>> c.shift) * c.scale);
}

export function decodeBmp(buf: Uint8Array, label: string, maxPixels: number): BmpImage {
  if (!looksLikeBmp(buf)) throw notBmp(label, 'missing the "BM" signature');
  if (buf.length < 26) throw notBmp(label, `the file is only ${buf.length} bytes, too short for a BMP header`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const u16 = (o: number) => dv.getUint16(o, true);
  const u32 = (o: number) => dv.getUint32(o, true);
  const i32 = (o: number) => dv.getInt32(o, true);

  const dataOffsetField = u32(10);
  const headerSize = u32(14);
  const core = headerSize === 12;
  if (!core && (headerSize < 40 || headerSize > 1024)) {
    throw notBmp(label, `unsupported DIB header size ${headerSize} (expected 12, 40, 52, 56, 64, 108 or 124)`);
  }
  if (14 + headerSize > buf.length) {
    throw notBmp(label, `truncated: the ${headerSize}-byte header does not fit in the ${buf.length}-byte file`);
  }

  let width: number;
  let rawHeight: number;
  let bpp: number;
  let compression = BI_RGB;
  let colorsUsed = 0;
  if (core) {
    width = u16(18);
    rawHeight = u16(20);
    bpp = u16(24);
  } else {
    width = i32(18);
    rawHeight = i32(22);
    bpp = u16(28);
    compression = u32(30);
    colorsUsed = u32(46);
  }
  const topDown = rawHeight < 0;
  const height = Math.abs(rawHeight);
  if (width <= 0 || height === 0) throw notBmp(label, `invalid dimensions ${width}x${rawHeight}`);

  // Decompression-bomb guard, before any allocation.
  if (width * height > maxPixels) {
    throw new CamLensError(
      'IMAGE_TOO_LARGE',
      `"${label}" declares ${width}x${height} = ${width * height} pixels, more than the limit of ${maxPixels}`,
      'Raise camLens.maxImagePixels if you trust this image.',
    );
  }

  if (compression === BI_JPEG || compression === BI_PNG) {
    throw notBmp(label, `it wraps ${compression === BI_JPEG ? 'a JPEG' : 'a PNG'} stream (BI_JPEG/BI_PNG), which is not supported; convert it to PNG`);
  }
  const validBpp: Record<number, number[]> = {
    [BI_RGB]: [1, 2, 4, 8, 16, 24, 32],
    [BI_RLE8]: [8],
    [BI_RLE4]: [4],
    [BI_BITFIELDS]: [16, 32],
    [BI_ALPHABITFIELDS]: [16, 32],
  };
  if (!(compression in validBpp)) throw notBmp(label, `unsupported compression type ${compression}`);
  if (!validBpp[compression].includes(bpp)) {
    throw notBmp(label, `${bpp} bits per pixel is not valid with compression type ${compression}`);
  }
  const rle = compression === BI_RLE8 || compression === BI_RLE4;
  if (rle && topDown) throw notBmp(label, 'RLE-compressed bitmaps cannot be top-down (negative height)');

  // Colour masks for 16/32-bit images.
  let masksEnd = 14 + headerSize;
  let maskR = 0;
  let maskG = 0;
  let maskB = 0;
  let maskA = 0;
  if (compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS) {
    const n = compression === BI_ALPHABITFIELDS ? 4 : 3;
    // BITMAPINFOHEADER puts the masks after the header; V2 and later headers contain them.
    const at = headerSize >= 52 ? 54 : 14 + headerSize;
    if (at + 4 * n > buf.length) throw notBmp(label, 'truncated: the colour masks are missing');
    maskR = u32(at);
    maskG = u32(at + 4);
    maskB = u32(at + 8);
    if (n === 4) maskA = u32(at + 12);
    else if (headerSize >= 56) maskA = u32(66);
    if (headerSize < 52) masksEnd = at + 4 * n;
  } else if (bpp === 16) {
    [maskR, maskG, maskB] = [0x7c00, 0x03e0, 0x001f]; // 5-5-5
  } else if (bpp === 32) {
    [maskR, maskG, maskB, maskA] = [0x00ff0000, 0x0000ff00, 0x000000ff, 0xff000000];
  }

  // Palette for <= 8-bit images: BGR triples (core header) or BGRx quads.
  const entrySize = core ? 3 : 4;
  let palette: Uint8Array | null = null; // RGB triples
  let paletteCount = 0;
  let paletteEnd = masksEnd;
  if (bpp <= 8) {
    const limit = dataOffsetField > masksEnd && dataOffsetField <= buf.length ? dataOffsetField : buf.length;
    const declared = colorsUsed > 0 && colorsUsed < 1 << bpp ? colorsUsed : 1 << bpp;
    paletteCount = Math.min(declared, Math.floor((limit - masksEnd) / entrySize));
    if (paletteCount <= 0) throw notBmp(label, `the ${bpp}-bit image has no colour palette`);
    palette = new Uint8Array(256 * 3); // indices past paletteCount stay black
    for (let i = 0; i < paletteCount; i++) {
      const o = masksEnd + i * entrySize;
      palette[3 * i] = buf[o + 2];
      palette[3 * i + 1] = buf[o + 1];
      palette[3 * i + 2] = buf[o];
    }
    paletteEnd = masksEnd + paletteCount * entrySize;
  }

  // Where the pixels start: trust the header's offset when it is plausible, else right after the palette.
  let dataOffset = dataOffsetField;
  if (dataOffset < paletteEnd) dataOffset = paletteEnd;
  if (dataOffset >= buf.length) throw notBmp(label, 'truncated: the file ends before the pixel data');

  const rgb = new Uint8Array(width * height * 3);
  let alpha: Uint8Array | null = null;

  if (rle) {
    const indices = decodeRle(buf, dataOffset, width, height, compression === BI_RLE4, label);
    for (let i = 0; i < indices.length; i++) {
      const p = 3 * indices[i];
      rgb[3 * i] = palette![p];
      rgb[3 * i + 1] = palette![p + 1];
      rgb[3 * i + 2] = palette![p + 2];
    }
  } else {
    const stride = Math.floor((bpp * width + 31) / 32) * 4;
    const lastRow = Math.ceil((bpp * width) / 8);
    const needed = stride * (height - 1) + lastRow;
    if (dataOffset + needed > buf.length) {
      throw notBmp(
        label,
        `truncated: ${width}x${height} at ${bpp} bits per pixel needs ${needed} bytes of pixel data, the file has ${buf.length - dataOffset}`,
      );
    }
    if (bpp <= 8) {
      const pal = palette!;
      const valueMask = (1 << bpp) - 1;
      for (let r = 0; r < height; r++) {
        const row = dataOffset + r * stride;
        let o = (topDown ? r : height - 1 - r) * width * 3;
        for (let x = 0; x < width; x++, o += 3) {
          const bit = x * bpp;
          const idx = (buf[row + (bit >> 3)] >> (8 - bpp - (bit & 7))) & valueMask;
          rgb[o] = pal[3 * idx];
          rgb[o + 1] = pal[3 * idx + 1];
          rgb[o + 2] = pal[3 * idx + 2];
        }
      }
    } else if (bpp === 24) {
      for (let r = 0; r < height; r++) {
        let s = dataOffset + r * stride;
        let o = (topDown ? r : height - 1 - r) * width * 3;
        for (let x = 0; x < width; x++, s += 3, o += 3) {
          rgb[o] = buf[s + 2];
          rgb[o + 1] = buf[s + 1];
          rgb[o + 2] = buf[s];
        }
      }
    } else {
      // 16 or 32 bits: masked fields.
      const cr = channelOf(maskR);
      const cg = channelOf(maskG);
      const cb = channelOf(maskB);
      const ca = channelOf(maskA);
      const a = ca.mask !== 0 ? new Uint8Array(width * height) : null;
      let anyAlpha = false;
      const bytes = bpp >> 3;
      for (let r = 0; r < height; r++) {
        const y = topDown ? r : height - 1 - r;
        let s = dataOffset + r * stride;
        let o = y * width;
        for (let x = 0; x < width; x++, s += bytes, o++) {
          const v = bytes === 4 ? u32(s) : u16(s);
          rgb[3 * o] = readChannel(v, cr);
          rgb[3 * o + 1] = readChannel(v, cg);
          rgb[3 * o + 2] = readChannel(v, cb);
          if (a) {
            const av = readChannel(v, ca);
            a[o] = av;
            if (av !== 0) anyAlpha = true;
          }
        }
      }
      if (a && anyAlpha) {
        // Only an alpha channel that is actually used counts; if every pixel is opaque, drop it too.
        let allOpaque = true;
        for (let i = 0; i < a.length && allOpaque; i++) if (a[i] !== 255) allOpaque = false;
        if (!allOpaque) alpha = a;
      }
    }
  }

  let originalChannels = 3;
  if (alpha) originalChannels = 4;
  else if (palette) {
    let gray = true;
    for (let i = 0; i < paletteCount && gray; i++) {
      gray = palette[3 * i] === palette[3 * i + 1] && palette[3 * i + 1] === palette[3 * i + 2];
    }
    if (gray) originalChannels = 1;
  }
  return { width, height, rgb, alpha, originalChannels };
}

/**
 * Decodes RLE8/RLE4 pixel data into palette indices, top row first. The stream is a sequence of 2-byte commands:
 * (n > 0, v) repeats v (RLE8) or the nibbles of v alternately (RLE4) n times; (0, 0) ends the line; (0, 1) ends
 * the bitmap; (0, 2, dx, dy) moves the cursor; (0, n >= 3) is followed by n literal pixels padded to 16 bits.
 * Rows are stored bottom-up. Pixels outside the bitmap are dropped.
 */
function decodeRle(
  buf: Uint8Array,
  start: number,
  width: number,
  height: number,
  four: boolean,
  label: string,
): Uint8Array {
  const out = new Uint8Array(width * height);
  const end = buf.length;
  const truncated = () => notBmp(label, 'truncated: the RLE data ends before the end-of-bitmap marker');
  let p = start;
  let x = 0;
  let y = 0; // file row, 0 = bottom
  const put = (idx: number) => {
    if (x < width && y < height) out[(height - 1 - y) * width + x] = idx;
    x++;
  };
  for (;;) {
    if (y >= height) break; // every row is done, whatever follows
    if (p + 1 >= end) throw truncated();
    const n = buf[p];
    const v = buf[p + 1];
    p += 2;
    if (n > 0) {
      if (x >= width) {
        x += n; // run entirely past the right edge: nothing to draw
        continue;
      }
      if (four) {
        const hi = v >> 4;
        const lo = v & 15;
        for (let i = 0; i < n; i++) put(i & 1 ? lo : hi);
      } else {
        for (let i = 0; i < n; i++) put(v);
      }
    } else if (v === 0) {
      x = 0;
      y++;
    } else if (v === 1) {
      break;
    } else if (v === 2) {
      if (p + 1 >= end) throw truncated();
      x += buf[p];
      y += buf[p + 1];
      p += 2;
    } else {
      const bytes = four ? (v + 1) >> 1 : v;
      if (p + bytes > end) throw truncated();
      for (let i = 0; i < v; i++) {
        put(four ? (i & 1 ? buf[p + (i >> 1)] & 15 : buf[p + (i >> 1)] >> 4) : buf[p + i]);
      }
      p += bytes + (bytes & 1);
    }
  }
  return out;
}
