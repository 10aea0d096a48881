import { SIZES, type ModelOffer } from '../types';

/** What the simulated upstream offers when no catalog is given. */
export const DEFAULT_SIMULATED_CATALOG: readonly ModelOffer[] = [
  {
    model: 'sora-2',
    upstream_model: 'sora-2',
    sizes: ['1280x720', '720x1280'],
    durations_s: [4, 8, 12],
    image_input: true,
    usd_per_second: { standard: 0.1 },
  },
  {
    model: 'sora-2-pro',
    upstream_model: 'sora-2-pro',
    sizes: [...SIZES],
    durations_s: [4, 8, 12],
    image_input: true,
    usd_per_second: { standard: 0.3, high: 0.5 },
  },
];
