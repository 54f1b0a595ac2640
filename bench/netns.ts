/**
 * Network namespaces for tests and the network bench, for a party with a network of its own: a
 * fresh namespace joined to this host by a veth pair on a /30 of 10.213.0.0/16 and nothing else
 * (no default route), so that what runs inside reaches the host's veth address and no other of
 * its addresses (its 127.0.0.1 is the namespace's own loopback). Needs root (`ip netns`).
 */
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Netns {
  /** The namespace's name, for `ip netns exec` (and `launchBrowser({ netns })`). */
  name: string;
  /** This host's end of the veth pair: what the namespace reaches this host at. */
  hostAddress: string;
  /** The namespace's end of the veth pair. */
  nsAddress: string;
  /** This host's veth link (in the host's namespace): what it sends leaves towards the namespace. */
  hostLink: string;
  /** The namespace's veth link (inside the namespace): what it sends leaves towards this host. */
  nsLink: string;
  /**
   * Limits the link to `kbit` kbit/s in one direction with a token bucket (`tbf`), replacing
   * any earlier limit in that direction; `null` removes it. `down` shapes what the namespace
   * receives (the host link's egress), `up` what it sends (the namespace link's egress).
   */
  shape(direction: 'down' | 'up', kbit: number | null): Promise<void>;
  /** Deletes the veth pair and the namespace. Idempotent. */
  remove(): Promise<void>;
}

/** /30 blocks in 10.213.0.0/16; each process starts at its own (from its pid), 8 blocks apart. */
const blocks = 16_384;
const perProcess = 8;
let created = 0;
/** Still to remove when the process exits (a test that failed before its `after`). */
const live = new Map<string, () => void>();

function removeSync(hostLink: string, name: string): void {
  // Deleting one end deletes the pair; the namespace's own end goes with the namespace too.
  spawnSync('ip', ['link', 'del', hostLink], { stdio: 'ignore' });
  spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
}

process.once('exit', () => {
  for (const remove of live.values()) remove();
});
// Interrupted (Ctrl-C, `timeout`): exit, so that the line above runs.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

/** The 10.213.x.y addresses and links this host has now (to step over blocks in use). */
async function inUse(): Promise<string> {
  const { stdout } = await run('ip', ['-o', 'addr', 'show']);
  const links = await run('ip', ['-o', 'link', 'show']);
  return stdout + links.stdout;
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

/**
 * The `tbf` parameters for `kbit`. A bucket of 4 KB (two or three full packets) at home-link
 * rates: a real bottleneck lets little through at line rate, and a larger bucket would let a
 * video keyframe slip past the limit. Above ~3 Mbit/s the bucket holds 10 ms of the rate, as the
 * kernel needs at least rate/HZ bytes to reach the rate at all. `latency 200ms` bounds the
 * queue at 200 ms of the rate (7.5 KB at 300 kbit/s), as a home router's or a cellular link's
 * buffer does; what would wait longer is dropped, which is what a sender's congestion control
 * reacts to.
 */
function tbfArgs(kbit: number): string[] {
  const burstBytes = Math.max(4096, Math.ceil((kbit * 1000) / 8 / 100));
  return ['tbf', 'rate', `${kbit}kbit`, 'burst', String(burstBytes), 'latency', '200ms'];
}

/** `tc` on `link`, in namespace `netns` when given. */
async function shapeLink(link: string, netns: string | undefined, kbit: number | null): Promise<void> {
  if (kbit !== null && !(Number.isFinite(kbit) && kbit > 0)) {
    throw new TypeError(`shape: the rate must be a positive number of kbit/s or null, not ${kbit}`);
  }
  const tc = (...args: string[]) => run('tc', [...(netns ? ['-n', netns] : []), 'qdisc', ...args]);
  if (kbit === null) {
    await tc('del', 'dev', link, 'root').catch((err: { stderr?: string }) => {
      // The veth's own `noqueue` (never shaped, or removed already): nothing to remove.
      if (!/handle of zero/.test(err.stderr ?? '')) throw err;
    });
    return;
  }
  await tc('replace', 'dev', link, 'root', ...tbfArgs(kbit));
}

/**
 * A fresh namespace (`haven-t-<pid>-<n>`) with `lo` up and a veth pair to this host on a /30 no
 * other test process uses: host `10.213.a.b+1`, namespace `10.213.a.b+2`. Remove it with
 * `remove()`; whatever is left is removed when the process exits.
 */
export async function createNetns(): Promise<Netns> {
  const n = created++;
  const name = `haven-t-${process.pid}-${n}`;
  const taken = await inUse();
  for (let attempt = 0; attempt < blocks; attempt++) {
    const block = ((process.pid % (blocks / perProcess)) * perProcess + n + attempt) % blocks;
    const base = block * 4;
    const prefix = `10.213.${base >> 8}.`;
    const hostAddress = `${prefix}${(base & 255) + 1}`;
    const nsAddress = `${prefix}${(base & 255) + 2}`;
    const hostLink = `hvt${block}h`;
    const nsLink = `hvt${block}n`;
    if (taken.includes(`${hostAddress}/`) || taken.includes(`${nsAddress}/`) || taken.includes(` ${hostLink}@`)) {
      continue;
    }
    try {
      // A veth name another process took meanwhile fails here: try the next block.
      await ip('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', nsLink);
    } catch {
      continue;
    }
    const removeNow = () => removeSync(hostLink, name);
    live.set(name, removeNow);
    try {
      await ip('netns', 'add', name);
      await ip('link', 'set', nsLink, 'netns', name);
      await ip('addr', 'add', `${hostAddress}/30`, 'dev', hostLink);
      await ip('link', 'set', hostLink, 'up');
      await ip('-n', name, 'addr', 'add', `${nsAddress}/30`, 'dev', nsLink);
      await ip('-n', name, 'link', 'set', nsLink, 'up');
      await ip('-n', name, 'link', 'set', 'lo', 'up');
    } catch (err) {
      live.delete(name);
      removeNow();
      throw err;
    }
    return {
      name,
      hostAddress,
      nsAddress,
      hostLink,
      nsLink,
      shape: (direction, kbit) =>
        direction === 'down' ? shapeLink(hostLink, undefined, kbit) : shapeLink(nsLink, name, kbit),
      async remove() {
        if (!live.delete(name)) return;
        await run('ip', ['link', 'del', hostLink]).catch(() => {});
        await run('ip', ['netns', 'del', name]).catch(() => {});
      },
    };
  }
  throw new Error('createNetns: no free /30 left in 10.213.0.0/16');
}
