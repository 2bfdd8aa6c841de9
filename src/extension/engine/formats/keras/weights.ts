/**
 * Finds each layer's saved weights and sets them on the tfjs model, checking every count and shape.
 *
 * Where Keras puts them:
 * - `.keras` (Keras 3, `model.weights.h5`): `layers/<key>/vars/<i>`, i = 0, 1, … in the layer's own order
 *   (trainable, then non-trainable: a BatchNormalization's gamma, beta, moving mean, moving variance). `<key>`
 *   is the snake-case class name, numbered per container in the config's order (`conv2d`, `conv2d_1`…),
 *   not the layer name; since Keras 3.? the `vars` group also carries the layer name as attribute `name`,
 *   which wins where present. A nested model's layers are under `layers/<its key>/layers/…`.
 * - `.h5` (Keras 2, and Keras 3's legacy h5): `model_weights/<layer name>` lists its weights' paths in the
 *   attribute `weight_names` (`conv2d/kernel:0`, or Keras 3's `conv2d/kernel`), each a dataset at that
 *   path below the group. A nested model's group holds all its layers' weights, trainable ones first: they are
 *   matched to the inner layers by the path's second-to-last part, the layer that owns the variable.
 * In both, a layer's weights come in the order tfjs-layers keeps them, which is checked by count and shape.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { CamLensError } from '../../errors';
import type { ContainerPlan, LayerPlan } from './config';
import { toSnakeCase } from './config';
import { H5File, isDataset } from './hdf5';

interface SavedWeight {
  /** For messages: the variable's name or its index path. */
  name: string;
  shape: number[];
  values: Float32Array;
}

/** Where a layer's weights are read from: a lazy reader per layer. */
type WeightLookup = (layer: LayerPlan) => SavedWeight[];

interface TfjsLayer {
  name: string;
  weights: { name: string; originalName?: string; shape: number[] }[];
  setWeights(w: tf.Tensor[]): void;
  getLayer?(name: string): TfjsLayer;
}

function fileName(h5: H5File): string {
  return path.basename(h5.fileName);
}

function readVars(h5: H5File, groupPath: string, layer: LayerPlan): SavedWeight[] {
  const vars = h5.group(`${groupPath}/vars`);
  if (!vars) return [];
  const keys = h5.keys(vars).filter((k) => /^\d+$/.test(k)).sort((a, b) => Number(a) - Number(b));
  return keys.map((k, i) => {
    if (Number(k) !== i) {
      throw new CamLensError('MODEL_INVALID', `${fileName(h5)}: the variables of layer "${layer.name}" at ${groupPath}/vars skip index ${i}`);
    }
    const d = h5.get(`${groupPath}/vars/${k}`);
    if (!isDataset(d)) throw new CamLensError('MODEL_INVALID', `${fileName(h5)}: ${groupPath}/vars/${k} is not a dataset`);
    const { shape, values } = h5.dataset(d, `variable ${k} of layer "${layer.name}"`);
    return { name: `vars/${k}`, shape, values };
  });
}

/** Keras 3 `.keras`: maps every leaf layer of `container` (recursively) to its group path. */
function v3Paths(h5: H5File, container: ContainerPlan, base: string, out: Map<LayerPlan, string>): void {
  const groupPath = base ? `${base}/layers` : 'layers';
  const g = h5.group(groupPath);
  const byName = new Map<string, string>();
  if (g) {
    for (const key of h5.keys(g)) {
      const vars = h5.group(`${groupPath}/${key}/vars`);
      const name = vars ? h5.stringAttr(vars, 'name') : undefined;
      if (name !== undefined && !byName.has(name)) byName.set(name, key);
    }
  }
  const used = new Map<string, number>();
  for (const layer of container.layers) {
    const snake = toSnakeCase(layer.kerasClass);
    const n = used.get(snake);
    const unique = n === undefined ? snake : `${snake}_${n + 1}`;
    used.set(snake, n === undefined ? 0 : n + 1);
    const key = byName.get(layer.name) ?? unique;
    const p = `${groupPath}/${key}`;
    if (layer.container) v3Paths(h5, layer.container, p, out);
    else out.set(layer, p);
  }
}

export function kerasV3Lookup(h5: H5File, root: ContainerPlan): WeightLookup {
  const paths = new Map<LayerPlan, string>();
  v3Paths(h5, root, '', paths);
  return (layer) => {
    const p = paths.get(layer);
    return p === undefined || !h5.group(p) ? [] : readVars(h5, p, layer);
  };
}

/** The layer that owns a variable path: `base/conv2d/kernel:0` → `conv2d`. */
function ownerOf(weightName: string): string {
  const parts = weightName.split('/');
  return parts.length >= 2 ? parts[parts.length - 2] : '';
}

