/**
 * Turns a Keras model config (Keras 2 or Keras 3, from `config.json` or an h5 file's `model_config`) into the
 * Keras 2 JSON form that tfjs-layers 4.22 deserializes, and records the layer tree the weights belong to.
 *
 * Keras 3 forms normalised here (tensorflow/tfjs#8328 is what happens without it):
 * - every object is `{module, class_name, config, registered_name, build_config…}`: a layer must come from
 *   Keras itself (`module` keras.*, `registered_name` null or its own class name), else it is a custom class
 *   and is refused, naming the layer; `module`, `registered_name`, `build_config` are dropped;
 * - `InputLayer` has `batch_shape` (Keras 2: `batch_input_shape`);
 * - `dtype` is a DTypePolicy object (`{class_name: "DTypePolicy", config: {name: "float32"}}`); mixed and
 *   half-precision policies compute in float32 here;
 * - an inbound node is `{args: [...], kwargs: {...}}` with `__keras_tensor__` objects carrying
 *   `keras_history: [layer, node, tensor]` (Keras 2: `[[layer, node, tensor, kwargs], ...]`);
 * - `input_layers`/`output_layers` of a single-input model are one flat `[name, node, tensor]`;
 * - a nested Sequential is called at node 0 (Keras 3 keeps no node of its own for it), while tfjs creates one
 *   at construction, as Keras 2 did: its calls move one node up.
 * Layer configs: initializers become Zeros (the saved weights replace them; no random init over millions of
 * weights), regularizers and constraints are dropped (training only), LeakyReLU's `negative_slope` is tfjs'
 * `alpha`, a one-element BatchNormalization `axis` list is a number, activations are checked by name.
 *
 * Refused, naming the layer and its class: Lambda layers (their saved Python code is never run), custom
 * classes, layers tfjs-layers lacks, and options it cannot honour (grouped convolutions, `keepdims`…).
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../../errors';
import { KerasIdentity, KerasNormalization, KerasResizing, registerKerasLayers } from './layers';

export type KerasSource = 'keras3' | 'keras3-h5' | 'keras2-h5';

/** One layer of the model as saved, with where its weights are. */
export interface LayerPlan {
  name: string;
  /** The Keras class name as saved. */
  kerasClass: string;
  /** Set for a nested Sequential or Functional model. */
  container?: ContainerPlan;
  /** Saved weights this layer has and tfjs does not (an augmentation layer's seed; Normalization's count is kept). */
  ignoreWeights?: boolean;
}

export interface ContainerPlan {
  kind: 'functional' | 'sequential';
  name: string;
  /** In the config's order (the order Keras saves a `.keras` file's layers in). */
  layers: LayerPlan[];
}

export interface ConvertedModel {
  /** `{class_name, config}` in the Keras 2 form tfjs-layers reads. */
  topology: { class_name: string; config: Record<string, unknown> };
  root: ContainerPlan;
}

type Json = Record<string, unknown>;

const isObj = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Preprocessing and regularisation layers that do nothing at inference. */
const IDENTITY_AT_INFERENCE = new Set([
  'RandomFlip', 'RandomRotation', 'RandomZoom', 'RandomTranslation', 'RandomContrast', 'RandomBrightness',
  'RandomHeight', 'RandomWidth', 'RandomGrayscale', 'RandomHue', 'RandomSaturation', 'RandomSharpness',
  'RandomColorJitter', 'RandomColorDegeneration', 'RandomErasing', 'RandomPerspective', 'RandomShear',
  'RandomInvert', 'RandomPosterization', 'RandomGaussianBlur', 'RandomElasticTransform', 'RandAugment',
  'AugMix', 'CutMix', 'MixUp', 'Solarization', 'SpatialDropout2D', 'SpatialDropout3D', 'ActivityRegularization',
]);

/** Keras activation names tfjs-layers computes the same way (Keras 3's hard_sigmoid differs from tfjs'). */
const ACTIVATIONS: Record<string, string> = {
  linear: 'linear', relu: 'relu', relu6: 'relu6', sigmoid: 'sigmoid', softmax: 'softmax', tanh: 'tanh', elu: 'elu',
  selu: 'selu', softplus: 'softplus', softsign: 'softsign', swish: 'swish', silu: 'swish', gelu: 'gelu', mish: 'mish',
  log_softmax: 'log_softmax',
};

const CONTAINERS = new Set(['Sequential', 'Functional', 'Model']);

function tfjsKnows(className: string): boolean {
  const map = (tf.serialization.SerializationMap.getMap() as unknown as { classNameMap: Record<string, unknown> }).classNameMap;
  return className in map;
}

