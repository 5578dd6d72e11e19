"""Reply matching: which sent message (and campaign, and recipient) a received message answers.

Modules: :mod:`.subjects` (reply prefixes, subject keys), :mod:`.records` (what is kept per sent message, tenant
scope), :mod:`.registry` (the sent-message registry: in memory and in the classifier's database), :mod:`.dsn`
(what a delivery status notification says about the original), :mod:`.matcher` (the methods, in order),
:mod:`.status` (contact status from a matched answer), :mod:`.pipeline` (what the service publishes),
:mod:`.cli` (``laifaxin-mail replies match``).
"""
