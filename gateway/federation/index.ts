// Federation: listeners on every transport, inbound relay streams, routing, outbound delivery,
// receipts and witnessing.
export { Federation } from './federation.ts';
export { receiptFromStored, storedReceipt, verifyReceipt, type ReceiptFields, type SignedReceipt, type StoredReceipt } from './receipt.ts';
export { RELAY_METHOD, RESOLVE_METHOD, RelayChannel } from './relay.ts';
export { Router, parseEndpoint } from './routing.ts';
export { createTransports } from './transports.ts';
export { Witness, requestCosign, type DomainRoute } from './witness.ts';
