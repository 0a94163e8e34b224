/** The `type` of a stored webhook body (the outbox keeps the body as sent), or undefined when it has none. */
export function webhookEventType(body: string): string | undefined {
  try {
    const t = (JSON.parse(body) as { type?: unknown }).type;
    return typeof t === 'string' ? t : undefined;
  } catch {
    return undefined;
  }
}
