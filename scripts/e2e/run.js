#!/usr/bin/env node
// @ts-check
/**
 * End-to-end tests of CAM Lens in a real VS Code host: code-server 4.139.1 driven by headless Chromium
 * (playwright-core), following ../shared/docs/E2E.md. Plain Node, no build step of its own.
 *
 *   node scripts/e2e/run.js                  everything: setup, build, extension-host suite, UI, VSIX
 *   node scripts/e2e/run.js --only ui        one part: exthost | ui | vsix (comma-separated)
 *   node scripts/e2e/run.js --no-setup       do not install; only check that scripts/e2e/setup.sh ran
 *   node scripts/e2e/run.js --no-build       use dist/ as it is (and for the VSIX part, package it as it is)
 *   node scripts/e2e/run.js --keep           keep the temporary run folder (printed) for inspection
 *   node scripts/e2e/run.js --optional       same as CAM_LENS_E2E_OPTIONAL=1 (see below)
 *   node scripts/e2e/run.js --prepare        only make a workspace + bundle the suite; print them as JSON
 *                                            (used by test/e2e/electron.ts)
 *
 * Parts:
 *   exthost  test/e2e/suite (mocha) inside the extension host through extensionTestsPath
 *   ui       right-click in the Explorer -> "Show Class Activation Map" / "Inspect Model Layers" -> the panels
 *   vsix     package this platform's VSIX (scripts/package/vsix.js), `code-server --install-extension` into a fresh
 *            extensions dir, use the menu
 * The exthost and ui parts share one code-server instance (two browser pages, one after the other); the
 * vsix part gets its own, because the installed copy and the development copy have the same id.
 *
 * Environment: CAM_LENS_E2E_CACHE (tools cache, see setup.sh), CHROMIUM (default /usr/bin/chromium),
 * CAM_LENS_E2E_OPTIONAL=1 (exit 0 with a "skipped:" line where the prerequisites cannot be installed),
 * CAM_LENS_E2E_VSIX=<file> (test this VSIX instead of packaging one), CAM_LENS_E2E_EXTENSION_DIR=<folder> (load
 * another extension folder in the exthost and ui parts: only for testing this runner against a stand-in),
 * CAM_LENS_E2E_THEME=<color theme> (run the workbench in that theme, e.g. "Default Light Modern" or "Default High
 * Contrast", to look at the panels' screenshots in it; default: code-server's own).
 *
 * Output: one line per test, then `N passed, N failed[, N skipped]`; exit 1 on any failure. Screenshots and
 * logs go to test-artifacts/ (the README's panel screenshot is test-artifacts/explain-panel.png).
 */
'use strict';
const { spawn, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');

const REPO = path.resolve(__dirname, '..', '..');
// The extension under development; another folder only to test this runner against a stand-in extension.
const EXT_DIR = path.resolve(process.env.CAM_LENS_E2E_EXTENSION_DIR || REPO);
const CACHE = process.env.CAM_LENS_E2E_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'cam-lens-e2e');
const NODE24_BIN = path.join(CACHE, 'node24', 'node_modules', 'node', 'bin');
const CS_BIN = path.join(CACHE, 'code-server', 'node_modules', '.bin', 'code-server');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(REPO, 'test-artifacts');
const OWN_ARTIFACTS = /^(explain-(panel|workbench|panel-other-class|panel-pixel|error|onnx)\.png|inspector-(panel|onnx)\.png|vsix-panel\.png|vsix-contents\.txt|fail-(workbench|explain-[a-z-]+|inspector|extension-host|vsix)\.png|code-server-(dev|vsix)\.log|e2e-console-errors\.txt)$/;
const OPTIONAL = process.env.CAM_LENS_E2E_OPTIONAL === '1' || process.argv.includes('--optional');
const EXTENSION_ID = 'cam-lens.cam-lens';
const MENU_CAM = 'Show Class Activation Map';
const MENU_LAYERS = 'Inspect Model Layers';

const argv = process.argv.slice(2);
const flag = (/** @type {string} */ f) => argv.includes(f);
const onlyArg = argv.indexOf('--only') >= 0 ? argv[argv.indexOf('--only') + 1] || '' : 'exthost,ui,vsix';
const PARTS = new Set(onlyArg.split(',').map((s) => s.trim()).filter(Boolean));

const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
const log = (/** @type {unknown[]} */ ...a) => console.log(`[${secs()}s]`, ...a);

function readOr(/** @type {string} */ file, /** @type {string} */ fallback) {
  try { return fs.readFileSync(file, 'utf8'); } catch { return fallback; }
}

// ---------------------------------------------------------------------------------------------------------
// Results

/** @typedef {{ name: string, status: 'pass' | 'fail' | 'skip', ms: number, note?: string }} Result */
/** @type {Result[]} */
const results = [];

function record(/** @type {Result} */ r) {
  results.push(r);
  const tag = r.status === 'pass' ? 'ok  ' : r.status === 'fail' ? 'FAIL' : 'skip';
  const note = r.note ? ` — ${r.note.replace(/\s+/g, ' ')}` : '';
  console.log(`${tag} ${r.name}${r.status === 'skip' ? '' : ` (${(r.ms / 1000).toFixed(1)} s)`}${note}`);
}

/**
 * Runs one test. `needs` names earlier tests it depends on: if one of them did not pass, this one fails at
 * once ("blocked") instead of waiting out its timeouts.
 * @param {string} name @param {() => Promise<string | void>} fn
 * @param {{ needs?: string[], onFail?: () => Promise<void> }} [opts]
 */
async function test(name, fn, opts = {}) {
  const blocked = (opts.needs || []).filter((n) => !results.some((r) => r.name === n && r.status === 'pass'));
  if (blocked.length) { record({ name, status: 'fail', ms: 0, note: `blocked: "${blocked[0]}" did not pass` }); return false; }
  const start = Date.now();
  try {
    const note = await fn();
    record({ name, status: 'pass', ms: Date.now() - start, note: note || undefined });
    return true;
  } catch (e) {
    record({ name, status: 'fail', ms: Date.now() - start, note: String(/** @type {Error} */ (e)?.message || e).split('\n')[0] });
    if (opts.onFail) await opts.onFail().catch(() => {});
    return false;
  }
}

function finish(/** @type {number} */ code) {
  const n = (/** @type {string} */ s) => results.filter((r) => r.status === s).length;
  const failed = n('fail');
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const skipped = n('skip');
  console.log(`${n('pass')} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(failed > 0 || code !== 0 ? 1 : 0);
}

/** Prerequisites are missing and cannot be installed: skip (exit 0) only when the caller allows it. */
function skipAll(/** @type {string} */ reason) {
  console.log(`skipped: ${reason}`);
  if (OPTIONAL) { console.log('0 passed, 0 failed, 1 skipped'); process.exit(0); }
  console.log('(set CAM_LENS_E2E_OPTIONAL=1 or pass --optional to let a missing prerequisite skip rather than fail)');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers

/** @param {string} cmd @param {string[]} args @param {import('child_process').SpawnSyncOptions} [opts] */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: REPO, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  if (r.error) throw r.error;
  return { status: r.status, stdout: String(r.stdout || ''), stderr: String(r.stderr || '') };
}

/**
 * Runs scripts/e2e/setup.sh, streaming its progress lines as they come (a first install takes minutes: apt,
 * Node 24, code-server), and resolves with its exit status and its stderr (the failure's reason).
 * @param {string[]} args @returns {Promise<{ status: number | null, stderr: string }>}
 */
function runSetup(args) {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(__dirname, 'setup.sh'), ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (/** @type {string} */ d) => {
      const lines = (pending + d).split('\n');
      pending = lines.pop() || '';
      for (const l of lines) if (/ \.\.\.$|installed|present|ready|missing|busy|skipped/.test(l)) log(`  ${l}`);
    });
    child.stderr.on('data', (/** @type {string} */ d) => { stderr += d; process.stderr.write(d); });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

/** Our CLI over the same engine: the independent source of the expected predictions and layers. */
function cli(/** @type {string[]} */ args) {
  const r = run(process.execPath, [path.join(REPO, 'dist', 'cli.js'), ...args]);
  if (r.status !== 0) throw new Error(`cam-lens ${args[0]} failed (${r.status}): ${r.stderr.trim().split('\n').pop()}`);
  return JSON.parse(r.stdout);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function httpStatus(/** @type {string} */ url) {
  return new Promise((resolve) => {
    const req = http.get(url, (r) => { r.resume(); resolve(r.statusCode || 0); });
    req.on('error', () => resolve(0));
    req.setTimeout(1000, () => { req.destroy(); resolve(0); });
  });
}

const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------
// Workspace

/** First PNG of each of up to `n` class folders under samples/, or [] where the repo has none yet. */
function repoSamples(/** @type {number} */ n) {
  const root = path.join(REPO, 'samples');
  if (!fs.existsSync(root)) return [];
  const picked = [];
  for (const cls of fs.readdirSync(root).sort()) {
    const dir = path.join(root, cls);
    if (!fs.statSync(dir).isDirectory()) continue;
    const png = fs.readdirSync(dir).filter((f) => f.toLowerCase().endsWith('.png')).sort()[0];
    if (png) picked.push(path.join(dir, png));
    if (picked.length >= n) break;
  }
  return picked;
}

function tsx(/** @type {string[]} */ args) {
  const r = run(process.execPath, ['--import', 'tsx', ...args]);
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr.trim().split('\n').pop()}`);
}

