"""``python -m laifaxin_binding``: serve the binding app with uvicorn on BINDING_HTTP_HOST:BINDING_HTTP_PORT."""

from __future__ import annotations

import uvicorn

from laifaxin_binding.settings import BindingSettings


def main() -> None:
    settings = BindingSettings()
    uvicorn.run(
        "laifaxin_binding.app:create_app",
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # the app's lifespan configures structured logging
    )


if __name__ == "__main__":
    main()
