/** The "CAM Lens" output channel: one line per computation, full details for errors. */
import * as path from 'path';
import * as vscode from 'vscode';
import type { EngineLogEvent } from './engineClient';

export class Log implements vscode.Disposable {
  readonly channel = vscode.window.createOutputChannel('CAM Lens');

  line(text: string): void {
    this.channel.appendLine(`[${new Date().toISOString().slice(11, 23)}] ${text}`);
  }

  error(what: string, e: unknown): void {
    const err = e as { name?: string; message?: string; code?: string; hint?: string; stack?: string };
    this.line(`ERROR ${what}: ${err?.code ? `${err.code} ` : ''}${err?.message ?? String(e)}${err?.hint ? ` (${err.hint})` : ''}`);
    if (err?.stack) this.channel.appendLine(err.stack);
  }

  engine(e: EngineLogEvent): void {
    if (e.kind === 'worker') {
      this.line(`engine: ${e.message}`);
      return;
    }
    const l = e.entry;
    const parts = [
      l.type,
      l.model ? `model=${path.basename(path.dirname(l.model))}/${path.basename(l.model)}` : '',
      l.image ? `image=${path.basename(l.image)}` : '',
      l.method ? `method=${l.method}` : '',
      l.layer ? `layer=${l.layer}` : '',
      l.classIndex !== undefined ? `class=${l.classIndex}` : '',
      `backend=${l.backend}`,
      `${l.ms.toFixed(1)} ms`,
      l.cached ? '(cached)' : '',
    ].filter(Boolean);
    this.line(parts.join(' '));
    if (e.error) this.error(l.type, e.error);
  }

  dispose(): void {
    this.channel.dispose();
  }
}
