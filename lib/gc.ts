// A full garbage collection on demand, for after a rare job that allocates
// far more than it keeps (a proxy's full sync: tens of MB of rule text).
// V8 keeps the heap it grew to for that job, and its memory reducer waits
// for an idle mutator that a busy proxy never is; one collection right after
// returns it (measured at 5k services: 205-218 -> 147-164 MB RSS, ~3 ms).
// gc() is not on the main context without --expose-gc; the flag set at run
// time puts it on new contexts, and a collection is for the whole heap.
import v8 from 'node:v8';
import vm from 'node:vm';

let collect: (() => void) | null | undefined;

/** Runs a full collection; false when this Node cannot be asked to. */
export function collectGarbage(): boolean {
  if (collect === undefined) {
    const own = (globalThis as { gc?: () => void }).gc;
    try {
      if (own) collect = own;
      else {
        v8.setFlagsFromString('--expose-gc');
        collect = vm.runInNewContext('gc') as () => void;
      }
    } catch {
      collect = null;
    }
  }
  if (!collect) return false;
  collect();
  return true;
}
