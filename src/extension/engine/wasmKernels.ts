/** Placeholder: the gradient kernels TensorFlow.js's wasm backend lacks are registered here. */
export function registerWasmGradientKernels(): void {
  // filled in by the wasm-kernels work
}
