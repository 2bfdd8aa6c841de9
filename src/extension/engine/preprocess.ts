/**
 * Input preprocessing presets: how 8-bit pixels become the float tensor a model was trained on. A wrong preset is
 * the most common cause of "nonsense heatmaps", so every preset is spelled out here with its formula and origin.
 *
 * Input: HWC pixels, row-major, RGB (channels 3) or gray (channels 1), values on the 0..255 scale: bytes from
 * resizeForModel, or floats from a resize that does not round (tf.image.resizeBilinear does not). Output: a new Float32Array of the same length and layout (ready for tf.tensor4d([1,h,w,c])).
 *
 *   preset      formula                                   typical models
 *   '[0,1]'     x / 255                                   custom Keras/tfjs models trained on x/255
 *   '[-1,1]'    x / 127.5 - 1                             Keras mode='tf': MobileNet v1/v2, Inception v3, Xception;
 *                                                         Teachable Machine image models
 *   '[0,255]'   x                                         models that rescale inside (Keras EfficientNet, ConvNeXt)
 *   'caffe'     BGR order, minus the ImageNet mean        Keras mode='caffe': VGG16/19, ResNet50 (v1)
 *               [103.939, 116.779, 123.68] (B, G, R), no scaling
 *   'imagenet'  x / 255, then (x - [0.485, 0.456, 0.406]) Keras mode='torch' (DenseNet), PyTorch-converted models
 *               / [0.229, 0.224, 0.225] (R, G, B)
 *
 * Grayscale models (channels 1): 'caffe' and 'imagenet' have per-channel constants for colour images only. We use
 * the mean of the three constants (caffe: mean 114.799; imagenet: mean 0.449, std 0.226). That is the natural
 * choice for a model trained on luma images normalised with ImageNet statistics, and it keeps a mid-gray pixel
 * near 0 as it would be for a colour model.
 */
import { CamLensError } from './errors';
import { PREPROCESS_IDS, type PreprocessId } from '../../shared/protocol';

/** The presets' ids are listed once, in src/shared/protocol.ts (the webviews show them too). */
export type PreprocessPreset = PreprocessId;
export const PREPROCESS_PRESETS = PREPROCESS_IDS;

/** Keras `imagenet_utils` caffe means, in B, G, R order. */
export const CAFFE_MEAN_BGR: readonly [number, number, number] = [103.939, 116.779, 123.68];
/** torchvision ImageNet statistics, in R, G, B order, on [0,1] inputs. */
export const IMAGENET_MEAN_RGB: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD_RGB: readonly [number, number, number] = [0.229, 0.224, 0.225];

const mean3 = (a: readonly number[]) => (a[0] + a[1] + a[2]) / 3;

export function applyPreprocess(
  pixels: ArrayLike<number>,
  channels: number,
  preset: PreprocessPreset,
): Float32Array {
  if (channels !== 1 && channels !== 3) {
    throw new CamLensError('BAD_ARGUMENT', `Preprocessing needs 1 or 3 channels, got ${channels}`);
  }
  if (pixels.length % channels !== 0) {
    throw new CamLensError(
      'BAD_ARGUMENT',
      `Preprocessing got ${pixels.length} values, which is not a whole number of ${channels}-channel pixels`,
    );
  }
  const n = pixels.length;
  const out = new Float32Array(n);
  switch (preset) {
    case '[0,1]':
      for (let i = 0; i < n; i++) out[i] = pixels[i] / 255;
      return out;
    case '[-1,1]':
      for (let i = 0; i < n; i++) out[i] = pixels[i] / 127.5 - 1;
      return out;
    case '[0,255]':
      for (let i = 0; i < n; i++) out[i] = pixels[i];
      return out;
    case 'caffe': {
      if (channels === 1) {
        const m = mean3(CAFFE_MEAN_BGR);
        for (let i = 0; i < n; i++) out[i] = pixels[i] - m;
        return out;
      }
      const [mb, mg, mr] = CAFFE_MEAN_BGR;
      // Channel 0 of the output is blue: swap R and B while subtracting.
      for (let i = 0; i < n; i += 3) {
        out[i] = pixels[i + 2] - mb;
        out[i + 1] = pixels[i + 1] - mg;
        out[i + 2] = pixels[i] - mr;
      }
      return out;
    }
    case 'imagenet': {
      if (channels === 1) {
        const m = mean3(IMAGENET_MEAN_RGB);
        const s = mean3(IMAGENET_STD_RGB);
        for (let i = 0; i < n; i++) out[i] = (pixels[i] / 255 - m) / s;
        return out;
      }
      for (let i = 0; i < n; i += 3) {
        for (let c = 0; c < 3; c++) out[i + c] = (pixels[i + c] / 255 - IMAGENET_MEAN_RGB[c]) / IMAGENET_STD_RGB[c];
      }
      return out;
    }
    default: {
      const bad: never = preset;
      throw new CamLensError(
        'BAD_ARGUMENT',
        `Unknown preprocessing preset ${JSON.stringify(bad)}; valid presets: ${PREPROCESS_PRESETS.join(', ')}`,
        'Set "preprocess" in cam-lens.json to one of the valid presets.',
      );
    }
  }
}