function readH5Weights(h5: H5File, groupPath: string, what: string): { name: string; read: () => SavedWeight }[] {
  const g = h5.group(groupPath);
  if (!g) return [];
  const names = h5.stringListAttr(g, 'weight_names') ?? [];
  return names.map((name) => ({
    name,
    read: () => {
      const d = h5.get(`${groupPath}/${name}`);
      if (!isDataset(d)) {
        throw new CamLensError('MODEL_INVALID', `${fileName(h5)}: weight "${name}" of ${what} is listed in weight_names but missing from ${groupPath}`,
          'the file is truncated or damaged; save the model again');
      }
      const { shape, values } = h5.dataset(d, `weight "${name}" of ${what}`);
      return { name: name.replace(/:0$/, ''), shape, values };
    },
  }));
}

/** Keras 2 and Keras 3 legacy `.h5`. */
export function kerasH5Lookup(h5: H5File, root: ContainerPlan): WeightLookup {
  const base = h5.group('model_weights') ? 'model_weights' : '';
  const top = new Map<LayerPlan, { group: string }>();
  const nested = new Map<LayerPlan, { name: string; read: () => SavedWeight }[]>();
  const collectLeaves = (c: ContainerPlan, into: LayerPlan[]) => {
    for (const l of c.layers) {
      if (l.container) collectLeaves(l.container, into);
      else into.push(l);
    }
  };
  for (const layer of root.layers) {
    const group = base ? `${base}/${layer.name}` : layer.name;
    if (!layer.container) {
      top.set(layer, { group });
      continue;
    }
    // A nested model: its group lists every inner layer's weights; split them by owner.
    const all = readH5Weights(h5, group, `model "${layer.name}"`);
    const leaves: LayerPlan[] = [];
    collectLeaves(layer.container, leaves);
    for (const leaf of leaves) nested.set(leaf, all.filter((w) => ownerOf(w.name) === leaf.name));
  }
  return (layer) => {
    const t = top.get(layer);
    if (t) return readH5Weights(h5, t.group, `layer "${layer.name}"`).map((w) => w.read());
    return (nested.get(layer) ?? []).map((w) => w.read());
  };
}

function shapeText(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

function shortName(w: { name: string; originalName?: string }): string {
  const n = w.originalName ?? w.name;
  return n.slice(n.lastIndexOf('/') + 1).replace(/_\d+$/, '');
}

/**
 * Sets every layer's saved weights on `model` (walking nested models as the plan does). Throws
 * MANIFEST_MISMATCH naming the layer and the weight where a count or a shape disagrees with the config.
 */
export function setWeights(model: LayersModel, root: ContainerPlan, lookup: WeightLookup, file: string): number {
  let bytes = 0;
  const base = path.basename(file);
  const visit = (container: TfjsLayer, plan: ContainerPlan) => {
    for (const layer of plan.layers) {
      if (layer.kerasClass === 'InputLayer') continue;
      let tl: TfjsLayer;
      try {
        tl = (container.getLayer as (n: string) => TfjsLayer).call(container, layer.name);
      } catch {
        throw new CamLensError('MODEL_INVALID', `${base}: layer "${layer.name}" of the config is missing from the model built from it`);
      }
      if (layer.container) {
        visit(tl, layer.container);
        continue;
      }
      const need = tl.weights;
      if (layer.ignoreWeights) continue;
      const saved = lookup(layer);
      if (saved.length !== need.length) {
        const names = need.map(shortName).join(', ');
        throw new CamLensError('MANIFEST_MISMATCH',
          `layer "${layer.name}" (${layer.kerasClass}) has ${saved.length} weight${saved.length === 1 ? '' : 's'} in ${base}; its config needs ${need.length}` +
          (need.length ? ` (${names})` : ''),
          'the weights do not belong to this model config; save the model again');
      }
      need.forEach((w, i) => {
        const s = saved[i];
        const a = s.shape.join(',');
        const b = w.shape.join(',');
        if (a !== b) {
          throw new CamLensError('MANIFEST_MISMATCH',
            `weight ${shortName(w)} of layer "${layer.name}" (${layer.kerasClass}) has shape ${shapeText(s.shape)} in ${base} (${s.name}); its config needs ${shapeText(w.shape)}`,
            'the weights do not belong to this model config; save the model again');
        }
      });
      if (need.length === 0) continue;
      const tensors = need.map((w, i) => tf.tensor(saved[i].values, w.shape, 'float32'));
      try {
        tl.setWeights(tensors);
      } finally {
        tf.dispose(tensors);
      }
      for (const s of saved) bytes += s.values.byteLength;
    }
  };
  visit(model as unknown as TfjsLayer, root);
  return bytes;
}