function refuse(layer: string, cls: string, why: string, hint?: string): CamLensError {
  return new CamLensError('UNSUPPORTED_MODEL', `layer "${layer}" (${cls}) ${why}`, hint);
}

function invalid(msg: string): CamLensError {
  return new CamLensError('MODEL_INVALID', `the Keras model config ${msg}`, 'save the model again with model.save("model.keras")');
}

/** "Conv2D" → "conv2d", "ReLU" → "re_lu", "BatchNormalization" → "batch_normalization" (Keras' snake case). */
export function toSnakeCase(name: string): string {
  let s = name.replace(/[^\w]+/g, '');
  s = s.replace(/(.)([A-Z][a-z]+)/g, '$1_$2');
  s = s.replace(/([a-z])([A-Z])/g, '$1_$2');
  return s.toLowerCase();
}

function checkBuiltIn(obj: Json, layer: string, cls: string): void {
  const module = obj.module;
  const registered = obj.registered_name;
  const kerasModule = module === undefined || module === null ? undefined : String(module);
  if (cls === 'Lambda' || cls === 'TFOpLambda' || cls === 'SlicingOpLambda') {
    throw refuse(layer, cls, cls === 'Lambda'
      ? 'runs Python code saved in the file, which CAM Lens never runs'
      : 'is a TensorFlow operation recorded as a layer, which CAM Lens cannot run',
    'replace it with built-in Keras layers (for example Rescaling instead of Lambda(lambda x: x / 255)) and save the model again');
  }
  const custom = (registered !== undefined && registered !== null && registered !== cls) ||
    (kerasModule !== undefined && !/^keras(\.|$)/.test(kerasModule) && !/^tf_keras(\.|$)/.test(kerasModule));
  if (custom) {
    const name = typeof registered === 'string' ? registered : `${kerasModule}.${cls}`;
    throw refuse(layer, name, 'is a custom class: its code lives in Python, which CAM Lens never runs',
      'use built-in Keras layers only, or export the model to ONNX (tf2onnx) with the custom layer traced');
  }
}

function dtypeName(d: unknown): string | undefined {
  if (typeof d === 'string') return d;
  if (isObj(d) && isObj(d.config) && typeof d.config.name === 'string') return d.config.name;
  return undefined;
}

/** Float compute dtype for tfjs: policies and half types compute in float32 here. */
function normDtype(d: unknown, layer: string, cls: string): string | undefined {
  const name = dtypeName(d);
  if (name === undefined) return undefined;
  if (/float|bfloat|^mixed_/.test(name)) return 'float32';
  if (name === 'int32' || name === 'bool') return name;
  if (/^u?int/.test(name)) return 'int32';
  throw refuse(layer, cls, `has dtype ${name}, which CAM Lens cannot compute in`);
}

function activationName(a: unknown, layer: string, cls: string): string {
  let name: unknown = a;
  if (isObj(a)) {
    checkBuiltIn(a, layer, cls);
    name = a.class_name === 'function' || a.class_name === undefined ? a.config : a.class_name;
  }
  if (name === null || name === undefined) return 'linear';
  const mapped = typeof name === 'string' ? ACTIVATIONS[name] : undefined;
  if (!mapped) {
    throw refuse(layer, cls, `uses the activation ${JSON.stringify(name)}, which CAM Lens cannot compute the way Keras does`,
      `supported activations: ${Object.keys(ACTIVATIONS).join(', ')}`);
  }
  return mapped;
}

const ZEROS = { class_name: 'Zeros', config: {} };

