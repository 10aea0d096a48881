// The client's word on the cache, the same on both doors (RFC 9111 §5.2.1: a request's `no-cache` asks that no
// stored response be used without revalidation; vidgate reads `no-cache` and `no-store` as "generate afresh").
import type { Request } from 'express';

/** Whether the request's `Cache-Control` header asks for a fresh generation (`no-cache` or `no-store`). */
export const asksForFreshTake = (req: Request): boolean => /\bno-(cache|store)\b/i.test(req.get('cache-control') ?? '');
