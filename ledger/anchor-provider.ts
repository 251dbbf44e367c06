/**
 * A JSON-RPC-over-WebSocket provider for @polkadot/api that a hostile or broken endpoint cannot crash.
 *
 * Why not @polkadot/api's WsProvider: its message handler runs `JSON.parse` (and dereferences
 * `response.params.subscription`) outside any try, so one non-JSON frame from the chain endpoint is
 * an uncaught exception that kills the whole process (measured here with 16.5.6). A mail gateway
 * must survive a chain endpoint that answers garbage. This provider:
 *   - connects once, with a bounded connect timeout, and never reconnects by itself (the anchoring
 *     service reconnects on its own backoff schedule; nothing runs after disconnect());
 *   - treats any frame that is not a well-formed JSON-RPC 2.0 response or notification as fatal for
 *     the connection: every pending call and subscription fails with a ProtocolError saying why,
 *     and the socket is closed;
 *   - times out each request (unref'd timers, all cleared on close).
 * It uses Node's built-in WebSocket (Node >= 22).
 */
import { connect as netConnect } from 'node:net';
import type {
  ProviderInterface,
  ProviderInterfaceCallback,
  ProviderInterfaceEmitCb,
  ProviderInterfaceEmitted,
} from '@polkadot/rpc-provider/types';

export interface SafeWsProviderOptions {
  /** Time allowed for the WebSocket handshake (default 10 s). */
  connectTimeoutMs?: number;
  /** Time allowed for each JSON-RPC answer (default 30 s). */
  requestTimeoutMs?: number;
  /** Largest accepted frame, in characters (default 64 MiB; runtime metadata is a few MB of hex). */
  maxMessageChars?: number;
}

/** The endpoint broke the JSON-RPC protocol (garbage, wrong shapes, binary frames, oversize). */
export class RpcProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RpcProtocolError';
  }
}

/** A JSON-RPC error object returned by the endpoint. */
export class RpcResponseError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(code: number, message: string, data: unknown) {
    super(`${code}: ${message}${data === undefined || data === null ? '' : `: ${typeof data === 'string' ? data : JSON.stringify(data)}`}`);
    this.name = 'RpcResponseError';
    this.code = code;
    this.data = data;
  }
}

interface Pending {
  method: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  subscription?: { type: string; callback: ProviderInterfaceCallback };
}

interface Subscription {
  type: string;
  callback: ProviderInterfaceCallback;
}

/** Notification method aliases some nodes use (same table as @polkadot/rpc-provider). */
const ALIASES: Record<string, string> = {
  chain_finalisedHead: 'chain_finalizedHead',
  chain_subscribeFinalisedHeads: 'chain_subscribeFinalizedHeads',
  chain_unsubscribeFinalisedHeads: 'chain_unsubscribeFinalizedHeads',
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(text: string): string {
  const t = text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return JSON.stringify(t);
}

/** Best-effort reason why a WebSocket connection failed: probe the TCP port. */
async function probeTcp(endpoint: string, timeoutMs: number): Promise<string> {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return 'invalid endpoint URL';
  }
  const port = Number(url.port || (url.protocol === 'wss:' ? 443 : 80));
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const sock = netConnect({ host, port });
    const timer = setTimeout(() => { sock.destroy(); resolve('TCP connect timed out'); }, Math.max(1, timeoutMs));
    timer.unref();
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve('the port accepts TCP but the WebSocket handshake failed (not a WebSocket JSON-RPC endpoint?)');
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === 'ECONNREFUSED' ? 'connection refused' : `TCP error ${err.code ?? err.message}`);
    });
  });
}