/** The tfjs-ready config of one layer (not a container). */
function layerConfig(cls: string, cfgIn: Json, layer: string): { class_name: string; config: Json } {
  const cfg: Json = {};
  for (const [k, v] of Object.entries(cfgIn)) {
    if (/_initializer$/.test(k)) cfg[k] = ZEROS;
    else if (/_regularizer$|_constraint$/.test(k)) cfg[k] = null;
    else cfg[k] = v;
  }
  cfg.name = layer;
  const dtype = normDtype(cfgIn.dtype, layer, cls);
  if (dtype) cfg.dtype = dtype;
  else delete cfg.dtype;
  if ('activation' in cfg) cfg.activation = activationName(cfg.activation, layer, cls);
  for (const k of ['lora_rank', 'quantization_config']) {
    if (cfg[k] !== undefined && cfg[k] !== null) throw refuse(layer, cls, `has ${k} set, which CAM Lens cannot run`);
    delete cfg[k];
  }
  if (typeof cfg.groups === 'number' && cfg.groups !== 1) throw refuse(layer, cls, `is a grouped convolution (groups=${cfg.groups}), which TensorFlow.js cannot run`);
  delete cfg.groups;
  if (cfg.data_format === 'channels_first') throw refuse(layer, cls, 'works on channels-first data; CAM Lens runs channels-last models');

  switch (cls) {
    case 'InputLayer': {
      const shape = cfg.batch_shape ?? cfg.batch_input_shape ?? (Array.isArray(cfg.shape) ? [null, ...(cfg.shape as unknown[])] : undefined);
      if (!Array.isArray(shape)) throw invalid(`gives input layer "${layer}" no shape`);
      if (cfg.sparse === true || cfg.ragged === true) throw refuse(layer, cls, 'takes sparse or ragged tensors; CAM Lens feeds images');
      return { class_name: 'InputLayer', config: { name: layer, batch_input_shape: shape, dtype: dtype ?? 'float32', sparse: false } };
    }
    case 'BatchNormalization':
      if (Array.isArray(cfg.axis)) {
        if (cfg.axis.length !== 1) throw refuse(layer, cls, `normalises over axes ${JSON.stringify(cfg.axis)}; TensorFlow.js takes one axis`);
        cfg.axis = cfg.axis[0];
      }
      if (cfg.renorm === true) throw refuse(layer, cls, 'uses batch renormalization, which TensorFlow.js lacks');
      for (const k of ['renorm', 'renorm_clipping', 'renorm_momentum', 'synchronized', 'fused', 'virtual_batch_size', 'adjustment']) delete cfg[k];
      return { class_name: cls, config: cfg };
    case 'LeakyReLU':
      if ('negative_slope' in cfg) {
        cfg.alpha = cfg.negative_slope;
        delete cfg.negative_slope;
      }
      return { class_name: cls, config: cfg };
    case 'ReLU': {
      const slope = Number(cfg.negative_slope ?? 0);
      const threshold = Number(cfg.threshold ?? 0);
      if (threshold !== 0) throw refuse(layer, cls, `has threshold ${threshold}, which TensorFlow.js' ReLU lacks`);
      if (slope !== 0) {
        if (cfg.max_value !== null && cfg.max_value !== undefined) throw refuse(layer, cls, 'combines max_value with negative_slope, which TensorFlow.js lacks');
        return { class_name: 'LeakyReLU', config: { name: layer, alpha: slope, trainable: cfg.trainable ?? true } };
      }
      delete cfg.negative_slope;
      delete cfg.threshold;
      return { class_name: cls, config: cfg };
    }
    case 'GlobalAveragePooling2D':
    case 'GlobalMaxPooling2D':
    case 'GlobalAveragePooling1D':
    case 'GlobalMaxPooling1D':
      if (cfg.keepdims === true) throw refuse(layer, cls, 'keeps the pooled dimensions (keepdims), which TensorFlow.js lacks');
      delete cfg.keepdims;
      return { class_name: cls, config: cfg };
    case 'Normalization':
      return { class_name: KerasNormalization.className, config: { name: layer, axis: cfg.axis ?? -1, mean: cfg.mean ?? null, variance: cfg.variance ?? null, invert: cfg.invert ?? false } };
    case 'Resizing': {
      const interp = String(cfg.interpolation ?? 'bilinear');
      if (interp !== 'bilinear' && interp !== 'nearest') throw refuse(layer, cls, `resizes with "${interp}" interpolation; CAM Lens implements bilinear and nearest`);
      if (cfg.pad_to_aspect_ratio === true) throw refuse(layer, cls, 'pads to the aspect ratio, which CAM Lens does not implement');
      if (cfg.antialias === true) throw refuse(layer, cls, 'resizes with antialiasing, which CAM Lens does not implement');
      return { class_name: KerasResizing.className, config: { name: layer, height: cfg.height, width: cfg.width, interpolation: interp, crop_to_aspect_ratio: cfg.crop_to_aspect_ratio ?? false } };
    }
    case 'Rescaling':
      return { class_name: cls, config: { name: layer, scale: cfg.scale, offset: cfg.offset ?? 0, trainable: false } };
    case 'RandomCrop':
      throw refuse(layer, cls, 'crops or resizes at inference in some Keras versions; CAM Lens cannot tell which',
        'remove RandomCrop from the saved model (keep it in the training pipeline) and save again');
    default:
      break;
  }
  if (IDENTITY_AT_INFERENCE.has(cls)) {
    return { class_name: KerasIdentity.className, config: { name: layer, keras_class: cls, trainable: false } };
  }
  if (!tfjsKnows(cls)) {
    throw refuse(layer, cls, 'is a Keras layer that TensorFlow.js lacks, so CAM Lens cannot run it',
      'replace it with a layer TensorFlow.js has, or export the model to ONNX');
  }
  return { class_name: cls, config: cfg };
}

