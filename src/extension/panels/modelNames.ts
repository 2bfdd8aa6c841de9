/**
 * One model, one name, one picker entry. Pure (no `vscode`), so it is tested in plain Node.
 *
 * A model is shown under the name its metadata gives (`name` in cam-lens.json, `modelName` in a Teachable Machine
 * metadata.json, read by the engine's readMetadata, "first found wins"), else under its folder's name: the same
 * rule the engine applies to `ModelInfo.name` (engine/model.ts), which the explain panel and the inspector show.
 * The model picker, the status bar and the triage panel call `modelDisplayName`, so the bundled demo model is
 * "CAM Lens demo shapes" everywhere, not "demo" in some places.
 *
 * The picker lists the workspace's model.json files plus the bundled demo model; when the workspace holds the
 * extension itself (or a link to it), the demo model is also a workspace file. Entries are keyed by the model's
 * resolved path (symbolic links followed; case-folded where the file system ignores case), so it is listed once.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readMetadata } from '../engine/metadata';
import { fallbackModelName } from '../engine/modelName';

/** The name a model is shown under: its metadata's name, else its folder's (model.json) or file's name. */
export function modelDisplayName(modelFile: string): string {
  const file = path.resolve(modelFile);
  try {
    const name = readMetadata(path.dirname(file), undefined, { modelFile: file }).name?.trim();
    if (name) return name;
  } catch {
    // Unreadable metadata: the panel that loads the model reports it; a name is still needed here.
  }
  return fallbackModelName(file);
}

/** The identity of a model file: its real path (links resolved), case-folded on Windows and macOS. */
export function modelKey(modelJson: string, platform: NodeJS.Platform = process.platform): string {
  let p = path.resolve(modelJson);
  try {
    p = fs.realpathSync.native(p);
  } catch {
    // Absent (a stale setting): its resolved path is its identity.
  }
  return platform === 'win32' || platform === 'darwin' ? p.toLowerCase() : p;
}

/** One entry of the model picker. */
export interface ModelPickEntry {
  /** The model's display name. */
  label: string;
  /** Where it is: the workspace-relative path, and "bundled demo model" for the demo. */
  description: string;
  /** "active" for the model in use. */
  detail?: string;
  modelPath: string;
}

/**
 * The picker's models: `found` (workspace model.json files, in the order given) and then the bundled demo model,
 * each model once (by `modelKey`); a found file that is the demo model is marked as the bundled one. `relative`
 * turns a path into what the description shows (vscode.workspace.asRelativePath in the extension).
 */
export function modelPickEntries(
  found: readonly string[],
  bundled: string | undefined,
  active: string | undefined,
  relative: (p: string) => string,
  name: (p: string) => string = modelDisplayName,
): ModelPickEntry[] {
  const activeKey = active ? modelKey(active) : undefined;
  const bundledKey = bundled ? modelKey(bundled) : undefined;
  const seen = new Set<string>();
  const out: ModelPickEntry[] = [];
  const add = (p: string, isBundled: boolean) => {
    const key = modelKey(p);
    if (seen.has(key)) return;
    seen.add(key);
    const where = isBundled || key === bundledKey ? 'bundled demo model' : relative(p);
    out.push({ label: name(p), description: where, detail: key === activeKey ? 'active' : undefined, modelPath: p });
  };
  for (const p of found) add(p, false);
  if (bundled) add(bundled, true);
  return out;
}
