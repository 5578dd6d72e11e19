"""The Laifaxin mail platform's common package.

One home for what more than one service needs: the event models (one module per topic), the topic registry,
settings, logging, the Kafka and MongoDB helpers, the credential crypto, and the provider catalog with the
IMAP/SMTP error taxonomy. Services never import each other; they meet on Kafka and share only this package.
"""
