/** Small models built in code for tests and benchmarks. */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/**
 * A small conv-BN-ReLU network with a residual add, used by the contract table and the folding test. With `bias`
 * the two convolutions before BatchNormalization have biases of their own (non-zero), as Keras ResNets do, so
 * folding must carry the bias through the normalisation: (conv + b - mean) * scale + beta.
 */
export function bnModel(opts: { bias?: boolean } = {}): tfl.LayersModel {
  const useBias = opts.bias === true;
  const input = tfl.input({ shape: [16, 16, 3], name: 'img' });
  let x = tfl.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias, name: 'c1' }).apply(input) as tfl.SymbolicTensor;
  x = tfl.layers.batchNormalization({ name: 'bn1' }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.reLU({ name: 'r1' }).apply(x) as tfl.SymbolicTensor;
  let y = tfl.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias, name: 'dw' }).apply(x) as tfl.SymbolicTensor;
  y = tfl.layers.batchNormalization({ name: 'bn2' }).apply(y) as tfl.SymbolicTensor;
  y = tfl.layers.reLU({ maxValue: 6, name: 'r2' }).apply(y) as tfl.SymbolicTensor;
  const s = tfl.layers.add({ name: 'res' }).apply([x, y]) as tfl.SymbolicTensor;
  const g = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(s) as tfl.SymbolicTensor;
  const d = tfl.layers.dropout({ rate: 0.5, name: 'drop' }).apply(g) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 5, activation: 'softmax', name: 'fc' }).apply(d) as tfl.SymbolicTensor;
  const m = tfl.model({ inputs: input, outputs: out });
  // Non-trivial BN statistics so that folding is really exercised.
  for (const name of ['bn1', 'bn2']) {
    const l = m.getLayer(name);
    const ws = l.getWeights();
    l.setWeights(ws.map((w, i) => tf.add(tf.mul(tf.randomUniform(w.shape, 0.2, 1.5, 'float32', 7 + i), 1), i === 1 || i === 2 ? -0.6 : 0)));
  }
  if (useBias) {
    // Biases large against the activations (about +-1), so that dropping one changes the logits clearly.
    for (const [i, name] of ['c1', 'dw'].entries()) {
      const l = m.getLayer(name);
      const [kernel, bias] = l.getWeights();
      l.setWeights([kernel, tf.randomUniform(bias.shape, -1.2, 1.2, 'float32', 31 + i)]);
    }
  }
  return m;
}


