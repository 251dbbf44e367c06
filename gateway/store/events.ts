// What the store tells the rest of the node, typed: a delivery stored, recipients queued for relay, the
// node draining. Each on...() returns its unsubscribe function.
import type { HeldEnvelope, OutboundItem } from './outbound.ts';
import type { StoredDelivery } from './deliveries.ts';

/** A delivery just committed, as stored (a subscriber that is caught up need not read it back). */
export type DeliveryListener = (delivery: StoredDelivery) => void;
/** Queue items just committed with their envelope (the outbound loop need not scan for them). */
export type OutboundListener = (items: OutboundItem[], held: HeldEnvelope) => void;
export type ShutdownListener = () => void;

class Listeners<F extends (...args: never[]) => void> {
  readonly #set = new Set<F>();

  add(listener: F): () => void {
    this.#set.add(listener);
    return () => { this.#set.delete(listener); };
  }

  emit(...args: Parameters<F>): void {
    for (const listener of this.#set) listener(...args);
  }
}

export class StoreEvents {
  readonly #delivery = new Listeners<DeliveryListener>();
  readonly #outbound = new Listeners<OutboundListener>();
  readonly #shutdown = new Listeners<ShutdownListener>();

  onDelivery(listener: DeliveryListener): () => void {
    return this.#delivery.add(listener);
  }

  onOutbound(listener: OutboundListener): () => void {
    return this.#outbound.add(listener);
  }

  /** The node is draining: open streams finish what they took and end. */
  onShutdown(listener: ShutdownListener): () => void {
    return this.#shutdown.add(listener);
  }

  delivered(delivery: StoredDelivery): void {
    this.#delivery.emit(delivery);
  }

  queued(items: OutboundItem[], held: HeldEnvelope): void {
    this.#outbound.emit(items, held);
  }

  shutdown(): void {
    this.#shutdown.emit();
  }
}
