/**
 * Runs the real webview bundles in headless Chromium against a fake host.
 *
 * - The page is the one src/extension/panels/html.ts builds, with its real CSP, served over a local HTTP server
 *   whose origin plays the role of VS Code's `webview.cspSource`; dist/webview-*.js are the real bundles (rebuilt
 *   with `node esbuild.js` when older than their sources), media/*.css the real stylesheets.
 * - The fake host is injected before the page's scripts: `acquireVsCodeApi()` returns an object recording every
 *   posted message and keeping the state in memory, and host messages are delivered with window.postMessage,
 *   as VS Code does. CSP violations and console errors are recorded.
 * - A dark-theme stylesheet (fixtures/theme-dark.css, VS Code's Dark Modern values) stands in for the variables VS
 *   Code injects, so screenshots show the panels as users see them.
 * Browser: Debian's /usr/bin/chromium through playwright-core (no browser download). Where it is absent the suites
 * skip with a message.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { buildPanelHtml, createNonce, type PanelKind } from '../../src/extension/panels/html';
import { skipBecause } from '../helpers/skip';
import { ROOT, ensureBuilt } from '../helpers/build';

export const CHROMIUM = '/usr/bin/chromium';
export { ROOT };
export const ARTIFACTS = path.join(ROOT, 'test-artifacts');

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Skips the calling suite with a clear message where Debian's chromium is not installed. */
export function requireChromium(ctx: Mocha.Context): void {
  if (!fs.existsSync(CHROMIUM)) {
    skipBecause(ctx, 'chromium-absent', `${CHROMIUM} is absent; install it with \`apt-get install -y chromium\` (npm test does, as root) to run the webview UI tests`);
  }
}

