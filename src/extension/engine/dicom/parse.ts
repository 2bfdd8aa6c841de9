/**
 * Reading a DICOM file's header and pixel data with dicom-parser (cornerstone's Part 10 parser, MIT).
 *
 * Privacy: this is the one place that sees a DICOM data set, and it lets out only what the pixel pipeline needs
 * (DicomHeader: a fixed whitelist of image attributes, none of them patient-identifying) and a function that
 * returns a frame's encoded bytes. The data set object itself never leaves this file, so it cannot be logged,
 * serialised or put in an error; error messages name the file and the problem, never a value read from the file
 * (dicom-parser's own messages are reduced to their wording, quoted values removed).
 *
 * Files read: Part 10 files (128-byte preamble, "DICM", file meta group, then the data set) whatever their name,
 * and legacy files without preamble or meta (a bare data set, implicit or explicit VR little endian, recognised
 * by their first element) when they are named *.dcm, *.dicom or *.dic.
 */
import { inflateRawSync } from 'zlib';
import * as dicomParser from 'dicom-parser';
import { CamLensError } from '../errors';
import { transferSyntax, type TransferSyntax } from './transferSyntax';

/** The image attributes CAM Lens reads, and nothing else. Strings are checked against their value form. */
export interface DicomHeader {
  transferSyntaxUid: string;
  /** (0008,0060), e.g. "CT", "DX"; absent when missing or not a code string. */
  modality?: string;
  rows: number;
  columns: number;
  samplesPerPixel: number;
  photometric: string;
  /** 0 interleaved (RGBRGB), 1 planar (RRR GGG BBB). */
  planarConfiguration: number;
  frames: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  /** PixelRepresentation 1: two's complement. */
  signed: boolean;
  /** Modality LUT as a linear rescale (0028,1053)/(0028,1052); absent when the file has neither. */
  rescale?: { slope: number; intercept: number; type?: string };
  /** The file has a Modality LUT Sequence (a table, not a rescale): not applied, said in the panel. */
  modalityLutSequence: boolean;
  /** VOI windows (0028,1050)/(0028,1051), with their explanations (0028,1055) where given. */
  windows: { center: number; width: number; name?: string }[];
  /** (0028,1056): LINEAR (default), LINEAR_EXACT or SIGMOID. */
  voiFunction: 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';
  /** The file has a VOI LUT Sequence (a table): not applied, said in the panel. */
  voiLutSequence: boolean;
  /** Read without preamble and file meta (a legacy file). */
  legacy: boolean;
}

export interface DicomFile {
  header: DicomHeader;
  syntax: TransferSyntax;
  /**
   * The encoded bytes of frame `index` (0-based): for native pixel data exactly one frame's bytes, for
   * encapsulated data one codestream. A view into the file's buffer where possible.
   */
  frame(index: number): Uint8Array;
}

const T = {
  transferSyntax: 'x00020010',
  modality: 'x00080060',
  samplesPerPixel: 'x00280002',
  photometric: 'x00280004',
  planar: 'x00280006',
  frames: 'x00280008',
  rows: 'x00280010',
  columns: 'x00280011',
  bitsAllocated: 'x00280100',
  bitsStored: 'x00280101',
  highBit: 'x00280102',
  pixelRepresentation: 'x00280103',
  windowCenter: 'x00281050',
  windowWidth: 'x00281051',
  rescaleIntercept: 'x00281052',
  rescaleSlope: 'x00281053',
  rescaleType: 'x00281054',
  windowExplanation: 'x00281055',
  voiFunction: 'x00281056',
  modalityLutSequence: 'x00283000',
  voiLutSequence: 'x00283010',
  pixelData: 'x7fe00010',
  floatPixelData: 'x7fe00008',
  doubleFloatPixelData: 'x7fe00009',
} as const;

const DICOM_EXTENSIONS = /\.(dcm|dicom|dic)$/i;

