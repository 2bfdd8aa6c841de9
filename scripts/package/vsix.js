#!/usr/bin/env node
// @ts-check
/**
 * One VSIX per VS Code target platform. sharp's native addon and libvips come from platform packages
 * (`@img/sharp-<platform>`, `@img/sharp-libvips-<platform>`), and npm installs only the host's, so a VSIX
 * packaged straight from the checkout works on the packager's platform alone. For each target this script:
 *
 *   1. gets that platform's sharp packages: `npm install --os --cpu [--libc] sharp@<our version>` into a cache
 *      outside the clone (the host's own platform is taken from node_modules when its versions match);
 *   2. stages the extension once in a temporary folder: the files `vsce ls` would package from the checkout
 *      (the .vscodeignore allowlist), hard-linked, plus the package.json of every production dependency (so
 *      `npm list --production`, which vsce runs, sees a complete tree), without any @img/sharp-* package;
 *   3. puts the target's @img/sharp-* packages into the staged node_modules, and the target's onnxruntime-node
 *      binding and library (the package carries five platforms' binaries: every VSIX but one would otherwise
 *      hold 150 MB of others'), and runs `vsce package --target`.
 *
 * The project's node_modules is never touched. dist/ is packaged as it is: `npm run package` builds it in
 * production mode first.
 *
 *   node scripts/package/vsix.js                         all seven targets -> ./cam-lens-<target>.vsix
 *   node scripts/package/vsix.js --target linux-x64      one (or a comma-separated list)
 *   node scripts/package/vsix.js --out <dir>             write the files there
 *   node scripts/package/vsix.js --reuse                 keep a VSIX whose inputs have not changed since it was built
 *   node scripts/package/vsix.js --json                  print the results as JSON on stdout (progress goes to stderr)
 *
 * Exit codes: 0 built, 1 failure, 3 the npm registry cannot be reached for a platform package not yet cached.
 * Cache: $CAM_LENS_VSIX_CACHE, else $XDG_CACHE_HOME/cam-lens-vsix, else ~/.cache/cam-lens-vsix.
 */
'use strict';
const { spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const REPO = path.resolve(__dirname, '..', '..');
const CACHE = process.env.CAM_LENS_VSIX_CACHE ||
  path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'cam-lens-vsix');

/**
 * The targets VS Code publishes builds for that sharp has prebuilt binaries for. `sharp` is sharp's own name
 * for the platform (the suffix of its @img packages); npm's --os/--cpu/--libc select those packages.
 * (alpine-arm64 and linux-armhf are vsce targets too; add them here when users ask.)
 * @typedef {{ target: string, os: string, cpu: string, libc?: string, sharp: string }} Target
 * @type {Target[]}
 */
const TARGETS = [
  { target: 'win32-x64', os: 'win32', cpu: 'x64', sharp: 'win32-x64' },
  { target: 'win32-arm64', os: 'win32', cpu: 'arm64', sharp: 'win32-arm64' },
  { target: 'darwin-x64', os: 'darwin', cpu: 'x64', sharp: 'darwin-x64' },
  { target: 'darwin-arm64', os: 'darwin', cpu: 'arm64', sharp: 'darwin-arm64' },
  { target: 'linux-x64', os: 'linux', cpu: 'x64', libc: 'glibc', sharp: 'linux-x64' },
  { target: 'linux-arm64', os: 'linux', cpu: 'arm64', libc: 'glibc', sharp: 'linux-arm64' },
  { target: 'alpine-x64', os: 'linux', cpu: 'x64', libc: 'musl', sharp: 'linuxmusl-x64' },
];

class RegistryUnreachable extends Error {}

const log = (/** @type {string} */ msg) => process.stderr.write(`vsix: ${msg}\n`);

/** The target of the machine this runs on, when it is one of ours (the e2e run installs that one). */
function hostTarget() {
  const musl = process.platform === 'linux' && !(/** @type {any} */ (process.report?.getReport()))?.header?.glibcVersionRuntime;
  return TARGETS.find((t) => t.os === process.platform && t.cpu === process.arch && (t.os !== 'linux' || (t.libc === 'musl') === musl));
}

