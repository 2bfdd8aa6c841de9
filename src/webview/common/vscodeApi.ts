/**
 * The webview side of VS Code's messaging and state API. `acquireVsCodeApi` may be called only once per page, so
 * each panel calls `vscodeApi()` once at start-up and passes the result around.
 */

export interface VsCodeApi<Out, State> {
  postMessage(message: Out): void;
  getState(): unknown;
  setState(state: State): void;
}

declare global {
  /** Injected by VS Code into every webview that has scripts enabled (and by the webview tests' fake host). */
  function acquireVsCodeApi(): { postMessage(m: unknown): void; getState(): unknown; setState(s: unknown): void };
}

export function vscodeApi<Out, State>(): VsCodeApi<Out, State> {
  if (typeof acquireVsCodeApi !== 'function') {
    // Opened outside VS Code (a browser, for styling work): messages go nowhere, state lives in memory.
    let state: unknown;
    return {
      postMessage: () => undefined,
      getState: () => state,
      setState: (s) => {
        state = s;
      },
    };
  }
  const api = acquireVsCodeApi();
  return {
    postMessage: (m) => api.postMessage(m),
    getState: () => api.getState(),
    setState: (s) => api.setState(s),
  };
}

/**
 * Calls `handle` with every message from the extension host that `parse` accepts; a message it rejects is
 * logged to the webview's console with the reason and otherwise ignored (a newer or older host may send
 * what this page does not know).
 */
export function onHostMessage<T>(parse: (data: unknown) => { ok: true; message: T } | { ok: false; reason: string }, handle: (message: T) => void): void {
  window.addEventListener('message', (e: MessageEvent) => {
    const parsed = parse(e.data);
    if (!parsed.ok) {
      console.warn(`CAM Lens: ignored a message from the host: ${parsed.reason}`);
      return;
    }
    handle(parsed.message);
  });
}