/** Rebuilds the bundles when a webview bundle is missing or older than the webview or shared sources. */
export function ensureBundles(): void {
  ensureBuilt(['webview-explain.js', 'webview-inspector.js', 'webview-triage.js'], ['src/webview', 'src/shared']);
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.map': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

export interface Server {
  origin: string;
  /** Extra in-memory files, e.g. '/assets/photo.png'. */
  assets: Map<string, Buffer>;
  close(): Promise<void>;
}

/**
 * Serves the panels and the files they load: /explain.html and /inspector.html (built fresh per request, so each
 * load gets a new nonce), /dist/* and /media/* from the repository, /theme/* from test/webview/fixtures, and the
 * in-memory assets. Nothing else.
 */
export async function startServer(): Promise<Server> {
  const assets = new Map<string, Buffer>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const send = (status: number, type: string, body: Buffer | string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const page = /^\/(explain|inspector)\.html$/.exec(url.pathname);
    if (page) {
      const kind = page[1] as PanelKind;
      const html = buildPanelHtml({
        cspSource: origin,
        nonce: createNonce(),
        scriptUri: `${origin}/dist/webview-${kind}.js`,
        styleUris: [`${origin}/media/common.css`, `${origin}/media/${kind}.css`, `${origin}/theme/theme-dark.css`],
        title: kind === 'explain' ? 'CAM Lens' : 'CAM Lens: layers',
        kind,
      });
      return send(200, 'text/html; charset=utf-8', html);
    }
    const asset = assets.get(url.pathname);
    if (asset) return send(200, TYPES[path.extname(url.pathname)] ?? 'application/octet-stream', asset);
    const roots: Record<string, string> = {
      dist: path.join(ROOT, 'dist'),
      media: path.join(ROOT, 'media'),
      theme: path.join(__dirname, 'fixtures'),
    };
    const [, top, ...rest] = url.pathname.split('/');
    const root = roots[top];
    if (root) {
      const file = path.resolve(root, ...rest);
      if (file.startsWith(root + path.sep) && fs.existsSync(file) && fs.statSync(file).isFile()) {
        return send(200, TYPES[path.extname(file)] ?? 'application/octet-stream', fs.readFileSync(file));
      }
    }
    if (url.pathname === '/favicon.ico') return send(204, 'text/plain', '');
    send(404, 'text/plain', 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    assets,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export async function launchBrowser(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

let shared: Promise<Browser> | undefined;

/**
 * One browser for all webview suites of a mocha run (a launch costs seconds on a loaded machine); each suite
 * opens its own page. Closed by the root-level hook below, after every suite has run.
 */
export function sharedBrowser(): Promise<Browser> {
  shared ??= launchBrowser();
  return shared;
}

// This module is only loaded by mocha test files, so `after` here is a root hook: it runs once, at the very end.
after(async () => {
  const b = shared;
  shared = undefined;
  if (b) await (await b).close();
});

/** What the fake host recorded in the page. */
export interface Recorded {
  sent: { type: string; [k: string]: unknown }[];
  state: unknown;
  violations: { directive: string; blocked: string; sample: string }[];
}

export interface PanelPage {
  page: Page;
  /** Console errors and page errors seen so far. */
  errors: string[];
  recorded(): Promise<Recorded>;
  /** Posts a host message into the page; Float32Arrays survive the trip. */
  send(message: unknown): Promise<void>;
  /** Waits until the page has posted `count` messages of `type`; returns the last one. */
  waitForSent(type: string, count?: number): Promise<{ type: string; [k: string]: unknown }>;
  sentOfType(type: string): Promise<{ type: string; [k: string]: unknown }[]>;
}

/** Float32Arrays cannot cross page.evaluate as such: they travel as tagged number arrays and are rebuilt inside. */
function encode(x: unknown): unknown {
  if (x instanceof Float32Array) return { __f32: Array.from(x) };
  if (Array.isArray(x)) return x.map(encode);
  if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, encode(v)]));
  return x;
}

/**
 * One browser page reused by a whole suite (creating a page costs a second or more on a loaded machine, a
 * navigation a few hundred ms). The fake host is installed by an init script, which runs again on every
 * navigation, so each `open` starts from a fresh document and a fresh fake host.
 */
export interface PanelHost {
  page: Page;
  /**
   * Loads a panel. `savedState` is what `getState()` returns at start (a webview restored after being hidden);
   * it travels in the URL's query, which the server ignores and the init script reads.
   */
  open(kind: PanelKind, savedState?: unknown): Promise<PanelPage>;
  close(): Promise<void>;
}

export async function createPanelHost(browser: Browser, server: Server): Promise<PanelHost> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  let errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  // tsx compiles this file with esbuild's keepNames, which wraps named functions in a `__name(fn, "name")` helper;
  // functions serialised into the page (addInitScript, evaluate) then need that helper there too.
  await page.addInitScript({ content: 'window.__name = (fn) => fn;' });
  await page.addInitScript(() => {
    const saved = new URLSearchParams(location.search).get('saved');
    const rec = { sent: [] as unknown[], state: saved ? (JSON.parse(saved) as unknown) : undefined, violations: [] as unknown[] };
    let acquired = false;
    (window as unknown as { __fakeHost: unknown }).__fakeHost = rec;
    (window as unknown as { acquireVsCodeApi: unknown }).acquireVsCodeApi = () => {
      if (acquired) throw new Error('acquireVsCodeApi may be called only once');
      acquired = true;
      return {
        postMessage: (m: unknown) => rec.sent.push(structuredClone(m)),
        getState: () => rec.state,
        setState: (s: unknown) => {
          rec.state = structuredClone(s);
        },
      };
    };
    document.addEventListener('securitypolicyviolation', (e) => {
      rec.violations.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample });
    });
    // VS Code marks the theme kind on <body>.
    document.addEventListener('DOMContentLoaded', () => {
      document.body.classList.add('vscode-dark');
      document.body.dataset.vscodeThemeKind = 'vscode-dark';
    });
  });

  const recorded = () => page.evaluate(() => structuredClone((window as unknown as { __fakeHost: Recorded }).__fakeHost));
  const sentOfType = async (type: string) => (await recorded()).sent.filter((m) => m.type === type);
  const panel: Omit<PanelPage, 'errors'> = {
    page,
    recorded,
    sentOfType,
    async send(message: unknown) {
      await page.evaluate((m) => {
        const decode = (x: unknown): unknown => {
          if (Array.isArray(x)) return x.map(decode);
          if (x && typeof x === 'object') {
            const o = x as Record<string, unknown>;
            if (Array.isArray(o.__f32)) return new Float32Array(o.__f32 as number[]);
            return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, decode(v)]));
          }
          return x;
        };
        window.postMessage(decode(m), '*');
      }, encode(message));
    },
    async waitForSent(type: string, count = 1) {
      const handle = await page.waitForFunction(
        ([t, n]) => {
          const sent = (window as unknown as { __fakeHost: Recorded }).__fakeHost.sent.filter((m) => m.type === t);
          return sent.length >= (n as number) ? sent[sent.length - 1] : undefined;
        },
        [type, count] as const,
        { timeout: 5000 },
      );
      return (await handle.jsonValue()) as { type: string; [k: string]: unknown };
    },
  };
  return {
    page,
    async open(kind, savedState) {
      errors = [];
      const query = savedState === undefined ? '' : `?saved=${encodeURIComponent(JSON.stringify(savedState))}`;
      await page.goto(`${server.origin}/${kind}.html${query}`);
      return { ...panel, errors };
    },
    close: () => page.close(),
  };
}

/** Saves a screenshot under test-artifacts/ (git-ignored). */
export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** What `themeReport` found: the page's colours against the theme's variables. */
export interface ThemeReport {
  /** Computed body background and text colour, and the theme variables they should come from. */
  body: { background: string; color: string; editorBackground: string; foreground: string };
  /** WCAG contrast ratio of the body's text on its background. */
  bodyContrast: number;
  /** Visible elements bigger than 24x24 px painting a light background (relative luminance > 0.35) in this dark theme. */
  lightBackgrounds: string[];
  /** Visible elements whose own text has a contrast below 3:1 against the background behind it. */
  lowContrastText: string[];
  /** Canvases by id: the share of their pixels that are drawn (alpha > 0). */
  canvases: Record<string, number>;
}

