"""``python -m laifaxin_send``: serve the send app with uvicorn on SEND_HTTP_HOST:SEND_HTTP_PORT."""

from __future__ import annotations

import uvicorn

from laifaxin_send.settings import SendSettings


def main() -> None:
    settings = SendSettings()
    uvicorn.run(
        "laifaxin_send.app:create_app",
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # the app's lifespan configures structured logging
    )


if __name__ == "__main__":
    main()
