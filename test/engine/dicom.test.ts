/**
 * DICOM decoding against the values Debian's python3-pydicom computes (test/fixtures/dicom/expected.json, written
 * by scripts/fixtures/make_dicom.py): the reference files in ../shared/reference/dicom/ (a chest DX, a CT slice
 * and its JPEG-baseline copy, an RGB ultrasound, a 30-frame JPEG ultrasound) and the synthetic files beside the
 * expected values, before and after rescale and window; the compressed copies against their sources value by
 * value; frames, windows, MONOCHROME1, damaged files; and 16-bit PNG/TIFF at full depth.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CamLensError, type ErrorCode } from '../../src/extension/engine/errors';
import { decodeImage, type DecodedImage } from '../../src/extension/engine/image';
import { readDicom } from '../../src/extension/engine/dicom/parse';
import { decodeFrame, type DecodedFrame } from '../../src/extension/engine/dicom/codecs';
import { applyRescale } from '../../src/extension/engine/dicom/voi';
import { clearDicomCache } from '../../src/extension/engine/dicom/dicom';
import { readMetadata } from '../../src/extension/engine/metadata';
import { resizeBilinearLikeTf, resizeImageLikeTf } from '../../src/extension/engine/pipeline';
import { describeWindow, parseWindowChoice, type DicomWindowChoice } from '../../src/shared/dicom';
import { SHARED } from '../helpers/modelFiles';
import { skipBecause } from '../helpers/skip';

const FIX = path.resolve(__dirname, '..', 'fixtures', 'dicom');
const REF = path.join(SHARED, 'dicom');
const fix = (name: string) => path.join(FIX, name);

interface Summary {
  min: number;
  max: number;
  mean: number;
  pixels: [number, number, number | number[]][];
}
interface FrameValues {
  stored: Summary;
  rescaled?: Summary;
  windowed?: Summary[];
  minmax?: Summary;
}
interface Expected {
  rows: number;
  columns: number;
  frames: number;
  photometric: string;
  transferSyntax: string;
  rescale: [number, number] | null;
  windows: [number, number][];
  frameValues: Record<string, FrameValues>;
}
const EXPECTED = JSON.parse(fs.readFileSync(fix('expected.json'), 'utf8')) as {
  reference: Record<string, Expected>;
  synthetic: Record<string, Expected>;
  losslessSources: Record<string, string>;
  ctAgreement: { hu: { maxAbs: number; meanAbs: number }; windowed255: { maxAbs: number; meanAbs: number }; jpegStep: number };
  patientValues: string[];
  sixteenBit: { gray16: number[][]; rgb16: number[][][]; rgba16Alpha: number[][]; files: Record<string, 'gray16' | 'rgb16'> };
};

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message: RegExp): Promise<CamLensError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CamLensError, `expected CamLensError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    assert.ok(!e.message.includes('\n'), `one-line message: ${JSON.stringify(e.message)}`);
    return e;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

/** Compares values (channels per pixel, row-major) with a pydicom summary: min, max, mean and the listed pixels. */
function assertSummary(what: string, values: ArrayLike<number>, channels: number, width: number, s: Summary, tol: number): void {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  const mean = sum / values.length;
  assert.ok(Math.abs(min - s.min) <= tol, `${what}: min ${min}, pydicom ${s.min}`);
  assert.ok(Math.abs(max - s.max) <= tol, `${what}: max ${max}, pydicom ${s.max}`);
  assert.ok(Math.abs(mean - s.mean) <= tol, `${what}: mean ${mean}, pydicom ${s.mean}`);
  for (const [x, y, v] of s.pixels) {
    const want = Array.isArray(v) ? v : [v];
    want.forEach((w, c) => {
      const got = values[(y * width + x) * channels + c];
      assert.ok(Math.abs(got - w) <= tol, `${what}: pixel (${x},${y}) channel ${c} is ${got}, pydicom ${w}`);
    });
  }
}

