// The transparency log: its state, a message's proof bundle, and checking a bundle against trusted inputs.
import { readFileSync } from 'node:fs';
import { checkAnchorOnChain, verifyProofBundle, type ProofBundle } from '../provenance/index.ts';
import { fromB64u, GatewayError } from '../core/index.ts';
import { profileResolver, readProfile, type MailboxProfile } from '../client/index.ts';
import { createDidResolver, decodeEnvelope, openEnvelope } from '../../identity/index.ts';
import type { LedgerStatusReply__Output } from '../../proto/index.ts';
import { DID_PATTERN, MESSAGE_ID_PATTERN, intFlag, list, str, out, UsageError, type Command, type Flags } from './command.ts';
import { APP_FLAGS, APP_USAGE, withApp } from './reach.ts';

export const provenanceCommands: Command[] = [
  {
    name: 'ledger status',
    flags: APP_FLAGS,
    usage: [`ledger status ${APP_USAGE}`],
    run: ({ flags }) => withApp(flags, async (app) => {
      const r = await app.provenance<LedgerStatusReply__Output>('LedgerStatus', {});
      const status = {
        origin: r.origin,
        treeSize: r.treeSize,
        root: Buffer.from(r.root).toString('hex'),
        latestCheckpoint: r.latestCheckpoint ? { size: r.latestCheckpoint.size, root: Buffer.from(r.latestCheckpoint.root).toString('hex'), note: r.latestCheckpoint.note } : null,
        verifierKey: r.verifierKey,
        anchoring: r.anchoring,
        latestAnchor: r.latestAnchorJson ? JSON.parse(r.latestAnchorJson) : null,
        anchorLag: r.anchoring === 'off' ? null : { entries: r.anchorLagEntries, ms: r.anchorLagMs },
        ...(r.lastAnchorError ? { lastAnchorError: r.lastAnchorError } : {}),
      };
      out(flags, status, JSON.stringify(status, null, 2));
      return 0;
    }),
  },
  {
    name: 'proof',
    args: ['MESSAGE_ID'],
    flags: APP_FLAGS,
    usage: [`proof (MESSAGE_ID | HASH) ${APP_USAGE}`, '(prints a self-contained proof bundle; HASH: a message hash, or an audit leaf\'s hash from `audit list`)'],
    run({ args, flags }) {
      const given = args.MESSAGE_ID!;
      const byHash = /^[0-9a-f]{64}$/i.test(given);
      if (!byHash && !MESSAGE_ID_PATTERN.test(given)) throw new UsageError('give a MESSAGE_ID (32 hex digits) or a HASH (64 hex digits)');
      return withApp(flags, async (app) => {
        const r = await app.provenance<{ json: string }>('GetProof', byHash ? { messageHash: Buffer.from(given, 'hex') } : { messageId: Buffer.from(given, 'hex') });
        process.stdout.write(`${flags.json ? r.json : JSON.stringify(JSON.parse(r.json), null, 2)}\n`);
        return 0;
      });
    },
  },
  {
    name: 'verify',
    args: ['BUNDLE.json'],
    flags: {
      profile: { type: 'string' },
      node: { type: 'string' },
      'node-did': { type: 'string' },
      witness: { type: 'string', multiple: true },
      signed: { type: 'string' },
      envelope: { type: 'string' },
      substrate: { type: 'string' },
      genesis: { type: 'string' },
      'require-anchor': { type: 'boolean' },
      'min-cosignatures': { type: 'string' },
    },
    usage: [
      'verify BUNDLE.json (--profile FILE [--node HOST:PORT] | --node-did DID) [--witness DID ...] [--signed FILE | --envelope FILE]',
      '[--substrate ws://... --genesis 0x...] [--require-anchor] [--min-cosignatures N]',
      '(the log key comes from the node of --profile or from --node-did, the witnesses from --witness or',
      ' that node, the chain from --substrate and --genesis: never from the bundle)',
    ],
    run: ({ args, flags }) => verify(args['BUNDLE.json']!, flags),
  },
];

