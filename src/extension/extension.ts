/**
 * Extension entry: wiring only. Commands live in commands/, panels in panels/, compute in engine/.
 */
import * as vscode from 'vscode';
import { registerPlaceholderCommands } from './commands/placeholder';

export function activate(context: vscode.ExtensionContext): void {
  registerPlaceholderCommands(context);
}

export function deactivate(): void {
  // Nothing to release: panels and the engine are disposed through context.subscriptions.
}
