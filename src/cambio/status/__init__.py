"""The status service: a status page and notifications driven by the exchange's real state.

It runs as its own process (``cambio status-page``, started by ``cambio serve``) with its
own SQLite store, so it keeps serving while the exchange is down. It never asks the
exchange anything: it reads DATA/heartbeat.json (liveness and current modes) and tails the
journal read-only (mode changes with their reasons, upgrade phases). Modules:

* `model`: Atlassian Statuspage's vocabulary and the mapping from exchange modes to it;
* `store`: components, their history, incidents and maintenances with their updates,
  subscribers and the notification outbox;
* `follower`: the exchange's state, from heartbeats and the journal;
* `automation`: what happens by itself: component statuses, the incident a silent
  exchange opens, maintenances from upgrade phases, reminders, auto start and complete,
  and the cadence guarantee;
* `notify`: email (SMTP, double opt-in) and webhooks (HMAC-signed, retried);
* `web`: the HTML page, Statuspage's public JSON, Atom and RSS;
* `service`: the process that runs it all.
"""
