/** Host messages for the webview tests: a small made-up classifier, its methods, layers and maps. */
import sharp from 'sharp';
import type { ExplainHostMessage, ExplainViewState, InspectorHostMessage, LayerSummary, MethodInfo, ModelInfo } from '../../src/shared/protocol';

export const LABELS = ['tabby cat', 'boxer', 'tiger cat', 'golden retriever', 'Egyptian cat', 'beagle', 'lynx', 'pug', 'airliner', 'volcano'];

export const MODEL: ModelInfo = {
  path: '/models/mobilenet/model.json',
  name: 'mobilenet_v1_0.25_224',
  format: 'layers-model',
  backend: 'wasm',
  inputSize: [224, 224, 3],
  preprocess: '[-1,1]',
  preprocessAssumed: true,
  labels: LABELS,
  recommendedLayer: 'conv_pw_13_relu',
  spatialLayers: ['conv_pw_11_relu', 'conv_pw_12_relu', 'conv_pw_13_relu'],
};

export const METHODS: MethodInfo[] = [
  { id: 'cam', label: 'CAM', needsGradients: false, classIndependent: false, available: false, reason: 'needs global average pooling then a dense classifier' },
  { id: 'gradcam', label: 'Grad-CAM', needsGradients: true, classIndependent: false, available: true },
  { id: 'gradcam++', label: 'Grad-CAM++', needsGradients: true, classIndependent: false, available: true },
  { id: 'xgradcam', label: 'XGrad-CAM', needsGradients: true, classIndependent: false, available: true },
  { id: 'hirescam', label: 'HiResCAM', needsGradients: true, classIndependent: false, available: true },
  { id: 'layercam', label: 'LayerCAM', needsGradients: true, classIndependent: false, available: true },
  { id: 'scorecam', label: 'Score-CAM', needsGradients: false, classIndependent: false, available: true },
  { id: 'eigencam', label: 'Eigen-CAM', needsGradients: false, classIndependent: true, available: true },
];

export const IMAGE_SIZE: [number, number] = [320, 240];

export function hostState(over: Partial<ExplainViewState> = {}): ExplainViewState {
  return { version: 1, imagePath: '/work/images/cat_dog.png', modelPath: MODEL.path, method: 'gradcam', opacity: 0.5, colormap: 'turbo', overlay: true, ...over };
}

export function didInit(imageUri: string, state = hostState()): ExplainHostMessage {
  return { type: 'panel/didInit', imageUri, imageName: 'cat_dog.png', imageSize: IMAGE_SIZE, model: MODEL, methods: METHODS, state };
}

export const PREDICTIONS: ExplainHostMessage = {
  type: 'predictions/didCompute',
  predictions: [
    { index: 1, label: 'boxer', probability: 0.346 },
    { index: 0, label: 'tabby cat', probability: 0.212 },
    { index: 2, label: 'tiger cat', probability: 0.118 },
    { index: 4, label: 'Egyptian cat', probability: 0.057 },
    { index: 7, label: 'pug', probability: 0.0004 },
  ],
};

/** A 7x7 map that is 1 in its left three columns and 0 in its right three (a ramp in the middle column). */
export function leftHotMap(): Float32Array {
  const v = new Float32Array(49);
  for (let y = 0; y < 7; y++) for (let x = 0; x < 7; x++) v[y * 7 + x] = x < 3 ? 1 : x === 3 ? 0.5 : 0;
  return v;
}

export function didCompute(requestId: number, classIndex = 1, values = leftHotMap(), method: MethodInfo['id'] = 'gradcam'): ExplainHostMessage {
  return {
    type: 'cam/didCompute',
    requestId,
    method,
    layer: 'conv_pw_13_relu',
    target: { index: classIndex, label: LABELS[classIndex], probability: classIndex === 1 ? 0.346 : 0.212 },
    heatmap: { width: 7, height: 7, values, rawMin: 0, rawMax: 0.0312 },
    timingsMs: { forward: 5, gradients: 4, method: 3, total: 12 },
    backend: 'wasm',
    cached: false,
  };
}

/** A 320x240 test photo: a warm disc on the left of a cool gradient, rendered from SVG. */
export function testImagePng(): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">
    <defs><linearGradient id="g" x1="0" x2="1"><stop offset="0" stop-color="#35506b"/><stop offset="1" stop-color="#8fb3c9"/></linearGradient></defs>
    <rect width="320" height="240" fill="url(#g)"/>
    <rect y="180" width="320" height="60" fill="#4f6b3a"/>
    <circle cx="90" cy="130" r="60" fill="#c88a4a"/><circle cx="70" cy="115" r="8" fill="#222"/><circle cx="110" cy="115" r="8" fill="#222"/>
    <polygon points="40,90 55,40 80,78" fill="#b07a40"/><polygon points="140,90 125,40 100,78" fill="#b07a40"/>
    <rect x="215" y="120" width="60" height="60" fill="#6d5a4a"/>
  </svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

// ---------------------------------------------------------------------------------------------------------
// Inspector

export const LAYERS: LayerSummary[] = [
  { name: 'input_1', className: 'InputLayer', outputShape: [null, 224, 224, 3], params: 0, inbound: [], spatial: true },
  { name: 'conv1', className: 'Conv2D', outputShape: [null, 112, 112, 8], params: 216, inbound: ['input_1'], spatial: true },
  { name: 'conv_pw_12_relu', className: 'ReLU', outputShape: [null, 7, 7, 256], params: 0, inbound: ['conv1'], spatial: true },
  { name: 'conv_pw_13_relu', className: 'ReLU', outputShape: [null, 4, 4, 512], params: 0, inbound: ['conv_pw_12_relu'], spatial: true },
  { name: 'global_average_pooling2d_1', className: 'GlobalAveragePooling2D', outputShape: [null, 512], params: 0, inbound: ['conv_pw_13_relu'], spatial: false },
  { name: 'dense', className: 'Dense', outputShape: [null, 10], params: 5130, inbound: ['global_average_pooling2d_1'], spatial: false },
];

export function inspectorInit(): InspectorHostMessage {
  return { type: 'panel/didInit', model: { ...MODEL, spatialLayers: ['conv1', 'conv_pw_12_relu', 'conv_pw_13_relu'] }, layers: LAYERS, totalParams: 5346 };
}

/**
 * Feature maps of `channels` channels of 4x4. Channel c is a blob whose position depends on c, scaled so that
 * its mean is (c * 37) % channels (a permutation of 0..channels-1 when channels is coprime with 37), and the
 * weight for the class is its negated index, so each sort order is known in advance.
 */
export function featureMaps(requestId: number, channels: number, layer = 'conv_pw_13_relu'): InspectorHostMessage {
  const w = 4;
  const hgt = 4;
  const n = w * hgt;
  const values = new Float32Array(channels * n);
  const min = new Float32Array(channels);
  const max = new Float32Array(channels);
  const mean = new Float32Array(channels);
  const weights = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    const target = (c * 37) % channels;
    const cx = c % w;
    const cy = Math.floor(c / w) % hgt;
    let sum = 0;
    const raw = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const d = Math.abs((i % w) - cx) + Math.abs(Math.floor(i / w) - cy);
      raw[i] = Math.max(0, 4 - d);
      sum += raw[i];
    }
    const scale = target / (sum / n);
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = raw[i] * scale;
      values[c * n + i] = v;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    min[c] = lo;
    max[c] = hi;
    mean[c] = target;
    weights[c] = -c;
  }
  return { type: 'features/didCompute', requestId, layer, width: w, height: hgt, channels, values, min, max, mean, weights, classIndex: 1 };
}