/** Largest |a - b| over all values. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

async function storedFrame(file: string, frame = 0): Promise<{ decoded: DecodedFrame; rescale?: { slope: number; intercept: number } }> {
  const f = readDicom(fs.readFileSync(file), path.basename(file));
  return { decoded: await decodeFrame(f.syntax.codec ?? 'raw', f.frame(frame), f.header, path.basename(file), frame), rescale: f.header.rescale };
}

const model = (img: DecodedImage) => img.pixels?.data ?? new Float32Array(img.data);

/** Every value check of one file: stored, rescaled, each file window, min–max, per frame listed. */
async function checkAgainstPydicom(file: string, e: Expected, tolStored: number): Promise<void> {
  const name = path.basename(file);
  for (const [fi, fv] of Object.entries(e.frameValues)) {
    const frame = Number(fi);
    const { decoded, rescale } = await storedFrame(file, frame);
    assertSummary(`${name} frame ${frame} stored`, decoded.values, decoded.channels, e.columns, fv.stored, tolStored);
    if (decoded.channels === 3) {
      // Colour is not windowed: 8-bit RGB is the model's pixels as stored.
      const img = await decodeImage(file, { dicom: { frame } });
      assertSummary(`${name} frame ${frame} pixels`, model(img), 3, e.columns, fv.stored, tolStored);
      assert.equal(img.dicom?.window, null);
      continue;
    }
    const rescaled = applyRescale(decoded.values, rescale);
    assertSummary(`${name} frame ${frame} rescaled`, rescaled, 1, e.columns, fv.rescaled as Summary, 1e-3);
    for (const [k, w] of (fv.windowed ?? []).entries()) {
      const img = await decodeImage(file, { dicom: { frame, window: { kind: 'file', index: k } } });
      assertSummary(`${name} frame ${frame} window ${k + 1}`, model(img), 1, e.columns, w, 1e-3);
      assert.equal(img.dicom?.window?.kind, 'file');
      assert.equal(img.dicom?.window?.center, e.windows[k][0]);
    }
    const mm = await decodeImage(file, { dicom: { frame, window: { kind: 'minmax' } } });
    assertSummary(`${name} frame ${frame} min-max`, model(mm), 1, e.columns, fv.minmax as Summary, 1e-3);
  }
}

