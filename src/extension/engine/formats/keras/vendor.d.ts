/**
 * The parts of jsfive (read-only HDF5, pure JS) and yauzl (zip) that the Keras reader uses. Neither package
 * ships type declarations; these describe only what hdf5.ts and archive.ts call.
 */
declare module 'jsfive' {
  /** A group or the file itself. `get` throws (often a string, not an Error) where the path is absent. */
  export class Group {
    readonly name: string;
    readonly keys: string[];
    readonly attrs: Record<string, unknown>;
    get(path: string): Group | Dataset;
  }
  export class File extends Group {
    constructor(buffer: ArrayBuffer, filename?: string);
  }
  export class Dataset {
    readonly name: string;
    readonly shape: number[];
    /** A numpy-like type string ('<f4', '<i8', …) or an array for compound, string and reference types. */
    readonly dtype: string | unknown[];
    readonly value: ArrayLike<number | bigint> | unknown[];
    readonly attrs: Record<string, unknown>;
  }
}

declare module 'yauzl' {
  import type { Readable } from 'stream';
  import type { EventEmitter } from 'events';
  export interface Options {
    autoClose?: boolean;
    lazyEntries?: boolean;
    decodeStrings?: boolean;
    validateEntrySizes?: boolean;
    strictFileNames?: boolean;
  }
  export interface Entry {
    fileName: string;
    compressedSize: number;
    uncompressedSize: number;
    compressionMethod: number;
  }
  export interface ZipFile extends EventEmitter {
    entryCount: number;
    readEntry(): void;
    openReadStream(entry: Entry, callback: (err: Error | null, stream: Readable) => void): void;
    close(): void;
  }
  export function open(path: string, options: Options, callback: (err: Error | null, zipfile: ZipFile) => void): void;
}
