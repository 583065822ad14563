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

/** How a pool behaves; every field has a default. */
export type PoolOptions = {
  /** a request unanswered this long fails with 0 (10 s) */
  timeoutMs?: number;
  /** a connection idle this long is closed instead of reused (4 s) */
  idleMs?: number;
  /** connections open at once at most; requests beyond them wait their turn, in order (no limit) */
  maxConnections?: number;
};

/**
 * Connections to one server: an idle one is reused, else one more is opened (as node:http's Agent
 * with keepAlive), up to `maxConnections`, after which a request waits for one to come free (as
 * the Agent's maxSockets, wrk's and autocannon's fixed connections): a load generator that opens
 * a connection whenever the server is slow answers a slow moment with hundreds of new
 * connections, each a cost to the server, and makes the moment longer. One idle for `idleMs` is
 * closed instead of reused, as undici does: a server that closes idle connections (Node's after
 * 5 s) may be closing it as the request leaves.
 */
export class Http1Pool {
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  /** requests waiting for a connection, first come first served (null: the pool closed) */
  private readonly waiting: ((c: Connection | null) => void)[] = [];
  private closed = false;
  private readonly timeoutMs: number;
  private readonly idleMs: number;
  private readonly maxConnections: number;

  constructor(
    private readonly port: number,
    private readonly host = '127.0.0.1',
    options: PoolOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.idleMs = options.idleMs ?? 4000;
    this.maxConnections = options.maxConnections ?? Number.POSITIVE_INFINITY;
  }

  static for(url: string, options?: PoolOptions): Http1Pool {
    const u = new URL(url);
    return new Http1Pool(Number(u.port), u.hostname, options);
  }

  /** Connections open now (idle or carrying a request). */
  get connections(): number {
    return this.all.size;
  }

  /** The answer's status; 0 if the connection failed or timed out. */
  async request(bytes: Buffer): Promise<number> {
    if (this.closed) return 0;
    const c =
      this.reuse() ??
      (this.all.size < this.maxConnections ? this.open() : await new Promise<Connection | null>((r) => this.waiting.push(r)));
    if (c === null) return 0;
    try {
      return await c.send(bytes);
    } finally {
      this.release(c); // also after an answer it refused: that connection is closed, and its place freed
    }
  }

  close(): void {
    this.closed = true;
    for (const next of this.waiting.splice(0)) next(null);
    for (const c of this.all) c.destroy();
    this.all.clear();
    this.idle.length = 0;
  }

  /** An idle connection still fit to carry a request, if there is one. */
  private reuse(): Connection | undefined {
    const now = performance.now();
    let c = this.idle.pop();
    while (c && (!c.alive || now - c.idleSince > this.idleMs)) {
      c.destroy();
      this.all.delete(c);
      c = this.idle.pop();
    }
    return c;
  }

  private open(): Connection {
    const c = new Connection(this.port, this.host, this.timeoutMs);
    this.all.add(c);
    return c;
  }

  /** `c` carried its request: to the next waiting request (a new connection if `c` closed), else idle. */
  private release(c: Connection): void {
    if (!c.alive) this.all.delete(c);
    if (this.closed) {
      c.destroy();
      return;
    }
    const next = this.waiting.shift();
    if (next) next(c.alive ? c : this.open());
    else if (c.alive) this.idle.push(c);
  }
}
