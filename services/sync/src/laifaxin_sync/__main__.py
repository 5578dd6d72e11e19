"""``python -m laifaxin_sync``: run one sync worker (settings from the environment, see settings.py)."""

from laifaxin_sync.app import main

main()
