/**
 * The manifest's enums against the lists they mirror: each list lives in one place (methods: the engine's
 * registry; colormaps: src/shared/colormaps.ts), and package.json, which cannot import them, is checked here.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { METHOD_IDS } from '../src/extension/engine/cam/registry';
import { COLORMAPS } from '../src/shared/colormaps';
import { BACKEND_CHOICES } from '../src/extension/workerProtocol';
import { BACKEND_CHOICES as ENGINE_BACKENDS } from '../src/extension/engine/backend';

const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
const setting = (name: string) => manifest.contributes.configuration.properties[`camLens.${name}`];

describe('package.json against the lists it mirrors', () => {
  it('offers exactly the registry\'s methods, in its order, for camLens.defaultMethod', () => {
    assert.deepStrictEqual(setting('defaultMethod').enum, [...METHOD_IDS]);
    assert.ok(METHOD_IDS.includes(setting('defaultMethod').default));
  });

  it('offers exactly the shared colormaps for camLens.colormap, and the backends for camLens.backend', () => {
    assert.deepStrictEqual(setting('colormap').enum, [...COLORMAPS]);
    assert.deepStrictEqual(setting('backend').enum, [...ENGINE_BACKENDS]);
    assert.deepStrictEqual([...BACKEND_CHOICES], [...ENGINE_BACKENDS], 'the host bundle\'s copy of the backend list');
  });
});
