/**
 * The CLI's ACI client: builds requests to the connector's `action` endpoint, adds the caller's
 * credentials (an identity token, the shared secret, or an ID token minted from service-account
 * credentials by google-auth-library), bounds every call with a timeout, and reads the
 * `simplejson` answer (docs/CONTRACT.md §6).
 */
import { GoogleAuth } from 'google-auth-library';

/** What a JSON value of the `simplejson` tree is, loosely. */
export type Json = Record<string, unknown>;

/** How the CLI proves who it is to the endpoint. */
export interface Credentials {
  /** A Google identity token, sent as `Authorization: Bearer`. */
  idToken?: string;
  /** The shared secret, sent as `X-ACI-Secret`. */
  secret?: string;
  /** Mint an ID token for the endpoint from Application Default Credentials (a service account). */
  googleAuth?: boolean;
}

/** An ACI answer with `response` ERROR, or an HTTP failure before one. */
export class AciFailure extends Error {
  override readonly name = 'AciFailure';
  constructor(
    message: string,
    readonly status: number,
    readonly errorId?: string,
    readonly body?: unknown,
  ) {
    super(message);
  }
}

export interface AciClient {
  readonly endpoint: string;
  /** Sends one ACI request (GET, or POST for `post`); answers `responsedata` of a SUCCESS. */
  call(params: Record<string, string>, opts?: { post?: boolean }): Promise<Json>;
  /** Sends one ACI request and answers the raw response (View's message bytes). */
  raw(params: Record<string, string>): Promise<Response>;
}

const TIMEOUT_MS = 30_000;

export function createAciClient(endpoint: string, creds: Credentials, timeoutMs = TIMEOUT_MS): AciClient {
  const base = new URL(endpoint);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  let idClient: Promise<{ getRequestHeaders(url?: string): Promise<Headers> }> | undefined;

  const headers = async (): Promise<Record<string, string>> => {
    const h: Record<string, string> = {};
    if (creds.secret) h['X-ACI-Secret'] = creds.secret;
    if (creds.idToken) h['Authorization'] = `Bearer ${creds.idToken}`;
    else if (creds.googleAuth) {
      // The audience is the endpoint's URL, as Cloud Run expects of its invokers.
      idClient ??= new GoogleAuth().getIdTokenClient(base.origin);
      const got = await (await idClient).getRequestHeaders(base.href);
      const auth = got.get('authorization');
      if (auth) h['Authorization'] = auth;
    }
    return h;
  };

  const send = async (params: Record<string, string>, post: boolean): Promise<Response> => {
    const q = new URLSearchParams(params);
    const url = post ? base.href : `${base.href}?${q}`;
    try {
      return await fetch(url, {
        method: post ? 'POST' : 'GET',
        headers: { ...(await headers()), ...(post ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}) },
        body: post ? q.toString() : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new AciFailure(`cannot reach ${base.href}: ${cause}`, 0);
    }
  };

  return {
    endpoint: base.href,
    async call(params, opts = {}) {
      const r = await send({ ...params, ResponseFormat: 'simplejson' }, opts.post ?? false);
      const text = await r.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new AciFailure(`${base.href} answered HTTP ${r.status}: ${text.trim().slice(0, 300)}`, r.status);
      }
      const envelope = (body as Json).autnresponse as Json | undefined;
      const data = (envelope?.responsedata ?? {}) as Json;
      if (envelope?.response !== 'SUCCESS') {
        const err = (data.error ?? {}) as Json;
        const id = typeof err.errorid === 'string' ? err.errorid : undefined;
        const msg = typeof err.errorstring === 'string' ? err.errorstring : text.slice(0, 300);
        throw new AciFailure(`${id ?? `HTTP ${r.status}`}: ${msg}`, r.status, id, body);
      }
      return data;
    },
    async raw(params) {
      const r = await send(params, false);
      if (!r.ok) {
        const text = await r.text();
        let msg = text.trim().slice(0, 300);
        try {
          const err = ((JSON.parse(text) as Json).autnresponse as Json | undefined)?.responsedata as Json | undefined;
          const e = (err?.error ?? {}) as Json;
          if (typeof e.errorstring === 'string') msg = `${String(e.errorid)}: ${e.errorstring}`;
        } catch {
          // Not JSON (XML or plain text): the text itself says what went wrong.
        }
        throw new AciFailure(msg, r.status);
      }
      return r;
    },
  };
}

/** A list in the `simplejson` tree: always an array, or absent (docs/CONTRACT.md §6). */
export function list(v: unknown): Json[] {
  if (Array.isArray(v)) return v as Json[];
  return v === undefined || v === null || v === '' ? [] : [v as Json];
}

/** The final statuses of an action (docs/CONTRACT.md §5). */
export const FINAL = new Set(['Finished', 'Stopped', 'Cancelled', 'Error']);
