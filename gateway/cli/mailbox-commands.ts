// The mailboxes of a node, kept in its data directory (a running node picks changes up within seconds).
import { resolve as resolvePath } from 'node:path';
import { addMailbox, listMailboxes, removeMailbox, renewMailboxToken } from '../datadir/index.ts';
import { GatewayError } from '../core/index.ts';
import { domainOf } from '../accept/index.ts';
import { list, need, out, str, UsageError, type Command } from './command.ts';
import { DATA_FLAGS, dataDirOf, withStore } from './reach.ts';

/** A plain addr-spec: one @, no spaces, no brackets or controls. */
const ADDRESS = /^[^\s@<>()\[\],;:"\\]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/;

export const mailboxCommands: Command[] = [
  {
    name: 'mailbox add',
    args: ['ADDRESS'],
    flags: { ...DATA_FLAGS, profile: { type: 'string', required: true } },
    usage: ['mailbox add ADDRESS --data DIR --profile FILE'],
    run({ args, flags }) {
      const profileFile = resolvePath(need(flags, 'profile'));
      const profile = addMailbox({ dataDir: dataDirOf(flags), address: args.ADDRESS!, profileFile });
      out(flags, { event: 'mailbox-added', address: profile.address, did: profile.did, profile: profileFile },
        `mailbox ${profile.address} created\n  did: ${profile.did}\n  profile (keep it secret): ${profileFile}`);
      return 0;
    },
  },
  {
    name: 'mailbox token',
    args: ['ADDRESS'],
    flags: { ...DATA_FLAGS, profile: { type: 'string' } },
    usage: ['mailbox token ADDRESS --data DIR [--profile FILE]', '(a new API token; the old one stops working)'],
    run({ args, flags }) {
      const profile = str(flags, 'profile');
      const profileFile = profile === undefined ? undefined : resolvePath(profile);
      const renewed = renewMailboxToken({ dataDir: dataDirOf(flags), address: args.ADDRESS!, profileFile });
      out(flags, { event: 'mailbox-token', address: renewed.address, ...(profileFile ? { profile: profileFile } : { token: renewed.token }) },
        profileFile ? `new token for ${renewed.address} written to ${profileFile}; the old one stops working within seconds`
          : `new token for ${renewed.address} (shown once): ${renewed.token}\n  the old one stops working within seconds`);
      return 0;
    },
  },
  {
    name: 'mailbox list',
    flags: DATA_FLAGS,
    usage: ['mailbox list --data DIR'],
    run({ flags }) {
      const mailboxes = listMailboxes(dataDirOf(flags)).map((m) => ({ address: m.address, did: m.did, created: new Date(m.createdMs).toISOString() }));
      out(flags, mailboxes, mailboxes.map((m) => `${m.address} ${m.did} created ${m.created}`).join('\n') || '(no mailboxes)');
      return 0;
    },
  },
  {
    name: 'mailbox remove',
    args: ['ADDRESS'],
    flags: { ...DATA_FLAGS, force: { type: 'boolean' } },
    usage: ['mailbox remove ADDRESS --data DIR [--force]', '(deletes it and its mail; --force if some is unacknowledged)'],
    async run({ args, flags }) {
      const removed = await removeMailbox({ dataDir: dataDirOf(flags), address: args.ADDRESS!, force: flags.force === true });
      out(flags, { event: 'mailbox-removed', ...removed },
        `mailbox ${removed.address} removed with ${removed.deleted} stored message(s) (${removed.unacknowledged} unacknowledged); a running node refuses its mail within seconds`);
      return 0;
    },
  },
  {
    name: 'mailbox forward',
    args: ['ADDRESS'],
    flags: { ...DATA_FLAGS, to: { type: 'string', multiple: true }, keep: { type: 'boolean' }, remove: { type: 'boolean' } },
    usage: [
      'mailbox forward ADDRESS --to EXTERNAL [--keep] --data DIR',
      'mailbox forward ADDRESS --remove --data DIR',
      '(mail for ADDRESS, a mailbox or an alias of the node\'s domains, goes on to EXTERNAL over SMTP, ARC-sealed,',
      ' its envelope sender rewritten with SRS; --keep leaves a copy in the mailbox)',
    ],
    run: ({ args, flags }) => withStore(flags, async ({ config, storage }) => {
      const address = args.ADDRESS!.toLowerCase();
      if (!config.node.domains.includes(domainOf(address))) throw new GatewayError('INVALID_ARGUMENT', `${address} is not in this node's domains (${config.node.domains.join(', ')})`);
      if (flags.remove) {
        if (!(await storage.forwards.remove(address))) throw new GatewayError('NOT_FOUND', `${address} has no forward`);
        out(flags, { event: 'forward-removed', address }, `${address} no longer forwards`);
        return 0;
      }
      const targets = list(flags, 'to');
      if (targets.length !== 1) throw new UsageError('give one --to address');
      const target = targets[0]!.toLowerCase();
      if (!ADDRESS.test(target)) throw new UsageError(`--to ${target} is not a mail address`);
      if (config.node.domains.includes(domainOf(target))) throw new UsageError('forward to another address of this node with a mailbox of its own, not a forward');
      const keep = flags.keep === true;
      if (keep && !storage.mailboxes.byAddress(address)) throw new UsageError(`--keep needs a mailbox ${address}`);
      await storage.forwards.set(address, target, keep);
      out(flags, { event: 'forward-set', address, to: target, keep }, `${address} forwards to ${target}${keep ? ' (a copy stays in the mailbox)' : ''}`);
      return 0;
    }),
  },
  {
    name: 'mailbox forwards',
    flags: DATA_FLAGS,
    usage: ['mailbox forwards --data DIR'],
    run: ({ flags }) => withStore(flags, async ({ storage }) => {
      const list = storage.forwards.list().map((f) => ({ address: f.address, to: f.target, keep: f.keep }));
      out(flags, list, list.map((f) => `${f.address} -> ${f.to}${f.keep ? ' (keeps a copy)' : ''}`).join('\n') || '(no forwards)');
      return 0;
    }),
  },
];
