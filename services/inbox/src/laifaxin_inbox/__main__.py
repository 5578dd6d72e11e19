"""``python -m laifaxin_inbox``: serve the inbox app with uvicorn on INBOX_HTTP_HOST:INBOX_HTTP_PORT."""

from __future__ import annotations

import uvicorn

from laifaxin_inbox.settings import InboxSettings


def main() -> None:
    settings = InboxSettings()
    uvicorn.run(
        "laifaxin_inbox.app:create_app",
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # the app's lifespan configures structured logging
    )


if __name__ == "__main__":
    main()
