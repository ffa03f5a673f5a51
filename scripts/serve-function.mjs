// Serves one function of the built functions (functions/lib) through the
// Functions Framework's own server, bound to 127.0.0.1 only: the framework's
// command line listens on every interface, which a local stack must not do.
// Usage: node scripts/serve-function.mjs <target> <port> [entry module]
// (the tests pass functions/src/index.ts, run with tsx, to serve the sources).
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { getTestServer } from '@google-cloud/functions-framework/testing';

const [target, port, entry] = process.argv.slice(2);
if (!target || !port) {
  console.error('usage: node scripts/serve-function.mjs <action|worker|notify> <port> [entry module]');
  process.exit(2);
}
// As on Cloud Functions: Express answers a body it cannot parse (a JSON body
// with a syntax error) with a plain 400 and never a stack trace.
process.env.NODE_ENV ??= 'production';
await import(entry ? pathToFileURL(resolve(entry)).href : '../functions/lib/index.js');
const server = getTestServer(target);
server.setTimeout(0);
// A taken port exits with EADDRINUSE's number (98), which the stack reports with the variable
// that sets the port, instead of restarting the function.
server.once('error', (e) => {
  console.error(e.code === 'EADDRINUSE' ? `port ${port} is already in use` : e.message);
  process.exit(e.code === 'EADDRINUSE' ? 98 : 1);
});
server.listen(Number(port), '127.0.0.1', () => {
  console.error(`serving ${target} on http://127.0.0.1:${port}/`);
});
// Stops at once: requests in flight (a worker's long delivery) are cut, as a platform's shutdown
// would; the queue delivers them again.
const stop = () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
