// Open SMTP sessions kept between messages: one key per (address, port, TLS policy), so a connection verified
// under one policy never carries a message that needs another; a bound per host and port, so a busy domain
// cannot open more connections than its MX is willing to serve; and an end to each session after a number of
// messages or a time idle, so neither side keeps state forever.
import type { SmtpSession } from './smtp-client.ts';
import { SmtpClientError } from './smtp-reply.ts';
import type { RecipientResult } from './types.ts';

export interface PooledSession {
  /** `host|port`: what the connection bound counts against. */
  hostKey: string;
  /** `hostKey|address|policy`: what a session may be reused for. */
  key: string;
  session: SmtpSession;
  /** The TLS this session runs under, as results report it. */
  tls?: RecipientResult['tls'];
  idleTimer?: NodeJS.Timeout;
}

export interface PoolLimits {
  maxConnectionsPerHost: number;
  maxMessagesPerConnection: number;
  idleTimeoutMs: number;
}

/** What `acquire` gives: a session to reuse (RSET it first), or a slot to open a new one in. */
export type Acquired = { kind: 'reuse'; entry: PooledSession } | { kind: 'open' };

export class ConnectionPool {
  readonly #limits: PoolLimits;
  readonly #idle = new Map<string, PooledSession[]>();
  readonly #open = new Map<string, number>();
  readonly #active = new Set<PooledSession>();
  /**
   * Deliveries waiting for a session or a slot, per host, in arrival order. A freed slot or session wakes one
   * of them: waking all made every waiter loop again on every release (hundreds per message under load).
   */
  readonly #waiters = new Map<string, Set<() => void>>();
  #closed = false;

  constructor(limits: PoolLimits) {
    this.#limits = limits;
  }

  #count(hostKey: string, delta: number): void {
    const n = (this.#open.get(hostKey) ?? 0) + delta;
    if (n <= 0) this.#open.delete(hostKey);
    else this.#open.set(hostKey, n);
    if (delta < 0) this.#wake(hostKey);
  }

  /** Wakes the longest-waiting delivery for the host; it takes what was freed, or evicts an idle session of another policy to open its own. */
  #wake(hostKey: string): void {
    const waiting = this.#waiters.get(hostKey);
    const first = waiting?.values().next().value;
    if (!first) return;
    waiting!.delete(first);
    if (waiting!.size === 0) this.#waiters.delete(hostKey);
    first();
  }

  #wakeAll(): void {
    const all = [...this.#waiters.values()].flatMap((set) => [...set]);
    this.#waiters.clear();
    for (const wake of all) wake();
  }

  #takeIdle(key: string): PooledSession | undefined {
    const list = this.#idle.get(key);
    while (list?.length) {
      const entry = list.pop()!;
      clearTimeout(entry.idleTimer);
      if (entry.session.usable) return entry;
      this.#count(entry.hostKey, -1);
    }
    return undefined;
  }

  /** An idle session under another policy for the same host, closed to make room under the bound. */
  #evictOther(hostKey: string): boolean {
    for (const [key, list] of this.#idle) {
      if (!key.startsWith(`${hostKey}|`) || list.length === 0) continue;
      const entry = list.shift()!;
      clearTimeout(entry.idleTimer);
      void entry.session.quit();
      this.#count(hostKey, -1);
      return true;
    }
    return false;
  }

  /** Waits, under the per-host bound, for a session to reuse or room to open one. Rejects when aborted or closed. */
  async acquire(hostKey: string, key: string, signal?: AbortSignal): Promise<Acquired> {
    for (;;) {
      if (this.#closed) throw new SmtpClientError('aborted', 'the outbound bridge is closing');
      if (signal?.aborted) throw new SmtpClientError('aborted', 'delivery aborted');
      const entry = this.#takeIdle(key);
      if (entry) {
        this.#active.add(entry);
        return { kind: 'reuse', entry };
      }
      if ((this.#open.get(hostKey) ?? 0) < this.#limits.maxConnectionsPerHost || this.#evictOther(hostKey)) {
        this.#count(hostKey, 1);
        return { kind: 'open' };
      }
      await new Promise<void>((resolve) => {
        const waiting = this.#waiters.get(hostKey) ?? new Set<() => void>();
        this.#waiters.set(hostKey, waiting);
        const done = () => { signal?.removeEventListener('abort', aborted); resolve(); };
        // An aborted waiter leaves the line, so a wake is never spent on it.
        const aborted = () => {
          waiting.delete(done);
          if (waiting.size === 0 && this.#waiters.get(hostKey) === waiting) this.#waiters.delete(hostKey);
          resolve();
        };
        waiting.add(done);
        signal?.addEventListener('abort', aborted, { once: true });
      });
    }
  }

  /** A session opened in a slot `acquire` gave: counted as busy until released or discarded. */
  track(entry: PooledSession): void {
    this.#active.add(entry);
  }

  /** Back to idle when still usable and under its message budget; else QUIT. */
  release(entry: PooledSession): void {
    this.#active.delete(entry);
    if (this.#closed || !entry.session.usable || entry.session.messages >= this.#limits.maxMessagesPerConnection) {
      void entry.session.quit();
      this.#count(entry.hostKey, -1);
      return;
    }
    entry.idleTimer = setTimeout(() => {
      const list = this.#idle.get(entry.key) ?? [];
      const at = list.indexOf(entry);
      if (at < 0) return;
      list.splice(at, 1);
      void entry.session.quit();
      this.#count(entry.hostKey, -1);
    }, this.#limits.idleTimeoutMs);
    entry.idleTimer.unref();
    const list = this.#idle.get(entry.key) ?? [];
    list.push(entry);
    this.#idle.set(entry.key, list);
    this.#wake(entry.hostKey);
  }

  /** Gives up a slot: the session (if one was opened) failed or is no good for reuse. */
  discard(hostKey: string, entry?: PooledSession): void {
    if (entry) {
      this.#active.delete(entry);
      entry.session.destroy();
    }
    this.#count(hostKey, -1);
  }

  /** QUITs idle sessions and ends busy ones (their deliveries end deferred). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#wakeAll();
    const idle = [...this.#idle.values()].flat();
    this.#idle.clear();
    for (const entry of this.#active) entry.session.destroy(new SmtpClientError('aborted', 'the outbound bridge is closing'));
    this.#active.clear();
    await Promise.all(idle.map((entry) => { clearTimeout(entry.idleTimer); return entry.session.quit(); }));
    this.#open.clear();
  }
}
