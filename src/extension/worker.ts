// engine worker: filled in later
export {};
