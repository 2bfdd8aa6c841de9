/**
 * The steps every front end (CLI, extension worker, benchmarks) takes from files to results: decode an
 * image, resize and preprocess it for a model, open an ImageSession, and describe a model's layers.
 */
import * as tf from '@tensorflow/tfjs-core';
import { decodeImage, type DecodedImage, type DecodeOptions } from './image';
import type { DicomSelection } from '../../shared/dicom';
import type { ImageDescription } from '../../shared/protocol';
import { applyPreprocess, type PreprocessPreset } from './preprocess';
import { ImageSession } from './session';
import { isSpatialShape } from './graph';
import type { LoadedModel } from './model';

/**
 * Bilinear resize with TensorFlow.js' default sampling (`tf.image.resizeBilinear`, alignCorners and
 * halfPixelCenters false): source = destination * (in / out). This is what a tfjs app feeds its model
 * (`tf.image.resizeBilinear(tf.browser.fromPixels(img), [h, w])`), so predictions match the user's own
 * app and published reference tables; the result stays in floats, like tfjs', without rounding to bytes.
 *
 * `src` is RGB (srcChannels 3: bytes, or 0..255 floats from a 16-bit or DICOM source) or one gray value per pixel
 * (srcChannels 1). Channels meet as the panel says: a 1-channel model gets ITU-R 601 luma (0.299 R + 0.587 G +
 * 0.114 B) of resized RGB, or the gray value as is; a 3-channel model gets RGB, or the gray value repeated.
 */
export function resizeBilinearLikeTf(src: ArrayLike<number>, w: number, h: number, outW: number, outH: number, channels: 1 | 3, srcChannels: 1 | 3 = 3): Float32Array {
  if (srcChannels === 1) return resizeGrayLikeTf(src, w, h, outW, outH, channels);
  const rgb = src;
  const out = new Float32Array(outW * outH * channels);
  const sy = h / outH;
  const sx = w / outW;
  const x0s = new Int32Array(outW);
  const x1s = new Int32Array(outW);
  const fxs = new Float32Array(outW);
  for (let x = 0; x < outW; x++) {
    const src = x * sx;
    const x0 = Math.min(Math.floor(src), w - 1);
    x0s[x] = x0;
    x1s[x] = Math.min(x0 + 1, w - 1);
    fxs[x] = src - x0;
  }
  const px = [0, 0, 0];
  for (let y = 0; y < outH; y++) {
    const src = y * sy;
    const y0 = Math.min(Math.floor(src), h - 1);
    const y1 = Math.min(y0 + 1, h - 1);
    const fy = src - y0;
    for (let x = 0; x < outW; x++) {
      const a = (y0 * w + x0s[x]) * 3;
      const b = (y0 * w + x1s[x]) * 3;
      const c = (y1 * w + x0s[x]) * 3;
      const d = (y1 * w + x1s[x]) * 3;
      const fx = fxs[x];
      for (let k = 0; k < 3; k++) {
        const top = rgb[a + k] + (rgb[b + k] - rgb[a + k]) * fx;
        const bottom = rgb[c + k] + (rgb[d + k] - rgb[c + k]) * fx;
        px[k] = top + (bottom - top) * fy;
      }
      const o = (y * outW + x) * channels;
      if (channels === 3) {
        out[o] = px[0];
        out[o + 1] = px[1];
        out[o + 2] = px[2];
      } else {
        out[o] = 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2];
      }
    }
  }
  return out;
}

/** resizeBilinearLikeTf for one gray value per pixel: the same sampling, the value repeated for a 3-channel model. */
function resizeGrayLikeTf(gray: ArrayLike<number>, w: number, h: number, outW: number, outH: number, channels: 1 | 3): Float32Array {
  const out = new Float32Array(outW * outH * channels);
  const sy = h / outH;
  const sx = w / outW;
  for (let y = 0; y < outH; y++) {
    const srcY = y * sy;
    const y0 = Math.min(Math.floor(srcY), h - 1);
    const y1 = Math.min(y0 + 1, h - 1);
    const fy = srcY - y0;
    for (let x = 0; x < outW; x++) {
      const srcX = x * sx;
      const x0 = Math.min(Math.floor(srcX), w - 1);
      const x1 = Math.min(x0 + 1, w - 1);
      const fx = srcX - x0;
      const a = gray[y0 * w + x0];
      const top = a + (gray[y0 * w + x1] - a) * fx;
      const c = gray[y1 * w + x0];
      const bottom = c + (gray[y1 * w + x1] - c) * fx;
      const v = top + (bottom - top) * fy;
      const o = (y * outW + x) * channels;
      out[o] = v;
      if (channels === 3) out[o + 1] = out[o + 2] = v;
    }
  }
  return out;
}

/** A decoded image resized for a model: its full-depth `pixels` where it has them, else its bytes. */
export function resizeImageLikeTf(img: DecodedImage, outW: number, outH: number, channels: 1 | 3): Float32Array {
  if (img.pixels) return resizeBilinearLikeTf(img.pixels.data, img.width, img.height, outW, outH, channels, img.pixels.channels);
  return resizeBilinearLikeTf(img.data, img.width, img.height, outW, outH, channels);
}

/** The model input [1, H, W, C] for a decoded image, with the model's (or the given) preprocessing. */
export async function prepareInput(model: LoadedModel, img: DecodedImage, preset?: PreprocessPreset): Promise<tf.Tensor4D> {
  const pixels = resizeImageLikeTf(img, model.inputWidth, model.inputHeight, model.inputChannels);
  const data = applyPreprocess(pixels, model.inputChannels, preset ?? model.metadata.preprocess);
  return tf.tensor4d(data, [1, model.inputHeight, model.inputWidth, model.inputChannels]);
}

