/**
 * The host side of the strategies panel, in plain Node: the engine's report turned into what the webview draws
 * (panels/strategiesView.ts), the member lookup that guards "open in the explain panel", and the guards the host
 * runs on every webview message (shared/protocol.ts isStrategiesWebviewMessage).
 */
import * as assert from 'node:assert/strict';
import type { ClassStrategies, ShortcutHints, StrategiesReport, StrategyMember } from '../../src/extension/engine/analysis/types';
import { MAX_VIEW_FAILURES, memberFile, toStrategiesView } from '../../src/extension/panels/strategiesView';
import { isStrategiesViewState, isStrategiesWebviewMessage } from '../../src/shared/protocol';
import { suspiciousHints } from '../../src/shared/strategies';

const map = (v: number) => ({ width: 2, height: 2, values: new Float32Array([v, 0, 0, 0]) });

function hints(corner: number, intervention?: number): ShortcutHints {
  return {
    border: { share: 0.2, uniform: 0.19, rule: 'border rule' },
    corner: { share: corner, uniform: 0.06, corner: 'top-left', rule: 'corner rule' },
    ...(intervention !== undefined ? {
      intervention: { hotDrop: intervention, controlDrop: 0.05, ratio: intervention / 0.05, baseline: 0.9, hotRegion: [0, 0, 9, 9], controlRegion: [20, 20, 29, 29], images: 3, rule: 'blur rule' },
    } : {}),
  };
}

function member(relPath: string, cluster: number, distance: number): StrategyMember {
  return {
    path: `/data/shapes/${relPath}`, relPath, givenIndex: 1, givenLabel: 'star', predictedIndex: 1, predictedLabel: 'star', predictedProbability: 0.9,
    explainedIndex: 1, probability: 0.88, cluster, distance,
  };
}

function report(): StrategiesReport {
  const members = [member('star/a.png', 0, 0.1), member('star/b.dcm', 0, 0.2), member('star/c.png', 1, 0.05)];
  const star: ClassStrategies = {
    classIndex: 1, label: 'star', count: 3, averageMap: map(1), averageImage: { width: 1, height: 1, data: new Uint8Array([1, 2, 3]) },
    clusterChoice: { by: 'eigengap', k: 2, eigenvalues: [0, 0.01, 0.6], eigengap: 0.59, neighbours: 2 },
    clusters: [
      { id: 0, size: 2, fraction: 2 / 3, averageMap: map(0.5), members: [0, 1], nearest: [{ path: '/data/shapes/star/a.png', relPath: 'star/a.png', distance: 0.1 }, { path: '/data/shapes/star/b.dcm', relPath: 'star/b.dcm', distance: 0.2 }],
        distances: [{ cluster: 1, distance: 1.2 }], nearestOther: 1.2, hints: hints(0.1, 0.02) },
      { id: 1, size: 1, fraction: 1 / 3, averageMap: map(0.9), members: [2], nearest: [{ path: '/data/shapes/star/c.png', relPath: 'star/c.png', distance: 0.05 }],
        distances: [{ cluster: 0, distance: 1.2 }], nearestOther: 1.2, hints: hints(0.7, 0.5) },
    ],
    members,
    hints: hints(0.3),
  };
  return {
    version: 1, model: '/models/m/model.json', modelName: 'm', data: '/data/shapes', method: 'gradcam', layer: 'conv', groupBy: 'given', explain: 'group',
    mapSize: { width: 2, height: 2 }, counts: { images: 3 + 250, analysed: 3, failed: 250, fromCache: 1 }, cancelled: false, seconds: 1.5,
    rules: { border: 'b', corner: 'c', outsideBox: 'o', intervention: 'i', clustering: 's' },
    classes: [star],
    failures: Array.from({ length: 250 }, (_, i) => ({ path: `/data/shapes/star/bad${i}.png`, relPath: `star/bad${i}.png`, error: 'unreadable' })),
  };
}

