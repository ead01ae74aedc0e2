import { z } from 'zod';

/** An order event: an order changed a product's sales count. Keyed by product id (Kafka keeps per-key order). */
export const productSalesUpdated = z.object({
  orderId: z.string(),
  productId: z.string(),
  quantity: z.number().int().positive(),
  /** Per-product sequence, to check order on arrival. */
  seq: z.number().int().nonnegative(),
  /** Send time (ms, sub-ms precision), for latency. */
  sentAt: z.number(),
});
export type ProductSalesUpdated = z.infer<typeof productSalesUpdated>;

/** A notification event: a mail to send. */
export const mailRequested = z.object({ eventId: z.string(), to: z.string().email(), template: z.string() });
export type MailRequested = z.infer<typeof mailRequested>;

export const TOPICS = { sales: 'sales', mail: 'mail' } as const;