interface Ctx {
  keras3: boolean;
}

/** A layer entry of a container's config: its class, its config, its name. */
function unpack(entry: unknown, where: string): { cls: string; cfg: Json; name: string; raw: Json } {
  if (!isObj(entry) || typeof entry.class_name !== 'string' || !(isObj(entry.config) || Array.isArray(entry.config))) {
    throw invalid(`has a layer entry without class_name and config in ${where}`);
  }
  const cfg = Array.isArray(entry.config) ? { layers: entry.config } : (entry.config as Json);
  const name = typeof entry.name === 'string' ? entry.name : typeof cfg.name === 'string' ? cfg.name : '';
  if (!name) throw invalid(`has a ${entry.class_name} layer without a name in ${where}`);
  return { cls: entry.class_name, cfg, name, raw: entry };
}

/** Converts one layer entry (possibly a nested model). Returns the tfjs config and the plan entry. */
function convertLayer(entry: unknown, where: string, ctx: Ctx): { tfjs: Json; plan: LayerPlan } {
  const { cls, cfg, name, raw } = unpack(entry, where);
  checkBuiltIn(raw, name, cls);
  if (CONTAINERS.has(cls)) {
    const { config, plan } = convertContainer(cls, cfg, name, ctx);
    return { tfjs: { class_name: cls === 'Model' ? 'Functional' : cls, config }, plan: { name, kerasClass: cls, container: plan } };
  }
  const out = layerConfig(cls, cfg, name);
  return { tfjs: out, plan: { name, kerasClass: cls, ignoreWeights: out.class_name === KerasIdentity.className } };
}

/** Keras 3's `{args, kwargs}` node, or Keras 2's list, as Keras 2's `[[layer, node, tensor, {}], ...]`. */
function convertNode(node: unknown, layer: string, cls: string, sequentials: Set<string>, ctx: Ctx): unknown[][] {
  const out: unknown[][] = [];
  const shift = (src: string, n: number) => (ctx.keras3 && sequentials.has(src) ? n + 1 : n);
  if (Array.isArray(node)) {
    for (const inp of node) {
      if (!Array.isArray(inp) || typeof inp[0] !== 'string') throw invalid(`has an inbound node of "${layer}" that is not [layer, node, tensor]`);
      out.push([inp[0], shift(inp[0], Number(inp[1] ?? 0)), Number(inp[2] ?? 0), {}]);
    }
    return out;
  }
  if (!isObj(node)) throw invalid(`has an inbound node of "${layer}" that is neither a list nor {args, kwargs}`);
  const visit = (x: unknown, inKwargs: boolean): void => {
    if (Array.isArray(x)) {
      x.forEach((y) => visit(y, inKwargs));
      return;
    }
    if (isObj(x) && x.class_name === '__keras_tensor__') {
      if (inKwargs) throw refuse(layer, cls, 'takes a tensor as a keyword argument (a mask or a second input), which CAM Lens cannot pass');
      const h = isObj(x.config) ? x.config.keras_history : undefined;
      if (!Array.isArray(h) || typeof h[0] !== 'string') throw invalid(`has a tensor without keras_history in the inputs of "${layer}"`);
      out.push([h[0], shift(h[0], Number(h[1] ?? 0)), Number(h[2] ?? 0), {}]);
      return;
    }
    if (isObj(x)) {
      for (const v of Object.values(x)) visit(v, inKwargs);
      return;
    }
    if (x !== null && x !== undefined && !inKwargs) throw refuse(layer, cls, `is called with the constant ${JSON.stringify(x)} as an input, which CAM Lens cannot pass`);
  };
  visit(node.args, false);
  if (isObj(node.kwargs)) visit(node.kwargs, true);
  return out;
}

/** `[[name, node, tensor], ...]` from Keras 3's flat single form or Keras 2's list. */
function ioLayers(x: unknown, key: string, sequentials: Set<string>, ctx: Ctx): unknown[][] {
  if (!Array.isArray(x) || x.length === 0) throw invalid(`has no ${key}`);
  const list = typeof x[0] === 'string' ? [x] : x;
  return list.map((e) => {
    if (!Array.isArray(e) || typeof e[0] !== 'string') throw invalid(`has an entry of ${key} that is not [layer, node, tensor]`);
    const n = Number(e[1] ?? 0);
    return [e[0], ctx.keras3 && sequentials.has(e[0]) ? n + 1 : n, Number(e[2] ?? 0)];
  });
}