describe('DICOM: the reference files decode to what pydicom computes', function () {
  before(function () {
    if (!fs.existsSync(REF)) skipBecause(this, 'shared-absent', `${REF} is absent; these tests compare with pydicom's values for ../shared/reference/dicom`);
  });
  afterEach(() => clearDicomCache());

  for (const [rel, e] of Object.entries(EXPECTED.reference)) {
    it(`${rel} (${e.transferSyntax}, ${e.photometric}, ${e.frames} frame${e.frames === 1 ? '' : 's'})`, async () => {
      // Every codec here is exact against pydicom, JPEG included (libjpeg-turbo both sides): tolerance 0.
      await checkAgainstPydicom(path.join(REF, rel), e, 0);
    });
  }

  it('the CT slice and its JPEG-baseline copy (another rescale) agree after rescale within the JPEG loss', async () => {
    const raw = await storedFrame(path.join(REF, 'dicom_ct_chest/CTImage.dcm'));
    const jpg = await storedFrame(path.join(REF, 'dicom_ct_chest/CTImage_jpeg_baseline.dcm'));
    assert.notDeepEqual(raw.rescale, jpg.rescale, 'the two files carry different rescales');
    const hr = applyRescale(raw.decoded.values, raw.rescale);
    const hj = applyRescale(jpg.decoded.values, jpg.rescale);
    let sum = 0;
    for (let i = 0; i < hr.length; i++) sum += Math.abs(hr[i] - hj[i]);
    const mean = sum / hr.length;
    const a = EXPECTED.ctAgreement;
    // Before the rescale the two have nothing in common (int16 around 0..2400 against 8-bit 30..168).
    assert.ok(maxDiff(raw.decoded.values, jpg.decoded.values) > 1000);
    // After it they are the same HU up to the JPEG's 8-bit step (32.1 HU) and its loss, exactly as pydicom finds.
    assert.ok(mean < a.jpegStep, `mean |HU difference| ${mean} should be under one JPEG step ${a.jpegStep}`);
    assert.ok(Math.abs(mean - a.hu.meanAbs) < 1e-3, `mean |HU difference| ${mean}, pydicom ${a.hu.meanAbs}`);
    assert.ok(Math.abs(maxDiff(hr, hj) - a.hu.maxAbs) < 1e-2, `max |HU difference| ${maxDiff(hr, hj)}, pydicom ${a.hu.maxAbs}`);
    // Through the files' shared window (40/400) onto 0..255.
    const wr = model(await decodeImage(path.join(REF, 'dicom_ct_chest/CTImage.dcm')));
    const wj = model(await decodeImage(path.join(REF, 'dicom_ct_chest/CTImage_jpeg_baseline.dcm')));
    let sw = 0;
    for (let i = 0; i < wr.length; i++) sw += Math.abs(wr[i] - wj[i]);
    assert.ok(Math.abs(sw / wr.length - a.windowed255.meanAbs) < 1e-3, `mean |windowed difference| ${sw / wr.length}, pydicom ${a.windowed255.meanAbs}`);
    assert.ok(Math.abs(maxDiff(wr, wj) - a.windowed255.maxAbs) < 1e-3);
  });

  it('the chest DX (8-bit, no window) reaches the model as stored; the CT through its window 40/400', async () => {
    const dx = await decodeImage(path.join(REF, 'dicom_chest_dx_nih/nih_chest_dx.dcm'));
    assert.equal(dx.dicom?.window?.kind, 'range');
    assert.equal(dx.dicom?.window?.source, 'default');
    assert.equal(dx.pixels?.channels, 1);
    const { decoded } = await storedFrame(path.join(REF, 'dicom_chest_dx_nih/nih_chest_dx.dcm'));
    assert.ok(maxDiff(model(dx), decoded.values) < 1e-4, 'stored 0..255 values are the pixels');
    const ct = await decodeImage(path.join(REF, 'dicom_ct_chest/CTImage.dcm'));
    assert.deepEqual([ct.dicom?.window?.center, ct.dicom?.window?.width, ct.dicom?.window?.function], [40, 400, 'LINEAR']);
    assert.deepEqual(ct.dicom?.rescale, { slope: 1, intercept: -1024 });
    assert.match(describeWindow(ct.dicom!.window!, ct.dicom!.windows.length), /file window 1 of 1: centre 40, width 400 \(LINEAR\)/);
  });

  it('frames of the 30-frame JPEG ultrasound switch: each its own picture, frame 30 refused', async () => {
    const f = path.join(REF, 'dicom_jpeg_baseline_multiframe/examples_ybr_color.dcm');
    const a = await decodeImage(f, { dicom: { frame: 0 } });
    const b = await decodeImage(f, { dicom: { frame: 29 } });
    assert.equal(a.dicom?.frames, 30);
    assert.equal(b.dicom?.frame, 29);
    assert.ok(maxDiff(a.data, b.data) > 50, 'frame 29 differs from frame 0');
    assert.match(a.dicom?.colourNote ?? '', /YBR_FULL_422 converted to RGB by the JPEG decoder/);
    await rejectsWith(decodeImage(f, { dicom: { frame: 30 } }), 'BAD_ARGUMENT', /has 30 frames \(0-29\); there is no frame 30/);
  });
});

