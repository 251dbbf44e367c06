// A node's data directory, worked on from outside the running node: creating and reading it (config,
// keys, TLS material), its mailboxes, the ready file, a consistent backup.
export { backupNode } from './backup.ts';
export { READY_FILE, addMailbox, listMailboxes, readReady, removeMailbox, renewMailboxToken, type ReadyInfo } from './mailboxes.ts';
export { ADMIN_TOKEN_FILE, generateIdentity, initNode, nodeHttpsOrigin, nodeTlsNames, openNodeFiles, secureNodeFiles, type NodeKeys } from './node-files.ts';
export { rotateDkimKeys, type DkimKeyEntry } from './dkim-keys.ts';