/**
 * A fresh workspace: a few sample PNGs (samples/<class>/ of the repo, else generated), a corrupt
 * broken.png, a copy of models/demo/ (else a small stand-in model) as model/, and .vscode/settings.json
 * pointing camLens.model at it so that no picker opens.
 */
function makeWorkspace(/** @type {string} */ runDir) {
  const ws = path.join(runDir, 'ws');
  fs.mkdirSync(path.join(ws, '.vscode'), { recursive: true });
  const notes = [];
  const samples = repoSamples(3);
  if (samples.length) {
    for (const s of samples) fs.copyFileSync(s, path.join(ws, path.basename(s)));
  } else {
    tsx([path.join(REPO, 'test', 'e2e', 'fixtures.ts'), 'samples', ws, '3']);
    notes.push('samples/ is absent: generated stand-in PNGs');
  }
  // Random bytes that are not any image format (a PNG signature would make it a truncated PNG instead).
  let junk = crypto.randomBytes(4096);
  junk[0] = 0x42; junk[1] = 0x00;
  fs.writeFileSync(path.join(ws, 'broken.png'), junk);
  const demo = path.join(REPO, 'models', 'demo');
  const modelDir = path.join(ws, 'model');
  if (fs.existsSync(path.join(demo, 'model.json'))) {
    fs.cpSync(demo, modelDir, { recursive: true });
  } else {
    tsx([path.join(REPO, 'test', 'e2e', 'fixtures.ts'), 'model', modelDir]);
    notes.push('models/demo/ is absent: a stand-in model (bnModel) is used');
  }
  // An ONNX export (a PyTorch ResNet test fixture) with its probe image, in a folder of its own.
  const onnxFixture = path.join(REPO, 'test', 'fixtures', 'onnx', 'resnet_tiny');
  if (fs.existsSync(path.join(onnxFixture, 'resnet_tiny.onnx'))) {
    fs.mkdirSync(path.join(ws, 'onnx'));
    fs.copyFileSync(path.join(onnxFixture, 'resnet_tiny.onnx'), path.join(ws, 'onnx', 'resnet_tiny.onnx'));
    fs.copyFileSync(path.join(onnxFixture, 'probe.png'), path.join(ws, 'onnx', 'onnx_probe.png'));
  }
  restoreWorkspaceModel(ws);
  const pngs = fs.readdirSync(ws).filter((f) => f.endsWith('.png') && f !== 'broken.png').sort();
  return { ws, pngs, notes };
}

/** Bundles test/e2e/suite (TypeScript) into one CommonJS file the extension host can `require`. */
async function bundleSuite(/** @type {string} */ runDir) {
  const esbuild = require(require.resolve('esbuild', { paths: [REPO] }));
  const mochaMain = require.resolve('mocha', { paths: [REPO] });
  const outfile = path.join(runDir, 'suite', 'index.js');
  await esbuild.build({
    entryPoints: [path.join(REPO, 'test', 'e2e', 'suite', 'index.ts')],
    bundle: true, platform: 'node', format: 'cjs', target: 'node18', outfile, logLevel: 'error',
    external: ['vscode'],
    plugins: [{
      // mocha stays a require() of the repo's copy (by absolute path: the bundle lives in a temp folder).
      name: 'mocha-from-repo',
      setup(/** @type {any} */ b) { b.onResolve({ filter: /^mocha$/ }, () => ({ path: mochaMain, external: true })); },
    }],
  });
  return outfile;
}

// ---------------------------------------------------------------------------------------------------------
// code-server + Chromium

const SETTINGS = {
  'workbench.startupEditor': 'none',
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoUpdate': false,
  'extensions.autoCheckUpdates': false,
  'extensions.ignoreRecommendations': true,
  'chat.disableAIFeatures': true,
  'git.enabled': false,
};

/** @type {Set<number>} process-group ids of code-server instances still running */
const serverGroups = new Set();
function killServers() {
  for (const pgid of serverGroups) { try { process.kill(-pgid, 'SIGTERM'); } catch { /* gone */ } }
  serverGroups.clear();
}
process.on('exit', killServers);
for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM'])) process.on(sig, () => { killServers(); process.exit(130); });

function csEnv(/** @type {Record<string, string>} */ extra = {}) {
  return {
    ...process.env,
    PATH: `${NODE24_BIN}:${process.env.PATH}`, // code-server 4.139 needs Node 24
    // Hermetic: the extension gallery points at a dead loopback port instead of open-vsx.
    EXTENSIONS_GALLERY: '{"serviceUrl":"https://127.0.0.1:9/gallery","itemUrl":"https://127.0.0.1:9/item","resourceUrlTemplate":"https://127.0.0.1:9/{publisher}/{name}/{version}/{path}"}',
    ...extra,
  };
}

/**
 * Starts code-server on 127.0.0.1 (a secure context, which webviews need) with its own empty config,
 * auth none, a fresh user-data-dir holding SETTINGS, and no workspace-trust prompt.
 * @param {{ dir: string, ws: string, smoke: boolean, extensionsDir?: string, env?: Record<string, string> }} o
 */
async function startCodeServer(o) {
  fs.mkdirSync(path.join(o.dir, 'user', 'User'), { recursive: true });
  const extensionsDir = o.extensionsDir || path.join(o.dir, 'exts');
  fs.mkdirSync(extensionsDir, { recursive: true });
  fs.writeFileSync(path.join(o.dir, 'config.yaml'), ''); // else ~/.config/code-server/config.yaml (password auth)
  const theme = process.env.CAM_LENS_E2E_THEME ? { 'workbench.colorTheme': process.env.CAM_LENS_E2E_THEME } : {};
  fs.writeFileSync(path.join(o.dir, 'user', 'User', 'settings.json'), JSON.stringify({ ...SETTINGS, ...theme }, null, 2));
  const port = await freePort();
  const args = ['--config', path.join(o.dir, 'config.yaml'), '--user-data-dir', path.join(o.dir, 'user'),
    '--extensions-dir', extensionsDir, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none',
    '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust',
    '--disable-getting-started-override', '--disable-file-downloads',
    // The smoke-test driver makes the workbench honour ?payload=[["extensionDevelopmentPath",…]] (E2E.md §4).
    ...(o.smoke ? ['--vscode-option', 'enable-smoke-test-driver'] : []),
    o.ws];
  const logFile = path.join(o.dir, 'code-server.log');
  const out = fs.openSync(logFile, 'w');
  const child = spawn(CS_BIN, args, { env: csEnv(o.env), detached: true, stdio: ['ignore', out, out] });
  if (child.pid) serverGroups.add(child.pid);
  const stop = () => { if (child.pid) { try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ } serverGroups.delete(child.pid); } };
  const until = Date.now() + 60000;
  while (await httpStatus(`http://127.0.0.1:${port}/healthz`) !== 200) {
    if (child.exitCode !== null) { stop(); throw new Error(`code-server exited with ${child.exitCode}: ${readOr(logFile, '').trim().split('\n').slice(-3).join(' | ')}`); }
    if (Date.now() > until) { stop(); throw new Error('code-server did not answer /healthz within 60 s'); }
    await sleep(100);
  }
  return { port, base: `http://127.0.0.1:${port}`, logFile, stop };
}

