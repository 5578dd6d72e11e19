"""Provider catalog and IMAP/SMTP error taxonomy, shared by binding (verify) and sync (``mailbox.sync_status``).

- :mod:`.models`: the typed, strictly validated shape of ``catalog.yaml`` (one entry per provider).
- :mod:`.catalog`: :func:`~.catalog.load_catalog`; lookups by id, email domain and MX host (label-boundary
  matching); :func:`~.catalog.known_server_hosts`.
- :mod:`.errors`: :class:`~.errors.ErrorCode`, :class:`~.errors.MailError`, :class:`~.errors.MailServerError`,
  :func:`~.errors.explain` (server reply → error), :func:`~.errors.explain_exception` (exception → error),
  :func:`~.errors.suggest_host` (typo suggestion), :func:`~.errors.redact`.

Nothing is loaded at import time; the catalog is read and validated on first use.
"""
