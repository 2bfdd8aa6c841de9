/**
 * Keras layers that tfjs-layers 4.22 lacks or gets wrong, as small layer classes of our own (only our code
 * runs: nothing from the file is executed). Each is registered with tfjs-layers' serialization under a
 * `CamLens…` class name, so it never shadows a tfjs class, and reports the Keras class name from
 * `getClassName()`, so that the inspector and the engine's layer checks see `Normalization`, `RandomFlip`…
 *
 * - Normalization (Keras 3 and 2): (x - mean) / max(sqrt(variance), 1e-7), or the inverse with `invert`;
 *   mean and variance from the config, or (adapted layers) from the saved variables mean, variance, count.
 * - Resizing: tfjs' own takes the batch axis for the channels in its output shape and resizes with
 *   aligned corners; Keras (tf.image.resize) uses half-pixel centres. Ours does what Keras does, bilinear or
 *   nearest, with `crop_to_aspect_ratio` (a centred crop to the target's aspect ratio first).
 * - Identity at inference: the augmentation layers (RandomFlip, RandomRotation…, active only in training)
 *   and the regularisers tfjs lacks (SpatialDropout2D, ActivityRegularization).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, layers } from '@tensorflow/tfjs-layers';

type Shape = (number | null)[];
type Kwargs = Record<string, unknown>;
type LayerArgs = ConstructorParameters<typeof layers.Layer>[0];

const EPSILON = 1e-7;

function one(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0] : inputs;
}

function oneShape(s: Shape | Shape[]): Shape {
  return Array.isArray(s[0]) ? (s[0] as Shape) : (s as Shape);
}

/** A layer that passes its input through: augmentation and regularisation layers at inference. */
export class KerasIdentity extends layers.Layer {
  static className = 'CamLensIdentity';
  readonly kerasClass: string;

  constructor(args: LayerArgs & { kerasClass?: string }) {
    super(args);
    this.kerasClass = args.kerasClass ?? 'Identity';
  }

  override getClassName(): string {
    return this.kerasClass;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.clone(one(inputs));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), kerasClass: this.kerasClass };
  }
}

interface NormalizationArgs {
  axis?: number | number[] | null;
  mean?: number | number[] | null;
  variance?: number | number[] | null;
  invert?: boolean;
}

/** Keras' Normalization layer (see the file comment). */
export class KerasNormalization extends layers.Layer {
  static className = 'CamLensNormalization';
  private readonly axes: number[];
  private readonly cfgMean: number | number[] | null;
  private readonly cfgVariance: number | number[] | null;
  private readonly invert: boolean;
  private meanVar?: ReturnType<KerasNormalization['addWeight']>;
  private varianceVar?: ReturnType<KerasNormalization['addWeight']>;
  private broadcast: number[] = [];

  constructor(args: LayerArgs & NormalizationArgs) {
    super(args);
    const a = args.axis;
    this.axes = a === null || a === undefined ? [] : Array.isArray(a) ? a : [a];
    this.cfgMean = args.mean ?? null;
    this.cfgVariance = args.variance ?? null;
    this.invert = Boolean(args.invert);
  }

  override getClassName(): string {
    return 'Normalization';
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = oneShape(inputShape);
    const rank = shape.length;
    const keep = this.axes.map((d) => (d < 0 ? d + rank : d)).sort((x, y) => x - y);
    this.broadcast = shape.map((d, i) => (keep.includes(i) ? (d ?? 1) : 1));
    if (this.cfgMean === null) {
      const statShape = keep.map((d) => shape[d] ?? 1);
      // The adapted statistics, in the order Keras saves them: mean, variance, count.
      this.meanVar = this.addWeight('mean', statShape, 'float32', initializers.zeros(), undefined, false);
      this.varianceVar = this.addWeight('variance', statShape, 'float32', initializers.ones(), undefined, false);
      this.addWeight('count', [], 'float32', initializers.zeros(), undefined, false);
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = tf.cast(one(inputs), 'float32');
      const stat = (v: number | number[] | null, variable?: { read(): tf.Tensor }) => {
        const t = variable ? variable.read() : tf.tensor(v as number | number[]);
        // A scalar broadcasts as it is; a vector belongs to the kept axes.
        return t.rank === 0 ? t : tf.reshape(t, this.broadcast);
      };
      const mean = stat(this.cfgMean, this.meanVar);
      const variance = stat(this.cfgVariance, this.varianceVar);
      const scale = tf.maximum(tf.sqrt(variance), EPSILON);
      return this.invert ? tf.add(mean, tf.mul(x, scale)) : tf.div(tf.sub(x, mean), scale);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), axis: this.axes, mean: this.cfgMean, variance: this.cfgVariance, invert: this.invert };
  }
}

interface ResizingArgs {
  height: number;
  width: number;
  interpolation?: 'bilinear' | 'nearest';
  cropToAspectRatio?: boolean;
}

/** Keras' Resizing layer (see the file comment). */
export class KerasResizing extends layers.Layer {
  static className = 'CamLensResizing';
  private readonly height: number;
  private readonly width: number;
  private readonly interpolation: 'bilinear' | 'nearest';
  private readonly crop: boolean;

  constructor(args: LayerArgs & ResizingArgs) {
    super(args);
    this.height = args.height;
    this.width = args.width;
    this.interpolation = args.interpolation ?? 'bilinear';
    this.crop = Boolean(args.cropToAspectRatio);
  }

  override getClassName(): string {
    return 'Resizing';
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const s = oneShape(inputShape);
    return [s[0], this.height, this.width, s[3]];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      let x = tf.cast(one(inputs), 'float32') as tf.Tensor4D;
      const [, h, w] = x.shape;
      if (this.crop) {
        // The largest centred window with the target's aspect ratio, as Keras' crop_to_aspect_ratio.
        const cropH = Math.min(h, Math.trunc((w * this.height) / this.width));
        const cropW = Math.min(w, Math.trunc((h * this.width) / this.height));
        const top = Math.trunc((h - cropH) / 2);
        const left = Math.trunc((w - cropW) / 2);
        if (cropH !== h || cropW !== w) x = tf.slice(x, [0, top, left, 0], [-1, cropH, cropW, -1]);
      }
      const size: [number, number] = [this.height, this.width];
      return this.interpolation === 'nearest'
        ? tf.image.resizeNearestNeighbor(x, size, false, true)
        : tf.image.resizeBilinear(x, size, false, true);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), height: this.height, width: this.width, interpolation: this.interpolation, cropToAspectRatio: this.crop };
  }
}

let registered = false;

/** Registers our classes with tfjs-layers' deserializer (once). */
export function registerKerasLayers(): void {
  if (registered) return;
  registered = true;
  tf.serialization.registerClass(KerasIdentity);
  tf.serialization.registerClass(KerasNormalization);
  tf.serialization.registerClass(KerasResizing);
}

export type { Kwargs };
