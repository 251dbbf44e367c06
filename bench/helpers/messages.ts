// The messages the benches send: an app's plain-text mail of a given size, as gateway/client builds it.
import { buildRfc5322 } from '../../gateway/client/index.ts';

/** The RFC 5322 text body that makes buildRfc5322's output `bytes` long (76-char lines). */
export function bodyFor(bytes: number, from: string, to: string): string {
  const base = buildRfc5322(from, [to], 'bench', '', new Uint8Array(16)).length;
  let text = '';
  const line = 'x'.repeat(76);
  while (base + text.length + Math.floor(text.length / 77) < bytes - 78) text += `${line}\n`;
  const rest = bytes - (base + text.length + Math.floor(text.length / 77));
  return text + 'y'.repeat(Math.max(0, rest));
}