describe('DICOM: synthetic files', () => {
  afterEach(() => clearDicomCache());

  for (const [name, e] of Object.entries(EXPECTED.synthetic)) {
    it(`${name} (${e.photometric}, ${e.transferSyntax}) decodes to pydicom's values`, async () => {
      // YBR_FULL(_422) native data is converted to RGB here with pydicom's formula: equal but for float rounding at .5.
      await checkAgainstPydicom(fix(name), e, e.photometric.startsWith('YBR') ? 1 : 0);
    });
  }

  for (const [name, source] of Object.entries(EXPECTED.losslessSources)) {
    it(`${name} (lossless) decodes to exactly the values of ${source}`, async () => {
      const frames = EXPECTED.synthetic[source].frames;
      for (let frame = 0; frame < frames; frame++) {
        const a = await storedFrame(fix(name), frame);
        const b = await storedFrame(fix(source), frame);
        assert.equal(a.decoded.channels, b.decoded.channels);
        assert.equal(maxDiff(a.decoded.values, b.decoded.values), 0, `frame ${frame}`);
        const ia = await decodeImage(fix(name), { dicom: { frame } });
        const ib = await decodeImage(fix(source), { dicom: { frame } });
        assert.equal(maxDiff(model(ia), model(ib)), 0);
      }
    });
  }

  it('reads a legacy file without preamble, a file without extension by its DICM marker, and a deflated one', async () => {
    const legacy = await decodeImage(fix('legacy_nopreamble.dcm'));
    assert.equal(legacy.format, 'dicom');
    assert.match(legacy.dicom?.notes.join(' ') ?? '', /legacy file without preamble/);
    const plain = await decodeImage(fix('IM000001'));
    assert.equal(plain.dicom?.transferSyntax, 'Implicit VR Little Endian');
    assert.deepEqual(plain.dicom?.rescale, { slope: 0.5, intercept: 10 });
    // 16 bits stored, no window: min–max of the rescaled values.
    assert.equal(plain.dicom?.window?.kind, 'minmax');
    const deflated = await decodeImage(fix('deflated.dcm'));
    assert.equal(deflated.dicom?.transferSyntax, 'Deflated Explicit VR Little Endian');
    // The same pixels as the legacy file (written from the same array), through the deflated file's window 100/120.
    const { decoded } = await storedFrame(fix('legacy_nopreamble.dcm'));
    const { decoded: d2 } = await storedFrame(fix('deflated.dcm'));
    assert.equal(maxDiff(decoded.values, d2.values), 0);
  });

  it('MONOCHROME1 is inverted for display and for the model', async () => {
    const img = await decodeImage(fix('mono1.dcm'));
    assert.equal(img.dicom?.inverted, true);
    const { decoded } = await storedFrame(fix('mono1.dcm'));
    // The file's window 2000/3000 (LINEAR), then 255 - y: high stored values are dark.
    const c = 2000 - 0.5;
    const w = 3000 - 1;
    const px = model(img);
    let brightest = 0;
    for (let i = 0; i < px.length; i++) {
      const v = decoded.values[i];
      const y = v <= c - w / 2 ? 0 : v > c + w / 2 ? 255 : ((v - c) / w + 0.5) * 255;
      assert.ok(Math.abs(px[i] - (255 - y)) < 1e-3, `pixel ${i}: ${px[i]}, expected ${255 - y}`);
      if (decoded.values[i] > decoded.values[brightest]) brightest = i;
    }
    assert.ok(px[brightest] < 60, 'the highest stored value is shown dark');
    assert.equal(img.data[3 * brightest], Math.round(px[brightest]), 'the displayed bytes are the model pixels rounded');
  });

  it('windows: the file\'s second window, a custom one, min–max, the model\'s; a missing window is named', async () => {
    const f = fix('ct16_windows.dcm');
    const soft = await decodeImage(f);
    assert.deepEqual(soft.dicom?.windows.map((w) => w.name), ['SOFT TISSUE', 'LUNG']);
    assert.equal(soft.dicom?.window?.name, 'SOFT TISSUE');
    const lung = await decodeImage(f, { dicom: { window: { kind: 'file', index: 1 } } });
    assert.equal(lung.dicom?.window?.center, -600);
    assert.ok(maxDiff(model(soft), model(lung)) > 100, 'another window changes the pixels');
    const custom = await decodeImage(f, { dicom: { window: { kind: 'custom', center: 40, width: 400 } } });
    assert.equal(maxDiff(model(custom), model(soft)), 0, 'a custom window equal to the file\'s gives the same pixels');
    assert.equal(custom.dicom?.window?.source, 'user');
    const byModel = await decodeImage(f, { dicom: { modelWindow: { kind: 'file', index: 1 } } });
    assert.equal(byModel.dicom?.window?.source, 'model');
    assert.equal(maxDiff(model(byModel), model(lung)), 0);
    const userWins = await decodeImage(f, { dicom: { modelWindow: { kind: 'file', index: 1 }, window: { kind: 'minmax' } } });
    assert.equal(userWins.dicom?.window?.kind, 'minmax');
    await rejectsWith(decodeImage(f, { dicom: { window: { kind: 'file', index: 2 } } }), 'BAD_ARGUMENT', /has 2 windows; there is no window 3/);
    await rejectsWith(decodeImage(f, { dicom: { window: { kind: 'custom', center: 0, width: 0 } } }), 'BAD_ARGUMENT', /width of at least 1/);
  });

  it('frames of a multi-frame file switch, in native and JPEG-LS encodings', async () => {
    for (const name of ['multiframe3.dcm', 'multiframe3_jpegls.dcm']) {
      const frames = await Promise.all([0, 1, 2].map(async (frame) => model(await decodeImage(fix(name), { dicom: { frame } }))));
      assert.ok(maxDiff(frames[0], frames[1]) > 10 && maxDiff(frames[1], frames[2]) > 10, `${name}: frames differ`);
      await rejectsWith(decodeImage(fix(name), { dicom: { frame: 3 } }), 'BAD_ARGUMENT', /has 3 frames \(0-2\); there is no frame 3/);
    }
  });

  it('parses --window and cam-lens.json window text', () => {
    assert.deepEqual(parseWindowChoice('40,400'), { kind: 'custom', center: 40, width: 400 });
    assert.deepEqual(parseWindowChoice(' -600 , 1500 '), { kind: 'custom', center: -600, width: 1500 });
    assert.deepEqual(parseWindowChoice('file'), { kind: 'file' });
    assert.deepEqual(parseWindowChoice('file:2'), { kind: 'file', index: 1 });
    assert.deepEqual(parseWindowChoice('minmax'), { kind: 'minmax' } satisfies DicomWindowChoice);
    for (const bad of ['', '40', '40,0', 'file:0', 'lung', '40,400,3', 'NaN,4']) assert.equal(parseWindowChoice(bad), undefined, bad);
  });
});