const PHOTOMETRICS = new Set(['MONOCHROME1', 'MONOCHROME2', 'RGB', 'YBR_FULL', 'YBR_FULL_422', 'YBR_ICT', 'YBR_RCT', 'PALETTE COLOR', 'YBR_PARTIAL_422', 'YBR_PARTIAL_420', 'HSV', 'ARGB', 'CMYK']);

/** The two-letter value representations of PS3.5 6.2, to tell explicit from implicit VR in a legacy file. */
const VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV']);

function hasDicmMarker(buf: Uint8Array): boolean {
  return buf.length >= 132 && buf[128] === 0x44 && buf[129] === 0x49 && buf[130] === 0x43 && buf[131] === 0x4d;
}

/**
 * A legacy data set starts with an element of group 0008 (identifying attributes come first in tag order) or,
 * rarely, of the file meta group 0002 without the preamble. Returns how its VR is encoded, or undefined.
 */
function legacyStart(buf: Uint8Array): 'explicit' | 'implicit' | undefined {
  if (buf.length < 8) return undefined;
  const group = buf[0] | (buf[1] << 8);
  if (group !== 0x0008 && group !== 0x0002) return undefined;
  const vr = String.fromCharCode(buf[4], buf[5]);
  if (VRS.has(vr)) return 'explicit';
  if (group === 0x0002) return undefined; // the meta group is always explicit VR
  // Implicit VR: a 32-bit length that fits in the file.
  const length = (buf[4] | (buf[5] << 8) | (buf[6] << 16) | (buf[7] << 24)) >>> 0;
  return length < buf.length ? 'implicit' : undefined;
}

/**
 * Whether a file is DICOM: a Part 10 file (the "DICM" marker at byte 128, whatever the file is called), or a
 * legacy data set named *.dcm, *.dicom or *.dic. A *.dcm file that is neither is still sent to readDicom, whose
 * error then says why it is not DICOM.
 */
export function looksLikeDicom(buf: Uint8Array, name?: string): boolean {
  if (hasDicmMarker(buf)) return true;
  return name !== undefined && DICOM_EXTENSIONS.test(name);
}

/** dicom-parser throws strings, Errors or `{ exception, dataSet }`: the wording only, quoted values dropped. */
function parserReason(e: unknown): string {
  const inner = e !== null && typeof e === 'object' && 'exception' in e ? (e as { exception: unknown }).exception : e;
  const raw = inner instanceof Error ? inner.message : typeof inner === 'string' ? inner : 'unknown error';
  return raw.replace(/^dicomParser[.:][\w.]*:\s*/, '').replace(/'[^']*'|"[^"]*"/g, '…').slice(0, 160);
}

function damaged(label: string, what: string): CamLensError {
  return new CamLensError('NOT_AN_IMAGE', `"${label}" is a damaged DICOM file: ${what}`);
}

/** A code string (CS) as the standard allows it: upper case, digits, space, underscore; at most 16 characters. */
function codeString(s: string | undefined): string | undefined {
  const t = s?.trim();
  return t && /^[A-Z0-9 _]{1,16}$/.test(t) ? t : undefined;
}

/** A short label (window explanation, rescale type) kept only in a plain form, capped in length. */
function shortLabel(s: string | undefined): string | undefined {
  const t = s?.trim();
  return t && /^[\w .,%/()+-]{1,32}$/.test(t) ? t : undefined;
}

