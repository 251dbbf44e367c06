// The one acceptance path: every envelope that enters the node (an app's submit, a peer's relay, the
// SMTP bridge, the node's own notices) passes the same checks into the ledger and the store.
export { acceptEnvelope, domainOf, mailboxFor, type AcceptDeps, type AcceptOptions } from './accept.ts';
export { actionsOf, decideFor, recordAudit, settleAskedHolds, RuleRejection } from './compliance.ts';
export { sealAsNode, storeRuleCopy, type NodeMail, type NodeSigner } from './node-mail.ts';