describe('DICOM: damaged and unsupported files get one specific error each', () => {
  afterEach(() => clearDicomCache());

  it('truncated pixel data', async () => {
    await rejectsWith(decodeImage(fix('truncated.dcm')), 'NOT_AN_IMAGE', /"[^"]*truncated\.dcm" is a damaged DICOM file: its pixel data is truncated: the file ends 4144 bytes into pixel data of 6144 bytes/);
  });

  it('pixel data of the wrong length', async () => {
    await rejectsWith(decodeImage(fix('wrong_length.dcm')), 'NOT_AN_IMAGE', /damaged DICOM file: its pixel data holds 6144 bytes, but 1 frame of 64x60x1 at 16 bits need 7680 \(wrong length\)/);
  });

  it('an unknown transfer syntax', async () => {
    await rejectsWith(decodeImage(fix('unknown_ts.dcm')), 'NOT_AN_IMAGE', /has an unknown transfer syntax 1\.2\.840\.99999\.9\.9\.9/);
  });

  it('a .dcm file that is not DICOM', async () => {
    await rejectsWith(decodeImage(fix('not_dicom.dcm')), 'NOT_AN_IMAGE', /is not a DICOM file: it has no "DICM" marker at byte 128/);
  });

  it('a supported syntax without a decoder here (RLE) is named', async () => {
    const bytes = fs.readFileSync(fix('ct16_windows.dcm'));
    const i = bytes.indexOf('1.2.840.10008.1.2.1\0');
    const rle = Buffer.from(bytes);
    rle.write('1.2.840.10008.1.2.5\0', i, 'latin1');
    await rejectsWith(decodeImage(rle, { name: 'rle.dcm' }), 'NOT_AN_IMAGE', /"rle\.dcm" uses the transfer syntax RLE Lossless \(1\.2\.840\.10008\.1\.2\.5\): RLE Lossless pixel data is not decoded/);
  });

  it('a compressed frame cut short, and one with its codestream damaged', async () => {
    for (const name of ['ct16_jpegls.dcm', 'ct16_j2k.dcm', 'ct16_jpeg_lossless.dcm']) {
      const bytes = fs.readFileSync(fix(name));
      await rejectsWith(decodeImage(bytes.subarray(0, bytes.length - 600), { name }), 'NOT_AN_IMAGE', /damaged DICOM file/);
    }
    // Garbage over the middle of the JPEG 2000 codestream: the decoder's refusal is one line naming the frame.
    const j2k = Buffer.from(fs.readFileSync(fix('ct16_j2k.dcm')));
    const soc = j2k.indexOf(Buffer.from([0xff, 0x4f, 0xff, 0x51]));
    j2k.fill(0xff, soc + 2, soc + 60);
    await rejectsWith(decodeImage(j2k, { name: 'bad_j2k.dcm' }), 'NOT_AN_IMAGE', /"bad_j2k\.dcm" is a damaged DICOM file: frame 0 cannot be decoded as JPEG 2000/);
  });

  it('an image larger than the pixel limit is refused before decoding', async () => {
    await rejectsWith(decodeImage(fix('ct16_windows.dcm'), { maxPixels: 1000 }), 'IMAGE_TOO_LARGE', /64x48 = 3072 pixels, more than the limit of 1000/);
  });
});

