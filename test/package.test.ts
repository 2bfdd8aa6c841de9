/**
 * The published VSIX files: one per VS Code target, built by scripts/package/vsix.js. Each must carry its own
 * platform's sharp addon and libvips (in the right binary format and architecture) and no other platform's,
 * declare its target in the VSIX manifest, ship the wasm binaries but not tfjs-node, hold the files the
 * manifest points at (icon, walkthrough media, changelog), and stay within a size budget.
 *
 * The VSIX files are built once into the packaging cache and rebuilt only when their inputs change (the
 * script's --reuse), so a second run only reads them. The first run on a machine downloads the other
 * platforms' sharp packages from the npm registry; without the registry the test skips and says so.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { ROOT, ensureBuilt } from './helpers/build';
import { skipBecause } from './helpers/skip';

/** onnxruntime-node's native files per platform folder (bin/napi-v6/<os>/<arch>/): the binding and the CPU library. */
const ORT_NATIVES: Record<string, string[]> = {
  'linux/x64': ['onnxruntime_binding.node', 'libonnxruntime.so.1'],
  'linux/arm64': ['onnxruntime_binding.node', 'libonnxruntime.so.1'],
  'darwin/arm64': ['onnxruntime_binding.node', 'libonnxruntime.1.dylib'],
  'win32/x64': ['onnxruntime_binding.node', 'onnxruntime.dll'],
  'win32/arm64': ['onnxruntime_binding.node', 'onnxruntime.dll'],
};

/**
 * Target -> sharp's platform name, the binary format its machine code must be in, onnxruntime-node's platform
 * folder (none where the package has no build: darwin-x64, and musl), and the VSIX size budget.
 * Budgets are the sizes measured with the development build (the larger one: unminified bundles) plus about 1.2 MB
 * of headroom, so a stray dependency, a second platform's libvips (6-8 MB compressed) or a second platform's ONNX
 * Runtime (10-18 MB) fails. Measured on 2026-12-03 with onnxruntime-node 1.30.0: win32-x64 23.06 MB, win32-arm64
 * 22.39, darwin-x64 12.01, darwin-arm64 24.53, linux-x64 29.35, linux-arm64 22.06, alpine-x64 11.41 (ONNX Runtime's
 * share: 10.8, 10.9, 0.02 (JavaScript only), 13.2, 18.0, 10.5, 0.02 MB; the rest was 11.2-12.1 MB before it).
 */
const TARGETS: Record<string, { sharp: string; binary: string; libc?: 'glibc' | 'musl'; ort?: string; budgetMB: number }> = {
  'win32-x64': { sharp: 'win32-x64', binary: 'pe-x64', ort: 'win32/x64', budgetMB: 24.25 },
  'win32-arm64': { sharp: 'win32-arm64', binary: 'pe-arm64', ort: 'win32/arm64', budgetMB: 23.5 },
  'darwin-x64': { sharp: 'darwin-x64', binary: 'macho-x64', budgetMB: 13.25 },
  'darwin-arm64': { sharp: 'darwin-arm64', binary: 'macho-arm64', ort: 'darwin/arm64', budgetMB: 25.75 },
  'linux-x64': { sharp: 'linux-x64', binary: 'elf-x64', libc: 'glibc', ort: 'linux/x64', budgetMB: 30.5 },
  'linux-arm64': { sharp: 'linux-arm64', binary: 'elf-arm64', libc: 'glibc', ort: 'linux/arm64', budgetMB: 23.25 },
  'alpine-x64': { sharp: 'linuxmusl-x64', binary: 'elf-x64', libc: 'musl', budgetMB: 12.5 },
};

const CACHE = process.env.CAM_LENS_VSIX_CACHE ||
  path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'cam-lens-vsix');
const OUT = path.join(CACHE, 'test');

interface ZipEntry { name: string; method: number; compressedSize: number; size: number; offset: number }

/** A zip file's entries from its central directory (VSIX files are plain zips without zip64: they are small). */
function zipEntries(buf: Buffer): ZipEntry[] {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error('not a zip file (no end of central directory record)');
  const count = buf.readUInt16LE(eocd + 10);
  let off = buf.readUInt32LE(eocd + 16);
  const entries: ZipEntry[] = [];
  for (let k = 0; k < count; k++) {
    if (buf.readUInt32LE(off) !== 0x02014b50) throw new Error(`bad central directory entry ${k}`);
    const nameLen = buf.readUInt16LE(off + 28);
    entries.push({
      name: buf.toString('utf8', off + 46, off + 46 + nameLen),
      method: buf.readUInt16LE(off + 10),
      compressedSize: buf.readUInt32LE(off + 20),
      size: buf.readUInt32LE(off + 24),
      offset: buf.readUInt32LE(off + 42),
    });
    off += 46 + nameLen + buf.readUInt16LE(off + 30) + buf.readUInt16LE(off + 32);
  }
  return entries;
}