function parseDataSet(buf: Uint8Array, label: string): { ds: dicomParser.DataSet; legacy: boolean; uid: string } {
  const part10 = hasDicmMarker(buf);
  let legacyVr: 'explicit' | 'implicit' | undefined;
  if (!part10) {
    legacyVr = legacyStart(buf);
    if (!legacyVr) {
      throw new CamLensError('NOT_AN_IMAGE', `"${label}" is not a DICOM file: it has no "DICM" marker at byte 128 and does not begin with a DICOM data element`);
    }
  }
  const options: dicomParser.ParseDicomOptions = {
    // Deflated data sets: inflated here with a cap, instead of dicom-parser's unbounded inflate (a zip bomb guard).
    inflater: (arr: Uint8Array, position: number) => {
      let inflated: Buffer;
      try {
        inflated = inflateRawSync(arr.subarray(position), { maxOutputLength: 2 ** 31 - 1 - position });
      } catch (e) {
        throw damaged(label, `its deflated data set cannot be inflated (${(e as Error).message})`);
      }
      const whole = new Uint8Array(position + inflated.length);
      whole.set(arr.subarray(0, position), 0);
      whole.set(inflated, position);
      return whole;
    },
  } as dicomParser.ParseDicomOptions;
  if (legacyVr) options.TransferSyntaxUID = legacyVr === 'explicit' ? '1.2.840.10008.1.2.1' : '1.2.840.10008.1.2';
  let ds: dicomParser.DataSet;
  try {
    ds = dicomParser.parseDicom(buf, options);
  } catch (e) {
    if (e instanceof CamLensError) throw e;
    const reason = parserReason(e);
    if (/overrun|past end|beyond|eof/i.test(reason)) {
      // The file ends inside an element: say whether that element is the pixel data.
      const pixel = pixelElementOf(buf, options);
      if (pixel && pixel.dataOffset + pixel.length > buf.length) {
        throw damaged(label, `its pixel data is truncated: the file ends ${Math.max(0, buf.length - pixel.dataOffset)} bytes into pixel data of ${pixel.length} bytes`);
      }
      throw damaged(label, 'the file ends in the middle of its header (truncated)');
    }
    throw damaged(label, `its data set cannot be read (${reason})`);
  }
  const uid = legacyVr ? (options.TransferSyntaxUID as string) : (ds.string(T.transferSyntax) ?? '').replace(/\0/g, '').trim();
  return { ds, legacy: !!legacyVr, uid };
}

/** The pixel data element's header only (the parser stops there), for the truncation message. */
function pixelElementOf(buf: Uint8Array, options: dicomParser.ParseDicomOptions): dicomParser.Element | undefined {
  try {
    const ds = dicomParser.parseDicom(buf, { ...options, untilTag: T.pixelData });
    return ds.elements[T.pixelData];
  } catch {
    return undefined;
  }
}

function numbers(ds: dicomParser.DataSet, tag: string): number[] {
  const n = ds.numStringValues(tag) ?? 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = ds.floatString(tag, i);
    if (v !== undefined && Number.isFinite(v)) out.push(v);
  }
  return out;
}

/**
 * Reads a DICOM file's header and locates its pixel data. Throws CamLensError NOT_AN_IMAGE with one specific
 * message for each way a file can fail: not DICOM, damaged data set, truncated pixel data, pixel data of the
 * wrong length, unknown or unsupported transfer syntax, no pixel data, an unsupported pixel format.
 */
