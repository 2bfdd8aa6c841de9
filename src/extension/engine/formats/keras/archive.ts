/**
 * Reads a Keras 3 `.keras` file: a zip holding `config.json` (the model's architecture), `metadata.json`
 * (Keras version, date) and `model.weights.h5` (the variables, HDF5). Keras writes them stored, not deflated,
 * but any zip tool may have repacked the file, so deflated entries are read too.
 *
 * A zip is hostile input until read: the reader (yauzl) only inflates the three entries we name, and
 * - refuses an archive of more than MAX_ENTRIES entries (the central directory alone can be huge);
 * - refuses an entry whose declared size is over its limit, or that would expand more than MAX_RATIO times
 *   its compressed size beyond a floor (a zip bomb: 80 MiB of zeros deflate to 80 KB);
 * - stops inflating an entry the moment it yields more bytes than it declared (yauzl's size check, and our
 *   own count as a second guard), so a lying header cannot make us allocate more than the limit.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as yauzl from 'yauzl';
import { CamLensError } from '../../errors';

export const MAX_ENTRIES = 1000;
/** Uncompressed size limits per entry. */
export const ENTRY_LIMITS: Record<string, number> = {
  'config.json': 64 * 1024 * 1024,
  'metadata.json': 1024 * 1024,
  'model.weights.h5': 2 * 1024 * 1024 * 1024 - 1,
};
/** A deflated entry larger than RATIO_FLOOR that expands more than MAX_RATIO times is refused as a bomb. */
export const MAX_RATIO = 100;
export const RATIO_FLOOR = 64 * 1024 * 1024;

export interface KerasArchive {
  config: string;
  metadata?: string;
  weights: Uint8Array;
  /** Names of all entries, for messages. */
  entries: string[];
}

const SAVE_HINT = 'save the model again with model.save("model.keras")';

function damaged(file: string, why: string): CamLensError {
  return new CamLensError('MODEL_INVALID', `${path.basename(file)} is not a readable Keras archive: ${why}`, 'the file is truncated or damaged; ' + SAVE_HINT);
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(n < 1024 * 1024 ? 3 : 0)} MiB`;
}

function readEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, file: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (err, stream) => {
      if (err) return reject(damaged(file, `entry ${entry.fileName}: ${err.message}`));
      const chunks: Buffer[] = [];
      let got = 0;
      let failed = false;
      stream.on('data', (c: Buffer) => {
        got += c.length;
        if (got > entry.uncompressedSize && !failed) {
          failed = true;
          stream.destroy();
          reject(damaged(file, `entry ${entry.fileName} inflates to more than the ${entry.uncompressedSize} bytes it declares`));
          return;
        }
        chunks.push(c);
      });
      stream.on('error', (e: Error) => {
        if (failed) return;
        failed = true;
        // yauzl's own size check says "too many bytes in the stream"; say what it means.
        const lie = /too many bytes|too few bytes/i.test(e.message);
        reject(damaged(file, lie ? `entry ${entry.fileName} does not hold the ${entry.uncompressedSize} bytes it declares (${e.message})` : `entry ${entry.fileName}: ${e.message}`));
      });
      stream.on('end', () => {
        if (!failed) resolve(Buffer.concat(chunks, got));
      });
    });
  });
}

/** Reads the three Keras entries of `file`, within the limits above. */
export function readKerasArchive(file: string): Promise<KerasArchive> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: true, validateEntrySizes: true, decodeStrings: true }, (err, zip) => {
      if (err) return reject(damaged(file, err.message));
      if (zip.entryCount > MAX_ENTRIES) {
        zip.close();
        return reject(new CamLensError('MODEL_INVALID', `${path.basename(file)} holds ${zip.entryCount} entries; a Keras archive has a handful (at most ${MAX_ENTRIES} are read)`,
          SAVE_HINT));
      }
      const found = new Map<string, Buffer>();
      const names: string[] = [];
      let done = false;
      const fail = (e: CamLensError) => {
        if (done) return;
        done = true;
        zip.close();
        reject(e);
      };
      zip.on('error', (e: Error) => fail(damaged(file, e.message)));
      zip.on('entry', (entry: yauzl.Entry) => {
        if (done) return;
        names.push(entry.fileName);
        const limit = ENTRY_LIMITS[entry.fileName];
        if (limit === undefined || found.has(entry.fileName)) {
          zip.readEntry();
          return;
        }
        if (entry.uncompressedSize > limit) {
          return fail(new CamLensError('MODEL_INVALID', `${path.basename(file)}: ${entry.fileName} declares ${mib(entry.uncompressedSize)}, more than the ${mib(limit)} CAM Lens reads`));
        }
        if (entry.uncompressedSize > RATIO_FLOOR && entry.uncompressedSize > MAX_RATIO * entry.compressedSize) {
          return fail(new CamLensError('MODEL_INVALID',
            `${path.basename(file)} looks like a zip bomb: ${entry.fileName} would expand from ${mib(entry.compressedSize)} to ${mib(entry.uncompressedSize)} (more than ${MAX_RATIO} times)`,
            'Keras stores its archive entries uncompressed; ' + SAVE_HINT));
        }
        readEntry(zip, entry, file).then((buf) => {
          found.set(entry.fileName, buf);
          zip.readEntry();
        }, fail);
      });
      zip.on('end', () => {
        if (done) return;
        done = true;
        const config = found.get('config.json');
        const weights = found.get('model.weights.h5');
        if (!config) {
          return reject(new CamLensError('MODEL_INVALID', `${path.basename(file)} has no config.json (it holds ${names.slice(0, 8).join(', ') || 'nothing'}); it is not a Keras 3 model archive`, SAVE_HINT));
        }
        if (!weights) {
          const other = names.find((n) => /^model\.weights\./.test(n));
          return reject(new CamLensError('MODEL_INVALID',
            other ? `${path.basename(file)} keeps its weights in ${other}; CAM Lens reads model.weights.h5`
              : `${path.basename(file)} has no model.weights.h5 (it holds ${names.slice(0, 8).join(', ')}): the archive has no weights`,
            SAVE_HINT));
        }
        resolve({ config: config.toString('utf8'), metadata: found.get('metadata.json')?.toString('utf8'), weights, entries: names });
      });
      zip.readEntry();
    });
  });
}

/** Size check before opening: an empty or missing file gets its own message. */
export function checkArchiveFile(file: string): void {
  const st = fs.statSync(file);
  if (st.size < 22) throw damaged(file, `the file has ${st.size} bytes, less than any zip archive`);
}