/** One entry's bytes: stored (0) or deflated (8), the only methods vsce's zip writer uses. */
function zipRead(buf: Buffer, e: ZipEntry): Buffer {
  if (buf.readUInt32LE(e.offset) !== 0x04034b50) throw new Error(`bad local header for ${e.name}`);
  const start = e.offset + 30 + buf.readUInt16LE(e.offset + 26) + buf.readUInt16LE(e.offset + 28);
  const raw = buf.subarray(start, start + e.compressedSize);
  if (e.method === 0) return raw;
  if (e.method === 8) return zlib.inflateRawSync(raw);
  throw new Error(`${e.name}: unsupported compression method ${e.method}`);
}

/** The format and machine of a native binary: ELF (Linux), Mach-O (macOS) or PE (Windows), x64 or arm64. */
function binaryKind(b: Buffer): string {
  if (b.readUInt32BE(0) === 0x7f454c46) {
    const machine = b.readUInt16LE(18);
    return `elf-${machine === 0x3e ? 'x64' : machine === 0xb7 ? 'arm64' : `0x${machine.toString(16)}`}`;
  }
  if (b.readUInt32LE(0) === 0xfeedfacf) {
    const cpu = b.readUInt32LE(4);
    return `macho-${cpu === 0x01000007 ? 'x64' : cpu === 0x0100000c ? 'arm64' : `0x${cpu.toString(16)}`}`;
  }
  if (b.toString('latin1', 0, 2) === 'MZ') {
    const pe = b.readUInt32LE(0x3c);
    if (b.toString('latin1', pe, pe + 4) === 'PE\0\0') {
      const machine = b.readUInt16LE(pe + 4);
      return `pe-${machine === 0x8664 ? 'x64' : machine === 0xaa64 ? 'arm64' : `0x${machine.toString(16)}`}`;
    }
  }
  return 'unknown';
}

/** Which C library an ELF binary links against, from the names of its needed libraries. */
function libcOf(b: Buffer): string {
  const s = b.toString('latin1');
  return s.includes('libc.musl-') ? 'musl' : s.includes('libc.so.6') ? 'glibc' : 'unknown';
}

const NATIVE = /\.(node|dll|dylib|so(\.\d+)*)$/;

interface Built { target: string; file: string; bytes: number; reused: boolean; ms: number }