export class SafeWsProvider implements ProviderInterface {
  readonly endpoint: string;
  readonly #connectTimeoutMs: number;
  readonly #requestTimeoutMs: number;
  readonly #maxMessageChars: number;
  #ws: WebSocket | null = null;
  #connected = false;
  #closed = false;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #subscriptions = new Map<string, Subscription>();
  /** Notifications that arrived before their subscription id was known. */
  #early = new Map<string, unknown[]>();
  #listeners: Record<ProviderInterfaceEmitted, Set<ProviderInterfaceEmitCb>> = {
    connected: new Set(),
    disconnected: new Set(),
    error: new Set(),
  };
  /** Why the connection ended, if it did (reported to later callers). */
  #failure: Error | null = null;

  constructor(endpoint: string, options: SafeWsProviderOptions = {}) {
    if (!/^wss?:\/\//i.test(endpoint)) throw new TypeError(`chain endpoint must be a ws:// or wss:// URL, got ${JSON.stringify(endpoint)}`);
    this.endpoint = endpoint;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#maxMessageChars = options.maxMessageChars ?? 64 * 1024 * 1024;
  }

  get hasSubscriptions(): boolean { return true; }
  get isClonable(): boolean { return false; }
  get isConnected(): boolean { return this.#connected; }
  /** Why the connection failed or ended, if it did. */
  get failure(): Error | null { return this.#failure; }

  clone(): ProviderInterface {
    throw new Error('SafeWsProvider cannot be cloned');
  }

  /** Opens the connection; rejects after connectTimeoutMs, on failure, or when `signal` aborts. */
  async connect(signal?: AbortSignal): Promise<void> {
    if (this.#ws !== null || this.#closed) throw new Error('SafeWsProvider: connect() may be called once');
    signal?.throwIfAborted();
    const started = Date.now();
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.endpoint);
    } catch (err) {
      this.#closed = true;
      throw new Error(`cannot connect to ${this.endpoint}: ${(err as Error).message}`);
    }
    ws.binaryType = 'arraybuffer';
    this.#ws = ws;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          this.#teardown(err);
          reject(err);
        } else {
          resolve();
        }
      };
      const onAbort = (): void => finish(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
      const timer = setTimeout(() => finish(new Error(`cannot connect to ${this.endpoint}: no WebSocket handshake within ${this.#connectTimeoutMs} ms`)), this.#connectTimeoutMs);
      timer.unref();
      signal?.addEventListener('abort', onAbort, { once: true });
      ws.onopen = () => {
        this.#connected = true;
        finish();
        this.#emit('connected');
      };
      let probing = false;
      ws.onerror = () => {
        if (settled || probing) return;
        probing = true;
        const left = this.#connectTimeoutMs - (Date.now() - started);
        void probeTcp(this.endpoint, Math.min(2000, Math.max(100, left))).then((why) => finish(new Error(`cannot connect to ${this.endpoint}: ${why}`)));
      };
      ws.onclose = (ev) => {
        if (settled) { this.#onClose(ev); return; }
        if (probing) return;
        probing = true;
        const left = this.#connectTimeoutMs - (Date.now() - started);
        void probeTcp(this.endpoint, Math.min(2000, Math.max(100, left))).then((why) => finish(new Error(`cannot connect to ${this.endpoint}: ${why} (close code ${ev.code})`)));
      };
      ws.onmessage = (ev) => this.#onMessage(ev);
    });
    // After the handshake: errors end the connection.
    ws.onerror = () => this.#teardown(new Error(`connection to ${this.endpoint} failed`));
  }

  async disconnect(): Promise<void> {
    this.#teardown(new Error(`disconnected from ${this.endpoint}`), true);
  }

  on(type: ProviderInterfaceEmitted, sub: ProviderInterfaceEmitCb): () => void {
    this.#listeners[type].add(sub);
    return () => { this.#listeners[type].delete(sub); };
  }

  send<T = any>(method: string, params: unknown[], _isCacheable?: boolean): Promise<T> {
    return this.#send(method, params) as Promise<T>;
  }

  subscribe(type: string, method: string, params: unknown[], cb: ProviderInterfaceCallback): Promise<number | string> {
    return this.#send(method, params, { type, callback: cb }) as Promise<number | string>;
  }

  async unsubscribe(type: string, method: string, id: number | string): Promise<boolean> {
    const key = `${type}::${id}`;
    if (!this.#subscriptions.delete(key)) return false;
    if (!this.#connected) return true;
    try {
      return Boolean(await this.#send(method, [id]));
    } catch {
      return false;
    }
  }

  #send(method: string, params: unknown[], subscription?: Subscription): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const ws = this.#ws;
      if (!this.#connected || ws === null) {
        reject(this.#failure ?? new Error(`not connected to ${this.endpoint}`));
        return;
      }
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        if (this.#pending.delete(id)) reject(new Error(`no answer from ${this.endpoint} to ${method} within ${this.#requestTimeoutMs} ms`));
      }, this.#requestTimeoutMs);
      timer.unref();
      const entry: Pending = { method, resolve, reject, timer };
      if (subscription) entry.subscription = subscription;
      this.#pending.set(id, entry);
      try {
        ws.send(JSON.stringify({ id, jsonrpc: '2.0', method, params }));
      } catch (err) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(err as Error);
      }
    });
  }

  #protocolError(message: string): void {
    this.#teardown(new RpcProtocolError(`${this.endpoint} broke the JSON-RPC protocol: ${message}`));
  }

  #onMessage(ev: MessageEvent): void {
    try {
      if (typeof ev.data !== 'string') return this.#protocolError('binary frame');
      if (ev.data.length > this.#maxMessageChars) return this.#protocolError(`frame of ${ev.data.length} characters`);
      let msg: unknown;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return this.#protocolError(`not JSON: ${describe(ev.data)}`);
      }
      if (!isObject(msg) || msg['jsonrpc'] !== '2.0') return this.#protocolError(`not a JSON-RPC 2.0 message: ${describe(ev.data)}`);
      if (msg['method'] !== undefined) return this.#onNotification(msg, ev.data);
      const id = msg['id'];
      if (typeof id !== 'number') return this.#protocolError(`response without a numeric id: ${describe(ev.data)}`);
      const pending = this.#pending.get(id);
      if (!pending) {
        // A late answer to a request that already timed out is harmless; an id never issued is not.
        if (Number.isInteger(id) && id > 0 && id < this.#nextId) return;
        return this.#protocolError(`response to unknown request id ${id}`);
      }
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      const error = msg['error'];
      if (error !== undefined) {
        if (!isObject(error) || typeof error['code'] !== 'number' || typeof error['message'] !== 'string') {
          pending.reject(new RpcProtocolError(`${this.endpoint} sent a malformed error object: ${describe(ev.data)}`));
          return this.#protocolError('malformed error object');
        }
        pending.reject(new RpcResponseError(error['code'], error['message'], error['data']));
        return;
      }
      if (!('result' in msg)) {
        pending.reject(new RpcProtocolError(`${this.endpoint} answered ${pending.method} without result or error`));
        return this.#protocolError('response without result or error');
      }
      const result = msg['result'];
      if (pending.subscription) {
        if (typeof result !== 'string' && typeof result !== 'number') {
          pending.reject(new RpcProtocolError(`${this.endpoint} answered ${pending.method} with a non-id subscription result`));
          return this.#protocolError('bad subscription id');
        }
        const key = `${pending.subscription.type}::${result}`;
        this.#subscriptions.set(key, pending.subscription);
        pending.resolve(result);
        const early = this.#early.get(key);
        if (early) {
          this.#early.delete(key);
          for (const r of early) this.#deliver(pending.subscription, r);
        }
        return;
      }
      pending.resolve(result);
    } catch (err) {
      // Defensive: a callback we call into threw. Never let it escape into the event loop.
      this.#teardown(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #onNotification(msg: Record<string, unknown>, raw: string): void {
    const method = typeof msg['method'] === 'string' ? (ALIASES[msg['method']] ?? msg['method']) : null;
    const params = msg['params'];
    if (method === null || !isObject(params) || (typeof params['subscription'] !== 'string' && typeof params['subscription'] !== 'number')) {
      return this.#protocolError(`malformed notification: ${describe(raw)}`);
    }
    const key = `${method}::${params['subscription']}`;
    const sub = this.#subscriptions.get(key);
    const error = params['error'];
    const payload = error !== undefined
      ? { error: isObject(error) && typeof error['code'] === 'number' ? new RpcResponseError(error['code'], String(error['message']), error['data']) : new RpcProtocolError('malformed subscription error') }
      : { result: params['result'] };
    if (!sub) {
      const list = this.#early.get(key) ?? [];
      if (list.length >= 16 || this.#early.size >= 256) return this.#protocolError('too many notifications for unknown subscriptions');
      list.push(payload);
      this.#early.set(key, list);
      return;
    }
    this.#deliver(sub, payload);
  }

  #deliver(sub: Subscription, payload: unknown): void {
    const p = payload as { error?: Error; result?: unknown };
    if (p.error) sub.callback(p.error, undefined);
    else sub.callback(null, p.result);
  }

  #onClose(ev: CloseEvent): void {
    this.#teardown(new Error(`connection to ${this.endpoint} closed (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`));
  }

  /** Ends the connection. `intentional`: our own disconnect(), so subscriptions are dropped silently. */
  #teardown(reason: Error, intentional = false): void {
    const wasConnected = this.#connected;
    this.#connected = false;
    this.#closed = true;
    if (this.#failure === null) this.#failure = reason;
    const ws = this.#ws;
    if (ws !== null) {
      ws.onopen = null;
      ws.onmessage = null;
      ws.onerror = null;
      ws.onclose = null;
      try {
        if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close();
      } catch { /* already closing */ }
    }
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(reason);
    }
    const subs = [...this.#subscriptions.values()];
    this.#subscriptions.clear();
    this.#early.clear();
    if (!intentional) {
      for (const s of subs) {
        try { s.callback(reason, undefined); } catch { /* ignore */ }
      }
    }
    if (wasConnected) {
      if (!intentional) this.#emit('error', reason);
      this.#emit('disconnected');
    }
  }

  #emit(type: ProviderInterfaceEmitted, value?: unknown): void {
    for (const cb of [...this.#listeners[type]]) {
      try { cb(value); } catch { /* listeners must not break the provider */ }
    }
  }
}
