/**
 * The Cloud Tasks emulator: Cloud Tasks v2 over REST and gRPC on loopback, refusing what Google
 * refuses, dispatching HTTP tasks with Google's headers, retries, rate limits, OIDC tokens and
 * named-task de-duplication. This module is its public face; `main.ts` runs it on its own and
 * README.md lists what it models and how it differs from Google.
 */
export { startCloudTasksEmulator, type CloudTasksEmulator, type CloudTasksEmulatorOptions } from './server.js';
export { type FaultStatus, UNAUTHENTICATED_MESSAGE } from './access.js';
export { retryDelayMs } from './engine.js';
export { GOOGLE_ISSUER } from './oidc.js';
