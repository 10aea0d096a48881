// One background loop over leased work: claim what is due, work each item while keeping its lease alive, and
// claim again at the next tick, or as soon as a quarter of its room is free while a claim came back full (a
// backlog is drained at the pace of the work, not of the ticks). A step may give its slot back for the tail of its
// work (the poller's downloads), keeping its lease. The dispatcher, the pollers and the deliverer are
// each one such loop; the lease (with its fencing token) is what makes an item whose worker died be taken up again
// by another.
import type { Logger } from './logger';

/** A unit of work claimed under a lease; `lease_token` fences every change the worker makes to it. */
export interface Leased {
  id: string;
  lease_token: string;
}

export interface LeasedLoopOptions<T extends Leased> {
  /** Names the loop in logs (`dispatcher`, `poller`, `deliverer`). */
  name: string;
  /** Lease up to `limit` due items until `nowMs + leaseMs`. */
  claim(limit: number, leaseMs: number, nowMs: number): Promise<T[]>;
  /** Extend the leases of the items being worked, until `leaseUntilMs`: one call for all of them. */
  renew(items: readonly Leased[], leaseUntilMs: number): Promise<void>;
  /**
   * Work one item. `freeSlot()` gives the item's place in `concurrency` back while the step goes on (its lease is
   * still renewed until the step ends): for a tail of work that should not hold up the next claims. A throw is
   * logged; the item's lease then lapses and it is claimed again.
   */
  step(item: T, freeSlot: () => void): Promise<void>;
  /** Most items worked at once by this process, less those whose step freed its slot; also the most one claim asks for. */
  concurrency: number;
  /** Time between ticks, in ms. */
  interval_ms: number;
  /** How long a claim holds an item, in ms; renewed every third of it while the item is worked. */
  lease_ms: number;
  now(): number;
  log: Logger;
  /** The fields naming an item on the log's lines about it (e.g. `task_id`); `{ id }` by default. */
  logFields?(item: T): Record<string, unknown>;
}

export interface LeasedLoop {
  /** Start ticking (again, after a stop). */
  start(): void;
  /** Tick now instead of at the next interval. */
  wake(): void;
  /** Whether the loop is behind: its last claim came back full, so more items may be due than it can work. */
  backlogged(): boolean;
  /** Stop claiming; wait for the items being worked, up to `timeoutMs`. */
  stop(timeoutMs: number): Promise<void>;
}

/** A loop that claims and works leased items (see LeasedLoopOptions). */
export function createLeasedLoop<T extends Leased>(options: LeasedLoopOptions<T>): LeasedLoop {
  const { log, now } = options;
  const working = new Map<string, { item: Leased; done: Promise<void> }>();
  /** Items being worked whose step gave its slot back (freeSlot). */
  let freed = 0;
  let timer: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let stopping = true;
  /** The last claim filled the room: more may be due now. */
  let backlog = false;
  /** Free room worth a claim while there is a backlog: a claim is a write, not made for every finished item. */
  const refillAt = Math.max(1, Math.floor(options.concurrency / 4));
  const room = () => options.concurrency - (working.size - freed);

  function renewAll() {
    if (working.size === 0) return;
    const items = [...working.values()].map((w) => w.item);
    options.renew(items, now() + options.lease_ms).catch((err: Error) => log.warn({ loop: options.name, error: err.message }, 'lease renewal failed'));
  }

  function run(item: T) {
    let holdsSlot = true;
    const freeSlot = () => {
      if (!holdsSlot) return;
      holdsSlot = false;
      freed++;
      refill();
    };
    const entry = { item, done: Promise.resolve() };
    working.set(item.id, entry); // before the step starts: it may free its slot at once
    entry.done = options
      .step(item, freeSlot)
      .catch((err: Error) => log.error({ loop: options.name, ...(options.logFields?.(item) ?? { id: item.id }), error: err.message }, 'worker step failed'))
      .finally(() => {
        working.delete(item.id);
        if (!holdsSlot) freed--;
        refill();
      });
  }

  async function tick(): Promise<void> {
    const limit = room();
    if (stopping || limit <= 0) return;
    try {
      const claimed = await options.claim(limit, options.lease_ms, now());
      backlog = claimed.length === limit;
      for (const item of claimed) run(item);
    } catch (err) {
      backlog = false;
      log.error({ loop: options.name, error: (err as Error).message }, 'worker tick failed');
    }
  }

  let ticking: Promise<void> | undefined;
  const tickOnce = () =>
    (ticking ??= tick().finally(() => {
      ticking = undefined;
      refill(); // items that finished during the claim
    }));

  /** Claim again now when there is a backlog and room enough for it. */
  function refill() {
    if (backlog && !stopping && !ticking && room() >= refillAt) void tickOnce();
  }

  return {
    start() {
      if (!stopping) return;
      stopping = false;
      heartbeat = setInterval(renewAll, Math.max(100, options.lease_ms / 3));
      const loop = async () => {
        await tickOnce();
        if (!stopping) timer = setTimeout(loop, options.interval_ms);
      };
      void loop();
    },
    wake() {
      if (!stopping) void tickOnce();
    },
    backlogged: () => backlog,
    async stop(timeoutMs) {
      stopping = true;
      clearTimeout(timer);
      await ticking;
      const drained = Promise.allSettled([...working.values()].map((w) => w.done));
      await Promise.race([drained, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
      clearInterval(heartbeat);
    },
  };
}
