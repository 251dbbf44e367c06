// Federation: listeners on every transport, inbound relay streams, routing, outbound delivery,
// receipts and witnessing.
export { Federation } from './federation.ts';
export { receiptFromStored, storedReceipt, verifyReceipt, type ReceiptFields, type SignedReceipt, type StoredReceipt } from './receipt.ts';
export { PEER_TEXT_MAX, RELAY_METHOD, RESOLVE_METHOD, RelayChannel } from './relay.ts';
export { Router, parseEndpoint, parseSmtpEndpoint, formatSmtpEndpoint, isSmtpEndpoint, SMTP_ROUTE_TLS, type SmtpRouteTarget, type SmtpRouteTls } from './routing.ts';
export { RelayAgent, type PeerStatus } from './relay-agent.ts';
export { createTransports } from './transports.ts';
export { Witness, requestCosign, type DomainRoute } from './witness.ts';