describe('VSIX per platform (scripts/package/vsix.js)', function () {
  let built: Built[] = [];
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

  before(function () {
    this.timeout(10 * 60_000);
    ensureBuilt(['extension.js', 'worker.js', 'scoreWorker.js', 'cli.js', 'webview-explain.js', 'webview-inspector.js',
      'webview-triage.js', 'tfjs-backend-wasm.wasm'], ['src']);
    const started = Date.now();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'package', 'vsix.js'), '--reuse', '--json', '--out', OUT],
      { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
    if (r.status === 3) {
      skipBecause(this, 'registry-unreachable', r.stderr.trim().split('\n').pop()?.replace(/^vsix: FAILED: /, '') ?? 'the npm registry cannot be reached');
    }
    assert.equal(r.status, 0, `vsix.js failed:\n${r.stderr.trim().split('\n').slice(-15).join('\n')}`);
    built = JSON.parse(r.stdout);
    const fresh = built.filter((b) => !b.reused).map((b) => b.target);
    console.log(`      ${fresh.length ? `built ${fresh.join(', ')}` : 'all up to date'} in ${((Date.now() - started) / 1000).toFixed(1)} s: ` +
      built.map((b) => `${b.target} ${(b.bytes / 1e6).toFixed(2)} MB`).join(', '));
  });

  it('builds exactly the seven targets, each as cam-lens-<target>.vsix', function () {
    assert.deepEqual(built.map((b) => b.target).sort(), Object.keys(TARGETS).sort());
    for (const b of built) assert.equal(path.basename(b.file), `cam-lens-${b.target}.vsix`);
  });

  for (const [target, want] of Object.entries(TARGETS)) {
    it(`${target}: holds @img/sharp-${want.sharp} and its libvips as ${want.binary} binaries, ${want.ort ? `ONNX Runtime's ${want.ort} binding and library, ` : 'no ONNX Runtime binary, '}no other platform's, within ${want.budgetMB} MB`, function () {
      const b = built.find((x) => x.target === target);
      assert.ok(b, `${target} was not built`);
      const buf = fs.readFileSync(b.file);
      const entries = zipEntries(buf);
      const byName = new Map(entries.map((e) => [e.name, e]));
      const read = (name: string) => {
        const e = byName.get(name);
        assert.ok(e, `${target}: ${name} is missing`);
        return zipRead(buf, e);
      };

      // The target is declared where VS Code and the Marketplace read it: the VSIX manifest's Identity.
      const vsixManifest = read('extension.vsixmanifest').toString('utf8');
      assert.match(vsixManifest, new RegExp(`<Identity [^>]*TargetPlatform="${target}"`), `${target}: TargetPlatform in extension.vsixmanifest`);
      const pkg = JSON.parse(read('extension/package.json').toString('utf8'));
      assert.equal(`${pkg.publisher}.${pkg.name}@${pkg.version}`, `${manifest.publisher}.${manifest.name}@${manifest.version}`);

      // sharp: this platform's addon and libvips, nothing native anywhere else.
      const img = new Set(entries.map((e) => /^extension\/node_modules\/@img\/([^/]+)\//.exec(e.name)?.[1]).filter((n): n is string => !!n));
      const libvipsPackage = target.startsWith('win32') ? undefined : `sharp-libvips-${want.sharp}`;
      assert.deepEqual([...img].sort(), ['colour', `sharp-${want.sharp}`, ...(libvipsPackage ? [libvipsPackage] : [])].sort(), `${target}: @img packages`);
      const natives = entries.filter((e) => NATIVE.test(e.name)).map((e) => e.name);
      const addon = `extension/node_modules/@img/sharp-${want.sharp}/lib/sharp-${want.sharp}.node`;
      const libvips = natives.filter((n) => target.startsWith('win32')
        ? n.startsWith(`extension/node_modules/@img/sharp-${want.sharp}/lib/libvips-`) && n.endsWith('.dll')
        : n.startsWith(`extension/node_modules/@img/${libvipsPackage}/lib/libvips-cpp.`));
      assert.ok(natives.includes(addon), `${target}: ${addon} is missing`);
      assert.ok(libvips.length >= 1, `${target}: no libvips library (natives: ${natives.join(', ')})`);
      // ONNX Runtime: this platform's binding and CPU library, nothing else (no DirectML), or nothing where the
      // package has no build for it (the engine then runs ONNX models on tfjs alone).
      const ort = natives.filter((n) => n.startsWith('extension/node_modules/onnxruntime-node/'));
      assert.deepEqual(ort.sort(), (want.ort ? ORT_NATIVES[want.ort].map((f) => `extension/node_modules/onnxruntime-node/bin/napi-v6/${want.ort}/${f}`) : []).sort(),
        `${target}: onnxruntime-node binaries`);
      assert.ok(byName.has('extension/node_modules/onnxruntime-node/dist/index.js') && byName.has('extension/node_modules/onnxruntime-common/dist/cjs/index.js'),
        `${target}: onnxruntime-node's JavaScript`);
      assert.deepEqual(natives.filter((n) => n !== addon && !libvips.includes(n) && !ort.includes(n)), [], `${target}: native files of another package`);
      for (const n of [addon, ...libvips, ...ort]) {
        const bin = read(n);
        assert.ok(bin.length > 100_000, `${n}: only ${bin.length} bytes`);
        assert.equal(binaryKind(bin), want.binary, `${n}: binary format`);
        if (want.libc) assert.equal(libcOf(bin), want.libc, `${n}: C library`);
      }

      // TensorFlow.js: the WebAssembly backend's binaries, and the threaded build's glue and pthread worker script
      // (engine/backend.ts starts them as files), never the optional native tfjs-node.
      for (const w of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm',
        'tfjs-backend-wasm-threaded-simd.js', 'tfjs-backend-wasm-threaded-simd.worker.js']) {
        assert.ok(byName.has(`extension/dist/${w}`), `${target}: dist/${w} is missing`);
      }
      assert.deepEqual(entries.filter((e) => /node_modules\/@tensorflow\/tfjs-node/.test(e.name)).map((e) => e.name), [], `${target}: tfjs-node`);
      // The DICOM codecs' decoders (engine/dicom/codecs.ts reads them next to the bundle): JPEG-LS and JPEG 2000.
      for (const w of ['charlswasm_decode.wasm', 'openjpegwasm_decode.wasm']) {
        assert.ok((byName.get(`extension/dist/${w}`)?.size ?? 0) > 100_000, `${target}: dist/${w} is missing`);
      }

      // What the manifest points at: the icon (a PNG), the walkthrough media, and the changelog.
      assert.ok(pkg.icon, 'package.json has no icon');
      assert.equal(read(`extension/${pkg.icon}`).readUInt32BE(0), 0x89504e47, `${pkg.icon} is not a PNG`);
      const media = (pkg.contributes?.walkthroughs ?? []).flatMap((w: any) => w.steps.flatMap((s: any) =>
        [s.media?.markdown, s.media?.svg, typeof s.media?.image === 'string' ? s.media.image : undefined].filter(Boolean)));
      assert.ok(media.length >= 4, `${target}: walkthrough media ${media.join(', ')}`);
      for (const m of media) assert.ok(byName.has(`extension/${m}`), `${target}: walkthrough media ${m} is missing`);
      assert.ok(byName.has('extension/changelog.md'), `${target}: changelog.md is missing`);

      const mb = b.bytes / 1e6;
      assert.ok(mb <= want.budgetMB, `${target}: ${mb.toFixed(2)} MB is over its ${want.budgetMB} MB budget`);
    });
  }
});
