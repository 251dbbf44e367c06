// The bulk sender's path as the benches drive it: one SubmitStream carrying pre-sealed envelopes, at most
// `concurrency` of them unanswered, until all are sent or the deadline passes.
import type { Clients } from '../../gateway/client/index.ts';
import type { Envelope, SubmitReply__Output } from '../../proto/index.ts';

export interface SubmitStreamRun {
  concurrency: number;
  /** Date.now() after which no further envelope is written. */
  deadline: number;
  /** Just before envelope `i` is written. */
  onSubmit?: (i: number) => void;
  onReply: (i: number, reply: SubmitReply__Output) => void;
  onFailure: (i: number, message: string) => void;
  /** The stream itself failed (the envelopes still unanswered get no reply). */
  onStreamError: (message: string) => void;
}

/** Resolves with how many envelopes were written once the stream has ended. */
export function submitStream(clients: Clients, envelopes: Envelope[], run: SubmitStreamRun): Promise<number> {
  return new Promise<number>((resolve) => {
    const call = clients.mailbox.SubmitStream(clients.metadata);
    let next = 0;
    let open = 0;
    const fill = () => {
      while (next < envelopes.length && open < run.concurrency && Date.now() < run.deadline) {
        const i = next++;
        open++;
        run.onSubmit?.(i);
        call.write({ envelope: envelopes[i]!, clientRef: i });
      }
      if (open === 0 && (next >= envelopes.length || Date.now() >= run.deadline)) call.end();
    };
    call.on('data', (reply: SubmitReply__Output) => {
      open--;
      if (reply.error) run.onFailure(reply.clientRef, reply.error.message);
      else run.onReply(reply.clientRef, reply);
      fill();
    });
    call.on('error', (err: Error) => { run.onStreamError(err.message); resolve(next); });
    call.on('end', () => resolve(next));
    fill();
  });
}
