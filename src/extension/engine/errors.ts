/**
 * Typed engine errors. The engine never prints: it throws a CamLensError whose message names the values
 * that were wrong, and whose `code` lets the host (panel, notification, CLI exit code) react precisely.
 */
export type ErrorCode =
  | 'FILE_NOT_FOUND'
  | 'NOT_AN_IMAGE'
  | 'IMAGE_TOO_LARGE'
  | 'MODEL_INVALID'
  | 'WEIGHT_PATH_ESCAPE'
  | 'SHARD_MISSING'
  | 'SHARD_SIZE_MISMATCH'
  | 'MANIFEST_MISMATCH'
  | 'METADATA_INVALID'
  | 'UNKNOWN_METHOD'
  | 'UNKNOWN_CLASS'
  | 'UNKNOWN_LAYER'
  | 'UNKNOWN_OUTPUT'
  | 'LAYER_NOT_SPATIAL'
  | 'METHOD_NOT_APPLICABLE'
  | 'NO_SPATIAL_LAYER'
  | 'BACKEND_UNAVAILABLE'
  | 'UNSUPPORTED_MODEL'
  | 'BAD_ARGUMENT'
  | 'CANCELLED';

export class CamLensError extends Error {
  override readonly name = 'CamLensError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** A short next step for the user ("pick another layer"), shown under the message in the panel. */
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** Thrown by long-running work when its AbortSignal fires; partial results are kept by the caller. */
export class CancelledError extends CamLensError {
  constructor(what = 'operation') {
    super('CANCELLED', `${what} was cancelled`);
  }
}

export function throwIfAborted(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw new CancelledError(what);
}

/** Plain `{name, message}` form of any thrown value, for the protocol and the CLI. */
export function toErrorInfo(e: unknown): { name: string; message: string; code?: ErrorCode; hint?: string } {
  if (e instanceof CamLensError) return { name: e.name, message: e.message, code: e.code, hint: e.hint };
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}