async function verify(bundleFile: string, flags: Flags): Promise<number> {
  let bundle: ProofBundle;
  try {
    bundle = JSON.parse(readFileSync(bundleFile, 'utf8')) as ProofBundle;
  } catch (err) {
    throw new GatewayError('INVALID_ARGUMENT', `cannot read the proof bundle ${bundleFile}: ${(err as Error).message}`);
  }
  const profileFile = str(flags, 'profile');
  const profile = profileFile === undefined ? undefined : readProfile(profileFile);
  const nodeDid = str(flags, 'node-did');
  const witnessFlags = list(flags, 'witness');
  for (const did of [nodeDid, ...witnessFlags]) {
    if (did !== undefined && !DID_PATTERN.test(did)) throw new GatewayError('INVALID_ARGUMENT', `"${did}" is not a DID`);
  }
  const genesis = str(flags, 'genesis');
  if (genesis !== undefined && !/^0x[0-9a-f]{64}$/i.test(genesis)) throw new GatewayError('INVALID_ARGUMENT', '--genesis must be a 0x-prefixed 32-byte hex hash');
  // The trusted log: --node-did, else the profile's node. Its witnesses: --witness, else (for the
  // profile's node) the ones that node is configured to ask, read from it over the profile's TLS.
  const logDid = nodeDid ?? profile?.node.did;
  let witnesses: string[] | undefined = witnessFlags.length ? witnessFlags : undefined;
  if (!witnesses && profile && !nodeDid) {
    witnesses = await nodeWitnesses(flags, profile).catch((err: Error) => {
      process.stderr.write(`aftersmtp: the node's witness list could not be read (${err.message}); no witness counts\n`);
      return undefined;
    });
  }
  let signedMessage: Uint8Array | undefined;
  let statedMessageHash: Uint8Array | undefined;
  const signed = str(flags, 'signed');
  if (signed !== undefined) signedMessage = new Uint8Array(readFileSync(signed));
  const envelopeFile = str(flags, 'envelope');
  if (envelopeFile !== undefined) {
    const envelope = decodeEnvelope(new Uint8Array(readFileSync(envelopeFile)));
    statedMessageHash = envelope.messageHash;
    if (profile) signedMessage = openEnvelope(envelope, { keyId: profile.agreement.keyId, privateKey: fromB64u(profile.agreement.privateKey) });
  }
  const report = await verifyProofBundle(bundle, {
    // did:key verifies offline; did:web documents are fetched over HTTPS (the profile's CA and hosts apply).
    resolver: profile ? profileResolver(profile) : createDidResolver({}),
    signedMessage,
    statedMessageHash,
    logDid,
    witnesses,
    substrateEndpoint: str(flags, 'substrate') || undefined,
    genesisHash: genesis,
    requireAnchor: flags['require-anchor'] === true,
    minCosignatures: intFlag(flags, 'min-cosignatures') ?? 0,
    // @polkadot/api is loaded only when a bundle carries an anchor (ledger/ loads it on first use).
    checkAnchor: checkAnchorOnChain,
    signal: AbortSignal.timeout(60_000),
  });
  if (flags.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    for (const s of report.steps) process.stdout.write(`${s.status.padEnd(7)} ${s.name}: ${s.detail}\n`);
    process.stdout.write(`cosigned by ${report.cosigners.length} trusted witness(es)${report.cosigners.length ? `: ${report.cosigners.join(', ')}` : ''}\n`);
    for (const m of report.missing) process.stdout.write(`not checked, ${m}\n`);
    process.stdout.write(`result: ${report.result}${report.missing.length ? ` (${report.missing.length} trust input(s) missing)` : ''}\n`);
  }
  return report.ok ? 0 : 1;
}

/** The witnesses the profile's node asks to cosign its log (LedgerStatus, over the node's pinned CA). */
function nodeWitnesses(flags: Flags, profile: MailboxProfile): Promise<string[]> {
  return withApp(flags, async (app) => (await app.provenance<LedgerStatusReply__Output>('LedgerStatus', {})).witnesses, profile);
}
