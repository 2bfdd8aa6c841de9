/**
 * Extension entry: wiring only. Commands live in commands/, panels in panels/, compute in the engine
 * worker (engineClient.ts ↔ worker.ts), so the extension host's event loop never runs a model.
 */
import * as vscode from 'vscode';
import { EngineClient } from './engineClient';
import type { BackendChoice, OnnxRuntimeChoice } from './workerProtocol';
import { Log } from './log';
import { ModelChoice } from './modelChoice';
import { EXPLAIN_VIEW_TYPE, ExplainPanels } from './panels/explainPanel';
import { InspectorPanels } from './panels/inspectorPanel';
import { registerShowCam } from './commands/showCam';
import { registerInspectModel } from './commands/inspectModel';
import { registerSelectModel } from './commands/selectModel';
import { registerFindMislabeled } from './commands/findMislabeled';
import { registerShowStrategies } from './commands/showStrategies';
import { registerCompareModels } from './commands/compareModels';

export function activate(context: vscode.ExtensionContext): void {
  const log = new Log();
  const backend = () => vscode.workspace.getConfiguration('camLens').get<BackendChoice>('backend', 'auto');
  /** camLens.threads: 0 = one per core (the engine caps it); anything malformed counts as 0. */
  const threads = () => {
    const n = vscode.workspace.getConfiguration('camLens').get<number>('threads', 0);
    return Number.isInteger(n) && n >= 0 ? n : 0;
  };
  /** camLens.onnxRuntime: 'off' turns ONNX Runtime off; anything else is 'auto'. */
  const onnxRuntime = (): OnnxRuntimeChoice => (vscode.workspace.getConfiguration('camLens').get<string>('onnxRuntime', 'auto') === 'off' ? 'off' : 'auto');
  const engine = new EngineClient({
    workerPath: context.asAbsolutePath('dist/worker.js'),
    backend: backend(),
    threads: threads(),
    onnxRuntime: onnxRuntime(),
    log: (e) => log.engine(e),
  });
  const models = new ModelChoice(context);
  const services = { context, engine, models, log };
  const explain = new ExplainPanels(services);
  const inspector = new InspectorPanels(services);
  context.subscriptions.push(
    log,
    models,
    { dispose: () => void engine.dispose() },
    registerShowCam(explain),
    registerInspectModel(inspector),
    registerSelectModel(models),
    registerFindMislabeled(services),
    registerShowStrategies(services),
    registerCompareModels(services),
    vscode.window.registerWebviewPanelSerializer(EXPLAIN_VIEW_TYPE, explain),
    models.onDidChange((e) => explain.followModel(e.previous, e.current)),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration('camLens.backend') || e.affectsConfiguration('camLens.threads') || e.affectsConfiguration('camLens.onnxRuntime')) {
        try {
          const status = await engine.setBackend(backend(), undefined, threads(), onnxRuntime());
          models.setBackend(status.name, status.threads);
          log.line(`backend: ${status.name}, ${status.threads} thread${status.threads === 1 ? '' : 's'}${status.notes.length ? ` (${status.notes.join('; ')})` : ''}`);
          explain.refreshAll();
        } catch (err) {
          log.error('backend', err);
          void vscode.window.showErrorMessage(`CAM Lens: ${(err as Error).message}`);
        }
      }
      if (e.affectsConfiguration('camLens.model')) {
        models.update();
        explain.refreshAll();
      }
    }),
  );
  log.line(`CAM Lens ${context.extension.packageJSON.version as string} activated`);
}

export function deactivate(): void {
  // Everything is released through context.subscriptions (the engine worker included).
}
