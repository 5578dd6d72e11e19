"""Provider catalog and IMAP/SMTP error taxonomy, shared by binding (verify) and sync (``mailbox.sync_status``).

- :mod:`.models`: the typed, strictly validated shape of ``catalog.yaml``.
- :mod:`.catalog`: :func:`load_catalog`, lookups by id, domain and MX host (label-boundary matching).
"""
