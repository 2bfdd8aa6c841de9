/**
 * The explain panel's pure parts for the method family (#15 item 6), in plain Node: option values (coerced,
 * stored only when they differ from the default, common CAM options shared), the layers a request names, the
 * persisted state's guards and clamping, and the diverging colouring of signed maps.
 */
import * as assert from 'node:assert/strict';
import { divergingIndex, divergingLut } from '../../src/shared/colormaps';
import { isExplainViewState, isExplainWebviewMessage, type MethodInfo, type MethodParam } from '../../src/shared/protocol';
import { coerceOption, optionValue, optionsSummary, requestLayers, requestOptions, resetOptions, setOption } from '../../src/webview/explain/methodOptions';
import { clampToModel } from '../../src/webview/explain/viewState';
import { paintSigned } from '../../src/webview/common/overlay';
import { hostState, METHODS, MODEL } from './fixtures';

const SAMPLES: MethodParam = { id: 'samples', label: 'Samples', kind: 'number', default: 25, min: 1, max: 200, step: 1, description: '' };
const BASELINE: MethodParam = { id: 'baseline', label: 'Baseline', kind: 'choice', default: 'black', choices: [{ value: 'black', label: 'black' }, { value: 'blur', label: 'blurred' }], description: '' };
const AUG: MethodParam = { id: 'augSmooth', label: 'Augmentation smoothing', kind: 'boolean', default: false, common: true, description: '' };
const smooth: MethodInfo = { id: 'smoothgrad', label: 'SmoothGrad', needsGradients: true, classIndependent: false, available: true, group: 'pixel', usesLayer: false, params: [SAMPLES, BASELINE] };
const gradcam: MethodInfo = { ...METHODS[1], group: 'cam', usesLayer: true, params: [AUG] };

