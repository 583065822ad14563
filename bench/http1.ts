/**
 * A lean HTTP/1.1 keep-alive client for the load generator, in the way autocannon and wrk work:
 * the request's bytes are built once, a connection carries one request at a time, and an answer
 * is read by its content-length and timed by its status line, its body dropped.
 *
 * Why: on this machine node:http's client spends ~100-120 µs of CPU per request, as much as the
 * server it loads, and the two share two cores; a latency goal measured that way measures the
 * load generator. This one spends a third of that. Answers without a content-length are refused
 * (the distant vault always sends one).
 */
import { connect, type Socket } from 'node:net';

const HEAD_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;
const CLOSE = /\r\nconnection:[ \t]*close/i;

/** The bytes of a POST of `body` (JSON) to `url` with `headers`, reused for every request. */
export function postRequest(url: string, body: string, headers: Record<string, string> = {}): Buffer {
  const u = new URL(url);
  const lines = [
    `POST ${u.pathname}${u.search} HTTP/1.1`,
    `host: ${u.host}`,
    'connection: keep-alive',
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

/** One keep-alive connection, one request at a time. */
class Connection {
  private readonly socket: Socket;
  /** what has come of the answer so far */
  private received: Buffer = Buffer.alloc(0);
  private pending: { resolve: (status: number) => void; reject: (e: Error) => void } | null = null;
  alive = true;
  /** when its last answer came (performance.now()) */
  idleSince = 0;

  constructor(port: number, host: string, timeoutMs: number) {
    this.socket = connect(port, host);
    this.socket.setNoDelay(true);
    this.socket.setTimeout(timeoutMs, () => this.socket.destroy());
    this.socket.on('data', (d: Buffer) => this.read(d));
    this.socket.on('error', () => {}); // 'close' follows and settles the request
    this.socket.on('close', () => {
      this.alive = false;
      this.settle(0);
    });
  }

  send(request: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(request);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private settle(status: number, error?: Error): void {
    const p = this.pending;
    this.pending = null;
    this.received = Buffer.alloc(0);
    if (error) p?.reject(error);
    else p?.resolve(status);
  }

  private read(d: Buffer): void {
    const data = this.received.length === 0 ? d : Buffer.concat([this.received, d]);
    this.received = data;
    const end = data.indexOf(HEAD_END);
    if (end < 0) return;
    const head = data.toString('latin1', 0, end);
    const length = CONTENT_LENGTH.exec(head)?.[1];
    if (length === undefined) {
      this.alive = false;
      this.socket.destroy();
      this.settle(0, new Error('bench: an answer without content-length (the lean client reads no other framing)'));
      return;
    }
    if (data.length < end + HEAD_END.length + Number(length)) return;
    if (CLOSE.test(head)) this.alive = false;
    this.idleSince = performance.now();
    this.settle(Number(head.slice(9, 12)));
  }
}

/**
 * Connections to one server: an idle one is reused, else one more is opened (as node:http's Agent
 * with keepAlive). One idle for `idleMs` (4 s) is closed instead of reused, as undici does: a
 * server that closes idle connections (Node's after 5 s) may be closing it as the request leaves.
 */
export class Http1Pool {
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();

  constructor(
    private readonly port: number,
    private readonly host = '127.0.0.1',
    private readonly timeoutMs = 10_000,
    private readonly idleMs = 4000,
  ) {}

  static for(url: string): Http1Pool {
    const u = new URL(url);
    return new Http1Pool(Number(u.port), u.hostname);
  }

  /** The answer's status; 0 if the connection failed or timed out. */
  async request(bytes: Buffer): Promise<number> {
    const now = performance.now();
    let c = this.idle.pop();
    while (c && (!c.alive || now - c.idleSince > this.idleMs)) {
      c.destroy();
      this.all.delete(c);
      c = this.idle.pop();
    }
    if (!c) {
      c = new Connection(this.port, this.host, this.timeoutMs);
      this.all.add(c);
    }
    const status = await c.send(bytes);
    if (c.alive) this.idle.push(c);
    else this.all.delete(c);
    return status;
  }

  close(): void {
    for (const c of this.all) c.destroy();
    this.all.clear();
    this.idle.length = 0;
  }
}