describe('strategies panel host: report to view, member lookup, message guards', () => {
  it('keeps what the cards draw, adds webview URIs for browser images only, and leaves out every member\'s record', () => {
    const r = report();
    const v = toStrategiesView(r, (f) => `vscode-resource:${f}`);
    assert.equal(v.classes.length, 1);
    const c = v.classes[0];
    assert.deepEqual([c.classIndex, c.label, c.count, c.clusterChoice], [1, 'star', 3, { by: 'eigengap', k: 2, neighbours: 2, eigengap: 0.59 }]);
    assert.equal(c.averageMap, r.classes[0].averageMap, 'maps travel as the typed arrays they are');
    assert.ok(c.averageImage.data instanceof Uint8Array);
    assert.ok(!('members' in c) && !('eigenvalues' in c.clusterChoice));
    assert.deepEqual(c.clusters[0].nearest.map((m) => [m.relPath, m.imageUri, m.givenLabel, m.probability]), [
      ['star/a.png', 'vscode-resource:/data/shapes/star/a.png', 'star', 0.88],
      ['star/b.dcm', '', 'star', 0.88],
    ]);
    assert.ok(!('hotRegion' in (c.clusters[1].hints.intervention ?? {})), 'regions in model pixels are not drawn');
    assert.equal(c.clusters[1].hints.intervention?.ratio, 10);
    assert.deepEqual(c.clusters[1].distances, [{ cluster: 0, distance: 1.2 }]);
    assert.equal(c.clusters[1].nearestOther, 0, 'the nearest other cluster by id (the report gives its distance)');
    assert.equal(v.failures.length, MAX_VIEW_FAILURES, 'the failure list is capped');
    assert.equal(v.counts.failed, 250, 'the count is not');
    assert.ok(!JSON.stringify(v.failures).includes('/data/shapes/'), 'failures are named by relative path');
  });

  it('says when k is the number of separate parts of the maps\' neighbour graph', () => {
    const r = report();
    r.classes[0].clusterChoice = { ...r.classes[0].clusterChoice, components: 2 };
    assert.equal(toStrategiesView(r, () => '').classes[0].clusterChoice.by, 'components');
    r.classes[0].clusterChoice = { by: 'given', k: 2, eigenvalues: [], neighbours: 2 };
    assert.equal(toStrategiesView(r, () => '').classes[0].clusterChoice.by, 'given');
  });

  it('finds a member\'s file only among the images the analysis listed for that class', () => {
    const r = report();
    assert.equal(memberFile(r, 1, 'star/c.png'), '/data/shapes/star/c.png');
    assert.equal(memberFile(r, 0, 'star/c.png'), undefined, 'another class');
    assert.equal(memberFile(r, 1, '../../etc/passwd'), undefined, 'a made-up path');
  });

  it('marks a cluster whose heat sits in a corner, the border or outside the box, with the blur drop that confirms it; not a blur drop alone', () => {
    const r = report();
    assert.deepEqual(suspiciousHints(toStrategiesView(r, () => '').classes[0].clusters[1].hints), ['corner', 'intervention']);
    assert.deepEqual(suspiciousHints(toStrategiesView(r, () => '').classes[0].clusters[0].hints), []);
    // A large blur drop alone is the model resting on its hot region, wherever that is: no shortcut by itself.
    assert.deepEqual(suspiciousHints(hints(0.1, 0.8)), []);
    assert.deepEqual(suspiciousHints({ ...hints(0.1, 0.8), border: { share: 0.55, uniform: 0.19, rule: '' } }), ['border', 'intervention']);
    assert.deepEqual(suspiciousHints({ ...hints(0.6), outsideBox: { share: 0.9, uniform: 0.8, images: 0, rule: '' } }), ['corner'], 'no box, no box hint');
  });

  it('accepts the webview\'s messages and refuses malformed ones', () => {
    const state = { version: 1, source: '/data/shapes', modelPath: '/m/model.json', method: 'gradcam', clusters: 'auto', expanded: ['1:0'] };
    assert.ok(isStrategiesViewState(state));
    assert.ok(!isStrategiesViewState({ ...state, clusters: 0 }));
    assert.ok(!isStrategiesViewState({ ...state, clusters: 9 }));
    assert.ok(!isStrategiesViewState({ ...state, expanded: ['<img>'] }));
    const ok = [
      { type: 'panel/ready' },
      { type: 'strategies/cancel' },
      { type: 'strategies/run', options: { method: 'gradcam', clusters: 3, layer: 'conv', classIndex: 1 } },
      { type: 'strategies/recluster', requestId: 4, clusters: 'auto' },
      { type: 'sample/open', requestId: 5, path: 'star/a.png', classIndex: 1 },
      { type: 'state/didChange', state },
    ];
    for (const m of ok) assert.ok(isStrategiesWebviewMessage(m), JSON.stringify(m));
    const bad = [
      null, 'panel/ready', { type: 'strategies/run' }, { type: 'strategies/run', options: { method: '', clusters: 2 } },
      { type: 'strategies/run', options: { method: 'gradcam', clusters: 2.5 } }, { type: 'strategies/recluster', requestId: -1, clusters: 2 },
      { type: 'strategies/recluster', requestId: 1, clusters: 'many' }, { type: 'sample/open', requestId: 1, path: '', classIndex: 0 },
      { type: 'sample/open', requestId: 1, path: 'a.png', classIndex: -1 }, { type: 'state/didChange', state: { ...state, version: 2 } }, { type: 'scan/cancel' },
    ];
    for (const m of bad) assert.ok(!isStrategiesWebviewMessage(m), JSON.stringify(m));
  });
});
