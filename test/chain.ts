// Test helper: a real Substrate chain, in-process, on 127.0.0.1 port 0.
// @acala-network/chopsticks (GPL-3.0: devDependency, tests only) started from the genesis chain spec of
// @substrate/connect-known-chains `rococo_v2_2_asset_hub` (the only spec in the registry that carries
// a runtime). Measured here: ~2.5-3.5 s to start, ~0.7 s per block with one remark.
import type { Blockchain } from '@acala-network/chopsticks';
import { substrateAddress } from '../ledger/anchor-payload.ts';

export interface TestChain {
  /** ws://127.0.0.1:PORT */
  endpoint: string;
  port: number;
  /** The in-process chopsticks chain (head, blocks, txpool). */
  chain: Blockchain;
  /** 0x genesis hash as the RPC reports it. */
  genesisHash: string;
  /** Gives the account of a 32-byte public key `free` plancks (dev_setStorage on System.Account). */
  fund(publicKey: Uint8Array, free?: bigint): Promise<void>;
  /** Builds one block now (dev_newBlock); returns its hash. */
  newBlock(): Promise<string>;
  /** Moves the head back to block `number` (dev_setHead): the next block forks from there. */
  setHead(number: number): Promise<void>;
  headNumber(): number;
  close(): Promise<void>;
}

export interface StartChainOptions {
  /** 'Instant' (default): one block per submitted extrinsic. 'Manual': only newBlock() builds. */
  buildBlockMode?: 'Instant' | 'Manual' | 'Batch';
}

export async function startChain(options: StartChainOptions = {}): Promise<TestChain> {
  // chopsticks reads LOG_LEVEL once, when its core module loads.
  process.env['LOG_LEVEL'] ??= 'error';
  const { setupWithServer, setStorage, BuildBlockMode } = await import('@acala-network/chopsticks');
  const { chainSpec } = await import('@substrate/connect-known-chains/rococo_v2_2_asset_hub');
  const mode = options.buildBlockMode ?? 'Instant';
  const server = await setupWithServer({
    genesis: JSON.parse(chainSpec),
    port: 0,
    host: '127.0.0.1',
    'build-block-mode': BuildBlockMode[mode],
  } as Parameters<typeof setupWithServer>[0]);
  const chain = server.chain;
  const port = Number(server.addr.slice(server.addr.lastIndexOf(':') + 1));
  const genesis = await chain.getBlockAt(0);
  // Harness quirk: in genesis mode chopsticks' GenesisProvider answers chain_getHeader with the genesis
  // header for ANY hash, and Blockchain.getBlock(unknownHash) then registers that hash as block #0,
  // silently changing the chain's genesis hash (every later signature fails with badProof). All blocks
  // but genesis live in memory, so an unknown hash gets "not found", as on a real node.
  const api = chain.api as unknown as { getHeader(hash?: string): Promise<unknown> };
  const getHeader = api.getHeader.bind(api);
  api.getHeader = async (hash?: string) => (hash && hash !== genesis!.hash ? null : getHeader(hash));
  let closed = false;
  return {
    endpoint: `ws://${server.addr}`,
    port,
    chain,
    genesisHash: genesis!.hash,
    async fund(publicKey, free = 10n ** 15n) {
      await setStorage(chain, {
        System: { Account: [[[substrateAddress(publicKey)], { providers: 1, data: { free: free.toString() } }]] },
      });
    },
    async newBlock() {
      return (await chain.newBlock()).hash;
    },
    async setHead(number) {
      const block = await chain.getBlockAt(number);
      if (!block) throw new Error(`no block #${number}`);
      await chain.setHead(block);
    },
    headNumber() {
      return chain.head.number;
    },
    async close() {
      if (closed) return;
      closed = true;
      await server.close();
    },
  };
}

/** Nonce of an account = the number of its extrinsics included on the canonical chain. */
export async function accountNonce(endpoint: string, publicKey: Uint8Array): Promise<number> {
  const { SafeWsProvider } = await import('../ledger/index.ts');
  const p = new SafeWsProvider(endpoint, { connectTimeoutMs: 5000, requestTimeoutMs: 10_000 });
  await p.connect();
  try {
    return await p.send<number>('system_accountNextIndex', [substrateAddress(publicKey)]);
  } finally {
    await p.disconnect();
  }
}