/** What the explain panel shows about an image: its channels (1 gray, 3 colour), format, depth, DICOM path. */
export function describeImage(img: DecodedImage): ImageDescription {
  return {
    channels: img.pixels?.channels ?? (img.originalChannels <= 2 ? 1 : 3),
    format: img.format,
    ...(img.bitDepth ? { bitDepth: img.bitDepth } : {}),
    ...(img.dicom ? { dicom: img.dicom } : {}),
  };
}

/** The DICOM options of a decode for a model: the request's frame and window, the model's window as default. */
export function dicomOptionsFor(model: LoadedModel, sel?: DicomSelection): DecodeOptions['dicom'] {
  const modelWindow = model.metadata.dicomWindow;
  return { ...sel, ...(modelWindow ? { modelWindow } : {}) };
}

export interface OpenedImage {
  image: DecodedImage;
  session: ImageSession;
  timingsMs: { decode: number; preprocess: number };
}

export async function openImage(model: LoadedModel, imagePath: string, opts: { maxPixels?: number; preprocess?: PreprocessPreset; dicom?: DicomSelection } = {}): Promise<OpenedImage> {
  const t0 = performance.now();
  const image = await decodeImage(imagePath, { maxPixels: opts.maxPixels, dicom: dicomOptionsFor(model, opts.dicom) });
  const t1 = performance.now();
  const input = await prepareInput(model, image, opts.preprocess);
  const t2 = performance.now();
  return { image, session: new ImageSession(model, input), timingsMs: { decode: t1 - t0, preprocess: t2 - t1 } };
}

export interface LayerInfo {
  name: string;
  /** Keras layer class, or the TensorFlow op of a GraphModel node. */
  className: string;
  /** Null entries are unknown (the batch dimension, free sizes). */
  outputShape: (number | null)[];
  params: number;
  inbound: string[];
  /** A 4-D output with a spatial extent: a possible CAM target. */
  spatial: boolean;
  /** Set where BatchNormalization was folded into this convolution for speed. */
  foldedBatchNorm?: string;
  /** ONNX: the node's output tensor names; `--layer` and the layer picker take these as well as the node name. */
  outputs?: string[];
}

export interface ModelSummary {
  model: string;
  name: string;
  format: string;
  backend: string;
  input: { height: number; width: number; channels: number; preprocess: PreprocessPreset; preprocessAssumed: boolean };
  classes: number;
  /** Leading model outputs that are not classes (1 for TF-Hub's "background"). */
  labelOffset: number;
  labelsFrom: string;
  /** True where the labels were assumed, not read (ImageNet's names for a model with 1000 outputs). */
  labelsAssumed?: boolean;
  outputActivation: string;
  /** The output explained, and every output of the model (name, units, activation); one for most models. */
  output: string;
  outputs: { name: string; units: number | null; activation: string }[];
  /** The output is one sigmoid unit, explained as two classes: [not-positive, positive] with logits [-z, z]. */
  binary: boolean;
  totalParams: number;
  recommendedLayer: string | null;
  /** Whether the gradient methods can run on this model; `gradientNote` says why not. */
  supportsGradients: boolean;
  gradientNote?: string;
  layers: LayerInfo[];
}

export function describeModel(model: LoadedModel): ModelSummary {
  const g = model.graph;
  let recommended: string | null = null;
  try {
    recommended = g.recommendedTarget().name;
  } catch {
    recommended = null;
  }
  const inputs = new Set(g.inputIds);
  const layers = g.ops.map((op): LayerInfo => ({
    name: op.name,
    className: op.className,
    outputShape: op.outputShape,
    params: op.params,
    inbound: op.inbound,
    spatial: !op.outputs.some((id) => inputs.has(id)) && op.className !== 'InputLayer' && isSpatialShape(op.outputShape),
  }));
  let totalParams: number;
  if (model.format === 'layers-model') {
    const folded = new Map<string, string>();
    for (const op of model.graph.foldedOps) if (op.fused?.foldedBn) folded.set(op.name, op.fused.foldedBn);
    model.graph.ops.forEach((op, i) => {
      const f = folded.get(op.name);
      if (f) layers[i].foldedBatchNorm = f;
    });
    // A layer reused in several places (shared weights) counts once.
    const seen = new Set<unknown>();
    totalParams = 0;
    for (const op of model.graph.ops) {
      if (seen.has(op.layer)) continue;
      seen.add(op.layer);
      totalParams += op.params;
    }
  } else {
    totalParams = model.graph.totalParams;
  }
  if (model.format === 'onnx') model.graph.ops.forEach((op, i) => (layers[i].outputs = op.outputs.slice()));
  const summary: ModelSummary = {
    model: model.path,
    name: model.name,
    format: model.format,
    backend: model.backend,
    input: {
      height: model.inputHeight,
      width: model.inputWidth,
      channels: model.inputChannels,
      preprocess: model.metadata.preprocess,
      preprocessAssumed: model.metadata.preprocessAssumed,
    },
    classes: model.numOutputs - model.metadata.labelOffset,
    labelOffset: model.metadata.labelOffset,
    labelsFrom: model.metadata.source,
    outputActivation: g.outputActivation,
    output: model.output,
    outputs: model.outputs.map((o) => ({ name: o.name, units: o.units, activation: o.activation })),
    binary: model.binary,
    totalParams,
    recommendedLayer: recommended,
    supportsGradients: model.supportsGradients,
    layers,
  };
  if (model.gradientNote) summary.gradientNote = model.gradientNote;
  if (model.metadata.labelsAssumed) summary.labelsAssumed = true;
  return summary;
}