describe('16-bit PNG and TIFF keep their depth into preprocessing', () => {
  for (const [name, kind] of Object.entries(EXPECTED.sixteenBit.files)) {
    it(`${name}: v * 255 / 65535, not truncated to 8 bits`, async () => {
      const img = await decodeImage(fix(name));
      assert.equal(img.bitDepth, 16);
      const src = EXPECTED.sixteenBit[kind];
      const h = src.length;
      const w = src[0].length;
      assert.deepEqual([img.width, img.height], [w, h]);
      const px = img.pixels;
      assert.ok(px, 'full-depth pixels are kept');
      assert.equal(px.channels, kind === 'gray16' ? 1 : 3);
      const alpha = name === 'rgba16.png' ? EXPECTED.sixteenBit.rgba16Alpha : undefined;
      let truncationError = 0;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const v = src[y][x] as number | number[];
          const vs = Array.isArray(v) ? v : [v];
          vs.forEach((s, c) => {
            const a = alpha ? alpha[y][x] / 65535 : 1;
            const want = a * (s * 255) / 65535 + (1 - a) * 255;
            const got = px.data[(y * w + x) * px.channels + c];
            assert.ok(Math.abs(got - want) < 1e-3, `(${x},${y}) channel ${c}: ${got}, expected ${want}`);
            truncationError = Math.max(truncationError, Math.abs(Math.floor(s / 256) - want));
          });
        }
      }
      assert.ok(truncationError > 0.3, 'the fixture tells 16 bits from 8');
      // The model gets these values (a resize to the same size is the identity).
      const resized = resizeImageLikeTf(img, w, h, px.channels);
      assert.ok(maxDiff(resized, px.data) < 1e-4);
    });
  }
});

