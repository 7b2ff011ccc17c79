-- The trace context of the request that wrote an outbox row (W3C
-- `traceparent`/`tracestate` header pairs as a JSON object), so the relay
-- publishes the message as part of that request's trace. NULL while tracing
-- is off, and for rows written before it existed.
ALTER TABLE outbox ADD COLUMN trace_context TEXT;