function convertContainer(cls: string, cfg: Json, name: string, ctx: Ctx): { config: Json; plan: ContainerPlan } {
  if (!Array.isArray(cfg.layers)) throw invalid(`gives ${cls} "${name}" no layers`);
  if (cls === 'Sequential') {
    const entries = cfg.layers as unknown[];
    const tfjsLayers: Json[] = [];
    const plan: ContainerPlan = { kind: 'sequential', name, layers: [] };
    let batchShape: unknown;
    let inputDtype: unknown;
    entries.forEach((e, i) => {
      const u = unpack(e, `Sequential "${name}"`);
      if (u.cls === 'InputLayer') {
        if (i !== 0) throw invalid(`has an InputLayer in the middle of Sequential "${name}"`);
        const conv = layerConfig('InputLayer', u.cfg, u.name).config;
        batchShape = conv.batch_input_shape;
        inputDtype = conv.dtype;
        return;
      }
      const { tfjs, plan: p } = convertLayer(e, `Sequential "${name}"`, ctx);
      tfjsLayers.push(tfjs);
      plan.layers.push(p);
    });
    if (tfjsLayers.length === 0) throw invalid(`has an empty Sequential "${name}"`);
    batchShape ??= cfg.build_input_shape ?? (isObj(tfjsLayers[0].config) ? (tfjsLayers[0].config as Json).batch_input_shape : undefined);
    // tfjs takes the input shape from the first layer's batch_input_shape, as Keras 2 wrote it.
    if (Array.isArray(batchShape) && isObj(tfjsLayers[0].config)) {
      const first = tfjsLayers[0].config as Json;
      first.batch_input_shape = batchShape;
      if (inputDtype && !first.dtype) first.dtype = inputDtype;
    }
    return { config: { name, layers: tfjsLayers }, plan };
  }
  // Functional (Keras 3, tf.keras 2.4+) or Model (Keras 2 before 2.4).
  const entries = cfg.layers as unknown[];
  const sequentials = new Set<string>();
  for (const e of entries) {
    if (isObj(e) && e.class_name === 'Sequential') sequentials.add(unpack(e, `model "${name}"`).name);
  }
  const plan: ContainerPlan = { kind: 'functional', name, layers: [] };
  const layers = entries.map((e) => {
    const { tfjs, plan: p } = convertLayer(e, `model "${name}"`, ctx);
    plan.layers.push(p);
    const raw = e as Json;
    const nodes = Array.isArray(raw.inbound_nodes) ? raw.inbound_nodes : [];
    const inbound = nodes.map((n) => convertNode(n, p.name, p.kerasClass, sequentials, ctx)).filter((n) => n.length > 0);
    return { ...tfjs, name: p.name, inbound_nodes: inbound };
  });
  return {
    config: {
      name,
      layers,
      input_layers: ioLayers(cfg.input_layers, 'input_layers', sequentials, ctx),
      output_layers: ioLayers(cfg.output_layers, 'output_layers', sequentials, ctx),
    },
    plan,
  };
}

/**
 * Converts a whole model config (the parsed `config.json` or `model_config`). `keras3` says whether the
 * Keras 3 conventions apply (a `.keras` file, or an h5 file written by Keras 3).
 */
export function convertModelConfig(config: unknown, keras3: boolean): ConvertedModel {
  registerKerasLayers();
  if (!isObj(config) || typeof config.class_name !== 'string') throw invalid('is not an object with a class_name');
  const cls = config.class_name;
  const name = isObj(config.config) && typeof config.config.name === 'string' ? config.config.name : 'model';
  if (!CONTAINERS.has(cls)) {
    checkBuiltIn(config, name, cls);
    throw new CamLensError('UNSUPPORTED_MODEL', `the file holds a ${cls} model, a subclassed model whose layers live in Python code; CAM Lens reads Sequential and Functional models`,
      'rebuild it as a Functional model (keras.Model(inputs, outputs)) and save it again');
  }
  checkBuiltIn(config, name, cls);
  const cfg = Array.isArray(config.config) ? { name, layers: config.config } : config.config;
  if (!isObj(cfg)) throw invalid(`gives the ${cls} model no config`);
  const { config: out, plan } = convertContainer(cls, cfg, name, { keras3 });
  return { topology: { class_name: cls === 'Model' ? 'Functional' : cls, config: out }, root: plan };
}

/** Parses JSON text of a config, with a message naming where it came from. */
export function parseConfig(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CamLensError('MODEL_INVALID', `${where} is not valid JSON (${(e as Error).message.slice(0, 120)})`,
      'the file is truncated or damaged; save the model again');
  }
}
