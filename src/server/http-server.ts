import http, { type IncomingMessage, type ServerResponse } from 'node:http';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean) => void;

/**
 * The client-facing HTTP/1.x server. Node parses and validates requests (malformed ones
 * get 400 before reaching us; HTTP/1.1 without Host is refused, as nginx does).
 */
export function createHttpServer(handle: RequestHandler): http.Server {
  const server = http.createServer({
    // nginx has no limit on a whole request's duration, only between two reads
    // (client_body_timeout); Node's 300 s default would cut long uploads.
    requestTimeout: 0,
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => handle(req, res, false));
  // With a listener, Node leaves `Expect: 100-continue` to us: the 100 is sent only
  // once the body is known to be acceptable (client_max_body_size).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => handle(req, res, true));
  return server;
}
