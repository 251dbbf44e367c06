// What one peer node may have the node work on at once, over all its connections and streams: the
// transports bound each stream (window, message size) and the relay each stream's unacknowledged
// envelopes, but a peer opens as many streams and connections as it likes. A peer is its transport key.

export interface PeerBudgetLimits {
  /** Envelopes of one peer being accepted at once, over all its relay streams. */
  maxInFlightMessages: number;
  /** Their bytes (as received). One message alone is always taken, whatever its size. */
  maxInFlightBytes: number;
  /** Connections one peer may have open to this node at once; more are closed as they arrive. */
  maxConnections: number;
}

/** One peer's share: a stream that would exceed it waits (its peer is held by flow control), others go on. */
export class PeerBudget {
  private readonly limits: PeerBudgetLimits;
  /** Called whenever the budget falls idle (no connection, no work): its registry forgets it. */
  private readonly onIdle: () => void;
  private waiters: (() => void)[] = [];
  messages = 0;
  bytes = 0;
  connections = 0;

  constructor(limits: PeerBudgetLimits, onIdle: () => void = () => {}) {
    this.limits = limits;
    this.onIdle = onIdle;
  }

  get idle(): boolean {
    return this.messages === 0 && this.connections === 0 && this.waiters.length === 0;
  }

  /** Waits until `bytes` more fit (or `signal` aborts: then rejects), then takes them. */
  async acquire(bytes: number, signal?: AbortSignal): Promise<void> {
    while (!this.fits(bytes)) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    signal?.throwIfAborted();
    this.messages++;
    this.bytes += bytes;
  }

  release(bytes: number): void {
    this.messages--;
    this.bytes -= bytes;
    for (const wake of this.waiters.splice(0)) wake();
    if (this.idle) this.onIdle();
  }

  /** A connection of the peer closed. */
  leave(): void {
    this.connections--;
    if (this.idle) this.onIdle();
  }

  private fits(bytes: number): boolean {
    if (this.messages === 0) return true;
    return this.messages < this.limits.maxInFlightMessages && this.bytes + bytes <= this.limits.maxInFlightBytes;
  }
}

/** The budgets of the peers connected now (an entry lives while its peer has a connection or work). */
export class PeerBudgets {
  private readonly limits: PeerBudgetLimits;
  private readonly byPeer = new Map<string, PeerBudget>();

  constructor(limits: PeerBudgetLimits) {
    this.limits = limits;
  }

  private get(peerKey: Uint8Array): PeerBudget {
    const key = Buffer.from(peerKey).toString('hex');
    let budget = this.byPeer.get(key);
    if (!budget) {
      const created = new PeerBudget(this.limits, () => { if (this.byPeer.get(key) === created) this.byPeer.delete(key); });
      this.byPeer.set(key, created);
      budget = created;
    }
    return budget;
  }

  /**
   * Counts a new connection of the peer and returns its budget (call its leave() when the connection
   * closes); undefined, and nothing counted, when the peer already has its maximum of connections.
   */
  admit(peerKey: Uint8Array): PeerBudget | undefined {
    const budget = this.get(peerKey);
    if (budget.connections >= this.limits.maxConnections) return undefined; // it has connections: not idle
    budget.connections++;
    return budget;
  }

  /** Peers with an entry (connected or with work in flight). */
  get size(): number {
    return this.byPeer.size;
  }
}
