// Webview entry point: filled in by the panel work.
export {};
