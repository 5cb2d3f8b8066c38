"""Messenger, Instagram Direct and WhatsApp conversations (no Dagster, no ASGI stack).

* :mod:`~everreach.messaging.parse` walks a webhook body once into the typed events of
  :mod:`~everreach.messaging.model` (message, echo, reaction, postback, referral, optin,
  edit, delete, receipt, status, account event);
* :mod:`~everreach.messaging.apply` turns a batch of them into one JSON document that the
  database function ``messaging_apply`` writes with one statement per table;
* :mod:`~everreach.messaging.webhook_log` applies stored webhooks and records outcomes
  (fast path, then body by body); :mod:`~everreach.messaging.replay` re-applies the log;
* :mod:`~everreach.messaging.send` checks policy windows and sends through the Graph API;
* :mod:`~everreach.messaging.settings` holds the receiver's settings.
"""
