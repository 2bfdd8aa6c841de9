// Explain panel UI: written by the webview work.
export {};
