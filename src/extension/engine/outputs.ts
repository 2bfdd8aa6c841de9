/**
 * Classifier shapes beyond one softmax: which of a model's outputs is explained, and what classes it has.
 *
 * Several outputs (an age, a gender and a race head on one backbone): every graph kind lists its outputs
 * (`ModelOutput`: name, units, activation) and is built for one of them, so the rest of the engine sees a
 * single classifier (`outputIds[0]` is the chosen output, `outputActivation` its own, and the ops are those
 * it depends on). The choice is the caller's (`--output`, the panels' picker, `"output"` in cam-lens.json), by
 * name or index; without one, the first output shaped like a classifier (`pickOutput`).
 *
 * Binary classifiers: an output of ONE unit behind a sigmoid, p = σ(z), is a two-class classifier. It is
 * exposed as two classes with the logits
 *
 *     [z_0, z_1] = [-z, z]
 *
 * so every class-score consumer (probabilities, Grad-CAM and its family, Score-CAM, the faithfulness scores,
 * the scan) works unchanged, and "why not" is the map of -z. The probabilities stay the model's own: an
 * elementwise sigmoid of [-z, z] is exactly [1 - σ(z), σ(z)] (they sum to 1), not a softmax of one value.
 * CAM's linear head [K, 1] becomes [-W, W] (head.ts). Class names, as Keras' binary labels: two names are
 * the 0 side then the 1 side; one name L gives ["not L", "L"]; none gives ["not positive", "positive"].
 * Multi-label heads (k > 1 sigmoid units) stay as they are: k classes, elementwise sigmoid, no softmax.
 *
 * `classLogits` is the one function every logit consumer calls on what the graph returns in logits mode.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from './errors';
import type { ModelMetadata } from './metadata';

export type OutputActivation = 'softmax' | 'sigmoid' | 'none';

/** One output of a model, as the graph finds it. */
export interface ModelOutput {
  /** The output's name: the Keras output layer, the GraphModel output node, the ONNX graph output. */
  name: string;
  /** Values per image (the last dimension of a [batch, units] output); null where the model does not say. */
  units: number | null;
  /** The activation the output ends in (skipped in logits mode). */
  activation: OutputActivation;
  /** False where the output is known not to be [batch, classes] (a feature map, say); unknown counts as true. */
  classifierShaped: boolean;
}

/** The class names of a binary classifier without names. */
export const BINARY_DEFAULT_LABEL = 'positive';

/** "gender" (1, 1 unit, sigmoid): how an output is shown in lists and messages. */
export function describeOutput(o: ModelOutput, index: number): string {
  const units = o.units === null ? 'units unknown' : `${o.units} unit${o.units === 1 ? '' : 's'}`;
  return `"${o.name}" (${index}: ${units}${o.activation === 'none' ? '' : `, ${o.activation}`})`;
}

export function describeOutputs(outputs: readonly ModelOutput[]): string {
  return outputs.map(describeOutput).join(', ');
}

/** True where an output looks like a classifier: [batch, k] with k >= 2, or one sigmoid unit (binary). */
export function looksLikeClassifier(o: ModelOutput): boolean {
  if (!o.classifierShaped) return false;
  if (o.units === null) return true;
  return o.units >= 2 || o.activation === 'sigmoid';
}

/**
 * The index of the output to explain: `choice` by exact name, then by name ignoring case, then as an index
 * ("2" or 2); without a choice, the first output shaped like a classifier (the first output where none is).
 * An unknown choice is refused with the list of outputs.
 */
export function pickOutput(outputs: readonly ModelOutput[], choice: string | number | undefined, what = 'the model'): number {
  if (outputs.length === 0) throw new CamLensError('UNSUPPORTED_MODEL', `${what} has no outputs`);
  if (choice === undefined || choice === '') {
    const known = outputs.findIndex((o) => looksLikeClassifier(o) && o.units !== null);
    if (known >= 0) return known;
    const maybe = outputs.findIndex(looksLikeClassifier);
    return maybe >= 0 ? maybe : 0;
  }
  if (typeof choice === 'string') {
    const s = choice.trim();
    let i = outputs.findIndex((o) => o.name === s);
    if (i < 0) i = outputs.findIndex((o) => o.name.toLowerCase() === s.toLowerCase());
    if (i >= 0) return i;
    if (!/^\d+$/.test(s)) {
      throw new CamLensError('UNKNOWN_OUTPUT', `${what} has no output named "${s}"; its outputs are ${describeOutputs(outputs)}`,
        'choose an output by name or index');
    }
  }
  const i = Number(choice);
  if (!Number.isInteger(i) || i < 0 || i >= outputs.length) {
    throw new CamLensError('UNKNOWN_OUTPUT', `output index ${choice} is out of range: ${what} has ${outputs.length} output${outputs.length === 1 ? '' : 's'}, ${describeOutputs(outputs)}`,
      'choose an output by name or index');
  }
  return i;
}

