// Mail as a mailbox's app sends and receives it, through the node of its profile.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { sealFor, submit, subscribe, unary } from '../client/index.ts';
import { intFlag, list, MESSAGE_ID_PATTERN, out, str, UsageError, type Command } from './command.ts';
import { APP_FLAGS, APP_USAGE, withApp } from './reach.ts';

export const sendCommands: Command[] = [
  {
    name: 'send',
    flags: {
      ...APP_FLAGS,
      to: { type: 'string', multiple: true, required: true },
      bcc: { type: 'string', multiple: true },
      subject: { type: 'string' },
      body: { type: 'string' },
      eml: { type: 'string' },
    },
    usage: [
      `send ${APP_USAGE} --to ADDR [--to ADDR ...] [--bcc ADDR ...] --subject S (--body TEXT | --eml FILE)`,
      '(--bcc: a hidden copy, named in no header; what a journal or redirect rule of your node asks for)',
    ],
    run({ flags }) {
      const body = str(flags, 'body');
      const eml = str(flags, 'eml');
      if (body === undefined && eml === undefined) throw new UsageError('one of --body or --eml is required');
      return withApp(flags, async ({ profile, clients, resolver }) => {
        const sealed = await sealFor(profile, clients, resolver, {
          to: list(flags, 'to'),
          bcc: list(flags, 'bcc'),
          subject: str(flags, 'subject') ?? '',
          text: body,
          eml: eml ? new Uint8Array(readFileSync(eml)) : undefined,
        });
        const reply = await submit(clients, sealed.envelope);
        const result = {
          event: 'sent',
          messageId: Buffer.from(reply.messageId).toString('hex'),
          messageHash: Buffer.from(reply.messageHash).toString('hex'),
          deliveredLocal: reply.deliveredLocal,
          queuedRemote: reply.queuedRemote,
          ...(sealed.legacy.length ? { legacy: sealed.legacy } : {}),
        };
        // Said every time: the user should know which copies the node could read.
        const legacyNote = sealed.legacy.length
          ? `\n  ${sealed.legacy.join(', ')}: no AfterSMTP node there; your node sends ${sealed.legacy.length > 1 ? 'these copies' : 'this copy'} on over SMTP, so end-to-end encryption ends at your node`
          : '';
        out(flags, result, `sent ${result.messageId}\n  ledger hash: ${result.messageHash}${legacyNote}`);
        return 0;
      });
    },
  },
  {
    name: 'subscribe',
    flags: {
      ...APP_FLAGS,
      count: { type: 'string' },
      'from-cursor': { type: 'string' },
      'save-dir': { type: 'string' },
    },
    usage: [`subscribe ${APP_USAGE} [--count N] [--from-cursor N] [--save-dir DIR]`, '(--save-dir keeps <id>.signed, and <id>.eml for mail bridged from SMTP)'],
    run({ flags }) {
      const saveDir = str(flags, 'save-dir');
      return withApp(flags, async ({ profile, clients, resolver }) => {
        const controller = new AbortController();
        process.once('SIGINT', () => controller.abort());
        process.once('SIGTERM', () => controller.abort());
        await subscribe(profile, clients, resolver, {
          fromCursor: intFlag(flags, 'from-cursor'),
          count: intFlag(flags, 'count'),
          signal: controller.signal,
          onMessage: (m) => {
            // --save-dir keeps what `aftersmtp verify --signed` checks: the signed inner message.
            if (saveDir !== undefined && m.signedMessage) {
              // Received mail is the mailbox owner's alone, whatever the umask.
              mkdirSync(saveDir, { recursive: true, mode: 0o700 });
              writeFileSync(join(saveDir, `${m.messageId}.signed`), m.signedMessage, { mode: 0o600 });
              // Bridged mail also as the RFC 5322 message, for a mail reader.
              if (m.via && m.body) writeFileSync(join(saveDir, `${m.messageId}.eml`), m.body, { mode: 0o600 });
            }
            const bridged = m.via ? { via: m.via, mailFrom: m.mailFrom, clientIp: m.clientIp, helo: m.helo, ...(m.auth ? { auth: m.auth } : {}) } : {};
            const line = {
              seq: m.seq, messageId: m.messageId, from: m.from, to: m.to, subject: m.subject, verified: m.verified, ...(m.reason ? { reason: m.reason } : {}),
              ...bridged, ...(m.labels ? { labels: m.labels } : {}), receivedAt: m.receivedAt, messageHash: m.messageHash,
            };
            process.stdout.write(`${JSON.stringify(line)}\n`);
          },
        });
        return 0;
      });
    },
  },
  {
    name: 'review release',
    args: ['MESSAGE_ID'],
    flags: APP_FLAGS,
    usage: [`review release MESSAGE_ID ${APP_USAGE}`, '(a reviewer releases mail a divert rule sent to its mailbox for review, to its original recipients)'],
    run({ args, flags }) {
      const id = args.MESSAGE_ID!;
      if (!MESSAGE_ID_PATTERN.test(id)) throw new UsageError('MESSAGE_ID is 32 hex digits');
      return withApp(flags, async ({ clients }) => {
        const reply = await unary(clients.mailbox.Release.bind(clients.mailbox), { messageId: Buffer.from(id, 'hex') }, clients.metadata) as { released: number };
        out(flags, { event: 'released', messageId: id, released: reply.released }, `${id}: released to ${reply.released} recipient mailbox(es)`);
        return 0;
      });
    },
  },
];
