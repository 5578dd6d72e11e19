"""The operator CLI, ``laifaxin-mail``: thin commands over the services' domain functions."""