/** @param {string} base @param {string} ws @param {[string, string][]} [payload] */
function workbenchUrl(base, ws, payload) {
  const port = new URL(base).port;
  let url = `${base}/?folder=${encodeURIComponent(ws).replace(/%2F/g, '/')}`;
  if (payload) {
    const remote = payload.map(([k, p]) => [k, `vscode-remote://127.0.0.1:${port}${p}`]);
    url += `&payload=${encodeURIComponent(JSON.stringify(remote))}`;
  }
  return url;
}

async function launchBrowser() {
  /** @type {typeof import('playwright-core')} */
  const pw = require(require.resolve('playwright-core', { paths: [path.join(CACHE, 'tools'), REPO] }));
  return pw.chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** Console errors worth a look (known offline noise filtered out, E2E.md §7.6), kept for the log artifact. */
function watchPage(/** @type {import('playwright-core').Page} */ page, /** @type {string[]} */ sink) {
  const noise = /vsda|authentication provider|open-vsx|ECONNREFUSED 127\.0\.0\.1:9|onWillSaveTextDocument|Failed to load resource/;
  page.on('pageerror', (e) => sink.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !noise.test(m.text())) sink.push(`console: ${m.text().split('\n')[0].slice(0, 300)}`); });
}

/** @param {import('playwright-core').Page} page @param {string} name */
function explorerRow(page, name) {
  return page.locator(`.explorer-folders-view .monaco-list-row[aria-label="${name}"]`);
}

/** Opens the workbench and waits until the Explorer shows `firstFile` and (with the smoke driver) the workbench is restored. */
async function openWorkbench(/** @type {import('playwright-core').Page} */ page, /** @type {string} */ url, /** @type {string} */ firstFile) {
  await page.goto(url);
  await explorerRow(page, firstFile).waitFor({ state: 'visible', timeout: 90000 });
  const hasDriver = await page.evaluate(() => typeof (/** @type {any} */ (window)).driver === 'object');
  if (hasDriver) await page.evaluate(() => (/** @type {any} */ (window)).driver.whenWorkbenchRestored());
}

/**
 * Right-clicks an Explorer row and clicks a contributed menu entry. The entry can appear seconds after
 * the Explorer does (the extension host registers contributions late), so the menu is re-opened every
 * 3 s, up to 10 times, rather than waiting on a timer.
 * @param {import('playwright-core').Page} page @param {string} file @param {string} label
 */
async function contextMenu(page, file, label) {
  const row = explorerRow(page, file);
  await row.waitFor({ state: 'visible', timeout: 30000 });
  const item = page.getByRole('menuitem', { name: label, exact: true });
  for (let attempt = 1; ; attempt++) {
    await row.click({ button: 'right' });
    try {
      await item.waitFor({ state: 'visible', timeout: 3000 });
      break;
    } catch {
      await page.keyboard.press('Escape');
      if (attempt >= 10) throw new Error(`the Explorer context menu of ${file} has no "${label}" entry (10 tries)`);
    }
  }
  // A click that lands while the menu is still being laid out is sometimes dropped (the menu stays open):
  // click again until the menu closes.
  for (let attempt = 1; ; attempt++) {
    await item.click({ timeout: 5000 }).catch(() => {});
    try {
      await item.waitFor({ state: 'hidden', timeout: 3000 });
      return;
    } catch {
      if (attempt >= 3) throw new Error(`clicking "${label}" did not close the context menu (3 tries)`);
    }
  }
}

/**
 * Closes all editors through the command palette (F1) so that the next check starts from an empty editor
 * area. Best effort: the checks find their webview by its content, so a palette hiccup is not a failure.
 */
async function closeAllEditors(/** @type {import('playwright-core').Page} */ page) {
  const title = 'View: Close All Editor Groups';
  try {
    await page.keyboard.press('Escape');
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget .quick-input-box input');
    await input.waitFor({ state: 'visible', timeout: 10000 });
    await input.fill(`>${title}`, { timeout: 5000 });
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 10000 });
    await page.keyboard.press('Enter');
    await input.waitFor({ state: 'hidden', timeout: 10000 });
  } catch {
    await page.keyboard.press('Escape').catch(() => {});
  }
}

/**
 * The content frame of the webview showing `selector`: webviews nest as
 * <iframe class="webview ready"> (host page) -> <iframe id="active-frame"> (our HTML). Several webviews
 * may exist (hidden ones stay in the DOM), so every one is polled until one contains the selector; the
 * selectors name content only the wanted panel has (`#title:has-text("x.png")`, `#error:visible`).
 * @param {import('playwright-core').Page} page @param {string} selector @param {number} timeoutMs
 */
async function webviewWith(page, selector, timeoutMs) {
  const hosts = page.locator('iframe.webview.ready');
  const until = Date.now() + timeoutMs;
  for (;;) {
    const n = await hosts.count();
    for (let i = n - 1; i >= 0; i--) {
      const inner = hosts.nth(i).contentFrame().locator('iframe#active-frame').contentFrame();
      if (await inner.locator(selector).count().catch(() => 0)) return { inner, host: hosts.nth(i) };
    }
    // A command that throws shows an error notification instead of a panel: fail at once, with its text.
    const toasts = await page.locator('.notifications-toasts .notification-list-item-message').allInnerTexts().catch(() => []);
    const failure = toasts.find((t) => /camLens\.|CAM Lens|failed/i.test(t));
    if (failure) throw new Error(`VS Code shows an error instead of the panel: ${failure.replace(/\s+/g, ' ').slice(0, 300)}`);
    if (Date.now() > until) throw new Error(`no webview shows ${selector} after ${timeoutMs / 1000} s (${n} webview(s) open)`);
    await sleep(250);
  }
}

/**
 * The RGBA pixels the canvas itself holds (read through a copy, whatever context the panel draws with).
 * Falls back to an element screenshot, decoded with the repo's sharp, if the canvas is tainted.
 * @param {import('playwright-core').Locator} el
 * @returns {Promise<{ data: Buffer, width: number, height: number, source: string }>}
 */
async function canvasPixels(el) {
  const own = await el.evaluate((c) => {
    try {
      const canvas = /** @type {HTMLCanvasElement} */ (c);
      const copy = document.createElement('canvas');
      copy.width = canvas.width;
      copy.height = canvas.height;
      const ctx = /** @type {CanvasRenderingContext2D} */ (copy.getContext('2d'));
      ctx.drawImage(canvas, 0, 0);
      const bytes = ctx.getImageData(0, 0, copy.width, copy.height).data;
      let bin = '';
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return { b64: btoa(bin), width: copy.width, height: copy.height };
    } catch {
      return undefined; // tainted: read what is on screen instead
    }
  });
  if (own) return { data: Buffer.from(own.b64, 'base64'), width: own.width, height: own.height, source: 'canvas' };
  const sharp = require(require.resolve('sharp', { paths: [REPO] }));
  const { data, info } = await sharp(await el.screenshot()).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, source: 'screenshot' };
}

/**
 * Share of heat pixels: drawn (alpha > 0) and strongly coloured (max - min channel > 64), which every
 * colour of the default turbo colormap is, while a blank or grey canvas has none.
 */
function heatShare(/** @type {{ data: Buffer }} */ p) {
  let hot = 0;
  const n = p.data.length / 4;
  for (let i = 0; i < p.data.length; i += 4) {
    const r = p.data[i], g = p.data[i + 1], b = p.data[i + 2];
    if (p.data[i + 3] > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 64) hot++;
  }
  return hot / n;
}

function meanAbsDiff(/** @type {{ data: Buffer }} */ a, /** @type {{ data: Buffer }} */ b) {
  if (a.data.length !== b.data.length) return Infinity;
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += Math.abs(a.data[i] - b.data[i]);
  return s / a.data.length;
}

async function shot(/** @type {import('playwright-core').Page | import('playwright-core').Locator} */ target, /** @type {string} */ name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await target.screenshot({ path: path.join(ARTIFACTS, name) }).catch(() => {});
}

