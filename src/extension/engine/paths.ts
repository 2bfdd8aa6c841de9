/**
 * Path confinement: one function for every file path that a file we were handed names (weight shards in a
 * model.json's manifest, images in a dataset's label file). Such a file may come from anywhere, so the paths
 * in it must not reach outside its folder.
 *
 * A path is inside `root` when, after resolving it against the real (symlink-free) root, `path.relative`
 * from the root to it neither is `..` nor starts with `../` nor is absolute. Comparing prefixes
 * (`p.startsWith(root)`) is the classic mistake: `/data/m-secret/w.bin` starts with `/data/m`. The check
 * runs twice: once on the path as written (`..` segments, absolute paths) and once on its real path, so a
 * symlink inside the folder that leads out of it is refused too. Where the file does not exist yet, the real
 * path of its deepest existing ancestor is checked, so a symlinked folder leading out is refused either way
 * and "missing" is only ever said of a path that would be inside.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CamLensError, type ErrorCode } from './errors';

export interface ConfineOptions {
  /** What the path names, for messages: "weight file", "image". */
  what?: string;
  /** The folder, for messages: "the model folder", "the label file's folder". */
  folderName?: string;
  /** Paths are relative URLs (a tfjs manifest's `paths`): `%20` is decoded, a malformed escape refused. */
  urlEncoded?: boolean;
  /** Error code for a path leading out of the folder (default WEIGHT_PATH_ESCAPE). */
  escapeCode?: ErrorCode;
  /** Error code for a path that is no path at all: empty, a URL, a NUL byte (default MODEL_INVALID). */
  invalidCode?: ErrorCode;
}

/** True where `p` is `root` itself or below it; both absolute and normalised. */
export function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (rel !== '..' && !rel.startsWith('..' + path.sep) && !path.isAbsolute(rel));
}

/** The real path of `p`, or of its deepest existing ancestor joined with the rest. */
function realOrAncestor(p: string): string {
  const rest: string[] = [];
  let cur = p;
  for (;;) {
    try {
      return path.join(fs.realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return p;
      rest.push(path.basename(cur));
      cur = parent;
    }
  }
}

/**
 * Resolves `rel` (relative to `root`, or absolute) to an absolute path strictly below `root`, or throws.
 * The file need not exist: callers say "missing" themselves. Returns the path as resolved against the real
 * root (symlinks inside the folder are kept, since they lead inside).
 */
export function confinedPath(root: string, rel: string, opts: ConfineOptions = {}): string {
  const what = opts.what ?? 'file';
  const folder = opts.folderName ?? 'the folder';
  const invalid = (why: string) => new CamLensError(opts.invalidCode ?? 'MODEL_INVALID', `refusing ${what} path ${JSON.stringify(rel)}: ${why}`);
  if (typeof rel !== 'string' || rel.trim() === '') throw invalid('it is empty');
  if (rel.includes('\0')) throw invalid('it contains a NUL byte');
  // "http://…", "file://…"; a scheme of two letters or more, so that "C://…" stays a Windows path.
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(rel)) throw invalid(`a URL is not a file in ${folder}`);
  let decoded = rel;
  if (opts.urlEncoded) {
    try {
      decoded = decodeURIComponent(rel);
    } catch {
      throw invalid('it has a malformed %-escape');
    }
    if (decoded.includes('\0')) throw invalid('it contains a NUL byte');
  }
  let realRoot: string;
  try {
    realRoot = fs.realpathSync(root);
  } catch {
    throw new CamLensError('FILE_NOT_FOUND', `folder not found: ${root}`);
  }
  const escape = (detail: string) => new CamLensError(opts.escapeCode ?? 'WEIGHT_PATH_ESCAPE', `refusing ${what} "${rel}": ${detail}, outside ${folder} ${realRoot}`);
  const target = path.resolve(realRoot, decoded);
  if (!isInside(realRoot, target)) throw escape(path.isAbsolute(decoded) ? 'an absolute path' : `it resolves to ${target}`);
  if (target === realRoot) throw invalid(`it names ${folder} itself, not a file in it`);
  const real = realOrAncestor(target);
  if (!isInside(realRoot, real)) throw escape(`it links to ${real}`);
  return target;
}
