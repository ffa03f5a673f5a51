/**
 * What must be undone however a run ends: processes started, folders written.
 * Each benchmark releases its own on the way out; `cleanupAll` catches the rest
 * (an error, Ctrl-C), newest first.
 */

type Undo = () => Promise<void> | void;

const pending = new Map<number, { what: string; undo: Undo }>();
let next = 0;

/** Registers an undo step; the returned function runs it (once) and unregisters it. */
export function onCleanup(what: string, undo: Undo): () => Promise<void> {
  const id = next++;
  pending.set(id, { what, undo });
  return async () => {
    if (!pending.delete(id)) return;
    await undo();
  };
}

/** A point in time: `cleanupAll(mark)` undoes only what was registered after it. */
export function mark(): number {
  return next;
}

/** Runs every step still registered (since `since`), newest first; a step that fails is reported and skipped. */
export async function cleanupAll(since = 0): Promise<void> {
  const steps = [...pending.entries()].filter(([id]) => id >= since).sort(([a], [b]) => b - a);
  for (const [id] of steps) pending.delete(id);
  for (const [, { what, undo }] of steps) {
    try {
      await undo();
    } catch (e) {
      process.stderr.write(`bench: cleaning up ${what} failed: ${(e as Error).message}\n`);
    }
  }
}