export function readDicom(buf: Uint8Array, label: string): DicomFile {
  const { ds, legacy, uid } = parseDataSet(buf, label);
  const syntax = transferSyntax(uid);
  if (!uid) throw damaged(label, 'its file meta information has no transfer syntax UID (0002,0010)');
  if (!syntax) {
    throw new CamLensError('NOT_AN_IMAGE', `"${label}" has an unknown transfer syntax ${/^[\d.]{1,64}$/.test(uid) ? uid : '(not a UID)'}, which is not a DICOM image encoding CAM Lens knows`);
  }
  if (!syntax.codec) throw new CamLensError('NOT_AN_IMAGE', `"${label}" uses the transfer syntax ${syntax.name} (${syntax.uid}): ${syntax.unsupported ?? 'not supported'}`);

  const el = ds.elements[T.pixelData];
  if (!el) {
    if (ds.elements[T.floatPixelData] || ds.elements[T.doubleFloatPixelData]) {
      throw new CamLensError('NOT_AN_IMAGE', `"${label}" holds floating-point pixel data (parametric maps), which CAM Lens does not read`);
    }
    throw new CamLensError('NOT_AN_IMAGE', `"${label}" is a DICOM file without an image: it has no pixel data (7FE0,0010)`);
  }

  const rows = ds.uint16(T.rows) ?? 0;
  const columns = ds.uint16(T.columns) ?? 0;
  const samplesPerPixel = ds.uint16(T.samplesPerPixel) ?? 1;
  const bitsAllocated = ds.uint16(T.bitsAllocated) ?? 0;
  const bitsStored = ds.uint16(T.bitsStored) ?? bitsAllocated;
  const highBit = ds.uint16(T.highBit) ?? bitsStored - 1;
  const photometricRaw = (ds.string(T.photometric) ?? (samplesPerPixel === 3 ? 'RGB' : 'MONOCHROME2')).trim().toUpperCase();
  const photometric = PHOTOMETRICS.has(photometricRaw) ? photometricRaw : '';
  const framesRaw = ds.intString(T.frames);
  const frames = framesRaw === undefined || !Number.isFinite(framesRaw) || framesRaw < 1 ? 1 : Math.floor(framesRaw);

  if (rows < 1 || columns < 1) throw damaged(label, `its image size is ${columns}x${rows} (Columns x Rows)`);
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3) {
    throw new CamLensError('NOT_AN_IMAGE', `"${label}" has ${samplesPerPixel} samples per pixel; CAM Lens reads grayscale (1) and colour (3) DICOM images`);
  }
  if (!photometric) throw new CamLensError('NOT_AN_IMAGE', `"${label}" has a photometric interpretation that is not a DICOM one`);
  if (photometric === 'PALETTE COLOR' || photometric === 'HSV' || photometric === 'ARGB' || photometric === 'CMYK' || photometric.startsWith('YBR_PARTIAL')) {
    throw new CamLensError('NOT_AN_IMAGE', `"${label}" is a ${photometric} image, which CAM Lens does not read (it reads MONOCHROME1, MONOCHROME2, RGB and YBR_FULL/YBR_FULL_422/YBR_ICT/YBR_RCT)`);
  }
  if ((samplesPerPixel === 1) !== photometric.startsWith('MONOCHROME')) {
    throw damaged(label, `a ${photometric} image should not have ${samplesPerPixel} sample${samplesPerPixel === 1 ? '' : 's'} per pixel`);
  }
  if (![8, 16, 32].includes(bitsAllocated)) {
    throw new CamLensError('NOT_AN_IMAGE', `"${label}" has ${bitsAllocated} bits allocated per sample; CAM Lens reads 8, 16 and 32`);
  }
  if (bitsStored < 1 || bitsStored > bitsAllocated) throw damaged(label, `it stores ${bitsStored} bits in ${bitsAllocated}`);
  if (frames > 100_000) throw damaged(label, `it declares ${frames} frames`);

  const windowsC = numbers(ds, T.windowCenter);
  const windowsW = numbers(ds, T.windowWidth);
  const windows: DicomHeader['windows'] = [];
  for (let i = 0; i < Math.min(windowsC.length, windowsW.length); i++) {
    const name = shortLabel(ds.string(T.windowExplanation, i));
    windows.push({ center: windowsC[i], width: windowsW[i], ...(name ? { name } : {}) });
  }
  const fn = codeString(ds.string(T.voiFunction));
  const slope = ds.floatString(T.rescaleSlope);
  const intercept = ds.floatString(T.rescaleIntercept);
  const hasRescale = (slope !== undefined && Number.isFinite(slope)) || (intercept !== undefined && Number.isFinite(intercept));
  const rescaleType = shortLabel(ds.string(T.rescaleType));

  const header: DicomHeader = {
    transferSyntaxUid: syntax.uid,
    rows,
    columns,
    samplesPerPixel,
    photometric,
    planarConfiguration: samplesPerPixel > 1 ? (ds.uint16(T.planar) ?? 0) : 0,
    frames,
    bitsAllocated,
    bitsStored,
    highBit,
    signed: (ds.uint16(T.pixelRepresentation) ?? 0) === 1,
    modalityLutSequence: !!ds.elements[T.modalityLutSequence],
    windows,
    voiFunction: fn === 'LINEAR_EXACT' || fn === 'SIGMOID' ? fn : 'LINEAR',
    voiLutSequence: !!ds.elements[T.voiLutSequence],
    legacy,
  };
  const modality = codeString(ds.string(T.modality));
  if (modality) header.modality = modality;
  if (hasRescale && samplesPerPixel === 1) {
    header.rescale = {
      slope: slope !== undefined && Number.isFinite(slope) && slope !== 0 ? slope : 1,
      intercept: intercept !== undefined && Number.isFinite(intercept) ? intercept : 0,
      ...(rescaleType ? { type: rescaleType } : {}),
    };
  }

  // The data set's own bytes: for a deflated file, the header followed by the inflated data set.
  const bytes = ds.byteArray as Uint8Array;
  const frameFn = el.encapsulatedPixelData ? encapsulatedFrames(ds, el, header, syntax, label, bytes) : nativeFrames(el, header, label, bytes);
  return { header, syntax, frame: frameFn };
}

