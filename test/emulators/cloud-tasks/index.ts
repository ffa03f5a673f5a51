/**
 * The Cloud Tasks emulator: Cloud Tasks v2 over REST on loopback, dispatching HTTP tasks with
 * Google's headers, retries, rate limits, OIDC tokens and named-task de-duplication.
 * This module is its public face; `main.ts` runs it on its own.
 */
export { startCloudTasksEmulator, type CloudTasksEmulator, type CloudTasksEmulatorOptions } from './server.js';
export { retryDelayMs } from './engine.js';
export { GOOGLE_ISSUER } from './oidc.js';
