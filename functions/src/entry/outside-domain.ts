/**
 * The Functions Framework runs every HTTP function inside a Node `domain`
 * (deprecated), so that an error nothing catches still gets a 500. While a
 * domain is active, Node enters and leaves it around every callback and every
 * event of every object created under it: in the worker's profile of a full
 * Synchronize that bookkeeping was about a fifth of its CPU time. Our handlers
 * answer every request themselves and catch what their work throws, so they
 * leave the request's domain before they start; an error thrown outside any
 * handler still ends the process through the Framework's own
 * `uncaughtException` handler, and Cloud Tasks delivers the task again.
 */
import type { Request, Response } from '@google-cloud/functions-framework';

type Handler = (req: Request, res: Response) => unknown;

interface WithDomain {
  domain?: { exit(): void } | null;
}

/** `handler`, run outside the domain the Framework entered for the request. */
export function outsideDomain(handler: Handler): Handler {
  return (req, res) => {
    (process as unknown as WithDomain).domain?.exit();
    return handler(req, res);
  };
}
