/**
 * What both front ends check before a Cloud Tasks call runs: its credentials and the faults a
 * test asked for.
 *
 * Owns the authentication rule (a call must carry `Authorization: Bearer <token>` with a
 * non-empty token, whatever the token; refused as UNAUTHENTICATED with Google's message
 * otherwise, unless the emulator is open) and the fault injector (the next N calls of an RPC
 * fail with a chosen status, on either transport).
 */
import { ApiError, type RpcStatus } from './errors.js';
import { SERVED_RPCS, type ServedRpc } from './routes.js';

/** Google's message for a call without credentials. */
export const UNAUTHENTICATED_MESSAGE =
  'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie ' +
  'or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.';

/** The challenge Google's REST front end sends with a 401. */
export const WWW_AUTHENTICATE = 'Bearer realm="https://accounts.google.com/"';

/** A status a test may inject: any canonical code but OK. */
export type FaultStatus = Exclude<RpcStatus, 'OK'>;

/** The messages Google gives for a few statuses; others get a message naming the fault. */
const FAULT_MESSAGES: Partial<Record<FaultStatus, string>> = {
  UNAVAILABLE: 'The service is currently unavailable.',
  INTERNAL: 'Internal error encountered.',
  DEADLINE_EXCEEDED: 'Deadline exceeded.',
};

/** Whether an Authorization value is a bearer credential with a non-empty token. */
export function isBearer(value: string | undefined): boolean {
  return value !== undefined && /^Bearer[ \t]+\S/i.test(value.trim());
}

export class AccessControl {
  private readonly faults = new Map<ServedRpc, { status: FaultStatus; times: number }[]>();

  constructor(private readonly open: boolean) {}

  /** Throws UNAUTHENTICATED unless the call carries a bearer token or the emulator is open. */
  authenticate(authorization: string | undefined): void {
    if (this.open || isBearer(authorization)) return;
    throw new ApiError('UNAUTHENTICATED', UNAUTHENTICATED_MESSAGE);
  }

  /** Makes the next `times` calls of `rpc` fail with `status`, after any faults already queued for it. */
  inject(rpc: string, status: FaultStatus, times: number): void {
    if (!(SERVED_RPCS as readonly string[]).includes(rpc)) {
      throw new Error(`injectFault: "${rpc}" is not a Cloud Tasks RPC the emulator serves (${SERVED_RPCS.join(', ')})`);
    }
    if (!Object.hasOwn(FAULT_STATUSES, status)) {
      throw new Error(`injectFault: "${status}" is not a canonical error status`);
    }
    if (!Number.isInteger(times) || times < 1) throw new Error(`injectFault: times must be a positive integer; got ${times}`);
    const queue = this.faults.get(rpc as ServedRpc) ?? [];
    queue.push({ status, times });
    this.faults.set(rpc as ServedRpc, queue);
  }

  /** Faults thrown after the call was carried out (see injectAfter). */
  private readonly after = new Map<string, { times: number; then: number; match: RegExp | undefined }>();
  /** Task names whose next creations are refused with UNAVAILABLE before they run, and how many. */
  private readonly refused = new Map<string, number>();

  /**
   * The next `times` calls of `rpc` (whose task name matches `match`, when given) are carried
   * out, then answered with UNAVAILABLE: the caller cannot tell that they took effect. For
   * CreateTask, each is followed by `then` creations of the same name refused with UNAVAILABLE
   * before they run, as a service that stays unavailable for the caller's retries.
   */
  injectAfter(rpc: string, times: number, then = 0, match?: RegExp): void {
    if (!(SERVED_RPCS as readonly string[]).includes(rpc)) throw new Error(`injectFaultAfter: "${rpc}" is not a Cloud Tasks RPC the emulator serves`);
    this.after.set(rpc, { times: (this.after.get(rpc)?.times ?? 0) + times, then, match });
  }

  /** Throws UNAVAILABLE for a call already carried out, when injectAfter asked for it. */
  takeAfterFault(rpc: string, taskName?: unknown): void {
    const a = this.after.get(rpc);
    if (!a || a.times <= 0) return;
    const name = typeof taskName === 'string' ? taskName : '';
    if (a.match && !a.match.test(name)) return;
    if (a.times === 1) this.after.delete(rpc);
    else a.times--;
    if (a.then > 0 && name) this.refused.set(name, a.then);
    throw new ApiError('UNAVAILABLE', FAULT_MESSAGES.UNAVAILABLE ?? `${rpc} failed: UNAVAILABLE (injected fault)`);
  }

  /** With flakyCreates: how many times each task name's creation has failed so far. */
  private readonly flaky = new Map<string, number>();
  private flakyTimes = 0;

  /** Makes the creation of every new task name fail `times` times with UNAVAILABLE before it goes through; 0 turns it off. */
  flakyCreates(times: number): void {
    if (!Number.isInteger(times) || times < 0) throw new Error(`flakyCreates: times must be a non-negative integer; got ${times}`);
    this.flakyTimes = times;
    this.flaky.clear();
  }

  /** Throws UNAVAILABLE while the creation of `taskName` has failed fewer times than flakyCreates asks. */
  takeCreateFault(taskName: unknown): void {
    const refusals = typeof taskName === 'string' ? (this.refused.get(taskName) ?? 0) : 0;
    if (refusals > 0) {
      this.refused.set(taskName as string, refusals - 1);
      throw new ApiError('UNAVAILABLE', FAULT_MESSAGES.UNAVAILABLE ?? 'CreateTask failed: UNAVAILABLE (injected fault)');
    }
    if (this.flakyTimes === 0 || typeof taskName !== 'string' || taskName === '') return;
    const failed = this.flaky.get(taskName) ?? 0;
    if (failed >= this.flakyTimes) return;
    this.flaky.set(taskName, failed + 1);
    throw new ApiError('UNAVAILABLE', FAULT_MESSAGES.UNAVAILABLE ?? 'CreateTask failed: UNAVAILABLE (injected fault)');
  }

  /** Throws the next injected fault of `rpc`, if one is pending. */
  takeFault(rpc: ServedRpc): void {
    const queue = this.faults.get(rpc);
    const fault = queue?.[0];
    if (!queue || !fault) return;
    fault.times--;
    if (fault.times <= 0) queue.shift();
    if (queue.length === 0) this.faults.delete(rpc);
    throw new ApiError(fault.status, FAULT_MESSAGES[fault.status] ?? `${rpc} failed: ${fault.status} (injected fault)`);
  }
}

const FAULT_STATUSES: Record<FaultStatus, true> = {
  CANCELLED: true,
  UNKNOWN: true,
  INVALID_ARGUMENT: true,
  DEADLINE_EXCEEDED: true,
  NOT_FOUND: true,
  ALREADY_EXISTS: true,
  PERMISSION_DENIED: true,
  RESOURCE_EXHAUSTED: true,
  FAILED_PRECONDITION: true,
  ABORTED: true,
  OUT_OF_RANGE: true,
  UNIMPLEMENTED: true,
  INTERNAL: true,
  UNAVAILABLE: true,
  DATA_LOSS: true,
  UNAUTHENTICATED: true,
};
