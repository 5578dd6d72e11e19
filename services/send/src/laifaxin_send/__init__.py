"""Send service: mail.send commands submitted through each bound mailbox's own SMTP server."""
