/**
 * DICOM transfer syntaxes (PS3.5 Annex A, PS3.6 Annex A): how a file's data set is encoded and, for the
 * encapsulated ones, which codec its pixel data needs. One table, read by the parser (VR, endianness, deflate) and
 * by the frame decoder (codec). A UID outside the table is "unknown"; one in it without a codec is "unsupported",
 * each with its own message.
 */

/** The decoder a transfer syntax's pixel data goes through (codecs.ts). */
export type Codec = 'raw' | 'jpeg' | 'jpeg-lossless' | 'jpeg-ls' | 'jpeg2000';

export interface TransferSyntax {
  uid: string;
  name: string;
  explicitVr: boolean;
  littleEndian: boolean;
  deflated?: boolean;
  /** Absent where CAM Lens cannot decode the pixel data (`unsupported` says why). */
  codec?: Codec;
  unsupported?: string;
}

const TABLE: TransferSyntax[] = [
  { uid: '1.2.840.10008.1.2', name: 'Implicit VR Little Endian', explicitVr: false, littleEndian: true, codec: 'raw' },
  { uid: '1.2.840.10008.1.2.1', name: 'Explicit VR Little Endian', explicitVr: true, littleEndian: true, codec: 'raw' },
  { uid: '1.2.840.10008.1.2.1.99', name: 'Deflated Explicit VR Little Endian', explicitVr: true, littleEndian: true, deflated: true, codec: 'raw' },
  {
    uid: '1.2.840.10008.1.2.2', name: 'Explicit VR Big Endian (retired)', explicitVr: true, littleEndian: false,
    unsupported: 'big-endian DICOM was retired from the standard in 2004; convert the file to little endian (dcmconv +te, gdcmconv --raw)',
  },
  { uid: '1.2.840.10008.1.2.4.50', name: 'JPEG Baseline (Process 1)', explicitVr: true, littleEndian: true, codec: 'jpeg' },
  // Extended (Process 2 & 4): 8-bit streams decode like baseline; a 12-bit stream is refused by the decoder.
  { uid: '1.2.840.10008.1.2.4.51', name: 'JPEG Extended (Process 2 & 4)', explicitVr: true, littleEndian: true, codec: 'jpeg' },
  { uid: '1.2.840.10008.1.2.4.57', name: 'JPEG Lossless (Process 14)', explicitVr: true, littleEndian: true, codec: 'jpeg-lossless' },
  { uid: '1.2.840.10008.1.2.4.70', name: 'JPEG Lossless (Process 14, SV1)', explicitVr: true, littleEndian: true, codec: 'jpeg-lossless' },
  { uid: '1.2.840.10008.1.2.4.80', name: 'JPEG-LS Lossless', explicitVr: true, littleEndian: true, codec: 'jpeg-ls' },
  { uid: '1.2.840.10008.1.2.4.81', name: 'JPEG-LS Near-Lossless', explicitVr: true, littleEndian: true, codec: 'jpeg-ls' },
  { uid: '1.2.840.10008.1.2.4.90', name: 'JPEG 2000 (Lossless Only)', explicitVr: true, littleEndian: true, codec: 'jpeg2000' },
  { uid: '1.2.840.10008.1.2.4.91', name: 'JPEG 2000', explicitVr: true, littleEndian: true, codec: 'jpeg2000' },
  {
    uid: '1.2.840.10008.1.2.5', name: 'RLE Lossless', explicitVr: true, littleEndian: true,
    unsupported: 'RLE Lossless pixel data is not decoded by CAM Lens yet; convert the file (gdcmconv --raw, dcmdrle)',
  },
  ...['1.2.840.10008.1.2.4.100', '1.2.840.10008.1.2.4.101', '1.2.840.10008.1.2.4.102', '1.2.840.10008.1.2.4.103', '1.2.840.10008.1.2.4.104', '1.2.840.10008.1.2.4.105', '1.2.840.10008.1.2.4.106', '1.2.840.10008.1.2.4.107', '1.2.840.10008.1.2.4.108'].map(
    (uid): TransferSyntax => ({ uid, name: 'MPEG video', explicitVr: true, littleEndian: true, unsupported: 'video (MPEG) pixel data is not an image CAM Lens can read' }),
  ),
  {
    uid: '1.2.840.10008.1.2.4.201', name: 'High-Throughput JPEG 2000 (Lossless Only)', explicitVr: true, littleEndian: true,
    unsupported: 'High-Throughput JPEG 2000 is not decoded by CAM Lens yet; convert the file (gdcmconv --raw)',
  },
  {
    uid: '1.2.840.10008.1.2.4.202', name: 'High-Throughput JPEG 2000 with RPCL Options (Lossless Only)', explicitVr: true, littleEndian: true,
    unsupported: 'High-Throughput JPEG 2000 is not decoded by CAM Lens yet; convert the file (gdcmconv --raw)',
  },
  {
    uid: '1.2.840.10008.1.2.4.203', name: 'High-Throughput JPEG 2000', explicitVr: true, littleEndian: true,
    unsupported: 'High-Throughput JPEG 2000 is not decoded by CAM Lens yet; convert the file (gdcmconv --raw)',
  },
];

const BY_UID = new Map(TABLE.map((t) => [t.uid, t]));

/** The transfer syntax of a UID, or undefined for a UID the standard does not define (or defines for no image). */
export function transferSyntax(uid: string): TransferSyntax | undefined {
  return BY_UID.get(uid);
}

/** Transfer syntaxes whose pixel data CAM Lens decodes, for messages and the README. */
export function supportedTransferSyntaxes(): TransferSyntax[] {
  return TABLE.filter((t) => t.codec !== undefined);
}
