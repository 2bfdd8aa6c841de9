// Model inspector UI: written by the webview work.
export {};
