// zod's default messages ("Invalid input: expected string, received undefined", "Too small:
// expected string to have >=1 characters") in the words of a configuration: what the setting
// needs. The value is never repeated: it may be a secret. Messages a schema gives itself win.
import type * as z from 'zod';

function bound(kind: 'least' | 'most', inclusive: boolean | undefined, limit: unknown): string {
  if (inclusive === false) return `must be ${kind === 'least' ? 'more' : 'less'} than ${String(limit)}`;
  return `must be at ${kind} ${String(limit)}`;
}

export function configIssueMessage(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required';
      if (issue.expected === 'object') return 'expected a section of settings (a YAML mapping), not a single value';
      if (issue.expected === 'int') return 'expected a whole number';
      if (issue.expected === 'number') return 'expected a number';
      if (issue.expected === 'string') return 'expected text';
      return `expected ${issue.expected}`;
    case 'too_small':
      if (issue.origin === 'string')
        return Number(issue.minimum) <= 1 ? 'must not be empty (unset it instead)' : `must be at least ${String(issue.minimum)} characters`;
      return bound('least', issue.inclusive, issue.minimum);
    case 'too_big':
      return issue.origin === 'string'
        ? `must be at most ${String(issue.maximum)} characters`
        : bound('most', issue.inclusive, issue.maximum);
    case 'invalid_value':
      return `expected one of: ${issue.values.map(String).join(', ')}`;
    case 'invalid_union':
      return 'not a value this setting takes';
    default:
      return undefined;
  }
}