/**
 * Checks a panel against the dark theme stand-in (fixtures/theme-dark.css): the body's colours are the theme's
 * (--vscode-editor-background, --vscode-foreground, resolved through a probe element, so any hard-coded colour
 * shows), no visible element paints a light background (a colour written for a light theme), all visible text
 * reads against what is behind it (the web components' shadow roots included), and the named canvases are not
 * blank. Pure measurement: the test decides what to assert.
 */
export async function themeReport(page: Page, canvasIds: string[]): Promise<ThemeReport> {
  return page.evaluate((ids) => {
    const parse = (c: string): [number, number, number, number] | undefined => {
      const m = /rgba?\(([^)]+)\)/.exec(c);
      if (!m) return undefined;
      const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
    };
    const lum = (rgb: [number, number, number, number]) => {
      const ch = rgb.slice(0, 3).map((v) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
    };
    const contrast = (a: [number, number, number, number], b: [number, number, number, number]) => {
      const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
      return (hi + 0.05) / (lo + 0.05);
    };
    const resolve = (variable: string, prop: 'backgroundColor' | 'color') => {
      const probe = document.createElement('div');
      probe.style[prop] = `var(${variable})`;
      document.body.append(probe);
      const v = getComputedStyle(probe)[prop];
      probe.remove();
      return v;
    };
    const name = (el: Element) => {
      const id = el.id ? `#${el.id}` : '';
      const cls = typeof el.className === 'string' && el.className ? `.${el.className.trim().split(/\s+/).join('.')}` : '';
      return `${el.tagName.toLowerCase()}${id}${cls}`;
    };
    const visible = (el: Element) => {
      const r = el.getBoundingClientRect();
      const cs = getComputedStyle(el);
      return r.width > 0 && r.height > 0 && cs.visibility !== 'hidden' && cs.display !== 'none' && Number(cs.opacity) > 0;
    };
    /** Every element, with the elements of open shadow roots, each with its chain of ancestors across them. */
    const all: { el: Element; chain: Element[] }[] = [];
    const walk = (root: Element | ShadowRoot, chain: Element[]) => {
      for (const el of Array.from(root.children)) {
        all.push({ el, chain });
        walk(el, [el, ...chain]);
        if (el.shadowRoot) walk(el.shadowRoot, [el, ...chain]);
      }
    };
    walk(document.body, [document.body]);
    const body = getComputedStyle(document.body);
    const bodyBg = parse(body.backgroundColor)!;
    const behind = (chain: Element[]) => {
      for (const a of chain) {
        const c = parse(getComputedStyle(a).backgroundColor);
        if (c && c[3] > 0.5) return c;
      }
      return bodyBg;
    };
    const lightBackgrounds: string[] = [];
    const lowContrastText: string[] = [];
    for (const { el, chain } of all) {
      if (el instanceof HTMLCanvasElement || el instanceof HTMLImageElement || !visible(el)) continue;
      const cs = getComputedStyle(el);
      const bg = parse(cs.backgroundColor);
      // Small marks (a toggle's 12 px knob, in --vscode-button-foreground) are not backgrounds.
      const r = el.getBoundingClientRect();
      if (bg && bg[3] > 0.5 && lum(bg) > 0.35 && r.width * r.height > 24 * 24) lightBackgrounds.push(`${name(el)} ${cs.backgroundColor}`);
      const ownText = Array.from(el.childNodes).some((n) => n.nodeType === Node.TEXT_NODE && (n.textContent ?? '').trim() !== '');
      if (ownText) {
        const fg = parse(cs.color);
        const back = bg && bg[3] > 0.5 ? bg : behind(chain);
        if (fg && contrast(fg, back) < 3) lowContrastText.push(`${name(el)} "${(el.textContent ?? '').trim().slice(0, 30)}" ${cs.color} on rgb(${back.slice(0, 3).join(', ')})`);
      }
    }
    const canvases: Record<string, number> = {};
    for (const id of ids) {
      const c = document.getElementById(id) as HTMLCanvasElement | null;
      const d = c?.getContext('2d')?.getImageData(0, 0, c.width, c.height).data;
      let drawn = 0;
      if (d) for (let i = 3; i < d.length; i += 4) if (d[i] > 0) drawn++;
      canvases[id] = d && d.length ? drawn / (d.length / 4) : 0;
    }
    return {
      body: { background: body.backgroundColor, color: body.color, editorBackground: resolve('--vscode-editor-background', 'backgroundColor'), foreground: resolve('--vscode-foreground', 'color') },
      bodyContrast: contrast(parse(body.color)!, bodyBg),
      lightBackgrounds,
      lowContrastText,
      canvases,
    };
  }, canvasIds);
}
