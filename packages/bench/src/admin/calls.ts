/**
 * The admin calls the `admin` scenarios time, made over one keep-alive connection to one node,
 * and what each answer says about the cluster: an answer is `partial` when it names a node that
 * did not reply within `cluster.controlTimeoutMs` (or, for the node list, lists fewer nodes than
 * run), and `wrong` when it is not what a healthy cluster answers (a disconnect that closed no
 * connection, a request whose answer is not the data sent).
 */
import { Agent, request } from 'node:http';

export const ADMIN_CALLS = ['nodes', 'stats', 'channels', 'request', 'disconnect'] as const;
export type AdminCall = (typeof ADMIN_CALLS)[number];

export interface Answer {
  status: number;
  body: Record<string, unknown>;
  ms: number;
}

export interface Judged {
  ok: boolean;
  partial: boolean;
  /** Why it is not ok (status and error code), or what was wrong with a 200. */
  note?: string;
}

export class AdminClient {
  /** Enough sockets that concurrent loops (admin-kill runs one per call kind) never queue behind each other. */
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 16 });

  constructor(
    private readonly origin: string,
    private readonly apiKey: string,
  ) {}

  /** One call; `ms` from writing the request to the last byte of the answer. */
  call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Answer> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<Answer>((resolve, reject) => {
      const t0 = performance.now();
      const req = request(
        `${this.origin}${path}`,
        {
          method,
          agent: this.agent,
          headers: { authorization: `Bearer ${this.apiKey}`, ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const ms = performance.now() - t0;
            let parsed: Record<string, unknown> = {};
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
            } catch {
              // a body that is not JSON is judged by its status
            }
            resolve({ status: res.statusCode ?? 0, body: parsed, ms });
          });
          res.on('error', reject);
        },
      );
      req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path}: no answer in 60 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function missingOf(body: Record<string, unknown>): string[] {
  const nodes = body.nodes as { missing?: unknown } | undefined;
  const fromDetails = (body.error as { details?: { nodes?: { missing?: unknown } } } | undefined)?.details?.nodes?.missing;
  const missing = nodes?.missing ?? fromDetails;
  return Array.isArray(missing) ? missing.map(String) : [];
}

function errorNote(a: Answer): string {
  const code = (a.body.error as { code?: unknown } | undefined)?.code ?? a.body.code;
  return `${a.status} ${typeof code === 'string' ? code : ''}`.trim();
}

/** What a healthy cluster of `nodes` nodes answers to `call`; `sent` is the data of a request call. */
export function judge(call: AdminCall, a: Answer, nodes: number, sent?: unknown): Judged {
  const missing = missingOf(a.body);
  if (a.status !== 200) return { ok: false, partial: missing.length > 0, note: errorNote(a) };
  switch (call) {
    case 'nodes': {
      const listed = Array.isArray(a.body.nodes) ? a.body.nodes.length : 0;
      return { ok: listed === nodes, partial: listed < nodes, ...(listed === nodes ? {} : { note: `${listed} nodes listed` }) };
    }
    case 'stats': {
      const byNode = Array.isArray(a.body.byNode) ? a.body.byNode.length : 0;
      const ok = byNode === nodes && missing.length === 0;
      return { ok, partial: missing.length > 0, ...(ok ? {} : { note: `${byNode} nodes in byNode, missing ${missing.join(',')}` }) };
    }
    case 'channels':
      return { ok: missing.length === 0, partial: missing.length > 0, ...(missing.length === 0 ? {} : { note: `missing ${missing.join(',')}` }) };
    case 'disconnect': {
      const ok = a.body.disconnected === 1 && missing.length === 0;
      return { ok, partial: missing.length > 0, ...(ok ? {} : { note: `disconnected ${String(a.body.disconnected)}, missing ${missing.join(',')}` }) };
    }
    case 'request': {
      const ok = JSON.stringify(a.body.data) === JSON.stringify(sent);
      return { ok, partial: false, ...(ok ? {} : { note: `answer ${JSON.stringify(a.body).slice(0, 120)}` }) };
    }
  }
}
