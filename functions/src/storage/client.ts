/**
 * The Cloud Storage client factory, the one place a `Storage` is constructed:
 * - Google's service: the client library's defaults, with the platform's credentials.
 * - An emulator (`emulatorHost`, from STORAGE_EMULATOR_HOST): the JSON API at that address. The
 *   library sends no credentials to a custom endpoint unless told to, and the emulator, like
 *   Google, refuses calls without them; so a request interceptor adds the development bearer
 *   token `owner` to every call (uploads included), and no Google credential or metadata server
 *   is looked up.
 * Every call has a timeout (`timeoutMs`), and the library retries idempotent calls itself.
 */
import { Storage } from '@google-cloud/storage';

export interface StorageClientOptions {
  project: string;
  /** `host:port` or `http://host:port` of an emulator; undefined for Google. */
  emulatorHost?: string | undefined;
  /** How long one call may take. Default 60 s. */
  timeoutMs?: number;
}

/** The development token the emulators accept. */
const EMULATOR_TOKEN = 'owner';

export function createStorageClient(opts: StorageClientOptions): Storage {
  const timeout = opts.timeoutMs ?? 60_000;
  if (!opts.emulatorHost) return new Storage({ projectId: opts.project, timeout });
  const apiEndpoint = /^https?:\/\//.test(opts.emulatorHost) ? opts.emulatorHost.replace(/\/$/, '') : `http://${opts.emulatorHost}`;
  const storage = new Storage({ projectId: opts.project, apiEndpoint, timeout });
  // Every request, JSON API and uploads alike, passes through the interceptors.
  storage.interceptors.push({
    request: (o) => {
      o.headers = { ...o.headers, Authorization: `Bearer ${EMULATOR_TOKEN}` };
      return o as Parameters<typeof storage.makeAuthenticatedRequest>[0];
    },
  });
  return storage;
}