/** Bytes of one native (uncompressed) frame. YBR_FULL_422 keeps two luma samples and one Cb, Cr pair per two pixels. */
export function nativeFrameBytes(h: DicomHeader): number {
  const samples = h.photometric === 'YBR_FULL_422' ? 2 : h.samplesPerPixel;
  return (h.rows * h.columns * samples * h.bitsAllocated) / 8;
}

function nativeFrames(el: dicomParser.Element, h: DicomHeader, label: string, buf: Uint8Array): (i: number) => Uint8Array {
  const frameBytes = nativeFrameBytes(h);
  const need = frameBytes * h.frames;
  if (el.dataOffset + el.length > buf.length) {
    throw damaged(label, `its pixel data is truncated: the file ends ${Math.max(0, buf.length - el.dataOffset)} bytes into pixel data of ${el.length} bytes`);
  }
  if (el.length < need) {
    throw damaged(label, `its pixel data holds ${el.length} bytes, but ${h.frames} frame${h.frames === 1 ? '' : 's'} of ${h.columns}x${h.rows}x${h.samplesPerPixel} at ${h.bitsAllocated} bits need ${need} (wrong length)`);
  }
  return (i) => buf.subarray(el.dataOffset + i * frameBytes, el.dataOffset + (i + 1) * frameBytes);
}

function encapsulatedFrames(ds: dicomParser.DataSet, el: dicomParser.Element, h: DicomHeader, syntax: TransferSyntax, label: string, buf: Uint8Array): (i: number) => Uint8Array {
  const fragments = el.fragments ?? [];
  if (fragments.length === 0) throw damaged(label, 'its compressed pixel data has no fragments');
  for (const f of fragments) {
    // dicom-parser's fragment offsets are relative to the first fragment's item; `position` is absolute.
    if (f.position + f.length > buf.length) {
      throw damaged(label, `its pixel data is truncated: a compressed fragment of ${f.length} bytes runs past the end of the file`);
    }
  }
  const bot = el.basicOffsetTable ?? [];
  let table: number[] | undefined;
  if (h.frames > 1 && bot.length === 0 && fragments.length !== h.frames) {
    // No offset table and several fragments per frame: JPEG streams can be split at their end-of-image markers.
    if (syntax.codec === 'jpeg' || syntax.codec === 'jpeg-lossless') table = dicomParser.createJPEGBasicOffsetTable(ds, el);
    else throw damaged(label, `its ${h.frames} compressed frames come in ${fragments.length} fragments without an offset table to tell them apart`);
  }
  if (bot.length > 0 && bot.length !== h.frames) {
    throw damaged(label, `its offset table lists ${bot.length} frames, but it declares ${h.frames}`);
  }
  return (i) => {
    try {
      if (h.frames === 1) return dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, 0, fragments.length) as Uint8Array;
      if (table) return dicomParser.readEncapsulatedImageFrame(ds, el, i, table) as Uint8Array;
      if (bot.length === 0) return dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, i, 1) as Uint8Array;
      return dicomParser.readEncapsulatedImageFrame(ds, el, i) as Uint8Array;
    } catch (e) {
      throw damaged(label, `frame ${i} of its compressed pixel data cannot be found (${parserReason(e)})`);
    }
  };
}
