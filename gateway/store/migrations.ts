// The store's layout and its one upgrade path: an ordered list of versioned steps, for every table.
// The version is the file's PRAGMA user_version. A new table (or column, index) is a new step at the
// end with the next version; a step must leave a store of any earlier version, and a new file, in its
// layout, and must be safe to run on a file that already has it (CREATE ... IF NOT EXISTS, or a check
// of the columns): a CLI beside the node may have created it.
import type { DatabaseSync } from 'node:sqlite';

// The outbound queue's tables are ordinary rowid tables, their keys unique indexes: rows are appended in
// arrival order, while message ids are random. Clustered on the random id (WITHOUT ROWID), every insert
// and every update landed on its own page of large rows (envelopes, receipts): measured on A's pattern,
// that wrote ~88 KiB and cost ~150 us of CPU per relayed message, and ~240 us while a backlog
// grows (docs/DECISIONS.md 28).
const OUTBOUND_ENVELOPES_COLUMNS = `(
  message_id BLOB NOT NULL PRIMARY KEY,
  envelope BLOB NOT NULL,
  sender TEXT NOT NULL,
  sender_domain TEXT NOT NULL,
  log_index INTEGER
) STRICT`;
const OUTBOUND_COLUMNS = `(
  message_id BLOB NOT NULL,
  recipient TEXT NOT NULL,
  domain TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  receipt TEXT NOT NULL DEFAULT '',
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (message_id, recipient)
) STRICT`;
const OUTBOUND_DUE_INDEX = 'CREATE INDEX IF NOT EXISTS outbound_due ON outbound (state, next_attempt_ms)';

// The replay set: every message accepted, until it expires, with its log index. It is the node's only
// index by message id (proofs and re-sent messages find their leaf through it). Keyed on id and hash:
// the id alone would let anyone who learns an id (a co-recipient) block the genuine message by sending
// another one under it first. An empty hash (a row from before layout 4) stands for every hash.
const SEEN_COLUMNS = `(
  message_id BLOB NOT NULL,
  message_hash BLOB NOT NULL,
  expires_ms INTEGER NOT NULL,
  log_index INTEGER, -- null: accepted before layout 3 kept it
  PRIMARY KEY (message_id, message_hash)
) STRICT, WITHOUT ROWID`;
const SEEN_EXPIRY_INDEX = 'CREATE INDEX IF NOT EXISTS seen_messages_expiry ON seen_messages (expires_ms)';

/**
 * The mail tables as of layout 4, created where missing: on a new file, and on an older one the tables
 * that came later (delivery_envelopes, which step 3 fills). Steps 1 to 4 bring older tables to it.
 */
const MAIL_TABLES = `
CREATE TABLE IF NOT EXISTS mailboxes (
  address TEXT PRIMARY KEY,
  did TEXT NOT NULL UNIQUE,
  signing_key_id TEXT NOT NULL,
  signing_public_key BLOB NOT NULL,
  agreement_key_id TEXT NOT NULL,
  agreement_public_key BLOB NOT NULL,
  token_sha256 TEXT NOT NULL UNIQUE,
  document_json TEXT NOT NULL,
  created_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS deliveries (
  mailbox TEXT NOT NULL,
  seq INTEGER NOT NULL,
  message_id BLOB NOT NULL,
  received_ms INTEGER NOT NULL,
  log_index INTEGER,
  acked INTEGER NOT NULL DEFAULT 0, -- 0 = waiting; else when the mailbox acknowledged it (ms)
  PRIMARY KEY (mailbox, seq)
) STRICT;
-- A delivery's envelope, keyed by the delivery's rowid. Apart from the small delivery rows, so that an
-- ack rewrites a page of those, not the envelope's own page(s) (docs/DECISIONS.md 29); deleting a
-- delivery deletes its envelope, whichever statement deletes it. sender, sender_domain: who vouched
-- for the delivered message's sender (StoredDelivery.authenticatedSender, senderDomain).
CREATE TABLE IF NOT EXISTS delivery_envelopes (
  id INTEGER PRIMARY KEY,
  envelope BLOB NOT NULL,
  sender TEXT NOT NULL DEFAULT '',
  sender_domain TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE TRIGGER IF NOT EXISTS delivery_envelope_deleted AFTER DELETE ON deliveries
  BEGIN DELETE FROM delivery_envelopes WHERE id = OLD.rowid; END;
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (mailbox, acked, seq);
CREATE TABLE IF NOT EXISTS outbound_envelopes ${OUTBOUND_ENVELOPES_COLUMNS};
CREATE TABLE IF NOT EXISTS outbound ${OUTBOUND_COLUMNS};
${OUTBOUND_DUE_INDEX};
CREATE TABLE IF NOT EXISTS routes (
  domain TEXT PRIMARY KEY,
  did TEXT NOT NULL,
  endpoint TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS seen_messages ${SEEN_COLUMNS};
${SEEN_EXPIRY_INDEX};
`;

