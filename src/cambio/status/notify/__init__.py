"""Notifications to subscribers: email over SMTP (double opt-in, unsubscribe links) and
webhooks (Statuspage's payloads, HMAC-SHA256 signed, retried with backoff).

* `shapes`: Statuspage's component and incident JSON objects (shared with the public API);
* `outbox`: `Notifications`, which turns component changes and incident updates into
  outbox entries per subscriber and delivers what is due.
"""
