// The mailboxes of a node, kept in its data directory (a running node picks changes up within seconds).
import { resolve as resolvePath } from 'node:path';
import { addMailbox, listMailboxes, removeMailbox, renewMailboxToken } from '../datadir/index.ts';
import { need, out, str, type Command } from './command.ts';
import { DATA_FLAGS, dataDirOf } from './reach.ts';

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
];