// ---------------------------------------------------------------------------------------------------------
// VSIX

/** Entry names of a zip file, from its central directory (no unzip tool needed). */
function zipEntries(/** @type {string} */ file) {
  const buf = fs.readFileSync(file);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  if (eocd < 0) throw new Error(`${file} is not a zip file`);
  const count = buf.readUInt16LE(eocd + 10);
  let off = buf.readUInt32LE(eocd + 16);
  /** @type {{ name: string, size: number }[]} */
  const out = [];
  for (let k = 0; k < count; k++) {
    if (buf.readUInt32LE(off) !== 0x02014b50) throw new Error('bad zip central directory');
    const size = buf.readUInt32LE(off + 24);
    const nameLen = buf.readUInt16LE(off + 28), extraLen = buf.readUInt16LE(off + 30), commentLen = buf.readUInt16LE(off + 32);
    out.push({ name: buf.toString('utf8', off + 46, off + 46 + nameLen), size });
    off += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** What the VSIX may hold (paths inside extension/): see .vscodeignore. */
const VSIX_ALLOWED = [
  /^package\.json$/, /^readme\.md$/i, /^LICENSE(\.txt)?$/, /^changelog\.md$/i,
  /^dist\/[^/]+\.(js|wasm)$/, /^models\/demo\/.+/, /^media\/.+/,
  /^node_modules\/@tensorflow\/tfjs-(core|layers|converter|backend-cpu|backend-wasm)\/(package\.json|dist\/tf-[a-z-]+\.node\.js)$/,
  /^node_modules\/(seedrandom|node-fetch|whatwg-url|tr46|webidl-conversions|sharp|detect-libc|semver|@img\/colour|@img\/sharp-[a-z0-9-]+)\/.+/,
  // ONNX Runtime (engine/formats/onnx/ortRuntime.ts): JavaScript, and one platform's binding and CPU library.
  /^node_modules\/onnxruntime-node\/(package\.json|README\.md|dist\/[a-z-]+\.js|bin\/napi-v\d+\/[a-z0-9]+\/[a-z0-9]+\/(onnxruntime_binding\.node|libonnxruntime\.so\.1|libonnxruntime\.1\.dylib|onnxruntime\.dll))$/,
  /^node_modules\/onnxruntime-common\/(package\.json|README\.md|dist\/cjs\/[a-z-]+\.js|dist\/cjs\/package\.json)$/,
];
const VSIX_REQUIRED = ['package.json', 'readme.md', 'LICENSE.txt', 'dist/extension.js', 'dist/worker.js', 'dist/tfjs-backend-wasm.wasm',
  'node_modules/@tensorflow/tfjs-core/dist/tf-core.node.js', 'node_modules/@tensorflow/tfjs-layers/dist/tf-layers.node.js',
  'node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.node.js', 'node_modules/sharp/lib/index.js', 'node_modules/seedrandom/index.js'];

// ---------------------------------------------------------------------------------------------------------
// Main

async function main() {
  if (flag('--prepare')) {
    // For test/e2e/electron.ts: a workspace and the bundled suite, nothing else.
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-e2e-'));
    const { ws, pngs } = makeWorkspace(runDir);
    const suite = await bundleSuite(runDir);
    console.log(JSON.stringify({ runDir, workspace: ws, suite, sample: pngs[0] }));
    return;
  }

  log(`CAM Lens e2e: parts ${[...PARTS].join(', ')}; tools cache ${CACHE}`);
  if (process.platform !== 'linux') skipAll(`the code-server e2e run is set up for Linux (this is ${process.platform}); use test/e2e/electron.ts`);

  // 1. Tools (scripts/e2e/setup.sh installs them outside the clone; exit 3 = cannot be installed here).
  const setupStart = Date.now();
  const setup = await runSetup(flag('--no-setup') ? ['--check'] : []);
  if (setup.status === 3) skipAll(setup.stderr.trim().split('\n').pop()?.replace(/^e2e-setup: FAILED: /, '') || 'prerequisites missing');
  if (setup.status !== 0) {
    if (flag('--no-setup')) skipAll('the e2e tools are not installed and --no-setup was given (run scripts/e2e/setup.sh)');
    record({ name: 'installs the e2e tools (scripts/e2e/setup.sh)', status: 'fail', ms: Date.now() - setupStart,
      note: setup.stderr.trim().split('\n').pop()?.replace(/^e2e-setup: FAILED: /, '') });
    finish(1);
  }
  log(`tools ready (${((Date.now() - setupStart) / 1000).toFixed(1)} s)`);

  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-e2e-'));
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  // Drop this runner's artifacts of an earlier run (other suites write to test-artifacts/ too: keep theirs).
  for (const f of fs.readdirSync(ARTIFACTS)) {
    if (OWN_ARTIFACTS.test(f)) fs.rmSync(path.join(ARTIFACTS, f), { force: true });
  }
  const consoleErrors = /** @type {string[]} */ ([]);

  // 2. VSIX first, because packaging rebuilds dist/ in production mode; the development build follows.
  let vsix = process.env.CAM_LENS_E2E_VSIX ? path.resolve(process.env.CAM_LENS_E2E_VSIX) : '';
  if (PARTS.has('vsix') && !vsix) {
    // The published VSIX files are per platform (scripts/package/vsix.js, as `npm run package`): install the host's.
    const target = require(path.join(REPO, 'scripts', 'package', 'vsix.js')).hostTarget()?.target || 'linux-x64';
    await test(`packages the ${target} VSIX (scripts/package/vsix.js --target ${target})`, async () => {
      if (!flag('--no-build')) {
        const b = run(process.execPath, ['esbuild.js', '--production']);
        if (b.status !== 0) throw new Error(`production build failed: ${b.stderr.trim().split('\n').pop()}`);
      }
      vsix = path.join(runDir, `cam-lens-${target}.vsix`);
      const p = run(process.execPath, [path.join(REPO, 'scripts', 'package', 'vsix.js'), '--target', target, '--out', runDir]);
      if (p.status !== 0 || !fs.existsSync(vsix)) throw new Error(`packaging failed: ${(p.stderr + p.stdout).trim().split('\n').filter(Boolean).pop()}`);
      return `${path.basename(vsix)}, ${(fs.statSync(vsix).size / 1e6).toFixed(2)} MB`;
    });
  }

  if (!flag('--no-build')) {
    const b = run(process.execPath, ['esbuild.js']);
    if (b.status !== 0) {
      record({ name: 'builds the extension (node esbuild.js)', status: 'fail', ms: 0, note: b.stderr.trim().split('\n').slice(0, 2).join(' ') });
      finish(1);
    }
    log('built dist/');
  }

  // 3. Workspace and the expectations, computed independently by the CLI over the same engine.
  const { ws, pngs, notes } = makeWorkspace(runDir);
  for (const n of notes) log(n);
  const modelJson = path.join(ws, 'model', 'model.json');
  const preds = pngs.map((f) => ({ file: f, p: cli(['predict', '--model', modelJson, '--image', path.join(ws, f), '--json', '-']).predictions }));
  // The sample whose top-1 leads by the widest margin: its top-1 cannot flip between backends.
  preds.sort((a, b) => (b.p[0].probability - (b.p[1]?.probability ?? 0)) - (a.p[0].probability - (a.p[1]?.probability ?? 0)));
  const sample = preds[0].file;
  const top1 = preds[0].p[0];
  const layers = cli(['layers', '--model', modelJson, '--json', '-']).layers;
  const brokenReason = run(process.execPath, [path.join(REPO, 'dist', 'cli.js'), 'predict', '--model', modelJson, '--image', path.join(ws, 'broken.png')]).stderr.trim();
  const onnxModel = path.join(ws, 'onnx', 'resnet_tiny.onnx');
  const onnx = fs.existsSync(onnxModel) ? {
    layers: cli(['layers', '--model', onnxModel, '--json', '-']).layers.length,
    top1: cli(['predict', '--model', onnxModel, '--image', path.join(ws, 'onnx', 'onnx_probe.png'), '--json', '-']).predictions[0],
  } : undefined;
  log(`workspace ${ws}: ${pngs.join(', ')}; expected top-1 of ${sample}: ${top1.index} "${top1.label}" (${(top1.probability * 100).toFixed(1)}%); ${layers.length} layers; CLI on broken.png: ${brokenReason}`);

  const browser = await launchBrowser();
  try {
    if (PARTS.has('exthost') || PARTS.has('ui')) {
      const started = Date.now();
      const server = await startCodeServer({ dir: path.join(runDir, 'dev'), ws, smoke: true, env: { CAM_LENS_E2E_SAMPLE: sample } })
        .catch((e) => { record({ name: 'code-server starts with the development extension', status: 'fail', ms: Date.now() - started, note: e.message }); return undefined; });
      if (server) try {
        log(`code-server (development extension) on ${server.base}`);
        if (PARTS.has('exthost')) await extensionHostPart(browser, server, ws, runDir, consoleErrors);
        if (PARTS.has('ui')) await uiPart(browser, server, ws, { sample, top1, layers, pngs, onnx }, consoleErrors);
      } finally {
        server.stop();
        fs.copyFileSync(server.logFile, path.join(ARTIFACTS, 'code-server-dev.log'));
      }
    }
    if (PARTS.has('vsix') && vsix) await vsixPart(browser, vsix, ws, runDir, { sample, top1 }, consoleErrors);
  } finally {
    await browser.close().catch(() => {});
    killServers();
    fs.writeFileSync(path.join(ARTIFACTS, 'e2e-console-errors.txt'), consoleErrors.join('\n') + '\n');
    if (flag('--keep')) log(`kept ${runDir}`); else fs.rmSync(runDir, { recursive: true, force: true });
  }
  finish(0);
}

/**
 * (b) test/e2e/suite inside the extension host: the workbench runs it when the payload names
 * extensionTestsPath, logs through window.codeAutomationLog and reports the end through codeAutomationExit.
 * @param {import('playwright-core').Browser} browser @param {{ base: string }} server @param {string} ws
 * @param {string} runDir @param {string[]} consoleErrors
 */
async function extensionHostPart(browser, server, ws, runDir, consoleErrors) {
  const suite = await bundleSuite(runDir);
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  watchPage(page, consoleErrors);
  /** @type {(code: unknown) => void} */
  let exited = () => {};
  const exit = new Promise((r) => { exited = r; });
  const seen = /** @type {Result[]} */ ([]);
  const start = Date.now();
  let last = start;
  await page.exposeFunction('codeAutomationLog', (/** @type {string} */ _type, /** @type {unknown[]} */ args) => {
    const line = (args || []).map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
    const m = /cam-lens-e2e: (pass|fail) (.*?)(?: :: (.*))?$/.exec(line);
    if (m) {
      const now = Date.now();
      seen.push({ name: `extension host: ${m[2].replace(/^CAM Lens in a VS Code extension host /, '')}`, status: m[1] === 'pass' ? 'pass' : 'fail', ms: now - last, note: m[3] });
      last = now;
    }
  });
  await page.exposeFunction('codeAutomationExit', (/** @type {unknown} */ code) => exited(code));
  try {
    await page.goto(workbenchUrl(server.base, ws, [['extensionDevelopmentPath', EXT_DIR], ['extensionTestsPath', suite]]));
    const code = await Promise.race([exit, sleep(150000).then(() => 'timeout')]);
    for (const r of seen) record(r);
    if (code !== 0 && !seen.some((r) => r.status === 'fail')) {
      record({ name: 'extension host: the suite runs to the end', status: 'fail', ms: Date.now() - start, note: code === 'timeout' ? 'no result within 150 s' : `run() failed (exit ${code})` });
    }
    if (code !== 0) await shot(page, 'fail-extension-host.png');
  } finally {
    await page.close().catch(() => {});
  }
}

/**
 * (a) The UI through the development path: Explorer context menus -> the explain panel and the inspector.
 * @param {import('playwright-core').Browser} browser @param {{ base: string }} server @param {string} ws
 * @param {{ sample: string, top1: { index: number, label: string }, layers: unknown[], pngs: string[], onnx?: { layers: number, top1: { index: number, label: string } } }} expect
 * @param {string[]} consoleErrors
 */
async function uiPart(browser, server, ws, expect, consoleErrors) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  watchPage(page, consoleErrors);
  const failShot = (/** @type {string} */ name) => async () => shot(page, `fail-${name}.png`);
  const { sample, top1 } = expect;
  /** @type {import('playwright-core').FrameLocator | undefined} */
  let panel;
  /** @type {import('playwright-core').Locator | undefined} */
  let panelHost;

  const T_WORKBENCH = 'ui: the workbench opens the workspace with the development extension';
  const T_MENU = `ui: the Explorer context menu of ${sample} offers "${MENU_CAM}" and it opens the explain panel`;
  const T_TOP1 = `ui: the explain panel lists the model's top-1 class for ${sample} ("${top1.label}") first`;
  const T_DRAWN = 'ui: the explain panel draws a heatmap on its canvas';
  try {
    await test(T_WORKBENCH, async () => {
      await openWorkbench(page, workbenchUrl(server.base, ws, [['extensionDevelopmentPath', EXT_DIR]]), 'broken.png');
      const title = await page.title();
      if (!/Extension Development Host/.test(title)) throw new Error(`the window title "${title}" does not say Extension Development Host`);
    }, { onFail: failShot('workbench') });

    await test(T_MENU, async () => {
      await contextMenu(page, sample, MENU_CAM);
      // The heading names the image once the host's first message arrives.
      const found = await webviewWith(page, `#title:has-text("${sample}")`, 60000);
      panel = found.inner;
      panelHost = found.host;
      const title = (await panel.locator('#title').innerText()).trim();
      if (!title.includes(sample)) throw new Error(`#title "${title}" does not name ${sample}`);
      const tab = page.locator('.tabs-container .tab', { hasText: `CAM: ${sample}` });
      await tab.first().waitFor({ state: 'visible', timeout: 10000 });
      return `#title "${title}"`;
    }, { needs: [T_WORKBENCH], onFail: failShot('explain-open') });

    await test(T_TOP1, async () => {
      if (!panel) throw new Error('no panel');
      const first = panel.locator('#predictions [data-class-index]').first();
      await first.waitFor({ timeout: 45000 });
      const index = await first.getAttribute('data-class-index');
      const text = (await first.innerText()).trim();
      if (index !== String(top1.index)) throw new Error(`first entry has data-class-index ${index} ("${text}"), expected ${top1.index} ("${top1.label}")`);
      if (!text.includes(top1.label)) throw new Error(`first entry reads "${text}", expected it to name "${top1.label}"`);
      return `"${text}"`;
    }, { needs: [T_MENU], onFail: failShot('explain-top1') });

    await test(T_DRAWN, async () => {
      if (!panel) throw new Error('no panel');
      const canvas = panel.locator('#canvas[data-state="drawn"]');
      await canvas.waitFor({ state: 'visible', timeout: 45000 });
      const px = await canvasPixels(canvas);
      const share = heatShare(px);
      if (share < 0.02) throw new Error(`only ${(share * 100).toFixed(1)}% of the ${px.width}x${px.height} canvas (${px.source}) is heatmap-coloured`);
      return `${px.width}x${px.height} (${px.source}), ${(share * 100).toFixed(0)}% heat pixels`;
    }, { needs: [T_MENU], onFail: failShot('explain-canvas') });

    // Screenshots of the panel (the README uses explain-panel.png) and of the whole window.
    if (panelHost) {
      await sleep(300);
      await shot(panelHost, 'explain-panel.png');
      await shot(page, 'explain-workbench.png');
    }

    await test('ui: clicking another class in the explain panel redraws the map for that class', async () => {
      if (!panel) throw new Error('no panel');
      const canvas = panel.locator('#canvas');
      const before = await canvasPixels(canvas);
      const beforeIndex = await canvas.getAttribute('data-class-index');
      const other = panel.locator(`#predictions [data-class-index]:not([data-class-index="${beforeIndex}"])`).first();
      const otherIndex = await other.getAttribute('data-class-index');
      await other.click();
      await panel.locator(`#canvas[data-state="drawn"][data-class-index="${otherIndex}"]`).waitFor({ timeout: 45000 });
      const after = await canvasPixels(canvas);
      const d = meanAbsDiff(before, after);
      if (!(d > 0.5)) throw new Error(`the canvas did not change (mean difference ${d.toFixed(2)} of 255)`);
      await shot(panelHost || page, 'explain-panel-other-class.png');
      return `class ${beforeIndex} -> ${otherIndex}, mean pixel difference ${d.toFixed(1)}`;
    }, { needs: [T_DRAWN], onFail: failShot('explain-class-switch') });

    await test('ui: in the explain panel, "Pixel saliency" and the plain gradient draw a signed map at input resolution in the diverging colours', async () => {
      if (!panel) throw new Error('no panel');
      await panel.locator('#method-family label:has(input[value="pixel"])').click();
      await panel.locator('#method').click();
      await panel.locator('#method li.option', { hasText: 'Gradient (vanilla saliency)' }).click();
      const canvas = panel.locator('#canvas[data-state="drawn"][data-method="gradient"]');
      await canvas.waitFor({ state: 'visible', timeout: 45000 });
      const coloring = await canvas.getAttribute('data-coloring');
      if (coloring !== 'signed') throw new Error(`the gradient map is coloured as ${coloring}, not signed`);
      const status = (await panel.locator('#status').textContent()) || '';
      if (!/at input resolution/.test(status)) throw new Error(`caption: "${status}"`);
      const picked = await panel.locator('#method').evaluate((e) => /** @type {HTMLElement & { value: string }} */ (e).value);
      if (picked !== 'gradient') throw new Error(`the method picker shows ${picked} under the gradient's map`);
      // Diverging colours: some pixels blue (negative attribution), some red (positive).
      const px = await canvasPixels(canvas);
      let blue = 0, red = 0;
      for (let i = 0; i < px.data.length; i += 4) {
        if (px.data[i + 3] === 0) continue;
        if (px.data[i + 2] > px.data[i] + 40) blue++;
        else if (px.data[i] > px.data[i + 2] + 40) red++;
      }
      if (!(blue > 0 && red > 0)) throw new Error(`blue ${blue}, red ${red} pixels: not a signed map's colours`);
      await shot(panelHost || page, 'explain-panel-pixel.png');
      // Back to the class activation maps for what follows.
      await panel.locator('#method-family label:has(input[value="cam"])').click();
      await panel.locator('#canvas[data-state="drawn"]:not([data-method="gradient"])').waitFor({ timeout: 45000 });
      return `${status.trim()}; ${blue} blue and ${red} red pixels of ${px.width}x${px.height}`;
    }, { needs: [T_DRAWN], onFail: failShot('explain-pixel') });

    const other = expect.pngs.find((f) => f !== sample);
    await test('ui: beside an open image at 1280x760 the panel shows the image, the method picker and the first predictions without scrolling, and panels for more images reuse its column', async () => {
      await closeAllEditors(page);
      await page.setViewportSize({ width: 1280, height: 760 });
      try {
        // The image open in an editor, then its map beside it: two editor groups.
        await explorerRow(page, sample).dblclick();
        await page.locator('.tabs-container .tab', { hasText: sample }).first().waitFor({ state: 'visible', timeout: 15000 });
        // The image editor takes the focus while it opens, which can swallow a menu click made meanwhile: one retry.
        await sleep(1000);
        await contextMenu(page, sample, MENU_CAM);
        const { inner, host } = await webviewWith(page, `#title:has-text("${sample}")`, 20000)
          .catch(async () => {
            await contextMenu(page, sample, MENU_CAM);
            return webviewWith(page, `#title:has-text("${sample}")`, 45000);
          });
        await inner.locator('#canvas[data-state="drawn"]').waitFor({ state: 'visible', timeout: 45000 });
        await inner.locator('#predictions [data-class-index]').nth(2).waitFor({ timeout: 15000 });
        const geo = await inner.locator('body').evaluate(() => {
          const box = (/** @type {Element} */ el) => { const r = el.getBoundingClientRect(); return { top: Math.round(r.top), bottom: Math.round(r.bottom), left: Math.round(r.left), right: Math.round(r.right) }; };
          return {
            viewport: { w: innerWidth, h: innerHeight }, scrollY, docW: document.documentElement.scrollWidth,
            parts: { image: box(/** @type {Element} */ (document.getElementById('stage'))), 'method picker': box(/** @type {Element} */ (document.getElementById('method'))),
              ...Object.fromEntries(Array.from(document.querySelectorAll('#predictions [data-class-index]')).slice(0, 3).map((e, i) => [`prediction ${i + 1}`, box(e)])) },
          };
        });
        await shot(host, 'vscode-explain-beside-editor.png');
        const outside = Object.entries(geo.parts).filter(([, b]) => b.top < 0 || b.left < 0 || b.bottom > geo.viewport.h || b.right > geo.viewport.w).map(([k, b]) => `${k} ${JSON.stringify(b)}`);
        if (outside.length || geo.scrollY !== 0 || geo.docW > geo.viewport.w) {
          throw new Error(`in the ${geo.viewport.w}x${geo.viewport.h} panel: ${outside.join('; ') || 'all inside'}; scrollY ${geo.scrollY}, document ${geo.docW} px wide`);
        }
        const groups = () => page.locator('.part.editor .editor-group-container').count();
        const before = await groups();
        // From the panel (the active editor), another image's map, and the first image's again.
        await host.click({ position: { x: 20, y: 20 } });
        if (other) {
          await contextMenu(page, other, MENU_CAM);
          await webviewWith(page, `#title:has-text("${other}")`, 60000);
        }
        await contextMenu(page, sample, MENU_CAM);
        await sleep(1500);
        const after = await groups();
        await shot(page, 'vscode-explain-columns.png');
        if (after !== before) throw new Error(`${before} editor groups became ${after}`);
        return `panel ${geo.viewport.w}x${geo.viewport.h}, image bottom ${geo.parts.image.bottom}, method picker bottom ${geo.parts['method picker'].bottom}, prediction 3 bottom ${geo.parts['prediction 3']?.bottom}; ${after} editor groups throughout`;
      } finally {
        await page.setViewportSize({ width: 1400, height: 900 });
      }
    }, { needs: [T_DRAWN], onFail: failShot('explain-beside-editor') });

    const shapes = path.join(REPO, 'samples');
    if (fs.existsSync(path.join(shapes, 'circle', 'circle_06.png'))) {
      await test('ui: the triage panel of samples/ shows thumbnails; Move to class rescores the row and the counts, offers every class with a probability, and U undoes it', async () => {
        await closeAllEditors(page);
        // samples/<class>/*.png (circle_06.png is a ring filed as a circle, samples/MISLABELED.md) as ws/shapes/.
        for (const cls of fs.readdirSync(shapes).filter((d) => fs.statSync(path.join(shapes, d)).isDirectory())) {
          fs.mkdirSync(path.join(ws, 'shapes', cls), { recursive: true });
          for (const f of fs.readdirSync(path.join(shapes, cls)).filter((n) => n.endsWith('.png'))) fs.copyFileSync(path.join(shapes, cls, f), path.join(ws, 'shapes', cls, f));
        }
        await contextMenu(page, 'shapes', 'Find Likely Mislabeled Samples');
        const { inner, host } = await webviewWith(page, 'body[data-phase="finished"]', 90000);
        const row = inner.locator('#rows [data-path="circle/circle_06.png"]');
        await row.waitFor({ timeout: 10000 });
        // Every rendered row's thumbnail loaded.
        const thumbs = await inner.locator('#rows img.thumb').evaluateAll((imgs) => imgs.map((i) => /** @type {HTMLImageElement} */ (i).complete && /** @type {HTMLImageElement} */ (i).naturalWidth > 0));
        if (!thumbs.length || thumbs.some((ok) => !ok)) throw new Error(`${thumbs.filter((ok) => !ok).length} of ${thumbs.length} thumbnails did not load`);
        const flaggedBefore = Number(await inner.locator('#count-flagged').getAttribute('data-value'));
        if ((await row.getAttribute('data-flagged')) !== 'true') throw new Error('circle/circle_06.png (a ring) is not flagged');
        await row.click();
        await inner.locator('#rows').press('m');
        const pick = page.locator('.quick-input-widget');
        await pick.locator('.monaco-list-row').first().waitFor({ state: 'visible', timeout: 20000 });
        const placeholder = (await pick.locator('input').first().getAttribute('placeholder')) ?? '';
        const items = await pick.locator('.monaco-list-row').allInnerTexts();
        const noPct = items.filter((t) => !/(<0\.1|\d+\.\d)%/.test(t) || /#\d/.test(t));
        if (/Ctrl\+Z/i.test(placeholder) || !/\bU\b/.test(placeholder)) throw new Error(`the picker says "${placeholder}"`);
        if (items.length < 5 || noPct.length) throw new Error(`picker entries without a probability: ${JSON.stringify(noPct.length ? noPct : items)}`);
        await page.keyboard.type('ring');
        await page.keyboard.press('Enter');
        const moved = inner.locator('#rows [data-path="ring/circle_06.png"][data-moved="true"]');
        await moved.waitFor({ timeout: 20000 });
        const given = (await moved.locator('.given').innerText()).trim();
        const pct = Number(/ring (\d+\.\d)%/.exec(given)?.[1]);
        const flaggedAfter = Number(await inner.locator('#count-flagged').getAttribute('data-value'));
        await shot(host, 'vscode-triage-moved.png');
        if (!(pct > 50)) throw new Error(`the moved row reads "${given}", expected ring with its (high) probability`);
        if ((await moved.getAttribute('data-flagged')) !== 'false') throw new Error('the moved row is still flagged');
        if (flaggedAfter !== flaggedBefore - 1) throw new Error(`flagged count ${flaggedBefore} -> ${flaggedAfter} after the move`);
        const detail = (await inner.locator('#detail-meta').innerText()).trim();
        if (!detail.startsWith(`Given ring (${pct.toFixed(1)}%)`)) throw new Error(`#detail-meta reads "${detail}"`);
        // U moves it back: the old label's numbers, flag and count return.
        await inner.locator('#rows').press('u');
        const back = inner.locator('#rows [data-path="circle/circle_06.png"]:not([data-moved])');
        await back.waitFor({ timeout: 20000 });
        const flaggedUndone = Number(await inner.locator('#count-flagged').getAttribute('data-value'));
        if ((await back.getAttribute('data-flagged')) !== 'true' || flaggedUndone !== flaggedBefore) throw new Error(`after the undo: flagged ${await back.getAttribute('data-flagged')}, count ${flaggedUndone} (was ${flaggedBefore})`);
        if (!fs.existsSync(path.join(ws, 'shapes', 'circle', 'circle_06.png'))) throw new Error('the file is not back in shapes/circle/');
        return `${thumbs.length} thumbnails; moved: "${given}", flagged ${flaggedBefore} -> ${flaggedAfter}; undone: ${flaggedUndone}; picker: ${items.length} entries, e.g. "${items[0].replace(/\s+/g, ' ')}"`;
      }, { needs: [T_WORKBENCH], onFail: failShot('triage') });
    }

    if (fs.existsSync(path.join(shapes, 'circle'))) {
      await test('ui: "Show Model Strategies" on samples/ draws per class the average map and the cluster cards with hints; a member opens in the explain panel', async () => {
        await closeAllEditors(page);
        // ws/shapes/ as the triage step made it (copied again where that step did not run).
        for (const cls of fs.readdirSync(shapes).filter((d) => fs.statSync(path.join(shapes, d)).isDirectory())) {
          fs.mkdirSync(path.join(ws, 'shapes', cls), { recursive: true });
          for (const f of fs.readdirSync(path.join(shapes, cls)).filter((n) => n.endsWith('.png'))) {
            if (!fs.existsSync(path.join(ws, 'shapes', cls, f))) fs.copyFileSync(path.join(shapes, cls, f), path.join(ws, 'shapes', cls, f));
          }
        }
        const classes = fs.readdirSync(path.join(ws, 'shapes')).filter((d) => fs.statSync(path.join(ws, 'shapes', d)).isDirectory()).length;
        await contextMenu(page, 'shapes', 'Show Model Strategies');
        const { inner, host } = await webviewWith(page, '.class-section .cluster-card canvas.cluster-map[data-state="drawn"]', 180000);
        await inner.locator('#progress[hidden]').waitFor({ state: 'attached', timeout: 30000 });
        const sections = await inner.locator('.class-section').count();
        const cards = await inner.locator('.cluster-card').count();
        const canvases = await inner.locator('canvas.map-canvas').count();
        const drawn = await inner.locator('canvas.map-canvas[data-state="drawn"]').count();
        const hints = await inner.locator('.cluster-card .hint[data-hint="corner"]').count();
        if (sections !== classes) throw new Error(`${sections} class sections for ${classes} class folders`);
        if (cards < sections || hints !== cards) throw new Error(`${cards} cluster cards, ${hints} with a corner hint, for ${sections} classes`);
        if (drawn !== canvases || canvases !== sections + cards) throw new Error(`${drawn} of ${canvases} map canvases drawn (${sections} classes, ${cards} cards)`);
        const status = (await inner.locator('#run-status').innerText()).trim();
        await shot(host, 'vscode-strategies.png');
        // A member thumbnail opens the image in the explain panel.
        const member = inner.locator('.cluster-card .member').first();
        const rel = (await member.getAttribute('data-path')) ?? '';
        await member.click();
        const name = rel.split('/').pop();
        await page.locator('.tabs-container .tab', { hasText: `CAM: ${name}` }).first().waitFor({ state: 'visible', timeout: 30000 });
        return `${sections} classes, ${cards} cards; "${status}"; opened ${rel}`;
      }, { needs: [T_WORKBENCH], onFail: failShot('strategies') });
    }

    const T_INSPECT = `ui: "${MENU_LAYERS}" on model.json lists all ${expect.layers.length} layers of the model`;
    await test(T_INSPECT, async () => {
      await closeAllEditors(page);
      // model.json is inside model/: expand the folder first.
      if (!(await explorerRow(page, 'model.json').isVisible())) await explorerRow(page, 'model').click();
      await contextMenu(page, 'model.json', MENU_LAYERS);
      const { inner, host } = await webviewWith(page, 'tr[data-layer]', 45000);
      const rows = await inner.locator('tr[data-layer]').count();
      await shot(host, 'inspector-panel.png');
      if (rows !== expect.layers.length) throw new Error(`${rows} tr[data-layer] rows, the CLI lists ${expect.layers.length} layers`);
      return `${rows} rows`;
    }, { needs: [T_WORKBENCH], onFail: failShot('inspector') });

    await test('ui: "Show Class Activation Map" on a corrupt image shows the decoding error inside the panel', async () => {
      await closeAllEditors(page);
      await contextMenu(page, 'broken.png', MENU_CAM);
      const { inner, host } = await webviewWith(page, '#error:visible', 45000);
      const err = inner.locator('#error');
      const text = (await err.innerText()).trim();
      await shot(host, 'explain-error.png');
      if (!/not a readable image/i.test(text)) throw new Error(`#error reads "${text}", expected the engine's "is not a readable image" reason`);
      return `#error "${text.slice(0, 120)}"`;
    }, { needs: [T_WORKBENCH], onFail: failShot('explain-error') });

    // An ONNX file, opened directly: its layers, then "Use this model" and a map from it. The workspace's
    // camLens.model names the demo model, so the choice must also update that setting to take effect.
    const onnx = expect.onnx;
    const T_ONNX_INSPECT = `ui: "${MENU_LAYERS}" on an ONNX file lists all ${onnx?.layers} of its layers`;
    if (onnx) {
      await test(T_ONNX_INSPECT, async () => {
        await closeAllEditors(page);
        if (!(await explorerRow(page, 'resnet_tiny.onnx').isVisible())) await explorerRow(page, 'onnx').click();
        await contextMenu(page, 'resnet_tiny.onnx', MENU_LAYERS);
        const { inner, host } = await webviewWith(page, 'tr[data-layer]', 45000);
        const rows = await inner.locator('tr[data-layer]').count();
        await shot(host, 'inspector-onnx.png');
        if (rows !== onnx.layers) throw new Error(`${rows} tr[data-layer] rows, the CLI lists ${onnx.layers} layers`);
        await inner.locator('#use-model').click();
        return `${rows} rows`;
      }, { needs: [T_WORKBENCH], onFail: failShot('inspector-onnx') });

      await test(`ui: after "Use this model", the explain panel runs the ONNX model: top-1 "${onnx.top1.label}" and a drawn map`, async () => {
        await closeAllEditors(page);
        await contextMenu(page, 'onnx_probe.png', MENU_CAM);
        const { inner, host } = await webviewWith(page, '#title:has-text("onnx_probe.png")', 60000);
        const first = inner.locator('#predictions [data-class-index]').first();
        await first.waitFor({ timeout: 45000 });
        const index = await first.getAttribute('data-class-index');
        if (index !== String(onnx.top1.index)) throw new Error(`first prediction has index ${index}, the CLI's top-1 is ${onnx.top1.index} "${onnx.top1.label}"`);
        await inner.locator('#canvas[data-state="drawn"]').waitFor({ timeout: 45000 });
        const name = (await inner.locator('#model-name').innerText()).trim();
        if (name !== 'resnet_tiny') throw new Error(`the panel names the model "${name}", expected resnet_tiny`);
        const settings = JSON.parse(fs.readFileSync(path.join(ws, '.vscode', 'settings.json'), 'utf8'));
        if (settings['camLens.model'] !== 'onnx/resnet_tiny.onnx') throw new Error(`camLens.model is ${settings['camLens.model']}, expected the chosen onnx/resnet_tiny.onnx`);
        await shot(host, 'explain-onnx.png');
        return `"${name}", top-1 ${index}, camLens.model updated`;
      }, { needs: [T_ONNX_INSPECT], onFail: failShot('explain-onnx') });
      // "Use this model" wrote the ONNX model into the workspace's settings; later parts (the installed
      // VSIX opens this workspace too) expect the demo model there again.
      restoreWorkspaceModel(ws);
    }
  } finally {
    await page.close().catch(() => {});
  }
}

/**
 * (c) The packaged extension: its contents, `code-server --install-extension` into a fresh extensions
 * dir, and the menu entry of the installed copy opening a working panel (which proves the bundled
 * node_modules load: the panel's predictions come from tfjs and sharp inside the VSIX).
 * @param {import('playwright-core').Browser} browser @param {string} vsix @param {string} ws @param {string} runDir
 * @param {{ sample: string, top1: { index: number, label: string } }} expect @param {string[]} consoleErrors
 */
async function vsixPart(browser, vsix, ws, runDir, expect, consoleErrors) {
  const T_CONTENTS = 'vsix: holds only the manifest, readme, licence, bundles, wasm, demo model, media and the runtime node_modules';
  await test(T_CONTENTS, async () => {
    const entries = zipEntries(vsix).filter((e) => e.name.startsWith('extension/')).map((e) => ({ ...e, name: e.name.slice('extension/'.length) }));
    fs.writeFileSync(path.join(ARTIFACTS, 'vsix-contents.txt'), entries.map((e) => `${String(e.size).padStart(10)}  ${e.name}`).join('\n') + '\n');
    const stray = entries.filter((e) => !VSIX_ALLOWED.some((re) => re.test(e.name)) || e.name.endsWith('.map'));
    if (stray.length) throw new Error(`unexpected files: ${stray.slice(0, 5).map((e) => e.name).join(', ')}${stray.length > 5 ? ` (+${stray.length - 5})` : ''}`);
    const names = new Set(entries.map((e) => e.name));
    const required = [...VSIX_REQUIRED];
    if (fs.existsSync(path.join(REPO, 'models', 'demo', 'model.json'))) required.push('models/demo/model.json');
    const missing = required.filter((r) => !names.has(r));
    if (!entries.some((e) => /^node_modules\/@img\/sharp-[a-z0-9-]+\/lib\/sharp-[a-z0-9-]+\.node$/.test(e.name))) missing.push('sharp native addon');
    if (missing.length) throw new Error(`missing: ${missing.join(', ')}`);
    // A per-platform VSIX: sharp's addon and libvips of one platform only.
    const img = [...new Set(entries.map((e) => /^node_modules\/@img\/(sharp-[^/]+)\//.exec(e.name)?.[1]).filter(Boolean))];
    if (new Set(img.map((n) => String(n).replace(/^sharp-(libvips-)?/, ''))).size !== 1) throw new Error(`sharp packages of several platforms: ${img.join(', ')}`);
    // ONNX Runtime's binaries of one platform at most (none on darwin-x64 and alpine-x64).
    const ort = [...new Set(entries.map((e) => /^node_modules\/onnxruntime-node\/bin\/napi-v\d+\/([^/]+\/[^/]+)\//.exec(e.name)?.[1]).filter(Boolean))];
    if (ort.length > 1) throw new Error(`onnxruntime-node binaries of several platforms: ${ort.join(', ')}`);
    // linux-x64 with ONNX Runtime: 29.4 MB (development build; 18 MB of it ONNX Runtime's library).
    const mb = fs.statSync(vsix).size / 1e6;
    if (mb > 32) throw new Error(`${mb.toFixed(1)} MB is more than the 32 MB budget`);
    return `${entries.length} files, ${mb.toFixed(2)} MB (list in test-artifacts/vsix-contents.txt)`;
  });

  const dir = path.join(runDir, 'vsix');
  const extensionsDir = path.join(dir, 'exts');
  fs.mkdirSync(path.join(dir, 'user'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.yaml'), '');
  const T_INSTALL = 'vsix: code-server --install-extension installs it into a fresh extensions dir';
  await test(T_INSTALL, async () => {
    const r = run(CS_BIN, ['--config', path.join(dir, 'config.yaml'), '--user-data-dir', path.join(dir, 'user'),
      '--extensions-dir', extensionsDir, '--install-extension', vsix], { env: csEnv() });
    const out = (r.stdout + r.stderr).trim();
    if (r.status !== 0 || !/successfully installed/i.test(out)) throw new Error(`install failed (${r.status}): ${out.split('\n').pop()}`);
    const installed = fs.readdirSync(extensionsDir).filter((d) => d.startsWith(`${EXTENSION_ID}-`));
    if (installed.length !== 1) throw new Error(`extensions dir holds ${fs.readdirSync(extensionsDir).join(', ')}`);
    return installed[0];
  });

  const T_MENU = `vsix: the installed extension's "${MENU_CAM}" opens the panel with the top-1 class of ${expect.sample}`;
  await test(T_MENU, async () => {
    const server = await startCodeServer({ dir, ws, smoke: false, extensionsDir });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    watchPage(page, consoleErrors);
    try {
      await openWorkbench(page, workbenchUrl(server.base, ws), 'broken.png');
      await contextMenu(page, expect.sample, MENU_CAM);
      const { inner, host } = await webviewWith(page, `#title:has-text("${expect.sample}")`, 60000);
      const title = (await inner.locator('#title').innerText()).trim();
      const first = inner.locator('#predictions [data-class-index]').first();
      await Promise.race([
        first.waitFor({ timeout: 60000 }),
        inner.locator('#error').waitFor({ timeout: 60000 }).then(async () => { throw new Error(`the panel shows an error: ${await inner.locator('#error').innerText()}`); }),
      ]);
      const text = (await first.innerText()).trim();
      await shot(host, 'vsix-panel.png');
      if (!text.includes(expect.top1.label)) throw new Error(`first prediction "${text}", expected ${expect.top1.label}`);
      return `#title "${title}", first prediction "${text}"`;
    } catch (e) {
      await shot(page, 'fail-vsix.png');
      throw e;
    } finally {
      await page.close().catch(() => {});
      server.stop();
      fs.copyFileSync(server.logFile, path.join(ARTIFACTS, 'code-server-vsix.log'));
    }
  }, { needs: [T_INSTALL] });
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  record({ name: 'the e2e runner itself', status: 'fail', ms: 0, note: String(e && e.message ? e.message : e).split('\n')[0] });
  finish(1);
});

/** The workspace's settings: camLens.model names the demo model copy, so that no picker opens. */
function restoreWorkspaceModel(ws) {
  fs.mkdirSync(path.join(ws, '.vscode'), { recursive: true });
  fs.writeFileSync(path.join(ws, '.vscode', 'settings.json'), JSON.stringify({ 'camLens.model': 'model/model.json' }, null, 2));
}
