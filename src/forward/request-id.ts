import { randomFillSync } from 'node:crypto';

/** Ids drawn per refill of the pool: one call into OpenSSL (and its fork check) per 256 requests. */
const IDS_PER_REFILL = 256;
const ID_BYTES = 16;
const pool = Buffer.alloc(IDS_PER_REFILL * ID_BYTES);
let next = IDS_PER_REFILL;

/** A new $request_id: 16 random bytes as 32 hex digits, as nginx's. */
export function newRequestId(): string {
  if (next === IDS_PER_REFILL) {
    randomFillSync(pool);
    next = 0;
  }
  const start = next++ * ID_BYTES;
  return pool.toString('hex', start, start + ID_BYTES);
}
