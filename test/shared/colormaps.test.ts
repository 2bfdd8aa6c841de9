import * as assert from 'node:assert/strict';
import { applyColormap, colormapIndex, colormapLut, COLORMAPS, isColormapName, type ColormapName } from '../../src/shared/colormaps';

const rgbAt = (name: ColormapName, i: number): [number, number, number] => {
  const lut = colormapLut(name);
  return [lut[3 * i], lut[3 * i + 1], lut[3 * i + 2]];
};

/** Relative luminance (WCAG / Rec. 709) of an sRGB colour, in [0,1]. */
function luminance([r, g, b]: [number, number, number]): number {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

function assertNear(actual: number[], expected: number[], tol: number, what: string): void {
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}: got [${actual}] expected [${expected}] ±${tol}`);
  }
}

describe('colormaps', () => {
  it('lists the five colormaps of the settings, turbo first', () => {
    assert.deepEqual([...COLORMAPS], ['turbo', 'jet', 'viridis', 'inferno', 'gray']);
    assert.ok(isColormapName('viridis'));
    assert.ok(!isColormapName('hot'));
    assert.ok(!isColormapName(3));
  });

  it('builds each table once: 256 RGB entries, cached', () => {
    for (const name of COLORMAPS) {
      const lut = colormapLut(name);
      assert.equal(lut.length, 768);
      assert.equal(colormapLut(name), lut, `${name} is cached`);
    }
  });

  it('has the published endpoint colours', () => {
    // Endpoints of the reference 256-entry tables, to within one 8-bit level.
    assertNear(rgbAt('turbo', 0), [48, 18, 59], 1, 'turbo 0 (dark blue)');
    assertNear(rgbAt('turbo', 255), [122, 4, 3], 1, 'turbo 1 (dark red)');
    assertNear(rgbAt('viridis', 0), [68, 1, 84], 1, 'viridis 0 (purple)');
    assertNear(rgbAt('viridis', 255), [253, 231, 37], 1, 'viridis 1 (yellow)');
    assertNear(rgbAt('inferno', 0), [0, 0, 4], 1, 'inferno 0 (black)');
    assertNear(rgbAt('inferno', 255), [252, 255, 164], 1, 'inferno 1 (pale yellow)');
    assertNear(rgbAt('jet', 0), [0, 0, 128], 1, 'jet 0 (dark blue)');
    assertNear(rgbAt('jet', 255), [128, 0, 0], 1, 'jet 1 (dark red)');
    assert.deepEqual(rgbAt('gray', 0), [0, 0, 0]);
    assert.deepEqual(rgbAt('gray', 255), [255, 255, 255]);
  });

  it('passes through the expected hues in between', () => {
    const dominant = (c: number[]) => ['r', 'g', 'b'][c.indexOf(Math.max(...c))];
    // turbo: blue, then cyan (g and b high, r low), green-yellow, orange, red
    assert.equal(dominant(rgbAt('turbo', 40)), 'b');
    const cyan = rgbAt('turbo', 85);
    assert.ok(cyan[1] > 200 && cyan[2] > 150 && cyan[0] < 60, `turbo 1/3 is cyan: ${cyan}`);
    assert.equal(dominant(rgbAt('turbo', 128)), 'g');
    const orange = rgbAt('turbo', 192);
    assert.ok(orange[0] > 240 && orange[1] > 80 && orange[1] < 170 && orange[2] < 60, `turbo 3/4 is orange: ${orange}`);
    // jet: blue, cyan, yellow-green, red
    assert.deepEqual(rgbAt('jet', 64).map((v) => v > 100), [false, true, true]);
    assert.equal(dominant(rgbAt('jet', 128)), 'g');
    assert.equal(dominant(rgbAt('jet', 210)), 'r');
    // viridis: teal in the middle; inferno: red-magenta in the middle, orange at 3/4
    const teal = rgbAt('viridis', 128);
    assert.ok(teal[0] < 60 && teal[1] > 120 && teal[2] > 120, `viridis 1/2 is teal: ${teal}`);
    const infMid = rgbAt('inferno', 128);
    assert.equal(dominant(infMid), 'r');
    assert.ok(infMid[2] > infMid[1], `inferno 1/2 is red-magenta: ${infMid}`);
    assertNear(rgbAt('inferno', 192), [250, 142, 9], 3, 'inferno 3/4 (orange)');
  });

  for (const name of ['gray', 'viridis', 'inferno'] as const) {
    it(`${name}: luminance rises monotonically from 0 to 1`, () => {
      let prev = -1;
      for (let i = 0; i < 256; i++) {
        const y = luminance(rgbAt(name, i));
        // Quantising the published tables to 8 bits already makes viridis dip by ~3e-4 between neighbours
        // (one level of one channel); allow that, and require a strict rise over every 8 entries.
        assert.ok(y >= prev - 5e-4, `${name} luminance dips at ${i}: ${prev} -> ${y}`);
        if (i >= 8) assert.ok(y > luminance(rgbAt(name, i - 8)), `${name} luminance not rising over ${i - 8}..${i}`);
        prev = y;
      }
    });
  }

  it('maps values to entries by round(v * 255), clamping and treating NaN as 0', () => {
    assert.equal(colormapIndex(0), 0);
    assert.equal(colormapIndex(1), 255);
    assert.equal(colormapIndex(0.5), 128);
    assert.equal(colormapIndex(0.5 / 255), 1);
    assert.equal(colormapIndex(-3), 0);
    assert.equal(colormapIndex(7), 255);
    assert.equal(colormapIndex(NaN), 0);
    assert.equal(colormapIndex(Infinity), 255);
    assert.equal(colormapIndex(-Infinity), 0);
  });

  it('applyColormap writes opaque RGBA from the table', () => {
    const values = new Float32Array([0, 1, 0.5, -1, 2, NaN]);
    const rgba = applyColormap(values, 'turbo');
    assert.equal(rgba.length, 24);
    const expectIdx = [0, 255, 128, 0, 255, 0];
    for (let i = 0; i < values.length; i++) {
      assert.deepEqual(Array.from(rgba.slice(4 * i, 4 * i + 4)), [...rgbAt('turbo', expectIdx[i]), 255], `value ${values[i]}`);
    }
  });

  it('applyColormap fills a given output buffer (e.g. ImageData) and refuses one that is too small', () => {
    const out = new Uint8ClampedArray(16);
    const ret = applyColormap(new Float32Array([0, 0.25, 0.75, 1]), 'gray', out);
    assert.equal(ret, out);
    assert.deepEqual(Array.from(out), [0, 0, 0, 255, 64, 64, 64, 255, 191, 191, 191, 255, 255, 255, 255, 255]);
    assert.throws(() => applyColormap(new Float32Array(5), 'gray', out), /16 bytes but 5 values need 20/);
  });

  it('rejects an unknown colormap name with the valid ones', () => {
    assert.throws(() => colormapLut('hot' as ColormapName), /Unknown colormap "hot".*turbo, jet, viridis, inferno, gray/);
  });
});