// What a witness follows is a log: an origin and the one key that signs it (C2SP tlog-witness
// configures witnesses the same way). The DID that presented it is kept to say who did, and may change
// while the key stays (a node that moves from did:key to did:web); the key never does.
const WITNESSED_LOGS = `CREATE TABLE IF NOT EXISTS witnessed_logs (
  origin TEXT PRIMARY KEY, log_did TEXT NOT NULL, log_key BLOB, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL,
  updated_ms INTEGER NOT NULL)`;
/** Witness state (docs/LEDGER.md "Witnessing"): as a witness of other logs, and as a log others cosign. */
const WITNESS_TABLES = `
${WITNESSED_LOGS};
CREATE TABLE IF NOT EXISTS split_views (
  id INTEGER PRIMARY KEY AUTOINCREMENT, log_did TEXT NOT NULL, origin TEXT NOT NULL,
  seen_note TEXT NOT NULL, presented_note TEXT NOT NULL, detail TEXT NOT NULL, detected_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint_cosignatures (
  size INTEGER NOT NULL, witness_did TEXT NOT NULL, line TEXT NOT NULL, note TEXT NOT NULL, received_ms INTEGER NOT NULL,
  PRIMARY KEY (size, witness_did));
CREATE TABLE IF NOT EXISTS witness_progress (
  witness_did TEXT PRIMARY KEY, known_size INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
`;

export interface Migration {
  /** The layout this step leaves (user_version). */
  version: number;
  /** What the layout changes, and why. */
  change: string;
  up(db: DatabaseSync): void;
}

const hasColumn = (db: DatabaseSync, table: string, column: string) =>
  db.prepare(`SELECT 1 FROM pragma_table_info(?) WHERE name = ?`).get(table, column) !== undefined;
const hasTable = (db: DatabaseSync, table: string) =>
  db.prepare(`SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?`).get(table) !== undefined;

