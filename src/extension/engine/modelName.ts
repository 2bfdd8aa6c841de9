/**
 * The name a model goes by where its metadata gives none: a TensorFlow.js model.json is named by its folder
 * (its files are a folder: model.json plus shards), any single-file model (ONNX, Keras) by its file name without
 * the extension. The engine's ModelInfo.name and the host's pickers and titles both use this, with the
 * metadata's `name` first, so one model has one name everywhere.
 */
import * as path from 'path';

export function fallbackModelName(modelPath: string): string {
  const file = path.resolve(modelPath);
  if (/\.json$/i.test(file)) return path.basename(path.dirname(file));
  return path.basename(file).replace(/\.[^.]+$/, '');
}
