// One build script, three bundles (see STYLE.md): the extension host (node, cjs), the engine worker and
// the CLI (node, cjs), and the webview (browser, iife). The TensorFlow.js WebAssembly binaries are copied
// next to the node bundles, where the engine looks for them at run time.
'use strict';
const esbuild = require('esbuild');
const fs = require('fs');
const path = require('path');

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');
const outdir = path.join(__dirname, 'dist');

/** Native or optional modules stay outside the bundles and are resolved from node_modules at run time. */
// TensorFlow.js stays external so that tfjs-node, when installed, registers its backend on the same
// tfjs-core instance the engine uses (a bundled copy would be a second, separate engine).
// onnxruntime-node loads its platform's binary by a computed path (formats/onnx/ortRuntime.ts).
const nodeExternals = ['vscode', 'sharp', '@tensorflow/*', 'onnxruntime-node'];

function copyWasm() {
  const pkg = path.join(__dirname, 'node_modules', '@tensorflow', 'tfjs-backend-wasm');
  const src = path.join(pkg, 'dist');
  fs.mkdirSync(outdir, { recursive: true });
  for (const f of fs.readdirSync(src)) {
    if (f.endsWith('.wasm')) fs.copyFileSync(path.join(src, f), path.join(outdir, f));
  }
  // The threaded build (engine/backend.ts threadedWasmBackend): Emscripten's glue, which the engine loads and
  // every pthread worker imports, and the pthread worker script. The package keeps the script as a string
  // export whose template literal turned the script's `\n` escapes into line breaks: they are escaped back (as
  // backend.ts pthreadWorkerSource does), giving the one-line script Node runs as a worker.
  const glue = 'tfjs-backend-wasm-threaded-simd.js';
  fs.copyFileSync(path.join(pkg, 'wasm-out', glue), path.join(outdir, glue));
  const { wasmWorkerContents } = require(path.join(pkg, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js'));
  fs.writeFileSync(path.join(outdir, 'tfjs-backend-wasm-threaded-simd.worker.js'), wasmWorkerContents.replace(/\n/g, '\\n'));
  // The DICOM codecs' decoder builds (engine/dicom/codecs.ts reads them next to the bundle): CharLS for JPEG-LS,
  // OpenJPEG for JPEG 2000. Their Emscripten glue is bundled; only the .wasm binaries are files.
  for (const [name, file] of [['codec-charls', 'charlswasm_decode.wasm'], ['codec-openjpeg', 'openjpegwasm_decode.wasm']]) {
    fs.copyFileSync(path.join(__dirname, 'node_modules', '@cornerstonejs', name, 'dist', file), path.join(outdir, file));
  }
}

/** Prints build errors in the problem-matcher friendly form VS Code's esbuild tasks expect. */
const reporter = {
  name: 'reporter',
  setup(build) {
    build.onEnd((result) => {
      for (const { text, location } of result.errors) {
        console.error(`✘ [ERROR] ${text}`);
        if (location) console.error(`    ${location.file}:${location.line}:${location.column}:`);
      }
      if (watch) console.log(`[watch] build finished (${result.errors.length} errors)`);
    });
  },
};

const common = {
  bundle: true,
  minify: production,
  sourcemap: !production,
  sourcesContent: false,
  logLevel: 'warning',
  plugins: [reporter],
};

const builds = [
  {
    ...common,
    entryPoints: {
      extension: 'src/extension/extension.ts',
      worker: 'src/extension/worker.ts',
      scoreWorker: 'src/extension/scoreWorker.ts',
      scanWorker: 'src/extension/scanWorker.ts',
    },
    platform: 'node',
    format: 'cjs',
    target: 'node18',
    outdir,
    external: nodeExternals,
  },
  {
    ...common,
    entryPoints: { cli: 'src/extension/cli.ts' },
    platform: 'node',
    format: 'cjs',
    target: 'node18',
    outdir,
    external: nodeExternals,
    banner: { js: '#!/usr/bin/env node' },
  },
  {
    ...common,
    entryPoints: {
      'webview-explain': 'src/webview/explain/main.ts',
      'webview-inspector': 'src/webview/inspector/main.ts',
      'webview-triage': 'src/webview/triage/main.ts',
      'webview-strategies': 'src/webview/strategies/main.ts',
      'webview-compare': 'src/webview/compare/main.ts',
    },
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    outdir,
  },
];

async function main() {
  // A fresh dist/ each full build, so that nothing stale ships in the VSIX.
  if (!watch) fs.rmSync(outdir, { recursive: true, force: true });
  copyWasm();
  const contexts = await Promise.all(builds.map((b) => esbuild.context(b)));
  if (watch) {
    await Promise.all(contexts.map((c) => c.watch()));
    return;
  }
  await Promise.all(contexts.map((c) => c.rebuild()));
  await Promise.all(contexts.map((c) => c.dispose()));
  fs.chmodSync(path.join(outdir, 'cli.js'), 0o755);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