/** Every layout step, oldest first. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    change: 'deliveries.acked holds the ack time (ms), not 1',
    up(db) {
      // Acks made before ack times were kept count from now: their retention starts with this version.
      db.prepare('UPDATE deliveries SET acked = ? WHERE acked = 1').run(Date.now());
    },
  },
  {
    version: 2,
    change: 'the outbound tables are rowid tables (they were WITHOUT ROWID)',
    up(db) {
      for (const [table, columns] of [['outbound_envelopes', OUTBOUND_ENVELOPES_COLUMNS], ['outbound', OUTBOUND_COLUMNS]] as const) {
        const { sql } = db.prepare(`SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?`).get(table) as { sql: string };
        if (!/WITHOUT ROWID/i.test(sql)) continue;
        db.exec(`CREATE TABLE ${table}_rowid ${columns}; INSERT INTO ${table}_rowid SELECT * FROM ${table}; DROP TABLE ${table}; ALTER TABLE ${table}_rowid RENAME TO ${table};`);
      }
      db.exec(OUTBOUND_DUE_INDEX); // dropped with the old table
    },
  },
  {
    version: 3,
    change: 'delivered envelopes live in delivery_envelopes, apart from their delivery rows; the replay set keeps '
      + 'each message\'s log index, and deliveries have no index by message id (DECISIONS 29)',
    up(db) {
      if (hasColumn(db, 'deliveries', 'envelope')) {
        // DROP COLUMN rewrites each row in place, under the same rowid: the envelopes stay matched.
        db.exec('INSERT INTO delivery_envelopes (id, envelope) SELECT rowid, envelope FROM deliveries; ALTER TABLE deliveries DROP COLUMN envelope;');
      }
      if (!hasColumn(db, 'seen_messages', 'log_index')) {
        // The replay set takes over the index by message id: each id gets its message's leaf, found
        // through that index (dropped next) or the outbound queue's key.
        db.exec(`ALTER TABLE seen_messages ADD COLUMN log_index INTEGER;
          UPDATE seen_messages SET log_index = coalesce(
            (SELECT log_index FROM deliveries WHERE deliveries.message_id = seen_messages.message_id AND log_index IS NOT NULL LIMIT 1),
            (SELECT log_index FROM outbound_envelopes WHERE outbound_envelopes.message_id = seen_messages.message_id));`);
      }
      db.exec('DROP INDEX IF EXISTS deliveries_message');
    },
  },
  {
    version: 4,
    change: 'the replay set is keyed on (message id, message hash), so that another message reusing an id cannot '
      + 'block the genuine one; delivered envelopes keep who vouched for their sender',
    up(db) {
      if (!hasColumn(db, 'seen_messages', 'message_hash')) {
        // Rows of ids accepted before keep blocking their id whatever the hash (empty), until they expire.
        db.exec(`CREATE TABLE seen_messages_v4 ${SEEN_COLUMNS};
          INSERT INTO seen_messages_v4 (message_id, message_hash, expires_ms, log_index) SELECT message_id, x'', expires_ms, log_index FROM seen_messages;
          DROP TABLE seen_messages; ALTER TABLE seen_messages_v4 RENAME TO seen_messages; ${SEEN_EXPIRY_INDEX};`);
      }
      // Deliveries stored before were vouched for by nobody (empty): their clients show them unverified.
      if (!hasColumn(db, 'delivery_envelopes', 'sender')) {
        db.exec(`ALTER TABLE delivery_envelopes ADD COLUMN sender TEXT NOT NULL DEFAULT '';
          ALTER TABLE delivery_envelopes ADD COLUMN sender_domain TEXT NOT NULL DEFAULT '';`);
      }
    },
  },
  {
    version: 5,
    change: 'the witness tables are part of the layout (a node created them on start before); witness state '
      + 'is kept per origin',
    up(db) {
      // Witness state was once kept per (log DID, origin), which let one key show two histories of one
      // origin under two DIDs. Now per origin: of several rows for one origin the largest size (then the
      // first seen) stays. The key of a carried-over row is learnt from the next checkpoint whose key
      // also verifies the stored note (see Witness).
      if (hasTable(db, 'witnessed_logs') && !hasColumn(db, 'witnessed_logs', 'log_key')) {
        db.exec(`ALTER TABLE witnessed_logs RENAME TO witnessed_logs_by_did;
          ${WITNESSED_LOGS};
          INSERT OR IGNORE INTO witnessed_logs SELECT origin, log_did, NULL, size, root, note, updated_ms FROM witnessed_logs_by_did
            ORDER BY size DESC, updated_ms ASC;
          DROP TABLE witnessed_logs_by_did;`);
      }
      db.exec(WITNESS_TABLES);
    },
  },
  {
    version: 6,
    change: 'DSN parameters (RFC 3461) of mail the SMTP bridge took',
    up(db) {
      db.exec(`CREATE TABLE IF NOT EXISTS smtp_dsn (
        message_id BLOB NOT NULL,
        recipient TEXT NOT NULL,
        notify TEXT NOT NULL, -- NEVER, or SUCCESS,FAILURE,DELAY as asked; '' = not given
        orcpt TEXT NOT NULL,
        ret TEXT NOT NULL,    -- FULL | HDRS | ''
        envid TEXT NOT NULL,
        received_ms INTEGER NOT NULL,
        PRIMARY KEY (message_id, recipient)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS smtp_dsn_received ON smtp_dsn (received_ms);`);
    },
  },
  {
    version: 7,
    change: 'the outbound bridge: each queued recipient names its delivery agent (relay | smtp); MTA-STS '
      + 'policies, TLS outcomes per day (for TLS-RPT), REQUIRETLS requests, forwards and forwarded mail are kept',
    up(db) {
      // The delivery agent of each queued recipient: relay (a peer node) | smtp (the bridge).
      if (!hasColumn(db, 'outbound', 'transport')) db.exec(`ALTER TABLE outbound ADD COLUMN transport TEXT NOT NULL DEFAULT 'relay'`);
      db.exec(`CREATE TABLE IF NOT EXISTS sts_policies (
        domain TEXT NOT NULL PRIMARY KEY,
        id TEXT NOT NULL,
        policy TEXT NOT NULL, -- the parsed policy, JSON
        fetched_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS tls_outcomes (
        day TEXT NOT NULL,           -- UTC date, YYYY-MM-DD: TLS-RPT reports one day per policy domain
        policy_domain TEXT NOT NULL,
        policy_type TEXT NOT NULL,   -- tlsa | sts | no-policy-found
        policy_strings TEXT NOT NULL, -- JSON array
        mx_host TEXT NOT NULL,
        receiving_ip TEXT NOT NULL,
        result TEXT NOT NULL,        -- success | an RFC 8460 result type
        detail TEXT NOT NULL,        -- the latest failure's reason
        count INTEGER NOT NULL,
        first_ms INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        PRIMARY KEY (day, policy_domain, policy_type, mx_host, receiving_ip, result)
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS smtp_require_tls (
        message_id BLOB NOT NULL PRIMARY KEY,
        received_ms INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS forwards (
        address TEXT NOT NULL PRIMARY KEY, -- an address of the node's domains (a mailbox, or an alias)
        target TEXT NOT NULL,              -- where its mail goes on, over SMTP
        keep INTEGER NOT NULL,             -- 1: the mailbox keeps a copy too
        created_ms INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS smtp_forwarded (
        message_id BLOB NOT NULL PRIMARY KEY, -- mail the node sends as it is: a forward, a returned bounce, a report
        mail_from TEXT NOT NULL,              -- its envelope sender out: SRS-rewritten, or '' (null sender)
        kind TEXT NOT NULL,                   -- forward | bounce | report
        received_ms INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS dmarc_observations (
        day TEXT NOT NULL,            -- UTC date: DMARC aggregate reports cover one day
        policy_domain TEXT NOT NULL,  -- the domain whose DMARC record applied
        observation TEXT NOT NULL,    -- what one message showed (source IP, domains, verdicts), JSON
        count INTEGER NOT NULL,
        PRIMARY KEY (day, policy_domain, observation)
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS dmarc_reports_sent (
        day TEXT NOT NULL,
        policy_domain TEXT NOT NULL,
        sent_ms INTEGER NOT NULL,
        PRIMARY KEY (day, policy_domain)
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS received_reports (
        kind TEXT NOT NULL,           -- tlsrpt | dmarc
        organization TEXT NOT NULL,   -- who reported
        report_id TEXT NOT NULL,
        begin_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        summary TEXT NOT NULL,        -- per policy domain: successes and failures by type (JSON)
        via TEXT NOT NULL,            -- mail | https
        received_ms INTEGER NOT NULL,
        PRIMARY KEY (kind, organization, report_id)
      ) STRICT;
      CREATE INDEX IF NOT EXISTS received_reports_time ON received_reports (kind, begin_ms);
      CREATE TABLE IF NOT EXISTS tlsrpt_sent (
        day TEXT NOT NULL,           -- the UTC day reported
        policy_domain TEXT NOT NULL,
        destination TEXT NOT NULL,   -- a rua URI, or '' when the domain asks for no reports
        sent_ms INTEGER NOT NULL,
        PRIMARY KEY (day, policy_domain, destination)
      ) STRICT, WITHOUT ROWID;`);
    },
  },
  {
    version: 8,
    change: 'compliance rules: the rules, deliveries held by a rule, labels rules put on messages, catch-all '
      + 'mailboxes, and the audit leaves the node appended for what the rules did',
    up(db) {
      db.exec(`CREATE TABLE IF NOT EXISTS rules (
        name TEXT NOT NULL PRIMARY KEY,
        rule TEXT NOT NULL,           -- conditions and action, JSON (gateway/rules)
        created_ms INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS held_deliveries (
        message_id BLOB NOT NULL,
        mailbox TEXT NOT NULL,
        rule TEXT NOT NULL,
        envelope BLOB NOT NULL,
        sender TEXT NOT NULL,
        sender_domain TEXT NOT NULL,
        log_index INTEGER,
        message_hash BLOB NOT NULL,
        held_ms INTEGER NOT NULL,
        state TEXT NOT NULL,          -- held | release | expire (the last two: asked for, the node carries it out)
        PRIMARY KEY (message_id, mailbox)
      ) STRICT;
      CREATE TABLE IF NOT EXISTS message_tags (
        message_id BLOB NOT NULL,
        tag TEXT NOT NULL,
        rule TEXT NOT NULL,
        tagged_ms INTEGER NOT NULL,
        PRIMARY KEY (message_id, tag)
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS catchalls (
        domain TEXT NOT NULL PRIMARY KEY,
        mailbox TEXT NOT NULL,
        created_ms INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS audit_leaves (
        log_index INTEGER NOT NULL PRIMARY KEY,
        rule TEXT NOT NULL,
        action TEXT NOT NULL,         -- journal | hold | release | expire | redirect | reject | tag
        message_hash BLOB NOT NULL,
        leaf_hash BLOB NOT NULL,
        at_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS audit_leaves_time ON audit_leaves (at_ms);`);
    },
  },
  {
    version: 9,
    change: 'webhooks: a mailbox\'s hook (URL and signing secret) and one row per delivery it must be told of',
    up(db) {
      db.exec(`CREATE TABLE IF NOT EXISTS webhooks (
        mailbox TEXT NOT NULL PRIMARY KEY,
        url TEXT NOT NULL,            -- https only
        secret TEXT NOT NULL,         -- whsec_<base64>: the Standard Webhooks signing key
        created_ms INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS webhook_deliveries (
        mailbox TEXT NOT NULL,
        seq INTEGER NOT NULL,         -- the delivery's seq in its mailbox
        state TEXT NOT NULL,          -- queued | delivered (a 2xx) | acked (a subscriber acked first) | dead
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        since_ms INTEGER NOT NULL,    -- when it was queued (or retried): dead-lettered after webhooks.maxAgeMs
        last_error TEXT NOT NULL DEFAULT '',
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (mailbox, seq)
      ) STRICT;
      CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (state, next_attempt_ms);
      CREATE INDEX IF NOT EXISTS webhook_deliveries_hook_due ON webhook_deliveries (mailbox, state, next_attempt_ms);`);
    },
  },
  {
    version: 10,
    change: 'rules hold queued recipients too (held_deliveries.transport: the agent a released recipient is queued '
      + 'for), a webhook may post a link to the envelope instead of the envelope (webhooks.payload), a failed '
      + 'recipient is marked until its failure notice is stored (outbound.noticed), and a received report keeps the '
      + 'domain whose DKIM signature vouched for it (received_reports.signed_by)',
    up(db) {
      // '' = a mailbox's delivery; relay | smtp = a queued recipient, whose address the mailbox column holds
      if (!hasColumn(db, 'held_deliveries', 'transport')) db.exec(`ALTER TABLE held_deliveries ADD COLUMN transport TEXT NOT NULL DEFAULT ''`);
      if (!hasColumn(db, 'webhooks', 'payload')) db.exec(`ALTER TABLE webhooks ADD COLUMN payload TEXT NOT NULL DEFAULT 'inline'`); // inline | link
      // 0: failed, and the sender's failure notice (or the node's bounce) is not stored yet: a crash between
      // the two sends it at the next start. Rows from before failed with their notice sent.
      if (!hasColumn(db, 'outbound', 'noticed')) db.exec('ALTER TABLE outbound ADD COLUMN noticed INTEGER NOT NULL DEFAULT 1');
      // The domain whose DKIM signature on a mailed report passed ('' for a POST, or mail without one): the
      // organization a report names is only its claim.
      if (!hasColumn(db, 'received_reports', 'signed_by')) db.exec(`ALTER TABLE received_reports ADD COLUMN signed_by TEXT NOT NULL DEFAULT ''`);
      // Holds only the rows owed a notice (none, unless a crash or a failed store left one): the queue's
      // search for them at start costs nothing when there are none, however many failures are kept.
      db.exec('CREATE INDEX IF NOT EXISTS outbound_unnoticed ON outbound (message_id) WHERE noticed = 0');
    },
  },
];

/** The layout this code writes (PRAGMA user_version): the last step's. */
export const STORE_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Brings a store's layout up to STORE_VERSION (once: the version is recorded in the file). */
export function migrate(db: DatabaseSync): void {
  const versionOf = () => Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version);
  if (versionOf() >= STORE_VERSION) return;
  // Another process (a CLI command beside the node) may be upgrading the same file: decide under the lock.
  db.exec('BEGIN IMMEDIATE');
  try {
    const version = versionOf();
    if (version < 4) db.exec(MAIL_TABLES);
    for (const step of MIGRATIONS) if (step.version > version) step.up(db);
    db.exec(`PRAGMA user_version=${STORE_VERSION}`);
    db.exec('COMMIT');
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}