/** The npm packages sharp needs on a platform, with the versions our sharp asks for (win32 has no separate libvips package). */
function sharpPackages(/** @type {Target} */ t) {
  const sharp = JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', 'sharp', 'package.json'), 'utf8'));
  const optional = sharp.optionalDependencies || {};
  const names = [`@img/sharp-${t.sharp}`, `@img/sharp-libvips-${t.sharp}`].filter((n) => optional[n]);
  if (!names.length) throw new Error(`sharp ${sharp.version} has no prebuilt package for ${t.sharp}`);
  return { sharpVersion: /** @type {string} */ (sharp.version), packages: names.map((name) => ({ name, version: /** @type {string} */ (optional[name]) })) };
}

function packageVersion(/** @type {string} */ dir) {
  try { return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version; } catch { return undefined; }
}

function npm(/** @type {string[]} */ args, /** @type {string} */ cwd) {
  const win = process.platform === 'win32';
  return spawnSync(win ? 'npm.cmd' : 'npm', args, { cwd, encoding: 'utf8', shell: win, maxBuffer: 64 * 1024 * 1024 });
}

/**
 * A node_modules folder holding the target's @img/sharp-* packages. The host's own platform comes from the
 * checkout when the versions match (no network needed); any other from the cache, filled by `npm install`
 * with the target's --os/--cpu/--libc on sharp itself (npm refuses another platform's package named directly,
 * but selects it among sharp's optional dependencies).
 * @param {Target} t
 */
function platformModules(t) {
  const { sharpVersion, packages } = sharpPackages(t);
  const has = (/** @type {string} */ nm) => packages.every((p) => packageVersion(path.join(nm, p.name)) === p.version);
  const own = path.join(REPO, 'node_modules');
  if (hostTarget()?.target === t.target && has(own)) return own;

  const dir = path.join(CACHE, `sharp-${sharpVersion}`, t.target);
  if (has(path.join(dir, 'node_modules'))) return path.join(dir, 'node_modules');

  log(`downloading sharp ${sharpVersion} for ${t.target} (${packages.map((p) => p.name).join(', ')})`);
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  // Install beside the final folder and rename it into place, so a concurrent or interrupted run never sees half.
  const tmp = fs.mkdtempSync(`${dir}.tmp-`);
  try {
    fs.writeFileSync(path.join(tmp, 'package.json'), '{ "private": true }\n');
    const args = ['install', `sharp@${sharpVersion}`, `--os=${t.os}`, `--cpu=${t.cpu}`, ...(t.libc ? [`--libc=${t.libc}`] : []),
      '--ignore-scripts', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error',
      '--fetch-retries=1', '--fetch-retry-mintimeout=2000', '--fetch-retry-maxtimeout=5000', '--fetch-timeout=30000'];
    const r = npm(args, tmp);
    const out = `${r.stderr || ''}${r.stdout || ''}${r.error ? r.error.message : ''}`;
    if (r.status !== 0) {
      const reason = out.trim().split('\n').filter(Boolean).slice(0, 3).join(' ');
      if (/ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network/i.test(out)) {
        throw new RegistryUnreachable(`the npm registry cannot be reached for ${t.target}'s sharp packages: ${reason}`);
      }
      throw new Error(`npm install ${args.join(' ')} failed: ${reason}`);
    }
    if (!has(path.join(tmp, 'node_modules'))) {
      throw new Error(`npm install for ${t.target} did not install ${packages.map((p) => `${p.name}@${p.version}`).join(', ')} (does this npm know --libc?)`);
    }
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // Another run finished first: keep its copy.
      if (!has(path.join(dir, 'node_modules'))) throw e;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return path.join(dir, 'node_modules');
}

/** Hard-links a file (the stage is read-only for vsce), copying where links are impossible (another volume). */
function place(/** @type {string} */ src, /** @type {string} */ dst) {
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  try { fs.linkSync(src, dst); } catch { fs.copyFileSync(src, dst); }
}

function placeTree(/** @type {string} */ src, /** @type {string} */ dst) {
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    if (e.isDirectory()) placeTree(path.join(src, e.name), path.join(dst, e.name));
    else if (e.isFile()) place(path.join(src, e.name), path.join(dst, e.name));
  }
}

const IMG_SHARP = /^node_modules\/@img\/sharp-/;
/** onnxruntime-node's per-platform binaries (bin/napi-v<n>/<platform>/<arch>/), placed per target. */
const ORT_BIN = /^node_modules\/onnxruntime-node\/bin\//;
const leftOut = (/** @type {string} */ f) => IMG_SHARP.test(f) || ORT_BIN.test(f);