describe('explain panel: method options and layers (pure)', () => {
  it('coerces a value to its param: numbers clamped, unreadable ones and unknown choices refused', () => {
    assert.equal(coerceOption(SAMPLES, 500), 200);
    assert.equal(coerceOption(SAMPLES, '0'), 1);
    assert.equal(coerceOption(SAMPLES, '12'), 12);
    assert.equal(coerceOption(SAMPLES, ''), undefined);
    assert.equal(coerceOption(SAMPLES, Number.NaN), undefined);
    assert.equal(coerceOption(BASELINE, 'blur'), 'blur');
    assert.equal(coerceOption(BASELINE, 'white'), undefined);
    assert.equal(coerceOption(AUG, 'true'), undefined);
    assert.equal(coerceOption(AUG, true), true);
  });

  it('stores only values that differ from the default; common options once for every CAM method', () => {
    let s = setOption(hostState(), 'smoothgrad', SAMPLES, 50);
    assert.deepEqual(s.methodOptions, { smoothgrad: { samples: 50 } });
    assert.deepEqual(requestOptions(s, smooth), { samples: 50 });
    assert.equal(optionsSummary(s, smooth), 'samples 50');
    s = setOption(s, 'smoothgrad', SAMPLES, 25);
    assert.equal(s.methodOptions, undefined, 'back to the default: nothing stored');
    assert.equal(requestOptions(s, smooth), undefined);
    assert.equal(optionsSummary(s, smooth), 'defaults');
    assert.equal(setOption(s, 'smoothgrad', SAMPLES, 'x'), s, 'a refused value leaves the state as it was');
    s = setOption(s, 'gradcam', AUG, true);
    assert.deepEqual(s.camOptions, { augSmooth: true });
    assert.equal(optionValue(s, 'gradcam++', AUG), true, 'another CAM method sees it');
    assert.deepEqual(requestOptions(s, gradcam), { augSmooth: true });
    // A stored value the param no longer accepts (a saved state from another version) reads as the default.
    assert.equal(optionValue({ ...s, methodOptions: { smoothgrad: { baseline: 'white' } } }, 'smoothgrad', BASELINE), 'black');
  });

  it('restores a method\'s defaults: its own values and, for a CAM method, the common ones; other methods keep theirs', () => {
    let s = setOption(hostState(), 'smoothgrad', SAMPLES, 50);
    s = setOption(s, 'integratedgradients', BASELINE, 'blur');
    s = setOption(s, 'gradcam', AUG, true);
    const afterSmooth = resetOptions(s, smooth);
    assert.deepEqual([afterSmooth.methodOptions, afterSmooth.camOptions], [{ integratedgradients: { baseline: 'blur' } }, { augSmooth: true }]);
    const afterCam = resetOptions(s, gradcam);
    assert.equal(afterCam.camOptions, undefined);
    assert.deepEqual(afterCam.methodOptions, s.methodOptions);
  });

  it('names the layers of a request: none for a method that reads none, several only for CAM methods', () => {
    const s = hostState({ layer: 'conv_pw_13_relu', layers: ['conv_pw_12_relu', 'conv_pw_13_relu'] });
    assert.deepEqual(requestLayers(s, gradcam), { layer: 'conv_pw_12_relu', layers: ['conv_pw_12_relu', 'conv_pw_13_relu'] });
    assert.deepEqual(requestLayers(s, smooth), {});
    const guided: MethodInfo = { ...smooth, id: 'guidedgradcam', usesLayer: true };
    assert.deepEqual(requestLayers(s, guided), { layer: 'conv_pw_13_relu' });
    assert.deepEqual(requestLayers(hostState({ layer: 'conv_pw_11_relu' }), gradcam), { layer: 'conv_pw_11_relu' });
  });

  it('keeps only the model\'s layers, in its order, and at least two of them', () => {
    const out = clampToModel(hostState({ layer: 'gone', layers: ['conv_pw_13_relu', 'gone', 'conv_pw_11_relu'] }), MODEL, METHODS);
    assert.deepEqual(out.layers, ['conv_pw_11_relu', 'conv_pw_13_relu']);
    assert.equal(out.layer, 'conv_pw_11_relu');
    const one = clampToModel(hostState({ layers: ['conv_pw_13_relu', 'gone'] }), MODEL, METHODS);
    assert.equal(one.layers, undefined);
  });

  it('guards the persisted state and the request: layer lists, option values', () => {
    assert.ok(isExplainViewState(hostState({ layers: ['a', 'b'], methodOptions: { smoothgrad: { samples: 3, baseline: 'blur' } }, camOptions: { augSmooth: true } })));
    assert.ok(!isExplainViewState(hostState({ layers: [] })));
    assert.ok(!isExplainViewState({ ...hostState(), methodOptions: { smoothgrad: { samples: { deep: 1 } } } }));
    assert.ok(!isExplainViewState({ ...hostState(), camOptions: { augSmooth: Number.POSITIVE_INFINITY } }));
    const req = { type: 'cam/compute', requestId: 3, method: 'smoothgrad' };
    assert.ok(isExplainWebviewMessage({ ...req, options: { samples: 3 }, layers: ['a', 'b'] }));
    assert.ok(!isExplainWebviewMessage({ ...req, options: [1] }));
    assert.ok(!isExplainWebviewMessage({ ...req, options: { samples: null } }));
    assert.ok(!isExplainWebviewMessage({ ...req, layers: 'a' }));
    assert.ok(!isExplainWebviewMessage({ ...req, layers: new Array(33).fill('a') }));
  });
});

describe('signed maps: the diverging colormap', () => {
  it('puts 0 exactly on the neutral colour and the signs on either side', () => {
    assert.equal(divergingIndex(0), 127);
    assert.equal(divergingIndex(-0), 127);
    assert.equal(divergingIndex(Number.NaN), 127);
    assert.equal(divergingIndex(-1), 0);
    assert.equal(divergingIndex(-5), 0);
    assert.equal(divergingIndex(1), 255);
    assert.equal(divergingIndex(1e-6), 128);
    assert.equal(divergingIndex(-1e-6), 127);
    const lut = divergingLut();
    assert.deepEqual([...lut.subarray(381, 384)], [...lut.subarray(384, 387)], 'entries 127 and 128 are both the neutral colour');
    assert.ok(lut[2] > lut[0] + 100, 'the negative end is blue');
    assert.ok(lut[765] > lut[767] + 100, 'the positive end is red');
    // Lightness falls away from the middle on both sides: strong attribution is the most saturated.
    const light = (i: number) => lut[3 * i] + lut[3 * i + 1] + lut[3 * i + 2];
    for (let i = 1; i <= 127; i++) assert.ok(light(i) >= light(i - 1), `negative side lightens towards 0 at ${i}`);
    for (let i = 129; i <= 255; i++) assert.ok(light(i) <= light(i - 1), `positive side darkens away from 0 at ${i}`);
  });

  it('paints a signed map with the opacity as alpha', () => {
    const out = paintSigned([-1, 0, 1], 0.5);
    const lut = divergingLut();
    assert.deepEqual([...out], [lut[0], lut[1], lut[2], 128, lut[381], lut[382], lut[383], 128, lut[765], lut[766], lut[767], 128]);
  });
});
