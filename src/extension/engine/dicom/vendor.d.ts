/**
 * The parts of the DICOM codecs that engine/dicom/codecs.ts calls. jpeg-lossless-decoder-js names a declaration
 * file it does not ship; the cornerstone codecs' Emscripten glue ships none.
 */
declare module 'jpeg-lossless-decoder-js' {
  export class Decoder {
    /** Decodes one JPEG Lossless (Process 14) stream: samples interleaved, 8 or 16 bits as the stream's precision. */
    decode(buffer: ArrayBufferLike, offset: number, length: number, numBytes?: number): Uint8Array | Uint16Array;
  }
}

/** Emscripten glue of a cornerstone codec: a factory resolving to the module once its wasm has loaded. */
interface CornerstoneCodecFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned?: boolean;
}

interface CornerstoneCodecDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getDecodedBuffer(): Uint8Array;
  getFrameInfo(): CornerstoneCodecFrameInfo;
  delete(): void;
}

interface CornerstoneCodecOptions {
  locateFile?: (file: string, scriptDirectory: string) => string;
  wasmBinary?: ArrayBufferLike;
  print?: (s: string) => void;
  printErr?: (s: string) => void;
}

declare module '@cornerstonejs/codec-charls/decodewasmjs' {
  const factory: (options?: CornerstoneCodecOptions) => Promise<{ JpegLSDecoder: new () => CornerstoneCodecDecoder & { getInterleaveMode(): number } }>;
  export = factory;
}

declare module '@cornerstonejs/codec-openjpeg/decodewasmjs' {
  const factory: (options?: CornerstoneCodecOptions) => Promise<{ J2KDecoder: new () => CornerstoneCodecDecoder & { getColorSpace(): number } }>;
  export = factory;
}