/** The class structure of the chosen output, as `classesOf` settles it. */
export interface OutputClasses {
  /** Class logits per image: the units, or 2 for a binary classifier. */
  numOutputs: number;
  /** One sigmoid unit: two classes with logits [-z, z]. */
  binary: boolean;
}

/**
 * Settles the classes of the chosen output (index `chosen` of `outputs`, with `units` now known) and fixes the
 * metadata to match: per-output labels (`{ "<output>": [...] }` in cam-lens.json) resolved to the chosen output's
 * list, and a binary classifier's names (see the file comment). The caller then checks the labels against
 * `numOutputs` as for any model.
 */
export function classesOf(metadata: ModelMetadata, outputs: readonly ModelOutput[], chosen: number, units: number): OutputClasses {
  const out = outputs[chosen];
  if (metadata.labelsByOutput) {
    const byOutput = metadata.labelsByOutput;
    const names = new Set(outputs.map((o) => o.name));
    const unknown = Object.keys(byOutput).filter((k) => !names.has(k));
    if (unknown.length) {
      throw new CamLensError('METADATA_INVALID',
        `${metadata.labelsFile ? path.basename(metadata.labelsFile) : 'the metadata'} gives labels for ${unknown.map((k) => `"${k}"`).join(', ')}, which the model does not have; its outputs are ${describeOutputs(outputs)}`,
        'key "labels" by output name, or give one list for the output explained');
    }
    metadata.labels = (byOutput[out.name] ?? []).slice();
  }
  const binary = units === 1 && out.activation === 'sigmoid';
  if (!binary) return { numOutputs: units, binary: false };
  if (metadata.labelOffset !== 0) {
    throw new CamLensError('METADATA_INVALID', `labelOffset ${metadata.labelOffset} leaves no classes: output "${out.name}" is one sigmoid unit, a binary classifier with no background class`,
      'remove "labelOffset"');
  }
  const given = metadata.labels;
  if (given.length > 2) {
    const from = metadata.labelsFile ?? 'the labels given';
    throw new CamLensError('METADATA_INVALID', `output "${out.name}" is one sigmoid unit (a binary classifier) but ${from} lists ${given.length} labels; it takes one name (the 1 side) or two (the 0 side, then the 1 side)`,
      'use the labels that belong to this output');
  }
  if (given.length === 2) metadata.labels = [given[0], given[1]];
  else {
    const positive = given[0] ?? BINARY_DEFAULT_LABEL;
    metadata.labels = [`not ${positive}`, positive];
  }
  return { numOutputs: 2, binary: true };
}

/** What `classLogits` needs of a model. */
export interface ClassLogitsModel {
  numOutputs: number;
  binary: boolean;
}

/**
 * The class logits [n, numOutputs] from the tensor the graph returns in logits mode (any shape holding n x
 * units values): reshaped, and for a binary classifier [-z, z]. A new tensor; the caller still owns `raw`.
 * Differentiable (tf.grad passes through it).
 */
export function classLogits(model: ClassLogitsModel, raw: tf.Tensor): tf.Tensor2D {
  const units = model.binary ? 1 : model.numOutputs;
  if (units <= 0 || raw.size % units !== 0) {
    throw new CamLensError('UNSUPPORTED_MODEL', `the model output holds ${raw.size} values, not a whole number of rows of ${units}`);
  }
  return tf.tidy(() => {
    const z = tf.reshape(raw, [raw.size / units, units]) as tf.Tensor2D;
    return model.binary ? tf.concat([tf.neg(z), z], 1) as tf.Tensor2D : z;
  });
}

/** `classLogits` on values already read: rows of `units` values → rows of numOutputs values. */
export function classLogitValues(model: ClassLogitsModel, raw: Float32Array): Float32Array {
  if (!model.binary) return raw;
  const out = new Float32Array(raw.length * 2);
  for (let i = 0; i < raw.length; i++) {
    out[2 * i] = -raw[i];
    out[2 * i + 1] = raw[i];
  }
  return out;
}
