import { statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

export const isFile = (path: string): boolean => {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
};

/**
 * The nearest file `name` (a relative path) at or above `cwd`, stopping at the filesystem root, or null: how
 * wrangler finds its config, and how `--local` finds the stack file `npm start` wrote.
 */
export function findUp(name: string, cwd: string): string | null {
  let dir = resolve(cwd);
  for (;;) {
    const candidate = join(dir, name);
    if (isFile(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}