describe('model channels: gray repeated for a 3-channel model, colour to luma for a 1-channel model', () => {
  it('a gray source resizes like the same image as RGB, and its luma is itself', () => {
    const w = 7;
    const h = 5;
    const gray = Float32Array.from({ length: w * h }, (_, i) => (i * 37) % 256 + 0.25);
    const rgb = new Float32Array(w * h * 3);
    for (let i = 0; i < w * h; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = gray[i];
    for (const [ow, oh] of [[3, 2], [11, 9]] as const) {
      assert.ok(maxDiff(resizeBilinearLikeTf(gray, w, h, ow, oh, 3, 1), resizeBilinearLikeTf(rgb, w, h, ow, oh, 3, 3)) < 1e-4);
      assert.ok(maxDiff(resizeBilinearLikeTf(gray, w, h, ow, oh, 1, 1), resizeBilinearLikeTf(rgb, w, h, ow, oh, 1, 3)) < 1e-3);
    }
  });

  it('an RGB DICOM image goes to a 1-channel model by 0.299 R + 0.587 G + 0.114 B', async () => {
    const img = await decodeImage(fix('rgb_planar1.dcm'));
    const luma = resizeImageLikeTf(img, img.width, img.height, 1);
    const p = img.pixels!.data;
    for (let i = 0; i < luma.length; i++) assert.ok(Math.abs(luma[i] - (0.299 * p[3 * i] + 0.587 * p[3 * i + 1] + 0.114 * p[3 * i + 2])) < 1e-3);
  });
});

describe('cam-lens on DICOM: --frame, --window, the model\'s window, a DICOM folder scan', function () {
  const ROOT = path.resolve(__dirname, '..', '..');
  const CLI = path.join(ROOT, 'dist', 'cli.js');
  let dir = '';
  let gray = '';
  let keras = '';
  const run = (args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args, '--backend', 'cpu', '--quiet'], { encoding: 'utf8', timeout: 120000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  before(function () {
    if (!fs.existsSync(CLI)) {
      const b = spawnSync(process.execPath, [path.join(ROOT, 'esbuild.js')], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(b.status, 0, b.stderr);
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-dicom-'));
    // A 1-channel ONNX classifier trained (here: fixed) on a lung window, as cam-lens.json says.
    fs.mkdirSync(path.join(dir, 'onnx'));
    gray = path.join(dir, 'onnx', 'gray_mini.onnx');
    fs.copyFileSync(path.join(ROOT, 'test/fixtures/onnx/gray_mini/gray_mini.onnx'), gray);
    fs.writeFileSync(`${gray}.cam-lens.json`, JSON.stringify({ preprocess: '[0,1]', labels: Array.from({ length: 10 }, (_, i) => `c${i}`), dicom: { window: [-600, 1500] } }));
    // A 3-channel Keras classifier without a window of its own.
    fs.mkdirSync(path.join(dir, 'keras'));
    keras = path.join(dir, 'keras', 'model.keras');
    fs.copyFileSync(path.join(ROOT, 'test/fixtures/keras/functional/model.keras'), keras);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('cam on a CT slice with an ONNX model: the model\'s window feeds it, --window wins, the JSON says which', () => {
    const r = run(['cam', '--model', gray, '--image', fix('ct16_windows.dcm'), '--json', '-']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.dicom.window, { kind: 'custom', center: -600, width: 1500, function: 'LINEAR', source: 'model' });
    assert.deepEqual(j.dicom.rescale, { slope: 1, intercept: -1024, type: 'HU' });
    assert.equal(j.dicom.frame, 0);
    assert.equal(j.dicom.channels, undefined, 'gray into a 1-channel model: nothing to note');
    const u = JSON.parse(run(['cam', '--model', gray, '--image', fix('ct16_windows.dcm'), '--window', 'file:1', '--json', '-']).stdout);
    assert.equal(u.dicom.window.source, 'user');
    assert.equal(u.dicom.window.name, 'SOFT TISSUE');
    assert.notDeepEqual(u.heatmap.values, j.heatmap.values, 'another window, another map');
    const text = run(['predict', '--model', gray, '--image', fix('ct16_windows.dcm')]);
    assert.match(text.stdout, /DICOM MONOCHROME2 CT, Explicit VR Little Endian; rescale value x 1 - 1024 \(HU\); window: custom window: centre -600, width 1500 \(LINEAR, fixed by the model's cam-lens\.json\)/);
  });

  it('a Keras model gets a grayscale DICOM repeated into 3 channels; frames of a multi-frame file', () => {
    const j = JSON.parse(run(['predict', '--model', keras, '--image', fix('multiframe3_jpegls.dcm'), '--frame', '2', '--json', '-']).stdout);
    assert.equal(j.dicom.frame, 2);
    assert.equal(j.dicom.frames, 3);
    assert.match(j.dicom.channels, /repeated into the model's 3 channels/);
    const f0 = JSON.parse(run(['predict', '--model', keras, '--image', fix('multiframe3_jpegls.dcm'), '--json', '-']).stdout);
    assert.equal(f0.dicom.frame, 0);
    assert.notDeepEqual(f0.predictions, j.predictions);
  });

  it('usage errors exit 2 before reading; bad input exits 1 with one line', () => {
    for (const args of [['--window', 'lung'], ['--window', '40,0'], ['--frame', '-1'], ['--frame', 'two']]) {
      const r = run(['predict', '--model', gray, '--image', fix('ct16_windows.dcm'), ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^cam-lens: --(window|frame)/);
    }
    const frame = run(['predict', '--model', gray, '--image', fix('ct16_windows.dcm'), '--frame', '1']);
    assert.equal(frame.code, 1);
    assert.match(frame.stderr, /has 1 frame \(0\); there is no frame 1/);
    const png = run(['predict', '--model', keras, '--image', fix('gray16.png'), '--window', 'minmax']);
    assert.equal(png.code, 1);
    assert.match(png.stderr, /--frame and --window apply to DICOM images; gray16\.png is a PNG image/);
    const broken = run(['cam', '--model', gray, '--image', fix('unknown_ts.dcm')]);
    assert.equal(broken.code, 1);
    assert.equal(broken.stderr.trim().split('\n').length, 1);
    assert.match(broken.stderr, /unknown transfer syntax/);
  });

  it('the chest X-ray (shared reference) with a Keras and an ONNX classifier: a map over the image as the model sees it', function () {
    const chest = path.join(REF, 'dicom_chest_dx_nih/nih_chest_dx.dcm');
    if (!fs.existsSync(chest)) skipBecause(this, 'shared-absent', `${chest} is absent (../shared/reference)`);
    const png = path.join(dir, 'chest.png');
    const k = run(['cam', '--model', keras, '--image', chest, '--json', '-', '--png', png]);
    assert.equal(k.code, 0, k.stderr);
    const j = JSON.parse(k.stdout);
    assert.equal(j.dicom.window.kind, 'range', '8-bit values as stored');
    assert.ok(j.heatmap.values.some((v: number) => v > 0.5));
    const o = JSON.parse(run(['cam', '--model', gray, '--image', chest, '--json', '-']).stdout);
    assert.equal(o.dicom.window.source, 'model');
    assert.ok(fs.statSync(png).size > 10_000);
  });

  it('cam-lens.json\'s dicom.window is checked', () => {
    const m = path.join(dir, 'meta');
    fs.mkdirSync(m, { recursive: true });
    for (const [window, ok] of [[[40, 400], true], ['file', true], ['minmax', true], [[40, 0], false], ['lung', false], [[40], false]] as const) {
      fs.writeFileSync(path.join(m, 'cam-lens.json'), JSON.stringify({ dicom: { window } }));
      if (ok) assert.ok(readMetadata(m).dicomWindow, JSON.stringify(window));
      else assert.throws(() => readMetadata(m), (e: CamLensError) => e.code === 'METADATA_INVALID' && /dicom\.window/.test(e.message), JSON.stringify(window));
    }
  });

  it('scan: a folder of DICOM files, extensionless ones included, is scanned with the window given', () => {
    const data = path.join(dir, 'data');
    for (const [cls, files] of [['c0', ['ct16_windows.dcm', 'ct16_j2k.dcm', 'IM000001']], ['c1', ['mono1.dcm', 'legacy_nopreamble.dcm', 'truncated.dcm']]] as const) {
      fs.mkdirSync(path.join(data, cls), { recursive: true });
      for (const f of files) fs.copyFileSync(fix(f), path.join(data, cls, f));
    }
    fs.writeFileSync(path.join(data, 'c1', 'README'), 'not an image');
    const r = run(['scan', '--model', gray, '--data', data, '--window', 'minmax', '--json', '-']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.counts.images, 6, 'five DICOM files and one damaged, the README left out');
    assert.equal(j.counts.scanned, 5);
    assert.equal(j.counts.failed, 1);
    assert.deepEqual(j.dicom, { frame: 0, window: 'minmax' });
  });
});