/**
 * The onnxruntime-node files of a target (paths relative to the checkout), from the files `vsce ls` allows
 * (.vscodeignore: the binding and the CPU library, no DirectML): those under bin/napi-v<n>/<os>/<cpu>/. None on
 * musl (the package's Linux binaries need glibc) nor where the package has no build (darwin-x64 in 1.30):
 * there the engine runs ONNX models on tfjs alone.
 * @param {string[]} files
 * @param {Target} t
 */
function ortFiles(files, t) {
  if (t.libc === 'musl') return [];
  const dir = new RegExp(`^node_modules/onnxruntime-node/bin/napi-v\\d+/${t.os}/${t.cpu}/`);
  return files.filter((f) => dir.test(f));
}

/**
 * The platform-neutral part of the VSIX in a temporary folder: what vsce would package from the checkout,
 * minus the host's @img/sharp-* packages, plus every production dependency's package.json.
 */
async function stage() {
  const { listFiles } = require('@vscode/vsce');
  const files = /** @type {string[]} */ (await listFiles({ cwd: REPO }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-vsix-'));
  for (const f of files) if (!leftOut(f)) place(path.join(REPO, f), path.join(dir, f));
  place(path.join(REPO, '.vscodeignore'), path.join(dir, '.vscodeignore'));
  const list = npm(['list', '--production', '--parseable', '--depth=99999', '--loglevel=error'], REPO);
  if (list.status !== 0) throw new Error(`npm list --production failed in ${REPO}: ${list.stderr.trim()}`);
  for (const abs of list.stdout.split(/\r?\n/).filter((l) => path.isAbsolute(l))) {
    const rel = path.relative(REPO, abs).replace(/\\/g, '/');
    if (!rel || IMG_SHARP.test(rel)) continue;
    const dst = path.join(dir, rel, 'package.json');
    if (!fs.existsSync(dst)) place(path.join(abs, 'package.json'), dst);
  }
  return { dir, files: files.filter((f) => !leftOut(f)), ort: files.filter((f) => ORT_BIN.test(f)) };
}

/**
 * A hash of what every VSIX is made of, for --reuse: the extension's own files (dist/ without source maps,
 * media/, models/demo/, the top-level files), the installed dependency tree and this script. It over-approximates
 * the VSIX's contents (cheaper than asking vsce, which walks all of node_modules). Taken once, before staging,
 * so a build that rewrites dist/ during a run makes the next run rebuild rather than trust a stale stamp.
 */
function inputsHash() {
  const h = crypto.createHash('sha256');
  const add = (/** @type {string} */ rel) => {
    const abs = path.join(REPO, rel);
    if (!fs.existsSync(abs)) return h.update(`${rel}\0missing\0`);
    if (fs.statSync(abs).isDirectory()) {
      for (const name of fs.readdirSync(abs).sort()) if (!name.endsWith('.map')) add(`${rel}/${name}`);
      return;
    }
    h.update(`${rel}\0`).update(fs.readFileSync(abs)).update('\0');
  };
  for (const rel of ['package.json', '.vscodeignore', 'README.md', 'LICENSE', 'CHANGELOG.md', 'dist', 'media', 'models/demo',
    'node_modules/.package-lock.json', 'scripts/package/vsix.js']) add(rel);
  return h.digest('hex');
}

/** The stamp of one target's VSIX: the common inputs and the target's sharp packages. */
function fingerprint(/** @type {string} */ common, /** @type {Target} */ t) {
  return crypto.createHash('sha256').update(common).update(JSON.stringify({ target: t.target, ...sharpPackages(t) })).digest('hex');
}

/**
 * Packages the given targets into outDir as cam-lens-<target>.vsix.
 * @param {{ targets?: string[], outDir?: string, reuse?: boolean }} [opts]
 * @returns {Promise<{ target: string, file: string, bytes: number, reused: boolean, ms: number }[]>}
 */
async function packageTargets(opts = {}) {
  const wanted = opts.targets && opts.targets.length ? opts.targets : TARGETS.map((t) => t.target);
  const unknown = wanted.filter((w) => !TARGETS.some((t) => t.target === w));
  if (unknown.length) throw new Error(`unknown target ${unknown.join(', ')}; known: ${TARGETS.map((t) => t.target).join(', ')}`);
  const targets = TARGETS.filter((t) => wanted.includes(t.target));
  if (!fs.existsSync(path.join(REPO, 'dist', 'extension.js'))) throw new Error('dist/extension.js is missing: build first (node esbuild.js --production)');
  const outDir = path.resolve(opts.outDir || REPO);
  fs.mkdirSync(outDir, { recursive: true });
  const stampsFile = path.join(outDir, '.cam-lens-vsix-inputs.json');
  /** @type {Record<string, string>} */
  const stamps = opts.reuse && fs.existsSync(stampsFile) ? JSON.parse(fs.readFileSync(stampsFile, 'utf8')) : {};

  const common = opts.reuse ? inputsHash() : '';
  const results = [];
  /** @type {{ dir: string, files: string[], ort: string[] } | undefined} */
  let staged;
  try {
    for (const t of targets) {
      const started = Date.now();
      const file = path.join(outDir, `cam-lens-${t.target}.vsix`);
      const print = opts.reuse ? fingerprint(common, t) : '';
      if (opts.reuse && stamps[t.target] === print && fs.existsSync(file)) {
        results.push({ target: t.target, file, bytes: fs.statSync(file).size, reused: true, ms: Date.now() - started });
        continue;
      }
      const modules = platformModules(t);
      if (!staged) {
        log('staging the extension (vsce ls over the checkout)');
        staged = await stage();
      }
      const img = path.join(staged.dir, 'node_modules', '@img');
      for (const name of fs.existsSync(img) ? fs.readdirSync(img) : []) {
        if (name.startsWith('sharp-')) fs.rmSync(path.join(img, name), { recursive: true, force: true });
      }
      for (const p of sharpPackages(t).packages) placeTree(path.join(modules, p.name), path.join(staged.dir, 'node_modules', p.name));
      fs.rmSync(path.join(staged.dir, 'node_modules', 'onnxruntime-node', 'bin'), { recursive: true, force: true });
      for (const f of ortFiles(staged.ort, t)) place(path.join(REPO, f), path.join(staged.dir, f));

      // vsce writes into the stage, then the rename replaces the old file in one step (a concurrent reader
      // sees the old VSIX or the new one, never half of one).
      const tmp = path.join(staged.dir, path.basename(file));
      log(`packaging ${t.target}`);
      const { createVSIX } = require('@vscode/vsce');
      await createVSIX({ cwd: staged.dir, packagePath: tmp, target: t.target, rewriteRelativeLinks: false, dependencies: true });
      try { fs.renameSync(tmp, file); } catch { fs.copyFileSync(tmp, file); fs.rmSync(tmp); }
      if (opts.reuse) {
        stamps[t.target] = print;
        fs.writeFileSync(stampsFile, JSON.stringify(stamps, null, 2) + '\n');
      }
      results.push({ target: t.target, file, bytes: fs.statSync(file).size, reused: false, ms: Date.now() - started });
    }
  } finally {
    if (staged) fs.rmSync(staged.dir, { recursive: true, force: true });
  }
  return results;
}

async function main() {
  const argv = process.argv.slice(2);
  const value = (/** @type {string} */ f) => (argv.indexOf(f) >= 0 ? argv[argv.indexOf(f) + 1] || '' : undefined);
  const targets = value('--target')?.split(',').map((s) => s.trim()).filter(Boolean);
  const json = argv.includes('--json');
  // vsce reports through console.log; with --json, stdout carries the results alone.
  if (json) console.log = (...a) => process.stderr.write(a.join(' ') + '\n');
  try {
    const results = await packageTargets({ targets, outDir: value('--out'), reuse: argv.includes('--reuse') });
    if (json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    else for (const r of results) log(`${path.relative(process.cwd(), r.file)}  ${(r.bytes / 1e6).toFixed(2)} MB${r.reused ? ' (up to date)' : ''}`);
  } catch (e) {
    const err = /** @type {Error} */ (e);
    log(`FAILED: ${err.message}`);
    process.exit(err instanceof RegistryUnreachable ? 3 : 1);
  }
}

module.exports = { TARGETS, hostTarget, packageTargets, RegistryUnreachable };

if (require.main === module) main();
