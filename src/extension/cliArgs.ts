/**
 * Command-line parsing shared by every `cam-lens` command (cli.ts, cliCompare.ts, cliStrategies.ts): parseArgs with
 * each way the command line itself can be wrong turned into a one-line UsageError (exit 2), and the option readers.
 */
import { parseArgs, type ParseArgsConfig } from 'util';
import { closestLabels } from './engine/metadata';
import { oneLine } from './engine/modelFormat';

/** What the command line alone shows to be wrong: exit code 2. */
export class UsageError extends Error {}

export type Values = Record<string, string | boolean | string[] | undefined>;

/**
 * Parses `args` against `options` (parseArgs' own messages run over several lines and name its syntax, not the
 * fix). `forCommand` is named in an unknown option's message; `example` shows how a value follows its option.
 */
export function parseCommandArgs(args: string[], options: NonNullable<ParseArgsConfig['options']>, example: string, forCommand?: string): Values {
  let values: Values;
  try {
    values = parseArgs({ args, options, strict: true, allowPositionals: false }).values as Values;
  } catch (e) {
    const err = e as Error & { code?: string };
    // "'--json'", or "'-q, --quiet'" for an option with a short name: the long name.
    const name = /'(?:-[^-' ], )?(--?[^' ]+)/.exec(err.message)?.[1] ?? '';
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const near = closestLabels(Object.keys(options), name.replace(/^-+/, ''), 1)[0];
      throw new UsageError(`unknown option ${name}${forCommand ? ` for "${forCommand}"` : ''}` + (near ? `; did you mean --${near.label}?` : ''));
    }
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      const arg = /'([^']*)'/.exec(err.message)?.[1] ?? '';
      throw new UsageError(`unexpected argument "${arg}": every value follows its option, as in ${example}`);
    }
    if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      if (/does not take an argument/.test(err.message)) throw new UsageError(`${name} takes no value`);
      if (/ambiguous/.test(err.message)) {
        const at = args.findIndex((a) => a === name);
        const next = at >= 0 ? args[at + 1] : undefined;
        throw new UsageError(`${name} needs a value, and the next argument "${next}" starts with a dash` +
          ` (write ${name}=${next} if that is the value)`);
      }
      throw new UsageError(`${name} needs a value`);
    }
    throw new UsageError(oneLine(err.message));
  }
  for (const [k, x] of Object.entries(values)) {
    if (x === '' || (Array.isArray(x) && x.some((s) => s.trim() === ''))) throw new UsageError(`--${k} needs a value`);
  }
  return values;
}

export function need(v: Values, name: string): string {
  const s = v[name];
  if (typeof s !== 'string' || s === '') throw new UsageError(`missing --${name}`);
  return s;
}

/** An integer option in [min, max], `def` where it is absent. */
export function intOption<D extends number | undefined>(v: Values, name: string, def: D, min: number, max: number): number | D {
  const s = v[name];
  if (s === undefined) return def;
  const n = Number(s);
  if (!/^\s*[+-]?\d+\s*$/.test(String(s)) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${s}"`);
  }
  return n;
}

/** `value` if it is one of `choices`, else a usage error naming them (and the nearest, where one is close). */
export function oneOf<T extends string>(value: string, choices: readonly T[], what: string): T {
  if ((choices as readonly string[]).includes(value)) return value as T;
  const near = closestLabels(choices, value, 1)[0];
  throw new UsageError(`unknown ${what} "${value}": expected ${choices.join(', ')}` + (near ? `; did you mean ${near.label}?` : ''));
}
