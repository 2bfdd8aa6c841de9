/**
 * The triage panel's "Show model strategies" button (issue #14 item 3), in headless Chromium against a fake host:
 * disabled until the host has said which dataset and model, then one click asks the host to open the strategies
 * panel (`strategies/show`, which the host turns into camLens.showStrategies with its dataset and model).
 */
import * as assert from 'node:assert/strict';
import { buildPanelHtml, createNonce } from '../../src/extension/panels/html';
import type { TriageHostMessage } from '../../src/shared/protocol';
import { isTriageWebviewMessage } from '../../src/shared/protocol';
import { createPanelHost, ensureBundles, requireChromium, sharedBrowser, startServer, type PanelHost, type Server } from './harness';

const SOURCE = '/data/shapes';

function didInit(): TriageHostMessage {
  return {
    type: 'panel/didInit', modelName: 'shapes_v1', modelPath: '/models/shapes/model.json', source: SOURCE, sourceName: 'shapes', method: 'gradcam', colormap: 'turbo', opacity: 0.5,
    state: { version: 1, source: SOURCE, modelPath: '/models/shapes/model.json', flaggedOnly: false },
  };
}

describe('triage panel: the "Show model strategies" button (headless Chromium, fake host)', function () {
  this.timeout(30000);
  let server: Server;
  let host: PanelHost;

  before(async function () {
    requireChromium(this);
    ensureBundles();
    server = await startServer();
    host = await createPanelHost(await sharedBrowser(), server);
    await host.page.route(/\/triage\.html(\?.*)?$/, (route) => route.fulfill({
      contentType: 'text/html; charset=utf-8',
      body: buildPanelHtml({
        cspSource: server.origin, nonce: createNonce(), scriptUri: `${server.origin}/dist/webview-triage.js`,
        styleUris: [`${server.origin}/media/common.css`, `${server.origin}/media/triage.css`, `${server.origin}/theme/theme-dark.css`],
        title: 'CAM Lens: triage', kind: 'triage',
      }),
    }));
  });

  after(async () => {
    await host?.close();
    await server?.close();
  });

  it('is disabled until the host has spoken, then asks the host to open the strategies panel, by mouse or keyboard', async () => {
    const p = await host.open('triage');
    await p.waitForSent('panel/ready');
    assert.equal(await p.page.getAttribute('#show-strategies', 'disabled'), '');
    await p.send(didInit());
    await p.page.waitForSelector('#show-strategies:not([disabled])');
    assert.equal((await p.page.innerText('#show-strategies')).trim(), 'Show model strategies');
    await p.page.click('#show-strategies');
    const sent = await p.waitForSent('strategies/show');
    assert.deepEqual(sent, { type: 'strategies/show' });
    assert.ok(isTriageWebviewMessage(sent), 'the host accepts it');
    await p.page.focus('#show-strategies');
    await p.page.keyboard.press('Enter');
    await p.waitForSent('strategies/show', 2);
    assert.deepEqual(p.errors, []);
    assert.deepEqual((await p.recorded()).violations, []);
  });
});
