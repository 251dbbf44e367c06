// The path of MAIL FROM and RCPT TO, checked on the command line as the client sent it, before smtp-server
// parses it (smtp-server drops a source route silently, as RFC 5321 appendix C allows) and before the handler
// sees it. Each refused form is an old relaying trick: the address the handler would judge is not where the
// mail would go on a host that honours the form.

/** Why a path is refused, or null when it is a plain mailbox (or the null sender). */
export function addressHack(path: string): string | null {
  if (path === '') return null;
  // RFC 5321 §4.1.2 A-d-l: "@relay1,@relay2:user@host".
  if (path.startsWith('@')) return 'source routes are not accepted';
  const at = path.lastIndexOf('@');
  const local = at > 0 ? path.slice(0, at) : path;
  const domain = at > 0 ? path.slice(at + 1) : '';
  // A quoted local part may hold any character, among them a second "@" (`"user@other"@host`).
  if (local.startsWith('"') && /[@%!]/.test(local)) return 'quoted local parts holding @, % or ! are not accepted';
  // The "%-hack" (`user%other@host` -> user@other) and UUCP bang paths (`other!user@host`).
  if (local.includes('%')) return 'the %-hack is not accepted';
  if (local.includes('!')) return 'bang paths are not accepted';
  // "user@host." is the same domain to DNS but not to a domain list, and never a valid Domain (RFC 5321 §4.1.2).
  if (domain.endsWith('.') || local.endsWith('.')) return 'trailing dots are not accepted';
  return null;
}

/** The reverse-path or forward-path of a MAIL FROM / RCPT TO command line: what is between < and >. */
export function commandPath(command: string): string | null {
  const colon = command.indexOf(':');
  if (colon < 0) return null;
  const rest = command.slice(colon + 1).trimStart();
  if (!rest.startsWith('<')) return null;
  const end = rest.indexOf('>');
  return end < 0 ? null : rest.slice(1, end);
}
